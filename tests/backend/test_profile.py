import json

import torch

from ironwave.backend import profile


def test_profile_fields_and_defaults():
    p = profile.hardware_profile(refresh=True)
    assert p.cpu_cores >= 1 and p.cpu_name
    assert p.torch_version == torch.__version__
    assert set(profile.DEFAULT_CROSSOVER) <= set(p.crossover)
    assert len(p.key) == 16


def test_should_use_gpu_without_cuda_is_false(monkeypatch):
    monkeypatch.setattr(profile, "cuda_available", lambda: False)
    assert profile.should_use_gpu("fft", 1 << 30, 1024) is False


def test_env_forces_backend(monkeypatch):
    monkeypatch.setenv("IRONWAVE_DEVICE", "cpu")
    monkeypatch.setattr(profile, "cuda_available", lambda: True)
    assert profile.should_use_gpu("fft", 1 << 30) is False
    monkeypatch.setenv("IRONWAVE_DEVICE", "cuda")
    assert profile.should_use_gpu("fft", 1) is True


def test_crossover_threshold_from_calibrated_profile(monkeypatch):
    monkeypatch.delenv("IRONWAVE_DEVICE", raising=False)
    monkeypatch.setattr(profile, "cuda_available", lambda: True)
    p = profile.hardware_profile(refresh=True)
    p.calibrated = True
    p.crossover["conv"] = 10_000
    assert profile.should_use_gpu("conv", 5_000, 1) is False
    assert profile.should_use_gpu("conv", 5_000, 2) is True
    profile.hardware_profile(refresh=True)


def test_calibration_is_cached_as_json(tmp_path, monkeypatch):
    monkeypatch.setenv("IRONWAVE_CACHE_DIR", str(tmp_path))
    p = profile.calibrate(repeat=1, max_log2=12)
    files = list(tmp_path.glob("profile-*.json"))
    assert len(files) == 1
    data = json.loads(files[0].read_text())
    assert data["calibrated"] is True and data["torch_version"] == torch.__version__
    q = profile.hardware_profile(refresh=True)
    assert q.calibrated and q.crossover == p.crossover
    if not torch.cuda.is_available():
        assert all(v >= 1 << 60 for k, v in q.crossover.items() if k in ("fft", "conv", "matmul"))


def test_corrupt_cache_is_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv("IRONWAVE_CACHE_DIR", str(tmp_path))
    p = profile.hardware_profile(refresh=True)
    (tmp_path / f"profile-{p.key}.json").write_text("{not json")
    q = profile.hardware_profile(refresh=True)
    assert q.calibrated is False
