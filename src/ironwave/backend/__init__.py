"""Base layer: devices, hardware profile, buffers, program capture, telemetry.

Nothing in :mod:`ironwave.backend` imports any higher layer of ironwave.
"""
from ironwave.errors import (
    BackendUnavailable,
    InvalidAudio,
    PoolExhausted,
    StaleHandle,
    StrictDeviceError,
)
from ironwave.backend.device import cuda_available, device_name, resolve_device, choose_device
from ironwave.backend.telemetry import telemetry, Telemetry
from ironwave.backend.validate import as_tensor, check_audio, restore_type
from ironwave.backend.buffers import TensorPool, PoolHandle, SPSCRing, CommandRing
from ironwave.backend.program import CapturedProgram, AsyncRunner
from ironwave.backend.profile import HardwareProfile, hardware_profile, should_use_gpu, calibrate

__all__ = [
    "BackendUnavailable", "InvalidAudio", "PoolExhausted", "StaleHandle", "StrictDeviceError",
    "cuda_available", "device_name", "resolve_device", "choose_device",
    "telemetry", "Telemetry", "as_tensor", "check_audio", "restore_type",
    "TensorPool", "PoolHandle", "SPSCRing", "CommandRing", "CapturedProgram", "AsyncRunner",
    "HardwareProfile", "hardware_profile", "should_use_gpu", "calibrate",
]
