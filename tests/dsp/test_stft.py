"""ironwave.dsp.stft: parity with torch.stft / librosa.stft (random + real audio), exact
inverse, COLA/NOLA vs scipy, streaming == offline (hypothesis), gradients, errors."""
from __future__ import annotations

import importlib

import librosa
import numpy as np
import pytest
import scipy.signal as ss
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ironwave.backend import telemetry
from ironwave.dsp.stft import ISTFTStream, STFTStream, check_cola, istft, stft
from ironwave.dsp.windows import get_window
from ironwave.errors import InvalidAudio, InvalidParameter

# the module, even if ironwave.dsp re-exports a function named `stft`
stft_mod = importlib.import_module("ironwave.dsp.stft")

WINDOWS = ["hann", "hamming", "blackman", ("kaiser", 8.0)]


def rel(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.abs(a - b).max() / np.abs(b).max())


def torch_window(win, wl):
    return torch.from_numpy(ss.get_window(win, wl, fftbins=True)).float()


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("method", ["freqwin", "torch"])
@pytest.mark.parametrize("n_fft,hop,wl,center,pad_mode", [
    (512, 128, None, True, "constant"),
    (512, 100, 400, True, "reflect"),
    (255, 64, None, False, "constant"),
    (64, 64, None, True, "constant"),
])
def test_parity_torch_and_librosa_random(window, method, n_fft, hop, wl, center, pad_mode):
    x = torch.randn(2, 6000)
    if method == "freqwin" and (window not in ("hann", "hamming", "blackman") or wl not in (None, n_fft)):
        method = "auto"  # freqwin does not apply: auto must fall back to the torch path
    y = stft(x, n_fft, hop, wl, window, center=center, pad_mode=pad_mode, method=method)
    w = torch_window(window, wl or n_fft)
    ref_t = torch.stft(x, n_fft, hop, win_length=wl, window=w, center=center, pad_mode=pad_mode, return_complex=True)
    ref_l = librosa.stft(x.numpy(), n_fft=n_fft, hop_length=hop, win_length=wl, window=window, center=center,
                         pad_mode=pad_mode)
    assert y.shape == ref_t.shape == ref_l.shape and y.dtype == torch.complex64
    assert rel(y, ref_t) < 1e-5
    assert rel(y, ref_l) < 1e-5


@pytest.mark.parametrize("window", ["hann", "hamming", "blackman", "rect"])
def test_freqwin_is_exact_float64_and_both_impls_agree(window):
    x = torch.randn(3, 4000, dtype=torch.float64)
    for n_fft, hop in [(512, 128), (257, 50), (8, 2)]:
        a = stft(x, n_fft, hop, window=window, method="freqwin")
        b = stft(x, n_fft, hop, window=window, method="torch")
        assert rel(a, b) < 1e-12
        p = stft_mod.make_params(n_fft, hop, window=window)
        Z = torch.fft.rfft(stft_mod._frames_view(x, p)[0])
        coefs = stft_mod.cosine_sum_coefficients(window)
        conv = stft_mod._freq_window(Z, coefs, n_fft, 1.0, impl="conv")
        sl = stft_mod._freq_window(Z, coefs, n_fft, 1.0, impl="slices")
        assert rel(conv, sl) < 1e-13


def test_normalized_and_numpy_roundtrip():
    x = np.random.default_rng(1).standard_normal(3000).astype(np.float32)
    y = stft(x, 256, 64, normalized=True)
    assert isinstance(y, np.ndarray) and y.dtype == np.complex64
    ref = torch.stft(torch.from_numpy(x), 256, 64, window=torch.hann_window(256), pad_mode="constant",
                     normalized=True, return_complex=True)
    assert rel(y, ref) < 1e-5
    xr = istft(y, 64, normalized=True, length=3000)
    assert isinstance(xr, np.ndarray)
    np.testing.assert_allclose(xr, x, atol=2e-6)


