"""StreamingSeparator: fixed latency, chunking invariance, equality with an explicit per-window
reference, engine face (no allocation between hops, stable buffers), errors, CUDA vs CPU.

A reduced HTDemucs (8 channels, 2 transformer layers, 0.25 s segment = 11025 samples) keeps
each forward at ~20 ms on a 2-core CPU.
"""
from __future__ import annotations

import math
import tracemalloc
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.profiler import ProfilerActivity, profile

from ironwave.backend.telemetry import telemetry
from ironwave.errors import InvalidAudio, InvalidParameter
from ironwave.models.htdemucs import HTDEMUCS_KWARGS, SOURCES_4, HTDemucs
from ironwave.models.streaming import StreamingSeparator, separate_streaming

SR = 44100
TINY = dict(HTDEMUCS_KWARGS, channels=8, bottom_channels=32, t_layers=2, t_heads=2, segment=Fraction(1, 4))


def _model(seed: int = 0) -> HTDemucs:
    torch.manual_seed(seed)
    return HTDemucs(list(SOURCES_4), **TINY).eval()


@pytest.fixture(scope="module")
def model() -> HTDemucs:
    return _model(0)


@pytest.fixture(scope="module")
def music() -> torch.Tensor:
    """0.6 s of a real drum loop (tests/data/loop_amen.flac, stereo 44.1 kHz)."""
    import soundfile as sf
    from pathlib import Path

    data, sr = sf.read(str(Path(__file__).resolve().parents[1] / "data" / "loop_amen.flac"), dtype="float32",
                       always_2d=True)
    assert sr == SR and data.shape[1] == 2
    return torch.from_numpy(np.ascontiguousarray(data.T))[:, 2000:2000 + int(0.6 * SR)].contiguous()


class Identity(nn.Module):
    """A fake 'model' whose every source is the input (reveals the delay exactly)."""

    samplerate = SR
    segment = Fraction(1, 4)
    audio_channels = 2
    sources = ["a", "b", "c"]
    training_length = SR // 4

    def forward(self, x: torch.Tensor, **kw) -> torch.Tensor:
        return x[:, None].expand(-1, len(self.sources), -1, -1) * 1.0


def _reference(model, x: torch.Tensor, *, hop: float, lookahead: float, crossfade: float = 0.0,
               context: float | None = None) -> torch.Tensor:
    """The design computed directly: run k separates x[E_k - W, E_k), E_k = (k+1)H + F + A, and
    contributes [kH, (k+1)H + F) with linear ramps over the F overlapping samples."""
    H, A, F = round(hop * SR), round(lookahead * SR), round(crossfade * SR)
    L = model.training_length
    P = L - H - F - A if context is None else round(context * SR)
    W = P + H + F + A
    N = x.shape[-1]
    K = math.ceil(N / H)
    xp = torch.cat([torch.zeros(2, W), x, torch.zeros(2, K * H + F + A)], -1)  # xp[W + t] = x[t]
    s = torch.zeros(len(model.sources), 2, K * H + F)
    r = ((torch.arange(F, dtype=torch.float64) + 0.5) / max(F, 1)).float()
    for k in range(K):
        E = (k + 1) * H + F + A
        with torch.inference_mode():
            y = model(xp[None, :, W + E - W:W + E].clone())[0]
        seg = y[..., P:P + H + F]
        if k and F:
            s[..., k * H:k * H + F] = seg[..., :F] * r + s[..., k * H:k * H + F] * (1 - r)
            s[..., k * H + F:(k + 1) * H + F] = seg[..., F:]
        else:
            s[..., k * H:(k + 1) * H + F] = seg
    return s[..., :N]


def _stream(sep: StreamingSeparator, x: torch.Tensor, sizes) -> torch.Tensor:
    outs, a = [], 0
    for n in sizes:
        outs.append(sep.process(x[:, a:a + n]).clone())
        a += n
    if a < x.shape[-1]:
        outs.append(sep.process(x[:, a:]).clone())
    outs.append(sep.flush())
    return torch.cat(outs, -1)


