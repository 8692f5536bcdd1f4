"""Tests of ironwave.dsp.convolution: offline convolve/fftconvolve against scipy,
streaming PartitionedConvolver against the offline result, allocation-free
process(), IR crossfades, devices and bad input."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import scipy.signal as ss
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ironwave.backend import telemetry
from ironwave.dsp.convolution import (
    Partition,
    PartitionedConvolver,
    convolve,
    fftconvolve,
    next_fast_len,
    plan_partitions,
)
from ironwave.errors import BackendUnavailable, InvalidAudio, InvalidParameter

RTOL = 1e-5


def relerr(y, ref) -> float:
    y = np.asarray(y, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert y.shape == ref.shape, (y.shape, ref.shape)
    return float(np.abs(y - ref).max() / max(np.abs(ref).max(), 1e-30))


def room_ir(n: int, sr: int = 48000, seed: int = 0) -> np.ndarray:
    """A synthetic room impulse response: direct path, early reflections, exponential noise tail."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    h = rng.standard_normal(n) * np.exp(-t / 0.25) * 0.3
    h[0] = 1.0
    for d, g in ((int(0.003 * sr), 0.6), (int(0.011 * sr), -0.4), (int(0.017 * sr), 0.3)):
        if d < n:
            h[d] += g
    return h.astype(np.float32)


def scipy_conv_lastaxis(x: np.ndarray, h: np.ndarray, mode: str) -> np.ndarray:
    lead = np.broadcast_shapes(x.shape[:-1], h.shape[:-1])
    xb = np.broadcast_to(x, lead + x.shape[-1:]).reshape(-1, x.shape[-1]).astype(np.float64)
    hb = np.broadcast_to(h, lead + h.shape[-1:]).reshape(-1, h.shape[-1]).astype(np.float64)
    out = np.stack([ss.convolve(a, b, mode=mode, method="direct") for a, b in zip(xb, hb)])
    return out.reshape(lead + out.shape[-1:])


# ------------------------------------------------------------------------------------------
# offline
# ------------------------------------------------------------------------------------------

def test_next_fast_len():
    for n in (1, 7, 97, 1000, 1025, 96127):
        m = next_fast_len(n)
        assert m >= n
        r = m
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        assert r == 1
    assert next_fast_len(1025) == 1080


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("method", ["direct", "fft", "auto"])
@pytest.mark.parametrize("shapes", [((3, 2, 500), (2, 37)), ((2, 300), (300,)), ((1, 40), (3, 1, 250)), ((64,), (64,))])
def test_convolve_matches_scipy_random(mode, method, shapes):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shapes[0]).astype(np.float32)
    h = rng.standard_normal(shapes[1]).astype(np.float32)
    y = convolve(x, h, mode=mode, method=method)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32
    assert relerr(y, scipy_conv_lastaxis(x, h, mode)) < RTOL


def test_fftconvolve_matches_scipy_fftconvolve_batched():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 2, 3000))
    h = rng.standard_normal((2, 700))
    for mode in ("full", "same", "valid"):
        y = fftconvolve(x, h, mode=mode)
        ref = ss.fftconvolve(x, h[None], mode=mode, axes=-1)
        assert y.dtype == np.float64
        assert relerr(y, ref) < 1e-12


