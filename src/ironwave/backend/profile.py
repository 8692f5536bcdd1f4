"""Hardware profile and the measured CPU/GPU crossover per op family.

``should_use_gpu(op, size, batch)`` answers whether work of ``size * batch``
samples is faster on the GPU than on the CPU *for data that starts on the host*
(transfers included). The answer comes from a short calibration
(:func:`calibrate`, ``ironwave calibrate``, or lazily at first use when a GPU is
present) cached as JSON in the user cache dir, keyed by hardware and torch
version. Before calibration, conservative defaults apply.

Environment:
    IRONWAVE_DEVICE=cpu|cuda      force the backend that "auto" picks.
    IRONWAVE_CACHE_DIR=PATH       where the profile JSON lives.
    IRONWAVE_AUTOCALIBRATE=0      do not calibrate lazily at first use.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ironwave.backend.device import cuda_available

# Crossovers in total samples (size * batch). Conservative: prefer the CPU for small work.
DEFAULT_CROSSOVER: dict[str, int] = {
    "fft": 1 << 18,
    "stft": 1 << 18,
    "conv": 1 << 17,
    "iir": 1 << 20,
    "resample": 1 << 19,
    "matmul": 1 << 16,
    "default": 1 << 18,
}

# op family -> factory(n_total_samples, device) -> zero-arg callable doing the work on data
# that starts on the host and returns to the host.
_CALIBRATIONS: dict[str, Callable[[int, torch.device], Callable[[], object]]] = {}


def register_calibration(op: str, factory: Callable[[int, torch.device], Callable[[], object]]) -> None:
    """Let a higher layer (e.g. dsp) add an op family to the calibration."""
    _CALIBRATIONS[op] = factory


def _fft_factory(n: int, device: torch.device) -> Callable[[], object]:
    x = torch.randn(max(n // 4096, 1), 4096)

    def run() -> object:
        return torch.fft.irfft(torch.fft.rfft(x.to(device)) * 0.5, n=4096).cpu()

    return run


def _matmul_factory(n: int, device: torch.device) -> Callable[[], object]:
    x = torch.randn(max(n // 256, 1), 256)
    w = torch.randn(256, 256, device=device)

    def run() -> object:
        return (x.to(device) @ w).cpu()

    return run


def _conv_factory(n: int, device: torch.device) -> Callable[[], object]:
    x = torch.randn(1, max(n // 4096, 1), 4096)
    k = torch.randn(x.shape[1], 1, 129, device=device)

    def run() -> object:
        return torch.nn.functional.conv1d(x.to(device), k, groups=x.shape[1]).cpu()

    return run


register_calibration("fft", _fft_factory)
register_calibration("matmul", _matmul_factory)
register_calibration("conv", _conv_factory)


def cpu_model_name() -> str:
    """The CPU model string from /proc/cpuinfo (or platform)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@dataclass
class GPUInfo:
    index: int
    name: str
    multiprocessors: int
    memory_bytes: int
    compute_capability: str


@dataclass
class HardwareProfile:
    """What this machine has, and the measured crossovers (total samples)."""

    cpu_name: str
    cpu_cores: int
    torch_version: str
    cuda_version: str | None
    gpus: list[GPUInfo] = field(default_factory=list)
    crossover: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_CROSSOVER))
    calibrated: bool = False
    calibrated_at: str | None = None

    @property
    def key(self) -> str:
        """Cache key: hardware + torch version."""
        ident = json.dumps([self.cpu_name, self.cpu_cores, self.torch_version, [(g.name, g.memory_bytes) for g in self.gpus]])
        return hashlib.sha1(ident.encode()).hexdigest()[:16]

    def to_json(self) -> dict:
        return asdict(self)


def _detect() -> HardwareProfile:
    gpus: list[GPUInfo] = []
    if cuda_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            gpus.append(GPUInfo(i, p.name, p.multi_processor_count, p.total_memory, f"{p.major}.{p.minor}"))
    return HardwareProfile(
        cpu_name=cpu_model_name(),
        cpu_cores=os.cpu_count() or 1,
        torch_version=torch.__version__,
        cuda_version=torch.version.cuda,
        gpus=gpus,
    )


def cache_dir() -> Path:
    """The user cache directory of ironwave."""
    env = os.environ.get("IRONWAVE_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ironwave"


def _cache_file(p: HardwareProfile) -> Path:
    return cache_dir() / f"profile-{p.key}.json"


_PROFILE: HardwareProfile | None = None


def hardware_profile(refresh: bool = False) -> HardwareProfile:
    """The (cached) profile of this machine; loads calibrated crossovers if cached."""
    global _PROFILE
    if _PROFILE is not None and not refresh:
        return _PROFILE
    prof = _detect()
    f = _cache_file(prof)
    if f.exists():
        try:
            data = json.loads(f.read_text())
            prof.crossover.update({k: int(v) for k, v in data.get("crossover", {}).items()})
            prof.calibrated = bool(data.get("calibrated", False))
            prof.calibrated_at = data.get("calibrated_at")
        except (OSError, ValueError):
            pass  # a corrupt cache is ignored and rewritten by the next calibration
    _PROFILE = prof
    return prof


def _median_time(fn: Callable[[], object], repeat: int) -> float:
    fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        if cuda_available():
            torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def calibrate(ops: list[str] | None = None, *, repeat: int = 5, max_log2: int = 22, save: bool = True) -> HardwareProfile:
    """Measure the CPU/GPU crossover of each op family and cache it.

    For sizes 2**12 .. 2**max_log2 total samples, times the op on the CPU and on
    the GPU (host->device->host included); the crossover is the smallest size from
    which the GPU stays faster. Without a GPU every crossover is "never".
    """
    prof = hardware_profile(refresh=True)
    names = ops or sorted(_CALIBRATIONS)
    never = 1 << 62
    if not prof.gpus:
        for op in names:
            prof.crossover[op] = never
    else:
        gpu = torch.device("cuda", 0)
        for op in names:
            factory = _CALIBRATIONS[op]
            found = never
            for lg in range(12, max_log2 + 1, 2):
                n = 1 << lg
                t_cpu = _median_time(factory(n, torch.device("cpu")), repeat)
                t_gpu = _median_time(factory(n, gpu), repeat)
                if t_gpu < t_cpu:
                    found = min(found, n)
                else:
                    found = never
            prof.crossover[op] = found
    prof.calibrated = True
    prof.calibrated_at = time.strftime("%Y-%m-%dT%H:%M:%S")
    if save:
        f = _cache_file(prof)
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_suffix(".tmp")
        tmp.write_text(json.dumps(prof.to_json(), indent=2))
        tmp.replace(f)
    return prof


def should_use_gpu(op: str, size: int, batch: int = 1) -> bool:
    """Whether ``batch`` signals of ``size`` samples of op family *op* belong on the GPU.

    Honours ``IRONWAVE_DEVICE`` (cpu/cuda forces the answer). Without CUDA: False.
    """
    forced = os.environ.get("IRONWAVE_DEVICE", "").strip().lower()
    if forced.startswith("cpu"):
        return False
    if not cuda_available():
        return False
    if forced.startswith("cuda"):
        return True
    prof = hardware_profile()
    if not prof.calibrated and os.environ.get("IRONWAVE_AUTOCALIBRATE", "1") != "0":
        prof = calibrate(repeat=3, max_log2=20)
    threshold = prof.crossover.get(op, prof.crossover.get("default", DEFAULT_CROSSOVER["default"]))
    return size * batch >= threshold
