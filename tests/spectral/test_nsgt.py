"""NSGT / sliCQ: coefficients against the nsgt package, perfect reconstruction, streaming."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import importlib.util, pathlib, sys

_spec = importlib.util.spec_from_file_location("_nsgt_ref", pathlib.Path(__file__).with_name("_nsgt_ref.py"))
ref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ref)

from ironwave.errors import InvalidParameter
from ironwave.spectral import NSGT, BarkScale, CQNSGT, LinScale, LogScale, MelScale, OctScale, SliCQ

FS = 22050
SCALES = {
    "oct": (lambda: OctScale(60, 8000, 12), lambda: ref.OctScale(60, 8000, 12)),
    "log": (lambda: LogScale(60, 8000, 48), lambda: ref.LogScale(60, 8000, 48)),
    "mel": (lambda: MelScale(60, 8000, 40), lambda: ref.MelScale(60, 8000, 40)),
    "lin": (lambda: LinScale(60, 8000, 40), lambda: ref.LinScale(60, 8000, 40)),
    "bark": (lambda: BarkScale(60, 8000, 30), lambda: BarkScale(60, 8000, 30)),  # nsgt 0.18 has no BarkScale: our scale object drives nsgt's code
}


def _ragged_err(a, b):
    return max(float(np.abs(np.asarray(x) - y.numpy()).max()) for x, y in zip(a, b))


@pytest.mark.parametrize("name", list(SCALES))
@pytest.mark.parametrize("matrixform", [False, True])
def test_full_matches_nsgt_and_reconstructs(name, matrixform):
    ours_s, ref_s = SCALES[name]
    x = np.random.default_rng(0).standard_normal(16000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        R = ref.NSGT(ref_s(), FS, len(x), real=True, matrixform=matrixform)
        cr = R.forward(x)
        T = NSGT(ours_s(), FS, len(x), matrixform=matrixform)
    c = T.forward(torch.from_numpy(x))
    assert len(c) == len(cr)
    scale = max(float(np.abs(np.asarray(v)).max()) for v in cr)
    assert _ragged_err(cr, c) <= 1e-10 * scale
    y = T.backward(c)
    assert float(np.linalg.norm(y.numpy() - x) / np.linalg.norm(x)) <= 1e-6


def test_full_float32_and_real_audio(real_music):
    x, sr = real_music
    x = x[:, : sr * 2]
    T = CQNSGT(40, 16000, 24, sr, x.shape[-1])
    c = T.forward(x)
    assert c[3].dtype == torch.complex64 and c[3].shape[0] == 2
    y = T.backward(c)
    assert y.dtype == torch.float32
    assert float((y - x).norm() / x.norm()) <= 1e-5


def test_sliced_matches_nsgt_and_reconstructs():
    x = np.random.default_rng(2).standard_normal(30000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        R = ref.NSGT_sliced(ref.OctScale(50, 9000, 12), 4096, 512, FS, real=True, matrixform=True)
        cr = np.array(list(R.forward((x,))))
    T = SliCQ(OctScale(50, 9000, 12), 4096, 512, FS, matrixform=True)
    c = T.forward(torch.from_numpy(x))
    assert tuple(c.shape) == cr.shape
    assert float(np.abs(cr - c.numpy()).max()) <= 1e-10 * float(np.abs(cr).max())
    y = T.backward(c, len(x))
    assert float(np.linalg.norm(y.numpy() - x) / np.linalg.norm(x)) <= 1e-4
    # ragged form of the same transform, float32
    T2 = SliCQ(MelScale(50, 9000, 50), 4096, 512, FS)
    x32 = torch.from_numpy(x).float().repeat(2, 1)
    c2 = T2.forward(x32)
    y2 = T2.backward(c2, x32.shape[-1])
    assert float((y2 - x32).norm() / x32.norm()) <= 1e-4


def test_sliced_ragged_matches_nsgt_both_parities():
    """Ragged sliCQ (chirp-z classes of mixed lengths, slice rotations folded into phase weights)."""
    x = np.random.default_rng(3).standard_normal(24000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        R = ref.NSGT_sliced(ref.LogScale(50, 9000, 40), 4096, 512, FS, real=True, matrixform=False)
        cr = list(R.forward((x,)))  # per slice: list of bands
        T = SliCQ(LogScale(50, 9000, 40), 4096, 512, FS)
    assert any(not cl.direct and len(set(cl.lengths)) > 1 for cl in T.classes)  # mixed-length chirp-z class in use
    c = T.forward(torch.from_numpy(x))
    assert len(c) == len(cr[0]) and c[0].shape[-2] == len(cr) >= 4
    scale = max(float(np.abs(np.asarray(b)).max()) for sl in cr for b in sl)
    for k in range(len(c)):
        ref_k = np.stack([np.asarray(sl[k]) for sl in cr])
        assert float(np.abs(ref_k - c[k].numpy()).max()) <= 1e-10 * scale
    y = T.backward(c, len(x))
    assert float(np.linalg.norm(y.numpy() - x) / np.linalg.norm(x)) <= 1e-6


def test_length_classes_are_few_and_exact():
    """~80 distinct band lengths -> a handful of batched FFT classes; float32 matches float64."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        T = NSGT(OctScale(40, 10000, 12), FS, 20000)
    assert len(set(T.coef_lengths)) >= 60
    assert len(T.classes) <= 12
    x = torch.randn(2, 20000, dtype=torch.float64)
    c64 = T.forward(x)
    c32 = T.forward(x.float())
    scale = max(float(b.abs().max()) for b in c64)
    assert max(float((a.to(torch.complex128) - b).abs().max()) for a, b in zip(c32, c64)) <= 2e-6 * scale
    y = T.backward(c32)
    assert float((y.double() - x).norm() / x.norm()) <= 1e-5


