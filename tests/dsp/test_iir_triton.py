"""Tests of the fused Triton path of ``ironwave.dsp.iir.sosfilt`` (``_triton.py``).

Part (a) runs the real kernels under the Triton interpreter (``TRITON_INTERPRET=1``,
CPU tensors, numpy semantics) and compares them with ``scipy.signal.sosfilt`` in
float64: several designs, 1..6 sections (more than 4 run in groups), per-channel
coefficients, ``zi``/``zf``, lengths that are not multiples of the chunk or of
the 8-sample tile, both tile-loading variants. These tests are SKIPPED when
``triton`` is not importable (CI installs no Triton; the dev venv has it).

Part (b) (``@pytest.mark.gpu``, skipped without CUDA) compares the compiled CUDA
kernels with scipy float64 on 10 s at 48 kHz (including the 40 Hz, Q = 5
low-pass whose float32 TDF-II recursion is off by 9e-4) and with the matmul scan.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.signal as ss
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ironwave.backend.telemetry import telemetry
from ironwave.dsp import iir
from ironwave.dsp.iir.design import normalize_sos
from ironwave.errors import InvalidAudio, InvalidParameter

FS = 48000
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _triton_interp import HAVE_TRITON, load_interpreted  # type: ignore  # noqa: E402,F401

SRC = Path(iir.__file__).resolve().parent / "_triton.py"

DESIGNS = {
    "lowpass1k": iir.lowpass(1000, FS, 0.7071),  # 1 section
    "lowpass40_q5": iir.lowpass(40, FS, 5.0),  # 1 section, slow high-Q poles
    "butter4_bp": iir.butter(2, (300, 3000), "bandpass", FS),  # 2 sections
    "eq3": iir.eq([("lowshelf", 100, 0.7, 3), ("peaking", 1000, 1.0, -4), ("highshelf", 8000, 0.7, 2)], FS),  # 3
    "ellip8_hp": iir.ellip(8, 0.5, 60, 2000, "highpass", FS),  # 4 sections
    "butter12_lp": iir.butter(12, 500, "lowpass", FS),  # 6 sections: two kernel groups
}


def ref(sos, x, zi=None):
    """scipy float64 reference; zi/zf in ironwave layout [..., S, 2]."""
    s = normalize_sos(sos)
    x64 = np.asarray(x, dtype=np.float64)
    if zi is None:
        return ss.sosfilt(s, x64, axis=-1)
    y, zf = ss.sosfilt(s, x64, axis=-1, zi=np.moveaxis(np.asarray(zi, dtype=np.float64), -2, 0))
    return y, np.moveaxis(zf, 0, -2)


@pytest.fixture(scope="module")
def tri():
    """A private copy of ``_triton.py`` whose kernels run under the Triton interpreter (CPU machines;
    on a CUDA machine the gpu tests of part (b) check the compiled kernels instead)."""
    return load_interpreted(SRC, "ironwave.dsp.iir._triton_interpreted",
                            "the compiled kernels are tested by the gpu tests of this file")


def run(tri, sos, x, zi=None, **kw):
    s64 = normalize_sos(sos)
    xt = torch.as_tensor(x)
    bshape = tuple(torch.broadcast_shapes(xt.shape[:-1], s64.shape[:-2]))
    z = None if zi is None else torch.as_tensor(zi, dtype=torch.float64).expand(*bshape, s64.shape[-2], 2)
    return tri.sosfilt_triton(s64, xt, z, bshape, **kw)


# --------------------------------------------------------------------------- (a) interpreter
@pytest.mark.parametrize("halves", [True, False])
@pytest.mark.parametrize("name", list(DESIGNS))
def test_matches_scipy(tri, name, halves):
    sos = DESIGNS[name]
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((3, 1003)) * 0.5).astype(np.float32)  # 1003: not a multiple of 8 or of the chunk
    y, zf = run(tri, sos, x, chunk=48, halves=halves)
    assert zf is None and y.dtype == torch.float32 and y.shape == (3, 1003)
    r = ref(sos, x)
    assert np.abs(y.numpy() - r).max() < 2e-6 * max(1.0, np.abs(r).max())
    # float64 in -> float64 out, float64 accuracy
    y64, _ = run(tri, sos, x.astype(np.float64), chunk=64, halves=halves)
    assert y64.dtype == torch.float64
    np.testing.assert_allclose(y64.numpy(), r, atol=1e-10 * max(1.0, np.abs(r).max()), rtol=0)


@pytest.mark.parametrize("T,chunk", [(1, 64), (7, 8), (64, 64), (256, 64), (1000, 8), (999, 256)])
def test_lengths_and_chunks(tri, T, chunk):
    sos = DESIGNS["eq3"]
    x = np.random.default_rng(T).standard_normal((2, T)).astype(np.float32)
    y, _ = run(tri, sos, x, chunk=chunk)
    np.testing.assert_allclose(y.numpy(), ref(sos, x), atol=2e-6)


@pytest.mark.parametrize("name,T,chunk", [("butter4_bp", 1000, 64), ("butter4_bp", 1003, 48), ("ellip8_hp", 960, 96),
                                          ("butter12_lp", 517, 24), ("lowpass40_q5", 4000, None)])
def test_zi_zf(tri, name, T, chunk):
    """Carried state in scipy's layout, incl. a last chunk that is partial (state frozen at T) and full."""
    sos = DESIGNS[name]
    rng = np.random.default_rng(1)
    pre = (rng.standard_normal((2, 3, 300)) * 0.5).astype(np.float32)
    _, zi = ref(sos, pre, np.zeros((2, 3, sos.shape[0], 2)))  # a realistic state
    x = (rng.standard_normal((2, 3, T)) * 0.5).astype(np.float32)
    y, zf = run(tri, sos, x, zi=zi, chunk=chunk)
    yr, zfr = ref(sos, x, zi)
    scale = max(1.0, np.abs(yr).max())
    assert zf.shape == (2, 3, sos.shape[0], 2) and zf.dtype == torch.float64
    assert np.abs(y.numpy() - yr).max() < 2e-6 * scale
    assert np.abs(zf.numpy() - zfr).max() < 2e-6 * max(1.0, np.abs(zfr).max())


