"""The Triton framing kernel of ``stft(method="triton")`` (``_stft_triton.py``) under the Triton
interpreter (``TRITON_INTERPRET=1``, CPU tensors), against ``torch.stft`` on random and real audio:
all four pad modes, centre on/off, windows shorter than n_fft, normalized, float32/float64, hops
that do not divide the length, several tile shapes, and a hypothesis property over lengths/hops.
SKIPPED when ``triton`` is not importable. The compiled CUDA kernel is tested by the gpu tests of
test_stft.py."""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ironwave.dsp import stft as stmod
from ironwave.dsp.stft import make_params

HAVE_TRITON = importlib.util.find_spec("triton") is not None
if HAVE_TRITON and "triton" not in sys.modules and not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"
    import triton  # noqa: F401
SRC = Path(stmod.__file__).resolve().parent / "_stft_triton.py"


def _interpreting(triton_mod) -> bool:
    fn = getattr(getattr(triton_mod.language, "standard", None), "cdiv", None)
    return type(fn).__name__ == "InterpretedFunction"


@pytest.fixture(scope="module")
def tri():
    if not HAVE_TRITON:
        pytest.skip("triton is not installed: interpreter tests of the STFT kernel skipped")
    if torch.cuda.is_available():
        pytest.skip("CUDA present: the compiled kernel is tested by the gpu tests of test_stft.py")
    if "triton" in sys.modules and not _interpreting(sys.modules["triton"]):
        pytest.skip("triton was already imported in compiled mode in this process; run this file on its own")
    os.environ["TRITON_INTERPRET"] = "1"
    spec = importlib.util.spec_from_file_location("ironwave.dsp._stft_triton_interpreted", SRC)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _ours(tri, x, n_fft, hop, wl, window, center, pad_mode, normalized, **launch):
    p = make_params(n_fft, hop, wl, window, center, pad_mode, normalized)
    w = p.window_tensor(x.dtype, x.device)
    if normalized:
        w = w * n_fft ** -0.5
    return tri.stft_triton(x, w, p.hop_length, p.pad, p.pad_mode, p.n_frames(x.shape[-1]), **launch)


def _ref(x, n_fft, hop, wl, window, center, pad_mode, normalized):
    w = make_params(n_fft, hop, wl, window, center, pad_mode, normalized).window_tensor(x.dtype, x.device)
    return torch.stft(x, n_fft, hop, n_fft, window=w, center=center, pad_mode=pad_mode, normalized=normalized,
                      return_complex=True)


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("pad_mode", ["constant", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("n_fft,hop,wl,center,normalized", [(64, 16, None, True, False), (50, 13, 40, True, True),
                                                            (32, 32, None, False, False), (64, 7, 33, False, True)])
def test_matches_torch_stft(tri, pad_mode, n_fft, hop, wl, center, normalized):
    x = torch.randn(3, 1001, generator=torch.Generator().manual_seed(0))
    got = _ours(tri, x, n_fft, hop, wl, "hann", center, pad_mode, normalized)
    want = _ref(x, n_fft, hop, wl, "hann", center, pad_mode, normalized)
    assert got.shape == want.shape and got.dtype == want.dtype
    assert _rel(got, want) < 1e-6


@pytest.mark.parametrize("window", ["hamming", "blackman", ("kaiser", 8.0)])
def test_windows_float64_and_tiles(tri, window):
    x = torch.randn(2, 777, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    want = _ref(x, 128, 40, None, window, True, "reflect", False)
    for launch in ({}, {"block_f": 1, "block_n": 32}, {"block_f": 8, "block_n": 64, "num_warps": 2}):
        got = _ours(tri, x, 128, 40, None, window, True, "reflect", False, **launch)
        assert got.dtype == torch.complex128 and _rel(got, want) < 1e-13


def test_real_audio(tri, real_audio):
    x, _sr = real_audio
    x = x[:, :20000].contiguous()
    got = _ours(tri, x, 256, 64, None, "hann", True, "constant", False)
    assert _rel(got, _ref(x, 256, 64, None, "hann", True, "constant", False)) < 1e-6


@settings(max_examples=25, deadline=None)
@given(L=st.integers(33, 700), hop=st.integers(1, 32), mode=st.sampled_from(["constant", "reflect", "circular"]))
def test_lengths_and_hops_property(tri, L, hop, mode):
    x = torch.randn(2, L, generator=torch.Generator().manual_seed(L))
    got = _ours(tri, x, 32, hop, None, "hann", True, mode, False)
    assert _rel(got, _ref(x, 32, hop, None, "hann", True, mode, False)) < 1e-6


def test_method_triton_needs_cuda():
    from ironwave.errors import InvalidParameter

    with pytest.raises(InvalidParameter, match="CUDA only"):
        stmod.stft(torch.randn(1000), 64, method="triton", device="cpu")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_kernel_flags_non_finite_input(tri, bad):
    x = torch.randn(2, 500)
    p = make_params(64, 16)
    w = p.window_tensor(x.dtype, x.device)
    flag = torch.zeros(1, dtype=torch.int32)
    tri.stft_frames(x, w, 16, p.pad, "constant", p.n_frames(500), flag=flag)
    assert int(flag) == 0
    x[1, 499] = bad  # the last sample: read by the last frames only
    tri.stft_frames(x, w, 16, p.pad, "constant", p.n_frames(500), flag=flag)
    assert int(flag) > 0