@pytest.mark.parametrize("rounding", ["smooth", "pow2"])
@pytest.mark.parametrize("sliced", [False, True])
def test_length_rounding_reconstructs(rounding, sliced):
    x = torch.randn(2, 12000, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if sliced:
            E = SliCQ(MelScale(60, 9000, 40), 2048, 256, FS)
            T = SliCQ(MelScale(60, 9000, 40), 2048, 256, FS, length_rounding=rounding)
        else:
            E = NSGT(MelScale(60, 9000, 40), FS, x.shape[-1])
            T = NSGT(MelScale(60, 9000, 40), FS, x.shape[-1], length_rounding=rounding)
    for m0, m in zip(E.coef_lengths, T.coef_lengths):
        assert m >= m0 and (not sliced or m % 4 == 0)
        if rounding == "pow2":
            assert m & (m - 1) == 0
    if rounding == "pow2":
        assert all(cl.direct for cl in T.classes)
    c = T.forward(x)
    y = T.backward(c, x.shape[-1]) if sliced else T.backward(c)
    assert float((y - x).norm() / x.norm()) <= 1e-12


def test_length_rounding_rejects_unknown():
    with pytest.raises(InvalidParameter, match="length_rounding"):
        NSGT(OctScale(100, 8000, 12), FS, 30000, length_rounding="nice")


@settings(max_examples=5, deadline=None)
@given(st.lists(st.integers(1, 5000), min_size=1, max_size=5))
def test_slicq_ragged_streaming_equals_offline(blocks):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        T = SliCQ(LogScale(80, 8000, 20), 2048, 256, FS)
    x = torch.randn(sum(blocks), dtype=torch.float64)
    s = T.stream(dtype=torch.float64)
    outs, pos = [], 0
    for b in blocks:
        outs.append(s.process(x[pos: pos + b]))
        pos += b
    outs.append(s.flush())
    off = T.forward(x)
    for k in range(T.n_bands):
        torch.testing.assert_close(torch.cat([o[k] for o in outs], dim=-2), off[k])
    inv = T.inverse_stream(dtype=torch.float64)
    y = torch.cat([inv.process(o) for o in outs], dim=-1)[: x.shape[-1]]
    torch.testing.assert_close(y, x)


@settings(max_examples=8, deadline=None)
@given(st.lists(st.integers(1, 5000), min_size=1, max_size=6))
def test_slicq_streaming_equals_offline(blocks):
    T = SliCQ(OctScale(80, 8000, 6), 2048, 256, FS, matrixform=True)
    x = torch.randn(2, sum(blocks), dtype=torch.float64)
    s = T.stream(dtype=torch.float64)
    outs, pos = [], 0
    for b in blocks:
        outs.append(s.process(x[:, pos: pos + b]))
        pos += b
    outs.append(s.flush())
    got = torch.cat(outs, dim=-3)
    off = T.forward(x)
    torch.testing.assert_close(got, off)
    inv = T.inverse_stream(dtype=torch.float64)
    parts = [inv.process(o) for o in outs]
    y = torch.cat(parts, dim=-1)[..., : x.shape[-1]]
    torch.testing.assert_close(y, T.backward(off, x.shape[-1]))
    assert float((y - x).norm() / x.norm()) <= 1e-6


def test_errors():
    with pytest.raises(InvalidParameter, match="Nyquist"):
        NSGT(OctScale(50, 12000, 12), FS, 10000)
    with pytest.raises(InvalidParameter, match="multiple of 4"):
        SliCQ(OctScale(50, 8000, 12), 4098, 512, FS)
    with pytest.warns(UserWarning, match="samples at fs"):
        NSGT(OctScale(20, 8000, 48), FS, 2000)
    T = NSGT(OctScale(100, 8000, 12), FS, 5000)
    with pytest.raises(Exception, match="Ls=5000"):
        T.forward(torch.randn(6000))


@pytest.mark.gpu
def test_cuda_matches_cpu():
    T = SliCQ(OctScale(50, 9000, 12), 4096, 512, FS, matrixform=True)
    x = torch.randn(2, 20000)
    c = T.forward(x)
    cg = T.forward(x.cuda())
    assert cg.device.type == "cuda"
    torch.testing.assert_close(cg.cpu(), c, rtol=1e-4, atol=1e-4 * float(c.abs().max()))
    y = T.backward(cg, x.shape[-1])
    assert float((y.cpu() - x).norm() / x.norm()) <= 1e-4


@pytest.mark.gpu
def test_cuda_ragged_full_and_sliced_match_cpu():
    """Chirp-z length classes and folded slice rotations on CUDA == CPU."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA (run scripts/gpu_check.sh on a GPU machine)")
    x = torch.randn(2, 30000, dtype=torch.float64)
    for T in (NSGT(OctScale(40, 10000, 24), FS, x.shape[-1]), SliCQ(LogScale(50, 9000, 40), 4096, 512, FS)):
        c = T.forward(x)
        cg = T.forward(x.cuda())
        assert cg[0].device.type == "cuda"
        for a, b in zip(cg, c):
            torch.testing.assert_close(a.cpu(), b, rtol=1e-9, atol=1e-9 * float(b.abs().max()))
        y = T.backward(cg) if isinstance(T, NSGT) else T.backward(cg, x.shape[-1])
        assert float((y.cpu() - x).norm() / x.norm()) <= 1e-10
    c32 = T.forward(x.float().cuda())
    y32 = T.backward(c32, x.shape[-1])
    assert float((y32.cpu().double() - x).norm() / x.norm()) <= 1e-5
