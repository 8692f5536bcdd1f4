import pytest
import torch

from ironwave.backend import BackendUnavailable, choose_device, resolve_device
from ironwave.errors import InvalidParameter


def test_cpu_and_auto_resolve():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    auto = resolve_device("auto")
    assert auto.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device(None) == auto


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "cpu:0:1", "", "tpu", "cuda:-1"])
def test_unknown_spec_names_value_and_accepted(bad):
    with pytest.raises(InvalidParameter) as e:
        resolve_device(bad)
    assert repr(bad) in str(e.value) and "accepted" in str(e.value)


def test_non_string_rejected():
    with pytest.raises(InvalidParameter):
        resolve_device(3)  # type: ignore[arg-type]


@pytest.mark.skipif(torch.cuda.is_available(), reason="CPU-only behaviour")
@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "CUDA:1", torch.device("cuda")])
def test_explicit_cuda_without_cuda_raises(spec):
    with pytest.raises(BackendUnavailable) as e:
        resolve_device(spec)
    assert "CUDA is not available" in str(e.value)


@pytest.mark.gpu
def test_cuda_index_out_of_range():
    n = torch.cuda.device_count()
    assert resolve_device("cuda:0").type == "cuda"
    with pytest.raises(BackendUnavailable) as e:
        resolve_device(f"cuda:{n}")
    assert f"only {n}" in str(e.value)


def test_env_forces_auto(monkeypatch):
    monkeypatch.setenv("IRONWAVE_DEVICE", "cpu")
    assert resolve_device("auto") == torch.device("cpu")
    assert choose_device("fft", 1 << 30, 64) == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CPU-only behaviour")
def test_env_forcing_cuda_without_cuda_is_an_error(monkeypatch):
    monkeypatch.setenv("IRONWAVE_DEVICE", "cuda")
    with pytest.raises(BackendUnavailable):
        resolve_device("auto")


def test_choose_device_honours_explicit_cpu():
    assert choose_device("fft", 1 << 30, 1000, device="cpu") == torch.device("cpu")


@pytest.mark.gpu
def test_choose_device_uses_crossover(monkeypatch):
    from ironwave.backend import profile

    prof = profile.hardware_profile()
    monkeypatch.setattr(prof, "calibrated", True)
    monkeypatch.setitem(prof.crossover, "fft", 1 << 16)
    assert choose_device("fft", 1 << 10, 1).type == "cpu"
    assert choose_device("fft", 1 << 12, 64).type == "cuda"
