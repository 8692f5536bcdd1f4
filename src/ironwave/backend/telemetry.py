"""Telemetry: which backend each op actually ran on, how often, and how long.

Every ironwave op calls :meth:`Telemetry.record` (or uses :meth:`Telemetry.track`)
with the device it *actually* ran on. A report then proves that the GPU path ran.

Strict mode: with ``IRONWAVE_STRICT_DEVICE=1`` in the environment (or
``telemetry.strict = True``), any op that was requested on CUDA but executed on
the CPU raises :class:`~ironwave.errors.StrictDeviceError`.
"""
from __future__ import annotations

import os
import threading
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch

from ironwave.errors import StrictDeviceError


@dataclass
class OpStats:
    """Counters of one op: calls per backend type and host-side timing (seconds)."""

    calls: dict[str, int] = field(default_factory=dict)
    total_s: float = 0.0
    max_s: float = 0.0

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())


def _backend_of(device: Any) -> str:
    if isinstance(device, torch.device):
        return device.type
    if isinstance(device, torch.Tensor):
        return device.device.type
    return str(device).split(":")[0]


def _requested_cuda(requested: Any) -> bool:
    if requested is None:
        return False
    if isinstance(requested, torch.device):
        return requested.type == "cuda"
    return str(requested).strip().lower().startswith("cuda")


class Telemetry:
    """Thread-safe op counters. Use the module-level :data:`telemetry` instance."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ops: dict[str, OpStats] = {}
        self._counters: dict[str, int] = {}
        self.enabled = True
        self._strict_override: bool | None = None
        self._sources: "weakref.WeakSet[Any]" = weakref.WeakSet()

    # -- strict mode -------------------------------------------------------
    @property
    def strict(self) -> bool:
        """True when CPU execution of CUDA-requested work is an error."""
        if self._strict_override is not None:
            return self._strict_override
        return os.environ.get("IRONWAVE_STRICT_DEVICE", "0").strip().lower() in ("1", "true", "yes", "on")

    @strict.setter
    def strict(self, value: bool | None) -> None:
        self._strict_override = value

    def check(self, op: str, requested: Any, actual: Any) -> None:
        """Raise in strict mode if *op* was requested on CUDA but ran on *actual* = CPU."""
        if _requested_cuda(requested) and _backend_of(actual) != "cuda" and self.strict:
            raise StrictDeviceError(
                f"op {op!r} was requested on {requested} but ran on {_backend_of(actual)} "
                "(IRONWAVE_STRICT_DEVICE=1 forbids CPU execution of CUDA work)"
            )

    # -- recording ---------------------------------------------------------
    def record(self, op: str, device: Any, seconds: float = 0.0, requested: Any = None) -> None:
        """Count one call of *op* on *device* (torch.device, tensor or string)."""
        self.check(op, requested, device)
        if not self.enabled:
            return
        self._bump(op, _backend_of(device), 1, seconds, seconds)

    @contextmanager
    def track(self, op: str, device: Any, requested: Any = None) -> Iterator[None]:
        """Context manager that records *op* with its host-side duration."""
        self.check(op, requested, device)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.record(op, device, time.perf_counter() - t0)

    def add(self, op: str, device: Any, n: int, seconds: float = 0.0) -> None:
        """Count *n* calls of *op* on *device* at once (for sources that batch their counts)."""
        if not self.enabled or n <= 0:
            return
        self._bump(op, _backend_of(device), n, seconds, 0.0)

    def _bump(self, op: str, backend: str, n: int, seconds: float, longest: float) -> None:
        with self._lock:
            st = self._ops.get(op)
            if st is None:
                st = self._ops[op] = OpStats()
            st.calls[backend] = st.calls.get(backend, 0) + n
            st.total_s += seconds
            if longest > st.max_s:
                st.max_s = longest

    def register_source(self, obj: Any) -> None:
        """Register an object whose hot path counts locally (no lock) and whose
        ``flush_telemetry()`` pushes the counts; readers pull before reporting."""
        self._sources.add(obj)

    def _pull(self) -> None:
        for src in list(self._sources):
            src.flush_telemetry()

    def count(self, name: str, n: int = 1) -> None:
        """Increment a named counter (e.g. ``"engine.xruns"``)."""
        with self._lock:
            self._counters[name] = self._counters.get(name, 0) + n

    # -- reading -----------------------------------------------------------
    def ops(self) -> dict[str, OpStats]:
        self._pull()
        with self._lock:
            return {k: OpStats(dict(v.calls), v.total_s, v.max_s) for k, v in self._ops.items()}

    def counters(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counters)

    def backends(self, op: str) -> dict[str, int]:
        """Calls of *op* per backend, e.g. ``{"cuda": 12}``."""
        self._pull()
        with self._lock:
            st = self._ops.get(op)
            return dict(st.calls) if st else {}

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready dump of all counters."""
        return {
            "ops": {k: {"calls": v.calls, "total_s": v.total_s, "max_s": v.max_s} for k, v in self.ops().items()},
            "counters": self.counters(),
        }

    def reset(self) -> None:
        self._pull()  # counts so far are dropped with the rest
        with self._lock:
            self._ops.clear()
            self._counters.clear()

    def table(self, title: str = "telemetry"):  # -> rich.table.Table
        """A rich table of ops, backends, calls and timing."""
        from rich.table import Table

        t = Table(title=title)
        for col in ("op", "backend", "calls", "total ms", "mean us", "max us"):
            t.add_column(col, justify="right" if col not in ("op", "backend") else "left")
        for name, st in sorted(self.ops().items()):
            n = max(st.total_calls, 1)
            t.add_row(name, ",".join(f"{b}" for b in sorted(st.calls)), str(st.total_calls),
                      f"{st.total_s * 1e3:.2f}", f"{st.total_s / n * 1e6:.1f}", f"{st.max_s * 1e6:.1f}")
        for name, v in sorted(self.counters().items()):
            t.add_row(name, "-", str(v), "", "", "")
        return t


telemetry = Telemetry()
"""The process-wide telemetry instance."""