def test_convolve_real_audio_with_room_ir(real_audio):
    audio, sr = real_audio
    x = audio[:, : sr // 2]  # 0.5 s
    h = torch.from_numpy(room_ir(sr // 4, sr))
    y = convolve(x, h)
    assert isinstance(y, torch.Tensor) and y.dtype == torch.float32
    ref = ss.fftconvolve(x.double().numpy(), h.double().numpy()[None], axes=-1)
    assert relerr(y, ref) < RTOL
    same = fftconvolve(x, h, mode="same")
    ref_same = ss.fftconvolve(x.double().numpy(), h.double().numpy()[None], mode="same", axes=-1)
    assert same.shape == x.shape and relerr(same, ref_same) < RTOL


def test_convolve_is_true_convolution_not_correlation():
    x = np.zeros(8, np.float32)
    x[0] = 1.0
    h = np.array([1.0, 2.0, 3.0], np.float32)
    for method in ("direct", "fft"):
        y = convolve(x, h, method=method)
        np.testing.assert_allclose(y[:3], h, atol=1e-6)  # an impulse returns h, not h reversed


def test_convolve_autograd_matches_numeric():
    torch.manual_seed(0)
    for method in ("direct", "fft"):
        x = torch.randn(2, 30, dtype=torch.float64, requires_grad=True)
        h = torch.randn(2, 9, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda a, b: convolve(a, b, mode="same", method=method), (x, h))
    # gradient of sum(conv(x, h)) w.r.t. h is sum(x) for every tap
    x = torch.randn(100)
    h = torch.randn(20, requires_grad=True)
    convolve(x, h).sum().backward()
    torch.testing.assert_close(h.grad, torch.full((20,), float(x.sum())), rtol=1e-4, atol=1e-4)


def test_convolve_dtypes_and_types():
    x = torch.randn(2, 100, dtype=torch.float64)
    h = torch.randn(10, dtype=torch.float32)
    assert convolve(x, h).dtype == torch.float64
    y16 = convolve(x.half(), h.half(), method="fft")
    assert y16.dtype == torch.float16
    ref = scipy_conv_lastaxis(x.half().float().numpy(), h.half().float().numpy(), "full")
    assert relerr(y16.float().numpy(), ref) < 2e-3


def test_convolve_bad_input():
    with pytest.raises(InvalidParameter, match="mode"):
        convolve(np.ones(4), np.ones(2), mode="circular")
    with pytest.raises(InvalidParameter, match="method"):
        convolve(np.ones(4), np.ones(2), method="winograd")
    with pytest.raises(InvalidAudio, match="NaN"):
        convolve(np.array([1.0, np.nan]), np.ones(2))
    with pytest.raises(InvalidAudio, match="Inf"):
        convolve(np.ones(3), np.array([np.inf]))
    with pytest.raises(InvalidParameter, match="broadcast"):
        convolve(np.ones((3, 10)), np.ones((2, 4)))
    with pytest.raises(InvalidAudio):
        convolve(np.ones((2, 0)), np.ones(3))


def test_convolve_records_telemetry_and_rejects_missing_cuda():
    telemetry.reset()
    convolve(torch.randn(50), torch.randn(5), device="cpu")
    assert telemetry.backends("dsp.convolve") == {"cpu": 1}
    if not torch.cuda.is_available():
        with pytest.raises(BackendUnavailable):
            convolve(torch.randn(50), torch.randn(5), device="cuda")


# ------------------------------------------------------------------------------------------
# partition planning
# ------------------------------------------------------------------------------------------

def test_plan_partitions_covers_ir_and_respects_deadlines():
    for L, B in ((96000, 128), (1000, 64), (50, 128), (5000, 256), (100000, 32)):
        for scheme in ("uniform", "nonuniform"):
            plan = plan_partitions(L, B, scheme)
            assert plan[0] == Partition(B, plan[0].count, 0)
            off = 0
            for p in plan:
                assert p.offset == off and p.size % B == 0 and p.offset >= p.size - B
                off = p.end
            assert off >= L and off - plan[-1].size < L
    nu = plan_partitions(96000, 128)
    assert [p.size for p in nu] == [128, 512, 2048] and nu[0].count == 4


def test_plan_rejects_bad_explicit_plans():
    ir = np.ones(1000, np.float32)
    bad = [Partition(64, 2, 0), Partition(512, 4, 128)]  # 512-partitions cannot start before 448
    with pytest.raises(InvalidParameter, match="offset"):
        PartitionedConvolver(ir, partition=bad).prepare(64)
    with pytest.raises(InvalidParameter, match="covers"):
        PartitionedConvolver(ir, partition=[Partition(64, 2, 0)]).prepare(64)


# ------------------------------------------------------------------------------------------
# streaming
# ------------------------------------------------------------------------------------------

def stream(conv: PartitionedConvolver, x: np.ndarray, B: int) -> np.ndarray:
    """Feed x [batch, ch, T] (T multiple of B) block by block."""
    outs = [np.array(conv.process(np.ascontiguousarray(x[..., i:i + B]))) for i in range(0, x.shape[-1], B)]
    return np.concatenate(outs, axis=-1)


def offline_reference(x: np.ndarray, ir: np.ndarray) -> np.ndarray:
    """scipy reference for every IR layout, truncated to len(x): the zero-latency output."""
    x = x.astype(np.float64)
    ir = ir.astype(np.float64)
    T = x.shape[-1]
    if ir.ndim == 3:  # [Cout, Cin, L]
        y = np.stack([sum(ss.fftconvolve(x[:, i], ir[o, i][None], axes=-1) for i in range(ir.shape[1]))
                      for o in range(ir.shape[0])], axis=1)
    else:
        y = ss.fftconvolve(x, np.broadcast_to(ir, (x.shape[1], ir.shape[-1]))[None], axes=-1)
    return y[..., :T]


LAYOUTS = {"shared": ((700,), 2), "per_channel": ((3, 700), 3), "matrix": ((2, 2, 700), 2)}


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("partition", ["uniform", "nonuniform"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_streaming_equals_offline_every_layout(backend, partition, layout):
    rng = np.random.default_rng(3)
    shape, C = LAYOUTS[layout]
    ir = rng.standard_normal(shape).astype(np.float32) * 0.2
    B, batch = 32, 2
    x = rng.standard_normal((batch, C, B * 40)).astype(np.float32)
    conv = PartitionedConvolver(ir, partition=partition, backend=backend, max_partition=256)
    conv.prepare(B, channels=C, batch=batch)
    assert conv.layout == layout
    if partition == "nonuniform":
        assert len(conv.plan) > 1
    y = stream(conv, x, B)
    assert y.shape == (batch, (2 if layout == "matrix" else C), x.shape[-1])
    assert relerr(y, offline_reference(x, ir)) < RTOL
    # latency is exactly zero beyond the block: an impulse at sample 0 returns ir[0] at sample 0
    assert conv.latency == 0


def test_streaming_impulse_zero_latency():
    ir = np.zeros(300, np.float32)
    ir[0], ir[5], ir[299] = 1.0, 0.5, 0.25
    conv = PartitionedConvolver(ir)
    conv.prepare(16)
    x = np.zeros((1, 1, 16 * 20), np.float32)
    x[..., 3] = 1.0
    y = stream(conv, x, 16)[0, 0]
    expect = np.zeros_like(y)
    expect[3], expect[8], expect[302] = 1.0, 0.5, 0.25
    np.testing.assert_allclose(y, expect, atol=1e-6)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(B=st.sampled_from([1, 3, 16, 37, 64, 100, 128]), L=st.integers(1, 900), nblocks=st.integers(1, 30),
       partition=st.sampled_from(["uniform", "nonuniform"]), backend=st.sampled_from(["numpy", "torch"]),
       seed=st.integers(0, 2**16))
def test_property_streaming_equals_fftconvolve(B, L, nblocks, partition, backend, seed):
    rng = np.random.default_rng(seed)
    ir = rng.standard_normal(L).astype(np.float32)
    x = rng.standard_normal((1, 2, B * nblocks)).astype(np.float32)
    conv = PartitionedConvolver(ir, partition=partition, backend=backend, max_partition=512)
    conv.prepare(B, channels=2)
    y = stream(conv, x, B)
    ref = np.asarray(fftconvolve(x.astype(np.float64), ir.astype(np.float64)))[..., : x.shape[-1]]
    assert relerr(y, ref) < RTOL


def test_streaming_real_audio_long_ir(real_music):
    audio, sr = real_music
    x = audio[:, : sr].numpy()[None]  # [1, 2, sr]
    ir = room_ir(sr // 2, sr, seed=4)
    conv = PartitionedConvolver(ir)
    B = 128
    conv.prepare(B, channels=2)
    n = (x.shape[-1] // B) * B
    y = stream(conv, x[..., :n], B)
    assert len(conv.plan) > 1
    assert relerr(y, offline_reference(x[..., :n], ir)) < RTOL


def test_process_shapes_types_and_out():
    ir = np.random.default_rng(5).standard_normal(100).astype(np.float32)
    conv = PartitionedConvolver(ir)
    conv.prepare(8)
    y1 = conv.process(np.ones(8, np.float32))
    assert isinstance(y1, np.ndarray) and y1.shape == (8,)
    y2 = conv.process(torch.ones(1, 8))
    assert isinstance(y2, torch.Tensor) and y2.shape == (1, 8)
    out = np.empty((1, 1, 8), np.float32)
    r = conv.process(np.ones((1, 1, 8), np.float32), out=out)
    assert r is out
    ref = np.convolve(np.ones(24), ir.astype(np.float64))[16:24]
    np.testing.assert_allclose(out[0, 0], ref, rtol=1e-5, atol=1e-5)


def test_process_bad_input():
    conv = PartitionedConvolver(np.ones(10, np.float32))
    with pytest.raises(InvalidParameter, match="prepare"):
        conv.process(np.ones(8, np.float32))
    conv.prepare(8, channels=2)
    with pytest.raises(InvalidAudio, match=r"\[1, 2, 8\]"):
        conv.process(np.ones((1, 2, 9), np.float32))
    bad = np.ones((1, 2, 8), np.float32)
    bad[0, 1, 3] = np.nan
    with pytest.raises(InvalidAudio, match="NaN"):
        conv.process(bad)
    tconv = PartitionedConvolver(np.ones(10, np.float32), backend="torch")
    tconv.prepare(8)
    with pytest.raises(InvalidAudio, match="float64"):
        tconv.process(torch.ones(1, 1, 8, dtype=torch.float64))
    with pytest.raises(InvalidParameter, match="channels"):
        PartitionedConvolver(np.ones((3, 10), np.float32)).prepare(8, channels=2)
    with pytest.raises(InvalidAudio):
        PartitionedConvolver(np.ones((2, 2, 2, 10), np.float32))
    with pytest.raises(InvalidParameter, match="backend"):
        PartitionedConvolver(np.ones(10, np.float32), backend="jax")


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_process_allocates_nothing_after_prepare(backend):
    rng = np.random.default_rng(6)
    ir = rng.standard_normal(2000).astype(np.float32)
    conv = PartitionedConvolver(ir, backend=backend, partition="nonuniform", max_partition=512)
    B = 64
    conv.prepare(B, channels=2, batch=2)
    blocks = [torch.from_numpy(rng.standard_normal((2, 2, B)).astype(np.float32)) for _ in range(70)]
    out = torch.empty(2, 2, B)
    for b in blocks[:20]:  # warm-up: lazy FFT plans, caches
        conv.process(b, out=out)
    eng = conv._eng
    state = [eng.X, eng.sides[0].Hd, eng.sides[0].yt, [eng.sides[0].acc]]
    ptrs = [(a.data_ptr() if isinstance(a, torch.Tensor) else a.ctypes.data) for group in state for a in group]
    out_ptr = out.data_ptr()
    internal = conv.process(blocks[0])
    internal_ptr = internal.data_ptr()
    tracemalloc.start()
    base_cur, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    for b in blocks[20:]:
        conv.process(b, out=out)
        r = conv.process(b)
        assert r.data_ptr() == internal_ptr
    cur, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert cur - base_cur <= 512, f"process() left {cur - base_cur} bytes allocated"
    # transient scratch only (FFT work buffers, view objects), far below any state size
    assert peak - base_cur < 64 * 1024, f"process() peak {peak - base_cur} bytes"
    assert out.data_ptr() == out_ptr
    ptrs2 = [(a.data_ptr() if isinstance(a, torch.Tensor) else a.ctypes.data) for group in state for a in group]
    assert ptrs == ptrs2


@pytest.mark.parametrize("partition", ["uniform", "nonuniform"])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_set_ir_crossfade_is_exact_mix_of_old_and_new(partition, backend):
    rng = np.random.default_rng(7)
    L, B = 1500, 32
    h_old = rng.standard_normal(L).astype(np.float32) * 0.1
    h_new = rng.standard_normal(1200).astype(np.float32) * 0.1
    conv = PartitionedConvolver(h_old, partition=partition, backend=backend, max_partition=256)
    conv.prepare(B)
    x = rng.standard_normal((1, 1, B * 120)).astype(np.float32)
    y_old = offline_reference(x, h_old)[0, 0]
    y_new = offline_reference(x, h_new)[0, 0]
    switch_block, xf = 20, 100
    outs = []
    for i in range(120):
        if i == switch_block:
            conv.set_ir(h_new, crossfade=xf)
            with pytest.raises(InvalidParameter, match="in progress"):
                conv.set_ir(h_new, crossfade=xf)
        outs.append(np.array(conv.process(x[..., i * B:(i + 1) * B]))[0, 0])
    y = np.concatenate(outs)
    start = (switch_block + conv.warmup_blocks) * B
    if partition == "uniform":
        assert conv.warmup_blocks == 0
    g = np.zeros_like(y_old)
    g[start:start + xf] = (np.arange(xf) + 1.0) / (xf + 1.0)
    g[start + xf:] = 1.0
    expect = (1 - g) * y_old + g * y_new
    assert relerr(y, expect) < RTOL
    assert not conv.crossfading
    # after the fade the output is the new IR applied to the whole past input
    assert relerr(y[start + xf + B:], y_new[start + xf + B:]) < RTOL
    # no click: the largest sample-to-sample step stays that of the signals themselves
    steps = np.abs(np.diff(y[start - B:start + xf + B]))
    assert steps.max() <= 1.05 * max(np.abs(np.diff(y_old)).max(), np.abs(np.diff(y_new)).max())


def test_set_ir_validation():
    conv = PartitionedConvolver(np.ones(100, np.float32))
    conv.prepare(16)
    with pytest.raises(InvalidParameter, match="taps"):
        conv.set_ir(np.ones(101, np.float32))
    with pytest.raises(InvalidParameter, match="layout"):
        conv.set_ir(np.ones((2, 50), np.float32))
    with pytest.raises(InvalidParameter, match="crossfade"):
        conv.set_ir(np.ones(50, np.float32), crossfade=-1)


def test_reset_clears_history():
    ir = np.random.default_rng(8).standard_normal(200).astype(np.float32)
    conv = PartitionedConvolver(ir)
    conv.prepare(16)
    x = np.random.default_rng(9).standard_normal((1, 1, 160)).astype(np.float32)
    a = stream(conv, x, 16)
    conv.reset()
    b = stream(conv, x, 16)
    np.testing.assert_array_equal(a, b)


def test_torch_uniform_head_uses_only_device_side_indices():
    """The capturable path: ring position lives in device tensors updated in place."""
    conv = PartitionedConvolver(torch.randn(500), backend="torch", partition="uniform")
    conv.prepare(64, channels=4, batch=2)
    eng = conv._eng
    assert not eng.tails
    pos_ptr = eng.pos_t[0].data_ptr()
    for _ in range(10):
        conv.process(torch.randn(2, 4, 64))
    assert eng.pos_t[0].data_ptr() == pos_ptr
    assert int(eng.pos_t[0]) == 10 % eng.plan[0].count


def test_streaming_telemetry():
    telemetry.reset()
    conv = PartitionedConvolver(np.ones(10, np.float32))
    conv.prepare(8)
    conv.process(np.ones(8, np.float32))
    assert telemetry.backends("dsp.PartitionedConvolver.process") == {"cpu": 1}
    if not torch.cuda.is_available():
        with pytest.raises(BackendUnavailable):
            PartitionedConvolver(np.ones(10, np.float32), device="cuda")


# ------------------------------------------------------------------------------------------
# GPU
# ------------------------------------------------------------------------------------------

gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.gpu
@gpu
def test_gpu_convolve_matches_cpu():
    x = torch.randn(4, 2, 5000)
    h = torch.randn(2, 900)
    for method in ("direct", "fft"):
        yg = convolve(x.cuda(), h.cuda(), method=method)
        assert yg.is_cuda
        assert relerr(yg.cpu().numpy(), convolve(x, h, method=method).numpy()) < RTOL
    assert relerr(convolve(x, h, device="cuda").numpy(), scipy_conv_lastaxis(x.numpy(), h.numpy(), "full")) < RTOL


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("partition", ["uniform", "nonuniform"])
def test_gpu_streaming_matches_offline(partition):
    rng = np.random.default_rng(10)
    ir = rng.standard_normal((2, 2, 3000)).astype(np.float32) * 0.1
    x = rng.standard_normal((3, 2, 64 * 60)).astype(np.float32)
    conv = PartitionedConvolver(torch.from_numpy(ir), device="cuda", partition=partition, max_partition=512)
    conv.prepare(64, channels=2, batch=3)
    xs = torch.from_numpy(x).cuda()
    y = torch.cat([conv.process(xs[..., i:i + 64]).clone() for i in range(0, x.shape[-1], 64)], -1)
    assert relerr(y.cpu().numpy(), offline_reference(x, ir)) < RTOL


@pytest.mark.gpu
@gpu
def test_gpu_uniform_convolver_under_cuda_graph_capture():
    from ironwave.backend import CapturedProgram

    rng = np.random.default_rng(11)
    ir = rng.standard_normal(2000).astype(np.float32) * 0.1
    x = rng.standard_normal((2, 8, 128 * 30)).astype(np.float32)
    conv = PartitionedConvolver(torch.from_numpy(ir).cuda(), partition="uniform")
    conv.prepare(128, channels=8, batch=2)
    out = torch.zeros(2, 8, 128, device="cuda")
    prog = CapturedProgram(lambda b: conv.process(b, out=out), [torch.zeros(2, 8, 128, device="cuda")], device="cuda", warmup=2)
    assert prog.captured
    conv.reset()  # warm-up and capture ran the program: start the stream from silence
    ys = []
    for i in range(30):
        ys.append(prog(torch.from_numpy(x[..., i * 128:(i + 1) * 128]).cuda())[0].clone())
    y = torch.cat(ys, -1).cpu().numpy()
    assert relerr(y, offline_reference(x, ir)) < RTOL
