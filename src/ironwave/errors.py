"""Exception types shared by every layer of ironwave.

All user-facing errors derive from :class:`IronwaveError`, so the CLI can turn
them into one-line messages without a traceback.
"""
from __future__ import annotations


class IronwaveError(Exception):
    """Base class of every error ironwave raises on purpose."""


class BackendUnavailable(IronwaveError, RuntimeError):
    """An explicitly requested backend (e.g. ``"cuda:1"``) cannot be used."""


class StrictDeviceError(IronwaveError, RuntimeError):
    """Work requested on CUDA ran on the CPU while ``IRONWAVE_STRICT_DEVICE=1``."""


class InvalidAudio(IronwaveError, ValueError):
    """Audio input with a wrong shape, dtype, or non-finite samples."""


class InvalidParameter(IronwaveError, ValueError):
    """A parameter outside the accepted range."""


class PoolExhausted(IronwaveError, RuntimeError):
    """A :class:`~ironwave.backend.buffers.TensorPool` has no free buffer."""


class StaleHandle(IronwaveError, RuntimeError):
    """A pool handle was released twice or used after release."""