def test_split_with_carried_state_equals_whole(tri):
    sos = DESIGNS["ellip8_hp"]
    x = np.random.default_rng(2).standard_normal((2, 1200)).astype(np.float32)
    whole, _ = run(tri, sos, x, chunk=64)
    zi = np.zeros((2, sos.shape[0], 2))
    parts = []
    for a, b in ((0, 777), (777, 778), (778, 1200)):
        y, zi = run(tri, sos, x[:, a:b], zi=zi, chunk=64)
        parts.append(y)
        zi = zi.numpy()
    np.testing.assert_allclose(torch.cat(parts, -1).numpy(), whole.numpy(), atol=2e-6)


@pytest.mark.parametrize("halves", [True, False])
def test_per_channel_coefficients(tri, halves):
    """sos [channels, S, 6] against x [batch, channels, T]; also x [T] broadcast to all channels."""
    sos = torch.stack([iir.butter(4, 300, "lowpass", FS), iir.butter(4, 3000, "highpass", FS),
                       iir.eq([("peaking", 500, 2, 6), ("notch", 60, 10)], FS)])
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 700)).astype(np.float32)
    zi = rng.standard_normal((2, 3, 2, 2)) * 0.01
    y, zf = run(tri, sos, x, zi=zi, chunk=40, halves=halves)
    for c in range(3):
        yr, zr = ref(sos[c], x[:, c], zi[:, c])
        np.testing.assert_allclose(y[:, c].numpy(), yr, atol=2e-6)
        np.testing.assert_allclose(zf[:, c].numpy(), zr, atol=2e-6)
    y1, _ = run(tri, sos, x[0, 0], chunk=64)  # [T] against [3, S, 6] -> [3, T]
    assert y1.shape == (3, 700)
    for c in range(3):
        np.testing.assert_allclose(y1[c].numpy(), ref(sos[c], x[0, 0]), atol=2e-6)


