"""Device resolution: ``"auto" | "cpu" | "cuda" | "cuda:N"`` or a :class:`torch.device`.

Rules
-----
* ``"auto"`` picks CUDA when present, else the CPU. The environment variable
  ``IRONWAVE_DEVICE`` (same grammar) overrides what ``"auto"`` means.
* An explicit CUDA request that cannot be met raises
  :class:`~ironwave.errors.BackendUnavailable`. There is never a silent CPU fallback.
"""
from __future__ import annotations

import os
import re
from typing import Union

import torch

from ironwave.errors import BackendUnavailable, InvalidParameter

DeviceLike = Union[str, torch.device, None]

_ACCEPTED = "'auto', 'cpu', 'cuda', 'cuda:N' or a torch.device"
_PATTERN = re.compile(r"^(auto|cpu|cuda(?::(\d+))?)$")


def cuda_available() -> bool:
    """True when torch sees at least one usable CUDA device."""
    try:
        return bool(torch.cuda.is_available()) and torch.cuda.device_count() > 0
    except Exception:  # pragma: no cover - broken driver installs
        return False


def _parse(spec: str) -> tuple[str, int | None]:
    s = spec.strip().lower()
    m = _PATTERN.match(s)
    if not m:
        raise InvalidParameter(f"unknown device {spec!r}; accepted: {_ACCEPTED}")
    kind = s.split(":")[0]
    return kind, (int(m.group(2)) if m.group(2) is not None else None)


def resolve_device(spec: DeviceLike = "auto") -> torch.device:
    """Turn a device spec into a concrete :class:`torch.device`.

    Args:
        spec: ``"auto"`` (default, also ``None``), ``"cpu"``, ``"cuda"``,
            ``"cuda:N"`` or a :class:`torch.device`.

    Returns:
        The resolved device, e.g. ``device("cuda:0")``.

    Raises:
        BackendUnavailable: CUDA was requested explicitly but is missing, or the
            index is out of range.
        InvalidParameter: the spec is not understood.
    """
    if spec is None:
        spec = "auto"
    if isinstance(spec, torch.device):
        kind, index = spec.type, spec.index
        if kind not in ("cpu", "cuda"):
            raise InvalidParameter(f"unsupported device type {kind!r}; accepted: {_ACCEPTED}")
    elif isinstance(spec, str):
        kind, index = _parse(spec)
    else:
        raise InvalidParameter(f"device must be a string or torch.device, got {type(spec).__name__}; accepted: {_ACCEPTED}")

    if kind == "auto":
        forced = os.environ.get("IRONWAVE_DEVICE", "").strip()
        if forced and forced.lower() != "auto":
            return resolve_device(forced)
        return torch.device("cuda", torch.cuda.current_device()) if cuda_available() else torch.device("cpu")
    if kind == "cpu":
        return torch.device("cpu")
    # explicit CUDA
    if not cuda_available():
        raise BackendUnavailable(
            f"device {str(spec)!r} was requested but CUDA is not available "
            f"(torch {torch.__version__}, built with CUDA {torch.version.cuda or 'none'}); "
            "use device='cpu' or 'auto'"
        )
    n = torch.cuda.device_count()
    if index is None:
        index = torch.cuda.current_device()
    if not 0 <= index < n:
        raise BackendUnavailable(f"device 'cuda:{index}' was requested but only {n} CUDA device(s) exist (cuda:0..cuda:{n - 1})")
    return torch.device("cuda", index)


def is_explicit_cuda(spec: DeviceLike) -> bool:
    """True when *spec* names CUDA explicitly (not through ``"auto"``)."""
    if isinstance(spec, torch.device):
        return spec.type == "cuda"
    return isinstance(spec, str) and spec.strip().lower().startswith("cuda")


def choose_device(op: str, size: int, batch: int = 1, device: DeviceLike = "auto",
                  home: torch.device | None = None) -> torch.device:
    """Pick the device for one op call.

    An explicit device is honoured (and checked). ``"auto"`` keeps data that
    already lives on a GPU (*home*) on that GPU, and otherwise consults the
    calibrated CPU/GPU crossover of the op family (see
    :func:`ironwave.backend.profile.should_use_gpu`).

    Args:
        op: op family, e.g. ``"fft"``, ``"conv"``, ``"iir"``.
        size: per-signal problem size in samples.
        batch: number of independent signals.
        device: the caller's device request.
        home: the device the input already lives on (GPU-resident data stays put under "auto").
    """
    if device is None or (isinstance(device, str) and device.strip().lower() == "auto"):
        if os.environ.get("IRONWAVE_DEVICE", "auto").strip().lower() not in ("", "auto"):
            return resolve_device("auto")
        if home is not None and home.type == "cuda":
            return home
        from ironwave.backend.profile import should_use_gpu

        return resolve_device("cuda") if should_use_gpu(op, size, batch) else torch.device("cpu")
    return resolve_device(device)


def device_name(device: DeviceLike = "auto") -> str:
    """Human-readable name of a device: the GPU model or the CPU model."""
    dev = resolve_device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    from ironwave.backend.profile import cpu_model_name

    return cpu_model_name()
