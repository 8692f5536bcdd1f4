"""ironwave: GPU-native real-time audio for Python.

Layers (lower never imports higher)::

    cli/                      typer commands
    engine/ models/ ...       applications
    dsp/ spectral/ nn/ io/    library
    backend/                  devices, profile, buffers, capture, telemetry
"""
from ironwave.errors import (
    BackendUnavailable,
    InvalidAudio,
    InvalidParameter,
    IronwaveError,
    PoolExhausted,
    StaleHandle,
    StrictDeviceError,
)

__version__ = "0.1.0"

__all__ = [
    "__version__", "IronwaveError", "BackendUnavailable", "InvalidAudio", "InvalidParameter",
    "PoolExhausted", "StaleHandle", "StrictDeviceError",
]
