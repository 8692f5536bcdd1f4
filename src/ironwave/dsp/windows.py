"""Analysis/synthesis windows for STFT, iSTFT and filter design.

Windows are *periodic* (DFT-even) by default, the convention of ``torch.stft``,
``librosa.stft`` and ``scipy.signal.get_window(..., fftbins=True)``: a window of
length ``N`` is the first ``N`` samples of the symmetric window of length
``N + 1``. Every window is computed in float64 and then cast, so float32 and
float64 callers get the same, correctly rounded values.

Accepted window specs (:data:`WindowSpec`):

* ``"hann"`` (alias ``"hanning"``), ``"hamming"``, ``"blackman"``,
  ``"rect"`` (aliases ``"boxcar"``, ``"ones"``, ``"rectangular"``): cosine-sum
  windows ``w[n] = sum_k (-1)^k a_k cos(2 pi k n / N)``;
* ``("kaiser", beta)``: Kaiser window with shape parameter ``beta``;
* a 1-D tensor or numpy array of samples (used as is).
"""
from __future__ import annotations

import math
from typing import Any, Union

import numpy as np
import torch

from ironwave.errors import InvalidParameter

WindowSpec = Union[str, tuple[str, float], torch.Tensor, np.ndarray]

#: Cosine-sum coefficients ``a_k`` (``w[n] = sum_k (-1)^k a_k cos(2 pi k n / N)``).
COSINE_SUM: dict[str, tuple[float, ...]] = {
    "hann": (0.5, 0.5),
    "hamming": (0.54, 0.46),
    "blackman": (0.42, 0.5, 0.08),
    "rect": (1.0,),
}
_ALIASES = {"hanning": "hann", "boxcar": "rect", "ones": "rect", "rectangular": "rect"}
_ACCEPTED = "'hann', 'hamming', 'blackman', 'rect', ('kaiser', beta) or a 1-D tensor/array of samples"


def window_name(window: WindowSpec) -> str | None:
    """Canonical name of a named cosine-sum window spec (``"hann"``, ...), else ``None``."""
    if isinstance(window, str):
        name = _ALIASES.get(window.strip().lower(), window.strip().lower())
        return name if name in COSINE_SUM else None
    return None


def cosine_sum_coefficients(window: WindowSpec) -> tuple[float, ...] | None:
    """The cosine-sum coefficients ``(a_0, a_1, ...)`` of a named window, else ``None``.

    Used by the frequency-domain windowing of :func:`ironwave.dsp.stft.stft`:
    the DFT of ``w * frame`` equals ``a_0 X[f] + sum_k (-1)^k a_k / 2 (X[f-k] + X[f+k])``
    where ``X`` is the DFT of the unwindowed frame (periodic window, length == n_fft).
    """
    name = window_name(window)
    return COSINE_SUM[name] if name is not None else None


def _kaiser(length: int, beta: float, periodic: bool) -> torch.Tensor:
    if length == 1:
        return torch.ones(1, dtype=torch.float64)
    m = length if periodic else length - 1  # symmetric window of length m + 1
    n = torch.arange(length, dtype=torch.float64)
    r = (2.0 * n / m) - 1.0
    arg = beta * torch.sqrt(torch.clamp(1.0 - r * r, min=0.0))
    return torch.special.i0(arg) / torch.special.i0(torch.tensor(float(beta), dtype=torch.float64))


_CACHE: dict[tuple, torch.Tensor] = {}


