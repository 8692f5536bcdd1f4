"""Shared fixtures: real audio, devices, GPU marker handling."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

DATA = Path(__file__).resolve().parent / "data"
REAL_FILES = ["loop_amen.flac", "loop_compus.flac", "guit_harmonics.flac", "ambi_piano.flac", "voice.wav"]
SONIC_PI = Path("/usr/share/sonic-pi/samples")


def load_real(name: str) -> tuple[torch.Tensor, int]:
    """Load tests/data/<name> as float32 ``[channels, time]`` and its rate (Hz)."""
    data, sr = sf.read(str(DATA / name), dtype="float32", always_2d=True)
    return torch.from_numpy(np.ascontiguousarray(data.T)), int(sr)


@pytest.fixture(params=["loop_amen.flac", "guit_harmonics.flac", "voice.wav"])
def real_audio(request) -> tuple[torch.Tensor, int]:
    """Real audio (music, guitar, speech): ``(tensor [channels, time] float32, sample_rate)``."""
    return load_real(request.param)


@pytest.fixture
def real_music() -> tuple[torch.Tensor, int]:
    """A 6.5 s stereo music loop at 44.1 kHz: ``([2, time] float32, 44100)``."""
    return load_real("loop_compus.flac")


@pytest.fixture
def real_speech() -> tuple[torch.Tensor, int]:
    """Speech at 44.1 kHz mono: ``([1, time] float32, 44100)``."""
    return load_real("voice.wav")


@pytest.fixture(scope="session")
def sonic_pi_samples() -> list[Path]:
    """All Sonic Pi sample files if the Debian package is installed (CI installs it)."""
    files = sorted(SONIC_PI.glob("*.flac"))
    if not files:
        pytest.skip("sonic-pi-samples not installed (apt-get install sonic-pi-samples)")
    return files


@pytest.fixture
def cuda_device() -> torch.device:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    return torch.device("cuda")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (run scripts/gpu_check.sh on a GPU machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep the hardware-profile cache of tests out of the user's cache dir."""
    if "IRONWAVE_CACHE_DIR" not in os.environ:
        monkeypatch.setenv("IRONWAVE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
    yield


@pytest.fixture
def one_torch_thread():
    """Small-block streaming runs with one torch thread (see the docs): on a loaded 2-core host
    two OpenMP runtimes (torch's, numba's via librosa) spinning against each other make tiny
    BLAS calls 100x slower. Counts and pointers do not depend on it; test time does."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
