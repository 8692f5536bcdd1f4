"""CQTStream: streaming CQT/VQT (push/flush for any block size; prepare/process engine face).

Reference: ``CQT.forward_single_rate`` (STFT with a rectangular window + the full-rate FFT filter
bank, computed independently of the stream's time-domain kernel). The stream must reproduce it to
float rounding. The single-rate reference is itself tied to the multi-rate ``CQT.forward``: exactly
(1e-9) on the top octave when sparsity=0, and within 3e-2 of the peak on interior frames of white
noise for all octaves (the multi-rate path quantises the wavelets on a coarser grid; measured
1.1e-2 .. 1.6e-2, independent of res_type).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ironwave.backend.alloccheck import count_cpu_tensor_allocations, python_growth_bytes
from ironwave.errors import InvalidAudio, InvalidParameter
from ironwave.spectral.cqt import CQT, CQTStream

SR = 8000
KW = dict(hop_length=64, fmin=110.0, n_bins=24)  # early downsampling 2, n = 2048, latency 1024 samples


@pytest.fixture(scope="module")
def plan() -> CQT:
    return CQT(SR, **KW)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def _stream(s: CQTStream, x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    outs, i = [], 0
    for n in sizes:
        outs.append(s.push(x[..., i:i + n]))
        i += n
    outs.append(s.push(x[..., i:]))
    outs.append(s.flush())
    for o in outs:
        assert o.shape[-2] == s.n_bins and o.is_complex()
    return torch.cat(outs, dim=-1)


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(0, 1500), min_size=1, max_size=12), length=st.integers(1, 6000),
       seed=st.integers(0, 2 ** 31 - 1))
def test_stream_equals_single_rate_any_blocks(plan, sizes, length, seed):
    x = torch.from_numpy(np.random.default_rng(seed).standard_normal((2, length)))
    ref = plan.forward_single_rate(x)
    assert ref.shape == (2, plan.n_bins, plan.n_frames(length))
    out = _stream(CQTStream(plan), x, sizes)
    assert out.shape == ref.shape
    assert _rel(out, ref) <= 1e-9


@pytest.mark.parametrize("kw", [dict(hop_length=128, fmin=200.0, n_bins=36),
                                dict(hop_length=64, fmin=110.0, n_bins=24, gamma=None, scale=False),
                                dict(hop_length=96, fmin=150.0, n_bins=30, bins_per_octave=15, filter_scale=0.8)])
def test_stream_other_parameters_float32(kw):
    s = CQTStream(SR, **kw)
    x = torch.randn(3, 5000)
    ref = s.plan.forward_single_rate(x)
    out = _stream(s, x, [700, 1, 0, 2048, 33])
    assert out.dtype == torch.complex64 and out.shape == ref.shape
    assert _rel(out, ref) <= 1e-4


def test_stream_numpy_in_numpy_out(plan):
    x = np.random.default_rng(1).standard_normal(3000).astype(np.float32)
    s = CQTStream(plan)
    a, b, c = s.push(x[:2500]), s.push(x[2500:]), s.flush()
    assert isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and isinstance(c, np.ndarray)
    assert np.abs(np.concatenate([a, b, c], -1) - plan.forward_single_rate(x)).max() <= 1e-4 * np.abs(b).max()


def test_latency_is_half_filter_span(plan):
    s = CQTStream(plan)
    assert s.n == plan.single_rate_n_fft >= np.max(plan.lengths)
    assert s.latency == s.n // 2 and s.latency_seconds == s.latency / SR
    # frame 0 (centred at sample 0) appears exactly when sample latency - 1 has arrived
    assert s.push(torch.zeros(s.latency - 1)).shape[-1] == 0
    assert s.push(torch.zeros(1)).shape[-1] == 1


@pytest.mark.parametrize("sparsity", [0.0, 0.01])
@pytest.mark.parametrize("res_type", ["fft", "kaiser_hq"])
def test_single_rate_reference_matches_multirate(sparsity, res_type):
    p = CQT(SR, sparsity=sparsity, res_type=res_type, hop_length=128, fmin=200.0, n_bins=36)
    x = torch.randn(1, 2 * SR, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ref, off = p.forward_single_rate(x), p.forward(x)
    assert ref.shape == off.shape
    if sparsity == 0.0:  # top octave runs at the full rate in both: same wavelets; only the FFT size of
        # the one-sided filter projection differs (measured 1.9e-5)
        assert _rel(ref[..., 24:, :], off[..., 24:, :]) <= 1e-4
    m = 2 * p.single_rate_n_fft // p.hop_length
    peak = off.abs().max()
    d = float((ref - off)[..., m:-m].abs().max() / peak)
    assert d <= 3e-2


def test_frame_count_matches_offline_with_early_downsampling(plan):
    assert plan.early > 0
    for n in (1024 * 3 - 1, 1024 * 3, 1024 * 3 + 63, 4095, 4097):
        x = torch.randn(n)
        assert _stream(CQTStream(plan), x, [n // 3]).shape[-1] == plan.forward(x).shape[-1] == plan.n_frames(n)


def test_engine_face_equals_offline_and_allocates_nothing(plan):
    s = CQTStream(plan)
    T, batch, ch = 3, 2, 2
    bs = T * plan.hop_length
    s.prepare(bs, ch, batch, dtype=torch.float64)
    x = torch.randn(batch, ch, bs * 20, dtype=torch.float64)
    outs = [s.process(x[..., j * bs:(j + 1) * bs]).clone() for j in range(20)]
    assert all(o.shape == (batch, ch, plan.n_bins, T) for o in outs)
    got = torch.cat(outs, -1)[..., s.latency_frames:]
    ref = plan.forward_single_rate(x)[..., : got.shape[-1]]
    assert _rel(got, ref) <= 1e-9
    # out= buffer: written in place
    out = torch.empty(batch, ch, plan.n_bins, T, dtype=torch.complex128)
    ptr = out.data_ptr()
    blk = x[..., :bs].contiguous()
    assert s.process(blk, out=out) is out and out.data_ptr() == ptr
    # the counter sees an allocating call, and process() makes none
    assert count_cpu_tensor_allocations(lambda: torch.cat([blk, blk], -1), n=3) > 0
    assert count_cpu_tensor_allocations(lambda: s.process(blk, out=out), n=5) == 0
    assert count_cpu_tensor_allocations(lambda: s.process(blk), n=5) == 0
    assert python_growth_bytes(lambda: s.process(blk, out=out), n=300, warmup=10) < 512  # no per-call object
    with pytest.raises(InvalidParameter, match="out is"):
        s.process(blk, out=torch.empty(batch, ch, plan.n_bins, T, dtype=torch.complex64))


def test_errors(plan):
    s = CQTStream(plan)
    with pytest.raises(InvalidParameter, match="not a multiple of hop_length=64"):
        s.prepare(100, 1)
    with pytest.raises(InvalidParameter, match="before prepare"):
        s.process(torch.zeros(1, 1, 64))
    s.prepare(128, 1)
    with pytest.raises(InvalidAudio, match="prepared for"):
        s.process(torch.zeros(1, 1, 64))
    with pytest.raises(InvalidParameter, match="pad_mode"):
        CQTStream(SR, pad_mode="reflect", **KW)
    with pytest.raises(InvalidParameter, match="takes no other parameters"):
        CQTStream(plan, hop_length=32)
    with pytest.raises(InvalidAudio, match="flush"):
        CQTStream(plan).flush()
    s2 = CQTStream(plan)
    s2.push(torch.zeros(2, 100))
    with pytest.raises(InvalidAudio, match="reset"):
        s2.push(torch.zeros(3, 100))
    with pytest.raises(InvalidAudio):
        s2.push(torch.tensor([[float("nan")]] * 2))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(plan):
    x = torch.randn(2, 4000)
    ref = _stream(CQTStream(plan), x, [500, 1777])
    out = _stream(CQTStream(plan), x.cuda(), [500, 1777])
    assert out.is_cuda and _rel(out.cpu(), ref) <= 1e-4
    s = CQTStream(plan)
    s.prepare(128, 2, 1, device="cuda")
    got = torch.cat([s.process(x[None, :, j * 128:(j + 1) * 128].cuda()).clone() for j in range(30)], -1)
    want = plan.forward_single_rate(x)[None, ..., : 60 - s.latency_frames]
    assert _rel(got[..., s.latency_frames:].cpu(), want) <= 1e-4