# ------------------------------------------------------------------ latency
@pytest.mark.parametrize("hop,lookahead,crossfade", [(0.05, 0.05, 0.0), (0.02, 0.1, 0.005), (0.1, 0.0, 0.0)])
def test_latency_is_exact_with_identity_model(hop, lookahead, crossfade):
    sep = StreamingSeparator(Identity(), hop=hop, lookahead=lookahead, crossfade=crossfade, device="cpu")
    D = round(hop * SR) + round(lookahead * SR) + round(crossfade * SR)
    assert sep.latency == D and sep.latency_seconds == pytest.approx(D / SR)
    torch.manual_seed(1)
    x = torch.randn(2, 9000)
    y = _stream(sep, x, [700] * 12)
    assert y.shape == (3, 2, 9000 + D)
    assert torch.equal(y[..., :D], torch.zeros(3, 2, D))
    # cross-fading two equal estimates: r*x + (1-r)*x, exact up to float rounding
    torch.testing.assert_close(y[..., D:], x.expand(3, 2, -1), atol=1e-6, rtol=0)
    # an impulse comes out exactly `latency` samples later
    imp = torch.zeros(2, 6000)
    imp[:, 1234] = 1.0
    z = _stream(sep, imp, [511] * 11)
    assert int(z[0, 0].abs().argmax()) == 1234 + D


# ------------------------------------------------------------------ equality with the explicit reference
@pytest.mark.parametrize("hop,lookahead,crossfade,context", [
    (0.05, 0.05, 0.0, None),    # hop == lookahead
    (0.1, 0.1, 0.0, None),
    (0.04, 0.08, 0.01, None),   # with a cross-fade
    (0.05, 0.05, 0.0, 0.05),    # short context (the model zero-pads the window to its segment)
])
def test_equals_per_window_reference_on_real_music(model, music, hop, lookahead, crossfade, context):
    want = _reference(model, music, hop=hop, lookahead=lookahead, crossfade=crossfade, context=context)
    got = separate_streaming(model, music, hop=hop, lookahead=lookahead, crossfade=crossfade, context=context,
                             device="cpu", block=1000)
    assert got.shape == want.shape == (4, 2, music.shape[-1])
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    # the reference is not trivially satisfied: another lookahead gives another result
    other = _reference(model, music, hop=hop, lookahead=lookahead + 0.02, crossfade=crossfade, context=context)
    assert (other - want).abs().max() > 1e-4


def test_stream_output_is_delayed_reference(model, music):
    """process() output = latency zeros, then the reference stems (plugin-style constant delay)."""
    x = music[:, :12000]
    sep = StreamingSeparator(model, hop=0.05, lookahead=0.05, device="cpu").prepare(512)
    y = _stream(sep, x, [512] * 23)
    D = sep.latency
    assert D == round(0.05 * SR) * 2
    assert torch.equal(y[..., :D], torch.zeros(4, 2, D))
    torch.testing.assert_close(y[..., D:], _reference(model, x, hop=0.05, lookahead=0.05), atol=1e-6, rtol=0)
    # flush reset the stream: the same input gives the same output again
    assert torch.equal(_stream(sep, x, [4000, 4000]), y)


# ------------------------------------------------------------------ chunking invariance
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(min_value=0, max_value=5000), min_size=1, max_size=12),
       crossfade=st.sampled_from([0.0, 0.004]))
def test_output_does_not_depend_on_block_sizes(model, music, sizes, crossfade):
    x = music[:, :15000]
    kw = dict(hop=0.03, lookahead=0.04, crossfade=crossfade, device="cpu")
    whole = _stream(StreamingSeparator(model, **kw), x, [x.shape[-1]])
    chunked = _stream(StreamingSeparator(model, **kw), x, sizes)
    assert torch.equal(whole, chunked)


# ------------------------------------------------------------------ engine face
def _cpu_allocs(fn) -> int:
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return sum(1 for e in prof.events() if e.cpu_memory_usage > 0)


