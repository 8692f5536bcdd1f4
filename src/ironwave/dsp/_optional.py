"""Optional accelerated kernels (Triton) loaded once per process, with a kill switch.

A kernel module that cannot be imported (no Triton, a broken install) or that
failed at run time under ``backend="auto"`` is reported as ``None`` from then on,
so callers take their plain torch path.
"""
from __future__ import annotations

import importlib
import warnings
from types import ModuleType

_MODULES: dict[str, ModuleType | None] = {}


def optional_module(name: str) -> ModuleType | None:
    """The module *name* (e.g. ``"ironwave.dsp._resample_triton"``) or None if unavailable."""
    if name not in _MODULES:
        try:
            _MODULES[name] = importlib.import_module(name)
        except Exception:  # ImportError, or a broken Triton install
            _MODULES[name] = None
    return _MODULES[name]


def disable(name: str) -> None:
    """Stop using *name* for the rest of the process (its kernel failed)."""
    _MODULES[name] = None


def loaded(name: str) -> ModuleType | None:
    """The module if it was already loaded (no import attempt)."""
    return _MODULES.get(name)


def kernel_failed(name: str, who: str, exc: BaseException, fallback: str, *, counter: str | None = None,
                  stacklevel: int = 3) -> None:
    """A kernel of module *name* failed under ``backend="auto"``: warn once (``RuntimeWarning``
    naming *who*, the error and the *fallback* used from now on), stop using the module for the
    rest of the process, and count telemetry *counter* if given."""
    warnings.warn(f"{who}: the Triton kernel failed ({type(exc).__name__}: {exc}); using {fallback} from now on",
                  RuntimeWarning, stacklevel=stacklevel + 1)
    disable(name)
    if counter:
        from ironwave.backend.telemetry import telemetry

        telemetry.count(counter)