def test_high_q_low_frequency_one_second(tri):
    """40 Hz Q5 at 48 kHz over 1 s with the default chunk: float32 I/O, float64 state: ~1e-7, not 9e-4."""
    sos = DESIGNS["lowpass40_q5"]
    x = (np.random.default_rng(4).standard_normal((1, FS)) * 0.5).astype(np.float32)
    y, _ = run(tri, sos, x)
    r = ref(sos, x)
    assert np.abs(y.numpy() - r).max() < 1e-5  # float32 output rounding of |y| up to ~20


@settings(max_examples=12, deadline=None)
@given(T=st.integers(1, 200), chunk=st.sampled_from([8, 16, 24, 64]), sections=st.integers(1, 5),
       halves=st.booleans(), seed=st.integers(0, 2**16))
def test_property_matches_scipy(tri, T, chunk, sections, halves, seed):
    sos = iir.butter(2 * sections, 2000, "lowpass", FS)
    x = np.random.default_rng(seed).standard_normal((2, T))
    y, _ = run(tri, sos, x, chunk=chunk, halves=halves)
    np.testing.assert_allclose(y.numpy(), ref(sos, x), atol=1e-10)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # numpy's inf - inf in the interpreter
@pytest.mark.parametrize("bad,pos", [(float("nan"), 0), (float("inf"), 150), (-float("inf"), 298)])
def test_nonfinite_input_detected_from_chunk_states(tri, bad, pos):
    """sosfilt's NaN/Inf check on this path: a bad sample always leaves a non-finite chunk-end state
    (first sample, inside a chunk, in the partial last chunk; 1 and 2 kernel groups)."""
    calls = []
    for name in ("lowpass1k", "butter12_lp"):
        x = np.random.default_rng(7).standard_normal((2, 299)).astype(np.float32)
        x[1, pos] = bad
        run(tri, DESIGNS[name], x, chunk=32, on_nonfinite=lambda: calls.append(name))
        assert calls[-1:] == [name]
    run(tri, DESIGNS["lowpass1k"], np.nan_to_num(x, posinf=0, neginf=0), chunk=32, on_nonfinite=lambda: calls.append("x"))
    assert "x" not in calls
    # a section with b0 = b1 = b2 = 0 (0 * Inf = NaN), per-row coefficients, a broadcast row
    sos = np.array([[0.0, 0.0, 0.0, 1.0, -0.5, 0.0]])
    xb = np.zeros(100, np.float32)
    xb[pos % 100] = bad
    run(tri, np.stack([sos, DESIGNS["lowpass1k"].numpy()]), xb, chunk=16, on_nonfinite=lambda: calls.append("b"))
    assert calls[-1] == "b"


def test_pick_chunk(tri):
    assert tri.pick_chunk(1024, 480000) == 1024  # 1024 x 469 lanes
    assert tri.pick_chunk(64, 480000) == 128
    assert tri.pick_chunk(1, 480000) == 64
    assert tri.pick_chunk(1, 10) == 64
    with pytest.raises(ValueError, match="multiple of 8"):
        run(tri, DESIGNS["lowpass1k"], np.zeros((1, 10), np.float32), chunk=12)


def test_backend_argument_on_cpu():
    with pytest.raises(InvalidParameter, match="backend='triton' runs on CUDA"):
        iir.sosfilt(DESIGNS["lowpass1k"], torch.zeros(2, 100), backend="triton")
    with pytest.raises(InvalidParameter, match="'triton'"):
        iir.sosfilt(DESIGNS["lowpass1k"], torch.zeros(2, 100), backend="magic")


