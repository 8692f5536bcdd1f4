"""Validation at the library boundary: shapes, dtypes, NaN/Inf.

Tensors are the currency inside ironwave; numpy arrays are accepted at the edges
and returned as numpy (:func:`restore_type`).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ironwave.errors import InvalidAudio

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def as_tensor(x: Any, name: str = "x", *, dtype: torch.dtype | None = None, device: torch.device | None = None) -> tuple[torch.Tensor, bool]:
    """Convert an array-like to a tensor.

    Returns:
        ``(tensor, was_numpy)``; *was_numpy* tells :func:`restore_type` to give
        numpy back.
    """
    was_numpy = isinstance(x, np.ndarray)
    if isinstance(x, torch.Tensor):
        t = x
    elif was_numpy:
        if x.dtype.kind not in "fc":
            x = x.astype(np.float32)
        t = torch.from_numpy(np.ascontiguousarray(x))
    elif isinstance(x, (list, tuple, float, int)):
        t = torch.as_tensor(x, dtype=torch.float32)
    else:
        raise InvalidAudio(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    if dtype is not None or device is not None:
        t = t.to(device=device if device is not None else t.device, dtype=dtype if dtype is not None else t.dtype)
    return t, was_numpy


def restore_type(y: torch.Tensor, was_numpy: bool) -> Any:
    """Give numpy back to a caller who passed numpy."""
    if was_numpy:
        return y.detach().cpu().numpy()
    return y


def _first_bad_index(x: torch.Tensor) -> tuple[int, ...]:
    bad = ~torch.isfinite(x)
    idx = torch.nonzero(bad, as_tuple=False)[0]
    return tuple(int(i) for i in idx)


def _all_finite(x: torch.Tensor) -> bool:
    """Fast finiteness test: one float64 reduction (NaN/Inf propagate through a sum);
    the exact elementwise test only when the sum is not finite (it may have overflowed)."""
    if x.numel() == 0:
        return True
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
        a = x.detach().numpy()
        s = a.sum(dtype=np.float64)
        return bool(np.isfinite(s)) or bool(np.isfinite(a).all())
    s = x.detach().sum(dtype=torch.float64)
    return bool(torch.isfinite(s)) or bool(torch.isfinite(x).all())


def check_finite(x: torch.Tensor, name: str = "x") -> None:
    """Raise :class:`InvalidAudio` naming the first NaN/Inf sample of *x*."""
    if x.is_complex():
        if not _all_finite(torch.view_as_real(x)):
            raise InvalidAudio(f"{name} contains NaN or Inf values")
        return
    if not _all_finite(x):
        where = _first_bad_index(x)
        value = x[where].item()
        raise InvalidAudio(f"{name} contains {'NaN' if value != value else 'Inf'} at index {list(where)} (shape {list(x.shape)}); audio must be finite")


def check_audio(
    x: Any,
    name: str = "x",
    *,
    min_ndim: int = 1,
    max_ndim: int | None = None,
    channels: int | None = None,
    min_length: int = 1,
    finite: bool = True,
    allow_complex: bool = False,
    dtypes: Sequence[torch.dtype] = _FLOAT_DTYPES,
) -> torch.Tensor:
    """Validate an audio tensor shaped ``[..., time]`` (e.g. ``[batch, channels, time]``).

    Args:
        x: tensor or numpy array.
        name: name used in the error message.
        min_ndim / max_ndim: accepted number of dimensions.
        channels: required size of dim -2, if given.
        min_length: minimum number of samples along the last axis.
        finite: reject NaN/Inf.
        allow_complex: accept complex dtypes.
        dtypes: accepted real dtypes.

    Returns:
        The input as a tensor (numpy converted, no copy when possible).
    """
    t, _ = as_tensor(x, name)
    if t.is_complex():
        if not allow_complex:
            raise InvalidAudio(f"{name} must be real-valued, got complex dtype {t.dtype}")
    elif t.dtype not in dtypes:
        raise InvalidAudio(f"{name} has dtype {t.dtype}; accepted: {', '.join(str(d) for d in dtypes)}")
    if t.ndim < min_ndim or (max_ndim is not None and t.ndim > max_ndim):
        want = f"{min_ndim}..{max_ndim}" if max_ndim is not None else f">= {min_ndim}"
        raise InvalidAudio(f"{name} has shape {list(t.shape)} ({t.ndim} dims); expected {want} dims shaped [..., time]")
    if channels is not None and (t.ndim < 2 or t.shape[-2] != channels):
        raise InvalidAudio(f"{name} has shape {list(t.shape)}; expected {channels} channel(s) in dim -2")
    if t.shape[-1] < min_length:
        raise InvalidAudio(f"{name} has {t.shape[-1]} samples along time; at least {min_length} needed")
    if finite:
        check_finite(t, name)
    return t