def test_parity_real_audio(real_audio):
    x, sr = real_audio
    x = x[:, : 3 * sr]
    for window, method in (("hann", "freqwin"), ("blackman", "freqwin"), ("hann", "torch")):
        y = stft(x, 2048, 512, window=window, method=method)
        ref = librosa.stft(x.numpy(), n_fft=2048, hop_length=512, window=window)
        assert rel(y, ref) < 1e-5
        ref_t = torch.stft(x, 2048, 512, window=torch_window(window, 2048), pad_mode="constant", return_complex=True)
        assert rel(y, ref_t) < 1e-5
        back = istft(y, 512, window=window, length=x.shape[-1])
        assert float((back - x).abs().max()) < 1e-5


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n_fft=st.integers(4, 96), hop_frac=st.floats(0.1, 1.0), wl_frac=st.floats(0.5, 1.0),
       window=st.sampled_from(["hann", "hamming", "blackman", "rect", ("kaiser", 6.0)]),
       length=st.integers(1, 700), seed=st.integers(0, 2**16))
def test_istft_inverts_stft(n_fft, hop_frac, wl_frac, window, length, seed):
    wl = max(2, int(n_fft * wl_frac))
    hop = max(1, int(wl * hop_frac))
    if not check_cola(window, hop, n_fft, win_length=wl).nola:
        with pytest.raises(InvalidParameter, match="NOLA"):
            ISTFTStream(n_fft, hop, wl, window)
        return
    x = torch.randn(2, length, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    S = stft(x, n_fft, hop, wl, window)
    # coverage of the signal by the frames that exist (short signals can leave tail samples unseen)
    p = stft_mod.make_params(n_fft, hop, wl, window)
    env = stft_mod._envelope(p.window_tensor(torch.float64, x.device), hop, S.shape[-1])
    seen = env[p.pad:p.pad + length]
    if bool((seen <= stft_mod.NOLA_TOL).any()):
        with pytest.raises(InvalidParameter, match="NOLA"):
            istft(S, hop, wl, window, n_fft=n_fft, length=length)
        return
    y = istft(S, hop, wl, window, n_fft=n_fft, length=length)
    k = seen.shape[0]  # samples that some frame covers; `length` beyond that is zero-padded (as torch.istft)
    torch.testing.assert_close(y[:, :k], x[:, :k], atol=1e-9, rtol=1e-9)
    assert y.shape == x.shape and bool((y[:, k:] == 0).all())


def test_istft_matches_torch_istft():
    x = torch.randn(2, 5000)
    S = stft(x, 1024, 256, window="hamming")
    w = torch_window("hamming", 1024)
    ref = torch.istft(S, 1024, 256, window=w, length=5000)
    torch.testing.assert_close(istft(S, 256, window="hamming", length=5000), ref, atol=1e-5, rtol=1e-5)
    # default length
    assert istft(S, 256, window="hamming").shape[-1] == torch.istft(S, 1024, 256, window=w).shape[-1]


def test_istft_rejects_nola_violation():
    S = stft(torch.randn(3000), 64, 16, center=False)
    with pytest.raises(InvalidParameter, match="NOLA"):
        istft(S, 16, center=False)  # periodic hann is 0 at sample 0 and nothing overlaps it


@pytest.mark.parametrize("window,n_fft,hop", [("hann", 512, 128), ("hann", 512, 256), ("hann", 512, 200),
                                             ("hamming", 400, 200), ("blackman", 300, 100), ("blackman", 300, 70),
                                             (("kaiser", 5.0), 256, 64), ("rect", 64, 64), ("hann", 64, 80)])
def test_check_cola_vs_scipy(window, n_fft, hop):
    r = check_cola(window, hop, n_fft, win_length=n_fft)
    w = ss.get_window(window, n_fft, fftbins=True)
    assert r.cola == ss.check_COLA(w, n_fft, n_fft - hop if hop <= n_fft else 0) if hop <= n_fft else True
    assert r.nola == ss.check_NOLA(w, n_fft, max(n_fft - hop, 0)) if hop <= n_fft else not r.nola
    if r.cola:
        assert r.cola_deviation < 1e-10 and bool(r)
    else:
        assert r.cola_deviation > 1e-6 and not bool(r)
    # cola_sum is the OLA gain: hann at 75% overlap sums to 2
    if window == "hann" and hop == 128:
        assert abs(r.cola_sum - 2.0) < 1e-12 and r.wola


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blocks=st.lists(st.integers(0, 400), min_size=1, max_size=12), cfg=st.sampled_from([
    (256, 64, "hann", True), (255, 100, "hamming", True), (64, 64, "rect", True), (128, 50, ("kaiser", 7.0), True),
    (128, 32, "blackman", False)]), seed=st.integers(0, 2**16))