# --------------------------------------------------------------------------- (b) CUDA
def _need_cuda_triton():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    if not HAVE_TRITON:
        pytest.skip("needs triton")


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["lowpass1k", "lowpass40_q5", "eq3", "ellip8_hp", "butter12_lp"])
def test_gpu_triton_matches_scipy_and_scan_10s(name):
    _need_cuda_triton()
    sos = DESIGNS[name]
    x = (np.random.default_rng(5).standard_normal((3, 10 * FS)) * 0.5).astype(np.float32)
    xg = torch.from_numpy(x).cuda()
    telemetry.reset()
    y = iir.sosfilt(sos, xg)  # auto -> triton on CUDA
    assert telemetry.counters().get("iir.sosfilt.backend.triton") == 1
    assert telemetry.backends("iir.sosfilt") == {"cuda": 1}
    assert y.device.type == "cuda" and y.dtype == torch.float32 and y.shape == x.shape
    r = ref(sos, x)
    assert np.abs(y.cpu().numpy() - r).max() < 1e-4 * max(1.0, np.abs(r).max())
    ys = iir.sosfilt(sos, xg, backend="scan")
    assert torch.abs(y - ys).max().item() < 1e-4 * max(1.0, np.abs(r).max())
    yh = iir.sosfilt(sos, xg.double(), backend="triton")
    np.testing.assert_allclose(yh.cpu().numpy(), r, atol=1e-9 * max(1.0, np.abs(r).max()), rtol=0)


@pytest.mark.gpu
@pytest.mark.parametrize("halves,block,warps", [(True, 128, 4), (False, 128, 4), (False, 32, 1), (True, 64, 2)])
def test_gpu_launch_variants(halves, block, warps):
    _need_cuda_triton()
    from ironwave.dsp.iir import _triton

    sos = normalize_sos(DESIGNS["ellip8_hp"])
    x = torch.randn(64, FS + 5, device="cuda")
    y, _ = _triton.sosfilt_triton(sos, x, None, (64,), halves=halves, block=block, num_warps=warps)
    np.testing.assert_allclose(y.cpu().numpy(), ref(sos, x.cpu().numpy()), atol=1e-5)


@pytest.mark.gpu
def test_gpu_triton_zi_per_channel_and_many_channels():
    _need_cuda_triton()
    sos = torch.stack([DESIGNS["lowpass40_q5"][0], iir.highpass(1000, FS)[0]])[:, None]
    rng = np.random.default_rng(6)
    x = (rng.standard_normal((2, FS + 3)) * 0.5).astype(np.float32)
    zi = rng.standard_normal((2, 1, 2)) * 0.1
    y, zf = iir.sosfilt(sos, torch.from_numpy(x).cuda(), zi=torch.from_numpy(zi).cuda())
    for c in range(2):
        yr, zr = ref(sos[c], x[c], zi[c])
        assert np.abs(y[c].cpu().numpy() - yr).max() < 1e-4 and np.abs(zf[c].cpu().numpy() - zr).max() < 1e-4
    # 1024 channels x 1 s, shared biquad: same as the scan and scipy
    xb = torch.randn(1024, FS, device="cuda")
    sos1 = DESIGNS["lowpass1k"]
    yt = iir.sosfilt(sos1, xb)
    ys = iir.sosfilt(sos1, xb, backend="scan")
    assert torch.abs(yt - ys).max().item() < 1e-5
    np.testing.assert_allclose(yt[:4].cpu().numpy(), ref(sos1, xb[:4].cpu().numpy()), atol=1e-5)
    # NaN/Inf rejected on this path too (detected from the chunk states), naming the problem
    xn = torch.randn(2, FS, device="cuda")
    xn[1, 12345] = float("nan")
    with pytest.raises(InvalidAudio, match="NaN"):
        iir.sosfilt(sos1, xn)
    xn[1, 12345] = float("inf")
    with pytest.raises(InvalidAudio, match="Inf"):
        iir.sosfilt(sos1, xn)
    # autograd still goes through the scan
    telemetry.reset()
    xg = torch.randn(2, 1000, device="cuda", requires_grad=True)
    iir.sosfilt(sos1, xg).sum().backward()
    assert telemetry.counters().get("iir.sosfilt.backend.scan") == 1 and xg.grad is not None