def test_engine_face_preallocated_and_no_allocation_between_hops(model, music):
    sep = StreamingSeparator(model, hop=0.05, lookahead=0.05, crossfade=0.005, device="cpu").prepare(256)
    H = sep.hop_samples
    x = music[:, :256 * 60]
    out = torch.zeros(4, 2, 256)
    ptrs = [t.data_ptr() for t in (sep._ring, sep._queue, sep._win, sep._tail, sep._out)]
    ref = StreamingSeparator(model, hop=0.05, lookahead=0.05, crossfade=0.005, device="cpu")
    want = _stream(ref, x, [x.shape[-1]])
    got = []
    for i in range(60):
        blk = x[:, i * 256:(i + 1) * 256]
        before = sep.hops_run
        crosses = sep._until <= 256
        if not crosses and i > 20:  # no model run in this call: nothing may be allocated
            assert _cpu_allocs(lambda: sep.process(blk, out=out)) == 0
        else:
            r = sep.process(blk, out=out)
            assert r is out
        assert sep.hops_run - before == int(crosses)
        got.append(out.clone())
        # without out=: a view of the internal buffer
        assert sep._out.data_ptr() == ptrs[-1]
    assert [t.data_ptr() for t in (sep._ring, sep._queue, sep._win, sep._tail, sep._out)] == ptrs
    assert sep.hops_run >= 60 * 256 // H - 2
    torch.testing.assert_close(torch.cat(got, -1), want[..., :60 * 256], atol=0, rtol=0)


def test_internal_output_view_and_no_python_growth(model, music):
    sep = StreamingSeparator(model, hop=0.05, lookahead=0.0, device="cpu").prepare(128)
    x = music[:, :128]
    for _ in range(40):  # warm-up: model caches, first hops
        y = sep.process(x)
    assert y.data_ptr() == sep._out.data_ptr() and y.shape == (4, 2, 128)
    tracemalloc.start()
    try:
        for _ in range(5):
            sep.process(x)
        snap0 = tracemalloc.take_snapshot()
        for _ in range(200):  # ~11 hops
            sep.process(x)
        snap1 = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(s.size_diff for s in snap1.compare_to(snap0, "filename") if s.size_diff > 0)
    assert grown < 16_384, grown


def test_numpy_dtype_and_graph_program_path(model, music):
    x = music[:, :6000]
    a = separate_streaming(model, x, hop=0.05, lookahead=0.05, device="cpu")
    # graph=True on the CPU runs the CapturedProgram path (static input/output buffers), same numbers
    b = separate_streaming(model, x, hop=0.05, lookahead=0.05, device="cpu", graph=True, block=999)
    assert torch.equal(a, b)
    n = separate_streaming(model, x.double().numpy(), hop=0.05, lookahead=0.05, device="cpu")
    assert isinstance(n, np.ndarray) and n.dtype == np.float64 and n.shape == (4, 2, 6000)
    np.testing.assert_allclose(n, a.double().numpy(), atol=1e-6)
    sep = StreamingSeparator(model, hop=0.05, lookahead=0.05, device="cpu")
    y = sep.process(x.numpy()[:, :100])
    assert isinstance(y, np.ndarray) and y.shape == (4, 2, 100)


def test_bf16_autocast_close_to_float32(model, music):
    x = music[:, :8000]
    a = separate_streaming(model, x, hop=0.05, lookahead=0.05, device="cpu")
    b = separate_streaming(model, x, hop=0.05, lookahead=0.05, device="cpu", precision="bf16")
    assert b.dtype == torch.float32 and not torch.equal(a, b)  # autocast really ran
    sdr = 10 * torch.log10(a.double().pow(2).sum() / (a.double() - b.double()).pow(2).sum())
    assert sdr > 25, float(sdr)


