"""Node kernels against references (scipy) on random and real audio."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.signal as ss
import soundfile as sf
import torch

from ironwave.engine import Engine, Graph
from ironwave.engine.nodes.filters import rbj


def _chain(node_type: str, channels: int, block: int = 64, params=None, config=None) -> Engine:
    g = Graph()
    g.add("input", "in", channels=channels)
    g.add(node_type, "n", params=params or {}, config=config or {})
    g.add("output", "out", channels=channels)
    g.connect("in", "n")
    g.connect("n", "out")
    return Engine(g, block=block, device="cpu")


def _run(eng: Engine, x: torch.Tensor) -> torch.Tensor:
    from ironwave.io.clock import render

    return render(eng, x)


def _audio(real_audio):
    x, sr = real_audio
    return x[:, : sr // 2]


@pytest.mark.parametrize("kind", ["lowpass", "highpass", "bandpass", "notch", "peak", "lowshelf", "highshelf", "allpass"])
def test_biquad_matches_scipy_lfilter(kind, real_audio):
    x = _audio(real_audio)
    for block in (64, 100):
        eng = _chain("biquad", x.shape[0], block, params={"freq": 700.0, "q": 2.0, "gain_db": 6.0}, config={"kind": kind})
        y = _run(eng, x)
        c = rbj(kind, torch.tensor(700.0, dtype=torch.float64), torch.tensor(2.0, dtype=torch.float64),
                torch.tensor(6.0, dtype=torch.float64), 48000).numpy()
        ref = ss.lfilter(c[:3], c[3:], x.numpy().astype(np.float64), axis=-1)
        assert np.abs(y.numpy() - ref).max() < 1e-4 * max(1.0, np.abs(ref).max())


@pytest.mark.parametrize("block", [128, 48, 256, 100])
def test_sos_matches_scipy_sosfilt(block):
    """Every span layout of the state-space kernel: one span (128 = 8 chunks of 16), 3 chunks
    (48), several spans per block (256 = 2 spans of 8x16) and one odd chunk (100)."""
    sos = ss.butter(6, 2000, fs=48000, output="sos")
    x = torch.randn(2, block * 60, generator=torch.Generator().manual_seed(0))
    y = _run(_chain("sos", 2, block, config={"sos": sos.tolist()}), x)
    ref = ss.sosfilt(sos, x.numpy().astype(np.float64), axis=-1)
    assert np.abs(y.numpy() - ref).max() < 1e-4


def test_convolver_matches_fftconvolve(tmp_path, real_music):
    x, _ = real_music
    x = x[:, :24000]
    rng = np.random.default_rng(1)
    ir = (rng.standard_normal((2, 5000)) * np.exp(-np.arange(5000) / 800)).astype(np.float32)
    sf.write(str(tmp_path / "ir.wav"), ir.T, 48000, subtype="FLOAT")
    y = _run(_chain("convolver", 2, 128, config={"ir": str(tmp_path / "ir.wav")}, params={"mix": 1.0}), x)
    ref = np.stack([ss.fftconvolve(x.numpy()[c].astype(np.float64), ir[c])[: x.shape[1]] for c in range(2)])
    assert np.abs(y.numpy() - ref).max() < 1e-4 * np.abs(ref).max()


def test_fractional_delay():
    x = torch.randn(1, 64 * 30, generator=torch.Generator().manual_seed(2))
    y = _run(_chain("delay", 1, 64, params={"time": 100.25 / 48000}), x)[0].numpy()
    xn = x[0].numpy()
    ref = 0.75 * np.concatenate([np.zeros(100), xn[:-100]]) + 0.25 * np.concatenate([np.zeros(101), xn[:-101]])
    assert np.abs(y[101:] - ref[101:]).max() < 1e-6


def test_spectral_gate_passes_loud_and_removes_quiet(real_speech):
    x, sr = real_speech
    g = Graph()
    g.add("input", "in", channels=1)
    g.add("spectral_gate", "sg", config={"fft_size": 512}, params={"threshold_db": -160.0})
    g.add("output", "out", channels=1)
    g.connect("in", "sg")
    g.connect("sg", "out")
    eng = Engine(g, block=128, sample_rate=sr, device="cpu")
    y = _run(eng, x)
    L = eng.latency
    assert L == 384
    assert float((y[:, L + 512:] - x[:, 512:-L]).abs().max()) < 1e-5  # threshold below everything: identity
    noise = 1e-4 * torch.randn(1, sr // 2, generator=torch.Generator().manual_seed(0))
    eng2 = _chain("spectral_gate", 1, 128, params={"threshold_db": -40.0, "reduction_db": -80.0}, config={"fft_size": 512})
    y2 = _run(eng2, noise)
    assert float(y2.pow(2).mean()) < 1e-6 * float(noise.pow(2).mean())


def test_oscillators_and_noise():
    g = Graph()
    g.add("sine", "s", params={"freq": 1000.0, "amp": 1.0})
    g.add("output", "out", channels=1)
    g.connect("s", "out")
    y = _run(Engine(g, block=64, device="cpu", in_channels=1), None if False else torch.zeros(1, 4800))[0].numpy()
    t = np.arange(1, 4801) / 48000
    assert np.abs(y - np.sin(2 * np.pi * 1000 * t)).max() < 1e-4
    for typ in ("saw", "square"):
        g = Graph()
        g.add(typ, "o", params={"freq": 440.0, "amp": 1.0})
        g.add("output", "out", channels=1)
        g.connect("o", "out")
        y = _run(Engine(g, block=64, device="cpu", in_channels=1), torch.zeros(1, 48000))[0].numpy()
        f, p = ss.welch(y, 48000, nperseg=4096)
        assert abs(f[np.argmax(p)] - 440) < 15 and np.abs(y).max() <= 1.2
    g = Graph()
    g.add("noise", "nz", params={"amp": 1.0}, config={"seed": 5})
    g.add("output", "out", channels=1)
    g.connect("nz", "out")
    y = _run(Engine(g, block=64, device="cpu", in_channels=1), torch.zeros(1, 48000))[0]
    assert abs(float(y.mean())) < 0.02 and abs(float(y.var()) - 1 / 3) < 0.02 and float(y.abs().max()) <= 1.0


def _polyblep_saw_ref(phase: np.ndarray, dt: float) -> np.ndarray:
    """Textbook polyBLEP saw (float64), written case by case."""
    y = 2 * phase - 1
    t = phase / dt
    m = phase < dt
    y[m] -= (2 * t - t * t - 1)[m]
    t = (phase - 1) / dt
    m = phase > 1 - dt
    y[m] -= (t * t + 2 * t + 1)[m]
    return y


@pytest.mark.parametrize("freq", [97.0, 2867.5591, 11025.3])
def test_oscillators_match_float64_reference(freq):
    """Sample-exact oscillators vs float64 references over 200 blocks (12,800 samples).

    The phase is accumulated in float64 and wrapped per block; a float32 cumulative sum
    drifts by ~1e-6 cycles, which a polyBLEP edge amplifies by 2/dt (the CUDA/CPU mismatch
    this guards: the two devices sum in different orders)."""
    f32 = float(np.float32(freq))
    n = 64 * 200
    dt = f32 / 48000
    ph = np.mod(dt * np.arange(1, n + 1), 1.0)
    refs = {"sine": np.sin(2 * np.pi * ph), "saw": _polyblep_saw_ref(ph.copy(), dt),
            "square": 0.5 * (_polyblep_saw_ref(ph.copy(), dt) - _polyblep_saw_ref(np.mod(ph - 0.5, 1.0), dt))}
    for typ, ref in refs.items():
        g = Graph()
        g.add(typ, "o", params={"freq": freq, "amp": 1.0})
        g.add("output", "out", channels=1)
        g.connect("o", "out")
        eng = Engine(g, block=64, device="cpu", in_channels=1)
        y = torch.cat([eng.process(torch.zeros(1, 64)) for _ in range(200)], -1)[0].double().numpy()
        # float32 output; the polyBLEP shaping runs in float32 on the float64-accurate phase
        tol = 1e-7 + 4e-8 * (2 / dt if typ != "sine" else 1.0)
        assert np.abs(y - ref).max() < tol, (typ, np.abs(y - ref).max(), tol)


def test_oscillator_phase_with_fm_and_ramps_stays_wrapped():
    """The cumsum path (FM / frequency ramp) matches a float64 integration of the increments."""
    g = Graph()
    g.add("lfo", "l", params={"rate": 5.0, "depth": 0.5}, config={"wave": "triangle"})
    g.add("sine", "s", params={"freq": 1000.0, "amp": 1.0})
    g.add("output", "out", channels=1)
    g.connect("l", "s.fm")
    g.connect("s", "out")
    eng = Engine(g, block=64, device="cpu", in_channels=1)
    y = torch.cat([eng.process(torch.zeros(1, 64)) for _ in range(100)], -1)[0].double().numpy()
    t = np.arange(1, 6401)
    lp = np.mod(t * float(np.float32(5.0)) / 48000, 1.0)
    lfo = (1 - 4 * np.abs(lp - 0.5)) * 0.5
    inc = 1000.0 / 48000 * np.exp2(lfo.astype(np.float32).astype(np.float64))
    ref = np.sin(2 * np.pi * np.mod(np.cumsum(inc), 1.0))
    assert np.abs(y - ref).max() < 2e-5


def test_adsr_shape():
    g = Graph()
    g.add("adsr", "e", params={"attack": 0.01, "decay": 0.01, "sustain": 0.5, "release": 0.02, "gate": 1.0})
    g.add("output", "out", channels=1)
    g.connect("e.env", "out")
    eng = Engine(g, block=48, device="cpu", in_channels=1)
    ys = []
    for k in range(60):
        if k == 30:
            eng.set_param("e", "gate", 0.0)
        ys.append(eng.process())
    y = torch.cat(ys, -1)[0]
    assert abs(float(y[479]) - 1.0) < 1e-3  # peak at the end of the 10 ms attack
    assert abs(float(y[1300]) - 0.5) < 1e-4  # sustain
    assert float(y[1440 + 960:].abs().max()) == 0.0  # released after 20 ms
    assert float(y.diff().abs().max()) < 1.0 / 470


def test_player_and_recorder_roundtrip(tmp_path, real_music):
    x, sr = real_music
    x = x[:, : sr]
    sf.write(str(tmp_path / "in.wav"), x.numpy().T, sr, subtype="FLOAT")
    g = Graph()
    g.add("player", "play", config={"path": str(tmp_path / "in.wav")})
    g.add("recorder", "rec", config={"path": str(tmp_path / "rec.wav")})
    g.add("output", "out", channels=2)
    g.connect("play", "rec")
    g.connect("rec", "out")
    eng = Engine(g, block=128, sample_rate=sr, device="cpu", in_channels=1)
    from ironwave.io.clock import render

    y = render(eng, seconds=x.shape[1] / sr)
    eng.close()
    assert torch.equal(y, x)
    rec, _ = sf.read(str(tmp_path / "rec.wav"), dtype="float32", always_2d=True)
    assert np.array_equal(rec.T[:, : x.shape[1]], x.numpy())