def test_stream_equals_offline(blocks, cfg, seed):
    n_fft, hop, window, center = cfg
    n = sum(blocks)
    if n == 0 or (not center and n < n_fft):
        return
    x = torch.randn(2, n, generator=torch.Generator().manual_seed(seed))
    ref = stft(x, n_fft, hop, window=window, center=center)
    s = STFTStream(n_fft, hop, window=window, center=center)
    outs, i = [], 0
    for b in blocks:
        outs.append(s.push(x[:, i:i + b]))
        i += b
    outs.append(s.flush())
    y = torch.cat(outs, dim=-1)
    assert y.shape == ref.shape
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-5)
    # inverse stream: push the frames in random chunks -> same as offline istft
    if center:
        inv = ISTFTStream(n_fft, hop, window=window)
        full = istft(ref, hop, window=window, n_fft=n_fft)
        o, t = [], 0
        for b in blocks:
            k = b % 5
            o.append(inv.push(ref[..., t:t + k]))
            t += k
        o.append(inv.push(ref[..., t:]))
        o.append(inv.flush())
        z = torch.cat(o, dim=-1)
        assert z.shape == full.shape
        torch.testing.assert_close(z, full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("n_fft,hop", [(256, 64), (512, 256), (96, 32)])
def test_stream_composition_latency(n_fft, hop):
    x = torch.randn(20 * hop)
    fwd, inv = STFTStream(n_fft, hop), ISTFTStream(n_fft, hop)
    assert inv.latency == n_fft - hop
    got = []
    n_in = 0
    for j in range(20):
        got.append(inv.push(fwd.push(x[j * hop:(j + 1) * hop])))
        n_in += hop
        n_out = sum(g.shape[-1] for g in got)
        if n_in >= n_fft:
            if (n_fft // 2) % hop == 0:  # hop-aligned centre padding: exactly n_fft - hop
                assert n_out == n_in - (n_fft - hop)
            else:  # otherwise the delay depends on the phase, within [n_fft - hop, n_fft - 1]
                assert n_fft - hop <= n_in - n_out <= n_fft - 1
    y = torch.cat(got + [inv.push(fwd.flush()), inv.flush()])
    torch.testing.assert_close(y[: x.shape[0]], x, atol=1e-5, rtol=1e-5)


def test_gradcheck_stft_istft():
    x = torch.randn(1, 40, dtype=torch.float64, requires_grad=True)
    for method in ("torch", "freqwin"):
        assert torch.autograd.gradcheck(lambda t: torch.view_as_real(stft(t, 16, 4, method=method)), (x,))
    S = stft(x.detach(), 16, 4).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda s: istft(s, 4, length=40), (S,))


def test_dtypes_shapes_and_telemetry():
    telemetry.reset()
    x = torch.randn(2, 3, 1000, dtype=torch.float64)
    y = stft(x, 128, 32, device="cpu")
    assert y.shape == (2, 3, 65, 1 + 1000 // 32) and y.dtype == torch.complex128
    assert istft(y, 32, length=1000).dtype == torch.float64
    assert telemetry.backends("dsp.stft.torch") == {"cpu": 1}
    assert telemetry.backends("dsp.istft") == {"cpu": 1}
    # half precision is computed in float32
    assert stft(torch.randn(500).half(), 64, 16).dtype == torch.complex64
    # tensor window
    w = get_window(("kaiser", 4.0), 100)
    torch.testing.assert_close(stft(x[0, 0], 128, 25, 100, w), stft(x[0, 0].float(), 128, 25, 100, ("kaiser", 4.0)).to(torch.complex128),
                               atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(n_fft=256, hop_length=300), InvalidParameter, "hop_length=300 is larger than win_length"),
    (dict(n_fft=256, win_length=300), InvalidParameter, "win_length=300 is larger than n_fft"),
    (dict(n_fft=1), InvalidParameter, "n_fft"),
    (dict(n_fft=256, hop_length=0), InvalidParameter, "hop_length"),
    (dict(n_fft=256, window="triangle"), InvalidParameter, "unknown window"),
    (dict(n_fft=256, window="kaiser"), InvalidParameter, "beta"),
    (dict(n_fft=256, window=("kaiser", -1.0)), InvalidParameter, "beta"),
    (dict(n_fft=256, pad_mode="mirror"), InvalidParameter, "pad_mode"),
    (dict(n_fft=256, method="fast"), InvalidParameter, "method"),
    (dict(n_fft=256, win_length=200, method="freqwin"), InvalidParameter, "freqwin"),
    (dict(n_fft=256, window=torch.ones(100)), InvalidParameter, "100 samples"),
])
def test_bad_params(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        stft(torch.randn(1000), **kwargs)


def test_bad_audio():
    with pytest.raises(InvalidAudio, match="NaN"):
        stft(torch.tensor([0.0] * 10 + [float("nan")]), 8, 2)
    with pytest.raises(InvalidAudio, match="center=False"):
        stft(torch.randn(100), 256, 64, center=False)
    with pytest.raises(InvalidAudio, match="reflect"):
        stft(torch.randn(100), 256, 64, pad_mode="reflect")
    with pytest.raises(InvalidAudio, match="complex"):
        istft(torch.randn(129, 10), 64)
    with pytest.raises(InvalidAudio, match="bins"):
        istft(torch.randn(100, 10, dtype=torch.complex64), 64, n_fft=256)
    with pytest.raises(InvalidParameter, match="pad_mode='constant'"):
        STFTStream(256, 64, pad_mode="reflect")
    s = STFTStream(64, 16)
    s.push(torch.randn(2, 10))
    with pytest.raises(InvalidAudio, match="batch shape"):
        s.push(torch.randn(3, 10))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("method", ["torch", "freqwin"])
def test_gpu_matches_cpu(method):
    telemetry.reset()
    x = torch.randn(4, 48000)
    ref = torch.stft(x, 2048, 512, window=torch.hann_window(2048), pad_mode="constant", return_complex=True)
    y = stft(x.cuda(), 2048, 512, method=method)
    assert y.device.type == "cuda"
    assert rel(y.cpu(), ref) < 1e-5
    assert telemetry.backends(f"dsp.stft.{method}") == {"cuda": 1}
    back = istft(y, 512, length=48000)  # "auto" keeps CUDA-resident input on its GPU
    assert back.device.type == "cuda" and float((back.cpu() - x).abs().max()) < 1e-4
    assert telemetry.backends("dsp.istft") == {"cuda": 1}
    y2 = stft(x, 2048, 512, method=method, device="cuda")  # CPU in, CUDA compute, CPU out
    assert y2.device.type == "cpu" and rel(y2, ref) < 1e-5
    assert telemetry.backends(f"dsp.stft.{method}") == {"cuda": 2}


def test_run_device_rule(monkeypatch):
    """'auto' keeps CUDA-resident input on its GPU; explicit requests are honoured (checked without a GPU)."""
    from ironwave.dsp.stft import run_device

    monkeypatch.delenv("IRONWAVE_DEVICE", raising=False)
    assert run_device("stft", 10, 1, "auto", torch.device("cuda", 1)) == torch.device("cuda", 1)
    assert run_device("stft", 10, 1, None, torch.device("cuda", 0)) == torch.device("cuda", 0)
    assert run_device("stft", 10, 1, "cpu", torch.device("cuda", 0)) == torch.device("cpu")
    monkeypatch.setenv("IRONWAVE_DEVICE", "cpu")  # the override wins over residency
    assert run_device("stft", 10, 1, "auto", torch.device("cuda", 0)) == torch.device("cpu")
    monkeypatch.delenv("IRONWAVE_DEVICE")
    if not torch.cuda.is_available():
        assert run_device("stft", 10, 1, "auto", torch.device("cpu")) == torch.device("cpu")
        from ironwave.errors import BackendUnavailable
        with pytest.raises(BackendUnavailable):
            run_device("stft", 10, 1, "cuda", torch.device("cpu"))