def test_telemetry_records_cpu_hops(model, music):
    telemetry.reset()
    separate_streaming(model, music[:, :5000], hop=0.05, lookahead=0.05, device="cpu")
    assert telemetry.backends("models.StreamingSeparator.hop").get("cpu", 0) >= 2
    assert telemetry.backends("models.separate_streaming") == {"cpu": 1}


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("kw,match", [
    (dict(lookahead=-0.1, hop=0.05), "lookahead"),
    (dict(lookahead=0.05, hop=0.0), "hop"),
    (dict(lookahead=0.05, hop=-1), "hop"),
    (dict(lookahead=0.05, hop=1e-7), "less than one sample"),
    (dict(lookahead=float("nan"), hop=0.05), "lookahead"),
    (dict(lookahead=0.15, hop=0.15), "exceeds the model's segment"),
    (dict(lookahead=0.05, hop=0.05, crossfade=0.06), "crossfade"),
    (dict(lookahead=0.05, hop=0.05, context=0.2), "context can be at most"),
    (dict(lookahead=0.05, hop=0.05, precision="int8"), "precision"),
])
def test_bad_parameters(model, kw, match):
    with pytest.raises(InvalidParameter, match=match):
        StreamingSeparator(model, device="cpu", **kw)


def test_bad_blocks(model):
    sep = StreamingSeparator(model, hop=0.05, lookahead=0.05, device="cpu")
    with pytest.raises(InvalidAudio, match=r"channels=2"):
        sep.process(torch.zeros(1, 100))
    with pytest.raises(InvalidAudio, match=r"channels=2"):
        sep.process(torch.zeros(100))
    bad = torch.zeros(2, 100)
    bad[1, 7] = float("nan")
    with pytest.raises(InvalidAudio, match="NaN"):
        sep.process(bad)
    with pytest.raises(InvalidParameter, match="out has shape"):
        sep.process(torch.zeros(2, 100), out=torch.zeros(4, 2, 99))
    with pytest.raises(InvalidParameter, match="max_block"):
        sep.prepare(0)
    with pytest.raises(InvalidParameter, match="not a model|audio_channels|attribute"):
        StreamingSeparator(object(), hop=0.05, lookahead=0.05)


# ------------------------------------------------------------------ GPU
@pytest.mark.gpu
@pytest.mark.parametrize("graph", [None, False])
def test_cuda_equals_cpu(music, graph):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    x = music[:, :15000]
    kw = dict(hop=0.03, lookahead=0.04, crossfade=0.004)
    cpu = separate_streaming(_model(3), x, device="cpu", **kw)
    gpu_model = _model(3)
    # CPU blocks into a CUDA model (the audio-callback case): output comes back on the CPU
    got = separate_streaming(gpu_model, x, device="cuda", graph=graph, block=700, **kw)
    assert got.device.type == "cpu"
    torch.testing.assert_close(got, cpu, atol=2e-4, rtol=0)
    # CUDA blocks: output on CUDA, zero allocation by the graph replay between and at hops
    # check_finite=False: the NaN check is a reduction (a scalar allocation and a sync on CUDA)
    sep = StreamingSeparator(gpu_model, device="cuda", graph=graph, check_finite=False, **kw).prepare(700)
    xc = x.cuda()
    outs = [sep.process(xc[:, a:a + 700]).clone() for a in range(0, x.shape[-1], 700)]
    outs.append(sep.flush())
    y = torch.cat(outs, -1)[..., sep.latency:]
    assert y.device.type == "cuda"
    torch.testing.assert_close(y.cpu(), cpu, atol=2e-4, rtol=0)
    if graph is None:
        assert sep._fwd.program is not None and sep._fwd.program.captured
        out = torch.empty(4, 2, 700, device="cuda")
        torch.cuda.synchronize()
        before = torch.cuda.memory_stats()["allocation.all.allocated"]
        for a in range(0, x.shape[-1] - 700, 700):
            sep.process(xc[:, a:a + 700], out=out)
        torch.cuda.synchronize()
        assert torch.cuda.memory_stats()["allocation.all.allocated"] == before
