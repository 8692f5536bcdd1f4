import numpy as np
import pytest
import torch

from ironwave.backend import InvalidAudio, StrictDeviceError, Telemetry, check_audio, telemetry
from ironwave.backend.validate import as_tensor, restore_type


def test_check_audio_shapes_and_dtypes():
    x = check_audio(np.zeros((2, 10), np.float32))
    assert isinstance(x, torch.Tensor) and x.shape == (2, 10)
    with pytest.raises(InvalidAudio, match=r"shape \[2, 3, 4, 5\].*1..3 dims"):
        check_audio(torch.zeros(2, 3, 4, 5), max_ndim=3)
    with pytest.raises(InvalidAudio, match="expected 2 channel"):
        check_audio(torch.zeros(3, 8), channels=2)
    with pytest.raises(InvalidAudio, match="at least 16 needed"):
        check_audio(torch.zeros(1, 8), min_length=16)
    with pytest.raises(InvalidAudio, match="dtype torch.int64"):
        check_audio(torch.zeros(8, dtype=torch.int64))
    with pytest.raises(InvalidAudio, match="complex"):
        check_audio(torch.zeros(8, dtype=torch.complex64))
    with pytest.raises(InvalidAudio, match="must be a torch.Tensor or numpy"):
        check_audio("audio.wav")


@pytest.mark.parametrize("bad,word", [(float("nan"), "NaN"), (float("inf"), "Inf")])
def test_check_audio_names_nonfinite_location(bad, word):
    x = torch.zeros(2, 100)
    x[1, 37] = bad
    with pytest.raises(InvalidAudio) as e:
        check_audio(x, "block")
    msg = str(e.value)
    assert word in msg and "[1, 37]" in msg and "block" in msg


def test_numpy_round_trip():
    t, was = as_tensor(np.ones(4))
    assert was and isinstance(restore_type(t * 2, was), np.ndarray)
    t2, was2 = as_tensor(torch.ones(4))
    assert not was2 and isinstance(restore_type(t2, was2), torch.Tensor)


def test_telemetry_records_backend_and_time():
    tel = Telemetry()
    tel.record("fft", torch.device("cpu"), 0.001)
    tel.record("fft", "cuda:0", 0.002)
    with tel.track("stft", torch.zeros(1)):
        pass
    assert tel.backends("fft") == {"cpu": 1, "cuda": 1}
    assert tel.backends("stft") == {"cpu": 1}
    snap = tel.snapshot()
    assert snap["ops"]["fft"]["max_s"] == pytest.approx(0.002)
    tel.count("engine.xruns", 3)
    assert tel.counters()["engine.xruns"] == 3
    tel.reset()
    assert tel.ops() == {}


def test_strict_mode_raises_on_cpu_execution_of_cuda_work(monkeypatch):
    tel = Telemetry()
    tel.record("op", "cpu", requested="cuda")  # not strict: allowed, recorded
    assert tel.backends("op") == {"cpu": 1}
    monkeypatch.setenv("IRONWAVE_STRICT_DEVICE", "1")
    with pytest.raises(StrictDeviceError, match="op 'op' was requested on cuda but ran on cpu"):
        tel.record("op", "cpu", requested="cuda")
    with pytest.raises(StrictDeviceError):
        with tel.track("op2", torch.device("cpu"), requested=torch.device("cuda", 0)):
            pass
    tel.record("op3", "cpu", requested="auto")  # auto may choose the CPU
    tel.record("op4", "cuda:0", requested="cuda")


def test_strict_override_attribute():
    tel = Telemetry()
    tel.strict = True
    with pytest.raises(StrictDeviceError):
        tel.check("x", "cuda", "cpu")
    tel.strict = False
    tel.check("x", "cuda", "cpu")


def test_global_instance_table_renders():
    telemetry.record("unit.test", "cpu", 0.0)
    from rich.console import Console

    c = Console(record=True, width=120)
    c.print(telemetry.table())
    assert "unit.test" in c.export_text()
