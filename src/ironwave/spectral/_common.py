"""Shared helpers of :mod:`ironwave.spectral`: input validation, devices, windows."""
from __future__ import annotations

import math
import time
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np
import torch

from ironwave.backend.device import DeviceLike, resolve_device
from ironwave.backend.telemetry import telemetry
from ironwave.backend.validate import as_tensor, check_audio, check_finite, restore_type
from ironwave.errors import InvalidAudio, InvalidParameter

__all__ = ["prepare_input", "finish", "complex_dtype", "real_dtype", "get_window", "track", "positive",
           "check_sr", "InvalidAudio", "InvalidParameter", "restore_type", "check_finite"]


def complex_dtype(dtype: torch.dtype) -> torch.dtype:
    """complex64 for float32/16, complex128 for float64."""
    return torch.complex128 if dtype in (torch.float64, torch.complex128) else torch.complex64


def real_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 for float64/complex128, else float32."""
    return torch.float64 if dtype in (torch.float64, torch.complex128) else torch.float32


def prepare_input(x: Any, name: str = "x", *, device: DeviceLike = None, min_length: int = 1,
                  allow_complex: bool = False, min_ndim: int = 1,
                  what: str | None = None) -> tuple[torch.Tensor, torch.device, bool, torch.dtype]:
    """Validate *x* (``[..., time]``), move it to the compute device.

    Returns ``(tensor_on_compute_device, input_device, was_numpy, input_dtype)``.
    ``device=None`` computes where the input lives; anything else goes through
    :func:`~ironwave.backend.device.resolve_device` (explicit CUDA that cannot
    be met raises ``BackendUnavailable``).
    """
    t, was_numpy = as_tensor(x, name)
    if t.ndim >= 1 and 0 < t.shape[-1] < min_length and what:
        raise InvalidAudio(f"{name} has {t.shape[-1]} samples along time; {what} needs at least {min_length} samples")
    t = check_audio(t, name, min_ndim=min_ndim, min_length=min_length, allow_complex=allow_complex)
    in_dev = t.device
    in_dtype = t.dtype
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.float()
    dev = in_dev if device is None else resolve_device(device)
    if dev != t.device:
        t = t.to(dev)
    return t, in_dev, was_numpy, in_dtype


def finish(y: torch.Tensor, in_dev: torch.device, was_numpy: bool) -> Any:
    """Move a result back to the caller's device and type (numpy in -> numpy out)."""
    if y.device != in_dev:
        y = y.to(in_dev)
    return restore_type(y, was_numpy)


@contextmanager
def track(op: str, device: torch.device, requested: DeviceLike) -> Iterator[None]:
    """Telemetry: record *op* on the device it actually ran on."""
    with telemetry.track(op, device, requested=requested):
        yield


def positive(name: str, value: float, *, integer: bool = False, allow_zero: bool = False) -> None:
    """Raise InvalidParameter unless *value* is a finite positive number (int if *integer*)."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) and math.isfinite(float(value))
    if ok and integer:
        ok = float(value) == int(value)
    if ok:
        ok = value >= 0 if allow_zero else value > 0
    if not ok:
        kind = "integer" if integer else "number"
        raise InvalidParameter(f"{name}={value!r} must be a {'non-negative' if allow_zero else 'positive'} {kind}")


def check_sr(sr: float) -> float:
    positive("sr", sr)
    return float(sr)


def get_window(window: Any, length: int, *, dtype: torch.dtype = torch.float64, device: torch.device | None = None,
               periodic: bool = True) -> torch.Tensor:
    """A window of *length* samples: a scipy window spec (``"hann"``, ``("kaiser", 8)``), a callable
    ``f(length) -> array`` or an explicit array/tensor of the right length. Periodic (``fftbins=True``)
    like librosa."""
    if isinstance(window, torch.Tensor) or isinstance(window, np.ndarray):
        w = torch.as_tensor(np.asarray(window.detach().cpu() if isinstance(window, torch.Tensor) else window), dtype=torch.float64)
        if w.ndim != 1 or w.shape[0] != length:
            raise InvalidParameter(f"window has shape {list(w.shape)}; expected [{length}]")
    elif callable(window):
        w = torch.as_tensor(np.asarray(window(length), dtype=np.float64))
    else:
        import scipy.signal

        try:
            w = torch.from_numpy(scipy.signal.get_window(window, length, fftbins=periodic).astype(np.float64))
        except (ValueError, TypeError) as e:
            raise InvalidParameter(f"unknown window {window!r}: {e}; use a scipy window name such as 'hann'") from None
    return w.to(dtype=dtype, device=device)


def stft(x: torch.Tensor, n_fft: int, hop_length: int, window: torch.Tensor, *, center: bool = True,
         pad_mode: str = "constant") -> torch.Tensor:
    """``[..., time]`` -> complex ``[..., n_fft // 2 + 1, frames]`` (torch.stft, librosa framing).

    *window* must have ``n_fft`` samples (zero-padded by the caller if shorter).
    """
    shape = x.shape
    flat = x.reshape(-1, shape[-1])
    if center and pad_mode not in ("constant", "reflect", "replicate", "circular"):
        raise InvalidParameter(f"pad_mode={pad_mode!r}; accepted: 'constant', 'reflect', 'replicate', 'circular'")
    if center and pad_mode == "reflect" and shape[-1] <= n_fft // 2:
        raise InvalidAudio(f"reflect padding needs more than n_fft // 2 = {n_fft // 2} samples, got {shape[-1]}")
    S = torch.stft(flat, n_fft, hop_length=hop_length, win_length=n_fft, window=window.to(x.dtype), center=center,
                   pad_mode=pad_mode, return_complex=True, onesided=True)
    return S.reshape(*shape[:-1], S.shape[-2], S.shape[-1])


def istft(S: torch.Tensor, n_fft: int, hop_length: int, window: torch.Tensor, *, center: bool = True,
          length: int | None = None) -> torch.Tensor:
    """Inverse of :func:`stft` (least-squares overlap-add, torch.istft)."""
    shape = S.shape
    flat = S.reshape(-1, shape[-2], shape[-1])
    y = torch.istft(flat, n_fft, hop_length=hop_length, win_length=n_fft, window=window.to(real_dtype(S.dtype)),
                    center=center, length=length, return_complex=False)
    return y.reshape(*shape[:-2], y.shape[-1])
