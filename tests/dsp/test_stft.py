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
@pytest.mark.parametrize("method", ["torch", "freqwin", "triton"])
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


# ----------------------------------------------------------------------------- engine face: prepare / process
RT_CFGS = [(64, 16, "hann", True), (63, 20, ("kaiser", 5.0), True), (64, 24, "hamming", True), (64, 64, "rect", True),
           (60, 16, "rect", False), (32, 8, "blackman", True)]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=st.sampled_from(RT_CFGS), k=st.integers(1, 4), calls=st.integers(1, 12), batch=st.integers(1, 2),
       channels=st.integers(1, 3), backend=st.sampled_from(["numpy", "torch"]), seed=st.integers(0, 2**16))
def test_process_equals_offline(cfg, k, calls, batch, channels, backend, seed):
    """STFTStream.process (fixed block = k * hop) == stft delayed by frame_delay; ISTFTStream.process of
    stft frames == istft delayed by process_delay (placeholder frames are ignored whatever they hold)."""
    n_fft, hop, win, center = cfg
    g = torch.Generator().manual_seed(seed)
    B = k * hop
    x = torch.randn(batch, channels, B * calls, dtype=torch.float64, generator=g)
    s = STFTStream(n_fft, hop, window=win, center=center)
    s.prepare(B, channels, batch, dtype=torch.float64, backend=backend)
    assert s.frames_per_block == k
    Y = torch.cat([s.process(x[..., i * B:(i + 1) * B]).clone() for i in range(calls)], -1)
    D = s.frame_delay
    ref = stft(x, n_fft, hop, window=win, center=center) if x.shape[-1] >= n_fft or center else None
    assert Y.shape == (batch, channels, n_fft // 2 + 1, k * calls)
    assert bool((Y[..., :D] == 0).all())
    m = k * calls - D
    if m > 0:
        torch.testing.assert_close(Y[..., D:], ref[..., :m], atol=1e-12, rtol=1e-12)
    # the exact emission rule: frame t is out as soon as its last sample is in
    pad = n_fft // 2 if center else 0
    assert (m - 1) * hop + n_fft <= pad + B * calls < m * hop + n_fft
    # inverse: feed the offline frames after `lead` garbage frames
    lead = int(torch.randint(0, 3, (1,), generator=g))
    if not center and win != "rect":
        return
    n_sig = B * calls * 2 + n_fft
    T = 1 + (n_sig + 2 * pad - n_fft) // hop
    S = stft(torch.randn(batch, channels, n_sig, dtype=torch.float64, generator=g), n_fft, hop, window=win, center=center)
    feed = torch.cat([torch.randn(batch, channels, n_fft // 2 + 1, lead, dtype=torch.complex128, generator=g), S], -1)
    i_s = ISTFTStream(n_fft, hop, window=win, center=center)
    i_s.prepare(k, channels, batch, dtype=torch.float64, lead_frames=lead, backend=backend)
    out = torch.cat([i_s.process(feed[..., j * k:(j + 1) * k]).clone() for j in range(calls)], -1)
    assert out.shape == (batch, channels, k * hop * calls)
    Dp = i_s.process_delay
    assert Dp == lead * hop + pad
    full = istft(S, hop, window=win, center=center, n_fft=n_fft)
    final = (k * calls - lead) * hop - pad  # istft samples whose frames have all arrived
    assert bool((out[..., :min(Dp, out.shape[-1])] == 0).all())
    if final > 0:
        torch.testing.assert_close(out[..., Dp:Dp + final], full[..., :final], atol=1e-12, rtol=1e-12)
    assert T == S.shape[-1]


@pytest.mark.parametrize("n_fft,hop,k", [(64, 16, 2), (64, 24, 1), (100, 25, 3)])
def test_process_round_trip_latency(n_fft, hop, k):
    """STFTStream.process -> ISTFTStream.process reconstructs the input delayed by n_fft - hop + ((pad - n_fft) mod hop)."""
    s, i_s = STFTStream(n_fft, hop), ISTFTStream(n_fft, hop)
    s.prepare(k * hop, 2)
    i_s.prepare(k, 2, lead_frames=s.frame_delay)
    D = i_s.process_delay
    assert D == n_fft - hop + ((n_fft // 2 - n_fft) % hop)
    x = torch.randn(1, 2, 40 * k * hop)
    y = torch.cat([i_s.process(s.process(x[..., j:j + k * hop])).clone() for j in range(0, x.shape[-1], k * hop)], -1)
    torch.testing.assert_close(y[..., D:], x[..., :-D], atol=2e-6, rtol=1e-5)
    assert y.dtype == torch.float32 and float(y[..., :D].abs().max()) == 0.0


def test_process_real_audio(real_audio):
    x, sr = real_audio
    x = x[:, : 50 * 512].unsqueeze(0)
    s = STFTStream(1024, 256)
    s.prepare(512, x.shape[1])
    Y = torch.cat([s.process(x[..., j:j + 512]).clone() for j in range(0, x.shape[-1], 512)], -1)
    D = s.frame_delay
    ref = librosa.stft(x.numpy(), n_fft=1024, hop_length=256, pad_mode="constant")
    assert rel(Y[..., D:].numpy(), ref[..., : Y.shape[-1] - D]) < 1e-5


def _allocating_check():
    from ironwave.backend.alloccheck import count_cpu_tensor_allocations

    blk = torch.randn(1, 2, 64)
    # the counter must see a deliberately allocating call, else a 0 below proves nothing
    assert count_cpu_tensor_allocations(lambda: stft(blk, 64, 16), 3) > 0
    assert count_cpu_tensor_allocations(lambda: blk * 2, 3) >= 3


@pytest.mark.parametrize("numpy_in", [False, True])
def test_process_allocates_nothing(numpy_in, one_torch_thread):
    from ironwave.backend.alloccheck import count_cpu_tensor_allocations, python_growth_bytes

    _allocating_check()
    s, i_s = STFTStream(128, 32), ISTFTStream(128, 32)
    s.prepare(64, 2, 2)
    i_s.prepare(2, 2, 2, lead_frames=s.frame_delay)
    blk = torch.randn(2, 2, 64)
    if numpy_in:
        blk = blk.numpy()
    F0 = s.process(blk)
    y0 = i_s.process(F0)
    assert isinstance(F0, np.ndarray) == numpy_in and isinstance(y0, np.ndarray) == numpy_in
    assert F0.shape == (2, 2, 65, 2) and y0.shape == (2, 2, 64)
    ptr_f = F0.ctypes.data if numpy_in else F0.data_ptr()
    ptr_y = y0.ctypes.data if numpy_in else y0.data_ptr()

    def step():
        return i_s.process(s.process(blk))

    assert count_cpu_tensor_allocations(step, 20) == 0
    assert python_growth_bytes(step, n=200, warmup=10) < 1024
    F1, y1 = s.process(blk), i_s.process(F0)
    assert (F1.ctypes.data if numpy_in else F1.data_ptr()) == ptr_f
    assert (y1.ctypes.data if numpy_in else y1.data_ptr()) == ptr_y
    # caller-owned outputs
    fo = torch.zeros(2, 2, 65, 2, dtype=torch.complex64)
    yo = torch.zeros(2, 2, 64)
    bt = torch.from_numpy(blk) if numpy_in else blk

    def step_out():
        s.process(bt, out=fo)
        i_s.process(fo, out=yo)

    pf, py = fo.data_ptr(), yo.data_ptr()
    assert count_cpu_tensor_allocations(step_out, 20) == 0
    assert fo.data_ptr() == pf and yo.data_ptr() == py and float(yo.abs().max()) > 0


def test_process_errors():
    s = STFTStream(64, 16)
    with pytest.raises(InvalidParameter, match="before prepare"):
        s.process(torch.zeros(1, 1, 16))
    with pytest.raises(InvalidParameter, match=r"block_size=20 is not a multiple of hop_length=16.*16, 32, 64"):
        s.prepare(20, 1)
    with pytest.raises(InvalidParameter, match="channels"):
        s.prepare(16, 0)
    with pytest.raises(InvalidParameter, match="dtype"):
        s.prepare(16, 1, dtype=torch.float16)
    with pytest.raises(InvalidParameter, match="backend"):
        s.prepare(16, 1, backend="fftw")
    s.prepare(32, 2)
    with pytest.raises(InvalidAudio, match=r"shape \[1, 2, 16\].*\[1, 2, 32\]"):
        s.process(torch.zeros(1, 2, 16))
    with pytest.raises(InvalidAudio, match="shape"):
        s.process(torch.zeros(2, 32))
    i_s = ISTFTStream(64, 16, center=False)
    with pytest.raises(InvalidParameter, match="NOLA at output sample 0"):
        i_s.prepare(1, 1)
    i_s = ISTFTStream(64, 16)
    i_s.prepare(2, 1)
    with pytest.raises(InvalidAudio, match="complex64"):
        i_s.process(torch.zeros(1, 1, 33, 2, dtype=torch.complex128))
    with pytest.raises(InvalidParameter, match="lead_frames"):
        i_s.prepare(2, 1, lead_frames=-1)
    if not torch.cuda.is_available():
        from ironwave.errors import BackendUnavailable
        with pytest.raises(BackendUnavailable):
            s.prepare(32, 1, device="cuda")


def test_process_reset_restarts():
    s = STFTStream(64, 16)
    s.prepare(32, 1)
    x = torch.randn(1, 1, 32 * 6)
    a = torch.cat([s.process(x[..., j:j + 32]).clone() for j in range(0, 192, 32)], -1)
    s.reset()
    b = torch.cat([s.process(x[..., j:j + 32]).clone() for j in range(0, 192, 32)], -1)
    torch.testing.assert_close(a, b)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_process_matches_cpu():
    """CUDA prepare/process (torch backend) == CPU; no new cudaMalloc segments in steady state."""
    x = torch.randn(2, 2, 512 * 30)
    outs = {}
    for dev in ("cpu", "cuda"):
        s, i_s = STFTStream(512, 128), ISTFTStream(512, 128)
        s.prepare(512, 2, 2, device=dev)
        i_s.prepare(4, 2, 2, device=dev, lead_frames=s.frame_delay)
        xd = x.to(dev)
        fr, ys = [], []
        for j in range(0, x.shape[-1], 512):
            F_ = s.process(xd[..., j:j + 512])
            fr.append(F_.cpu().clone())
            ys.append(i_s.process(F_).cpu().clone())
        outs[dev] = (torch.cat(fr, -1), torch.cat(ys, -1))
        if dev == "cuda":
            blk = xd[..., :512].contiguous()
            assert s.process(blk).device.type == "cuda"
            torch.cuda.synchronize()
            before = torch.cuda.memory_stats()["segment.all.allocated"]
            for _ in range(50):
                i_s.process(s.process(blk))
            torch.cuda.synchronize()
            assert torch.cuda.memory_stats()["segment.all.allocated"] == before
    assert rel(outs["cuda"][0], outs["cpu"][0]) < 1e-5
    torch.testing.assert_close(outs["cuda"][1], outs["cpu"][1], atol=1e-5, rtol=1e-4)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("pad_mode", ["constant", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gpu_auto_runs_triton_kernel_and_matches_torch(pad_mode, dtype):
    telemetry.reset()
    x = torch.randn(3, 2, 30011, dtype=dtype, device="cuda")
    for n_fft, hop, wl, center, norm in [(2048, 512, None, True, False), (1000, 333, 800, True, True),
                                        (256, 256, None, False, False)]:
        y = stft(x, n_fft, hop, wl, "hann", center=center, pad_mode=pad_mode, normalized=norm)
        w = torch.hann_window(wl or n_fft, dtype=dtype, device="cuda")
        ref = torch.stft(x.reshape(6, -1), n_fft, hop, wl, window=w, center=center, pad_mode=pad_mode,
                         normalized=norm, return_complex=True).reshape(3, 2, n_fft // 2 + 1, -1)
        assert y.shape == ref.shape and y.dtype == ref.dtype
        assert rel(y.cpu(), ref.cpu()) < (1e-6 if dtype == torch.float32 else 1e-12)
    assert telemetry.backends("dsp.stft.triton") == {"cuda": 3}
    xg = x[0, :1].clone().requires_grad_(True)  # autograd -> torch path
    stft(xg, 256, 64).abs().sum().backward()
    assert telemetry.backends("dsp.stft.torch") == {"cuda": 1} and xg.grad is not None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_triton_path_rejects_nan_with_its_index():
    x = torch.randn(2, 40000, device="cuda")
    x[1, 12345] = float("nan")
    with pytest.raises(InvalidAudio, match="12345"):
        stft(x, 2048, 512)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gpu_istft_triton_ola_matches_torch_istft(dtype):
    x = torch.randn(3, 2, 30011, dtype=dtype, device="cuda")
    for n_fft, hop, length, norm in [(2048, 512, None, False), (1000, 250, 30011, True), (256, 64, 35000, False)]:
        w = torch.hann_window(n_fft, dtype=dtype, device="cuda")
        S = stft(x, n_fft, hop, normalized=norm)
        y = istft(S, hop, length=length, normalized=norm)
        ref = torch.istft(S.reshape(6, n_fft // 2 + 1, -1), n_fft, hop, window=w, normalized=norm,
                          length=length).reshape(3, 2, -1)
        assert y.shape == ref.shape and y.dtype == ref.dtype and y.device.type == "cuda"
        tol = 1e-5 if dtype == torch.float32 else 1e-12
        assert float((y - ref).abs().max()) <= tol * float(ref.abs().max())
    S[1, 0, 3, 4] = complex(float("inf"), 0.0)
    with pytest.raises(InvalidAudio, match="Inf"):
        istft(S, 64, length=35000)