def get_window(
    window: WindowSpec,
    length: int,
    *,
    periodic: bool = True,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Return window samples as a tensor of shape ``[length]``.

    Args:
        window: a :data:`WindowSpec` (name, ``("kaiser", beta)`` or samples).
        length: window length in samples (>= 1). For a tensor/array spec it must
            equal the number of samples given.
        periodic: DFT-even (``True``, for spectral analysis) or symmetric
            (``False``, for filter design).
        dtype / device: of the result (computed in float64, then cast).

    Raises:
        InvalidParameter: unknown name, bad beta, wrong length, NaN/Inf samples.
    """
    if not isinstance(length, (int, np.integer)) or isinstance(length, bool) or length < 1:
        raise InvalidParameter(f"window length must be a positive integer (samples), got {length!r}")
    length = int(length)
    if isinstance(window, (str, tuple)):
        try:
            key = (window, length, periodic, dtype, str(device))
            hit = _CACHE.get(key)
        except TypeError:  # unhashable tuple member
            key, hit = None, None
        if hit is not None:
            return hit.clone()
        w = _named_window(window, length, periodic).to(device=device, dtype=dtype)
        if key is not None:
            if len(_CACHE) > 128:
                _CACHE.clear()
            _CACHE[key] = w
        return w.clone()
    if isinstance(window, (torch.Tensor, np.ndarray)):
        w = torch.as_tensor(window)
        if w.ndim != 1:
            raise InvalidParameter(f"window samples must be 1-D, got shape {list(w.shape)}")
        if w.is_complex() or not w.is_floating_point():
            w = w.to(torch.float64) if not w.is_complex() else w
            if w.is_complex():
                raise InvalidParameter("window samples must be real-valued")
        if w.shape[0] != length:
            raise InvalidParameter(f"window has {w.shape[0]} samples but length {length} was requested (win_length)")
        if not bool(torch.isfinite(w).all()):
            raise InvalidParameter("window samples contain NaN or Inf")
        return w.to(device=device, dtype=dtype)
    raise InvalidParameter(f"unknown window {window!r} ({type(window).__name__}); accepted: {_ACCEPTED}")


def _named_window(window: str | tuple, length: int, periodic: bool) -> torch.Tensor:
    if isinstance(window, tuple):
        if len(window) != 2 or not isinstance(window[0], str) or window[0].strip().lower() != "kaiser":
            raise InvalidParameter(f"unknown window {window!r}; accepted: {_ACCEPTED}")
        beta = window[1]
        if not isinstance(beta, (int, float, np.floating, np.integer)) or not math.isfinite(float(beta)) or float(beta) < 0:
            raise InvalidParameter(f"kaiser beta must be a finite number >= 0, got {beta!r}")
        return _kaiser(length, float(beta), periodic)
    if isinstance(window, str):
        name = window_name(window)
        if name is None:
            if window.strip().lower() == "kaiser":
                raise InvalidParameter("the kaiser window needs a beta: pass window=('kaiser', beta)")
            raise InvalidParameter(f"unknown window {window!r}; accepted: {_ACCEPTED}")
        a = COSINE_SUM[name]
        m = length if periodic else max(length - 1, 1)
        n = torch.arange(length, dtype=torch.float64)
        w = torch.zeros(length, dtype=torch.float64)
        for k, ak in enumerate(a):
            w += ((-1) ** k) * ak * torch.cos(2.0 * math.pi * k * n / m)
        if length == 1:
            w = torch.ones(1, dtype=torch.float64)
        return w
    raise InvalidParameter(f"unknown window {window!r} ({type(window).__name__}); accepted: {_ACCEPTED}")


def finite_fast(x: torch.Tensor, name: str = "x") -> None:
    """Reject NaN/Inf with one read-only reduction; locate the bad sample only on failure."""
    from ironwave.backend.validate import check_finite

    s = x.detach().sum() if not x.is_complex() else torch.view_as_real(x.detach()).sum()
    if not bool(torch.isfinite(s)):
        check_finite(x, name)  # raises with the index of the first bad sample (no-op on mere overflow)


def pad_window(w: torch.Tensor, n_fft: int) -> torch.Tensor:
    """Zero-pad a window of ``win_length <= n_fft`` samples, centred, to ``n_fft``.

    Same placement as ``torch.stft``/``librosa.stft``: ``(n_fft - win_length) // 2``
    zeros on the left.
    """
    wl = w.shape[-1]
    if wl == n_fft:
        return w
    left = (n_fft - wl) // 2
    return torch.nn.functional.pad(w, (left, n_fft - wl - left))


def describe(window: Any) -> str:
    """Short human-readable description of a window spec (for messages)."""
    if isinstance(window, (torch.Tensor, np.ndarray)):
        return f"custom window of {len(window)} samples"
    return repr(window)
