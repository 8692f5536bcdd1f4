"""Batched FFTs over ``[..., n]`` with automatic CPU/GPU choice.

``rfft``, ``irfft``, ``fft`` and ``ifft`` transform the last axis (or ``dim``)
of a batch of signals. The backend is chosen per call by
:func:`ironwave.backend.device.choose_device` (``"fft"`` family, calibrated
CPU/GPU crossover, transfers included) unless the caller names a device. The
result always comes back on the *input's* device (and as numpy when numpy came
in); telemetry records the device the transform actually ran on.

All four are differentiable (autograd flows through device moves).
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import torch

from ironwave.backend.device import DeviceLike, choose_device
from ironwave.backend.telemetry import telemetry
from ironwave.backend.validate import as_tensor, check_finite, restore_type
from ironwave.errors import InvalidAudio, InvalidParameter

_NORMS = ("backward", "ortho", "forward")


def _check_common(x: torch.Tensor, n: Optional[int], dim: int, norm: str, name: str) -> int:
    if x.ndim == 0:
        raise InvalidAudio(f"{name}: input must have at least 1 dimension shaped [..., n], got a scalar")
    if not -x.ndim <= dim < x.ndim:
        raise InvalidParameter(f"{name}: dim={dim} is out of range for an input with {x.ndim} dims")
    if norm not in _NORMS:
        raise InvalidParameter(f"{name}: norm={norm!r}; accepted: {', '.join(map(repr, _NORMS))}")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise InvalidParameter(f"{name}: n must be a positive integer (samples), got {n!r}")
    if x.shape[dim] < 1:
        raise InvalidAudio(f"{name}: input has 0 samples along dim {dim}")
    return x.shape[dim]


def _run(op: str, fn: Callable[[torch.Tensor], torch.Tensor], x: Any, n: Optional[int], dim: int, norm: str,
         device: DeviceLike, *, want_complex: Optional[bool]) -> Any:
    t, was_numpy = as_tensor(x, op)
    size = _check_common(t, n, dim, norm, op)
    if want_complex is True and not t.is_complex():
        raise InvalidAudio(f"{op}: input must be complex (a half spectrum [..., n_freq]), got {t.dtype}")
    if want_complex is False and t.is_complex():
        raise InvalidAudio(f"{op}: input must be real-valued, got {t.dtype}")
    if not t.is_complex() and not t.is_floating_point():
        t = t.to(torch.float32)
    check_finite(t, op)
    batch = max(t.numel() // max(size, 1), 1)
    home = t.device
    dev = choose_device("fft", n or size, batch, device, home=home)
    with telemetry.track(f"dsp.{op}", dev, requested=device):
        y = fn(t.to(dev))
        y = y.to(home)
    return restore_type(y, was_numpy)


def rfft(x: Any, n: Optional[int] = None, dim: int = -1, norm: str = "backward", *, device: DeviceLike = "auto") -> Any:
    """Real-input FFT of ``[..., n]`` signals -> complex ``[..., n // 2 + 1]`` bins.

    Args:
        x: real signals (tensor or numpy), any batch shape; ``dim`` is the time axis.
        n: transform length in samples (zero-pad / truncate), default the input length.
        dim: axis to transform.
        norm: ``"backward"`` (default, no scaling forward), ``"ortho"``, ``"forward"``.
        device: ``"auto"`` (calibrated crossover), ``"cpu"``, ``"cuda[:N]"``.

    Returns:
        Complex spectrum on the input's device (numpy if numpy came in).
    """
    return _run("rfft", lambda t: torch.fft.rfft(t, n=n, dim=dim, norm=norm), x, n, dim, norm, device, want_complex=False)


def irfft(X: Any, n: Optional[int] = None, dim: int = -1, norm: str = "backward", *, device: DeviceLike = "auto") -> Any:
    """Inverse of :func:`rfft`: complex ``[..., n_freq]`` -> real ``[..., n]``.

    ``n`` (samples) defaults to ``2 * (n_freq - 1)``; pass it for odd lengths.
    """
    if n is None:
        t, _ = as_tensor(X, "irfft")
        if t.ndim and t.shape[dim] < 2:
            raise InvalidAudio("irfft: need at least 2 frequency bins to infer n; pass n explicitly")
    return _run("irfft", lambda t: torch.fft.irfft(t, n=n, dim=dim, norm=norm), X, n, dim, norm, device, want_complex=True)


def fft(x: Any, n: Optional[int] = None, dim: int = -1, norm: str = "backward", *, device: DeviceLike = "auto") -> Any:
    """Complex FFT of ``[..., n]`` (real input is promoted to complex)."""
    return _run("fft", lambda t: torch.fft.fft(t, n=n, dim=dim, norm=norm), x, n, dim, norm, device, want_complex=None)


def ifft(X: Any, n: Optional[int] = None, dim: int = -1, norm: str = "backward", *, device: DeviceLike = "auto") -> Any:
    """Inverse complex FFT of ``[..., n]``."""
    return _run("ifft", lambda t: torch.fft.ifft(t, n=n, dim=dim, norm=norm), X, n, dim, norm, device, want_complex=None)


__all__ = ["rfft", "irfft", "fft", "ifft"]
