"""The Triton framing kernel of ``stft(method="triton")`` (``_stft_triton.py``) under the Triton
interpreter (``TRITON_INTERPRET=1``, CPU tensors), against ``torch.stft`` on random and real audio:
all four pad modes, centre on/off, windows shorter than n_fft, normalized, float32/float64, hops
that do not divide the length, several tile shapes, and a hypothesis property over lengths/hops.
SKIPPED when ``triton`` is not importable. The compiled CUDA kernel is tested by the gpu tests of
test_stft.py."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ironwave.dsp import stft as stmod
from ironwave.dsp.stft import make_params

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _triton_interp import HAVE_TRITON, load_interpreted  # type: ignore  # noqa: E402,F401

SRC = Path(stmod.__file__).resolve().parent / "_stft_triton.py"


@pytest.fixture(scope="module")
def tri():
    return load_interpreted(SRC, "ironwave.dsp._stft_triton_interpreted",
                            "the compiled kernel is tested by the gpu tests of test_stft.py")


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


# --------------------------------------------------------------------------- inverse (OLA kernel)
@pytest.mark.parametrize("n_fft,hop,wl,window,center,normalized,length", [
    (64, 16, None, "hann", True, False, None), (64, 16, None, "hann", True, True, 1001),
    (50, 13, 40, "hann", True, False, 990), (32, 8, None, "hamming", False, False, None),
    (64, 20, None, "hann", True, False, 700), (64, 16, None, "hann", True, False, 1100),
    (16, 16, None, "rect", True, False, None)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_istft_kernel_equals_torch_path(tri, n_fft, hop, wl, window, center, normalized, length, dtype):
    x = torch.randn(3, 1001, dtype=dtype, generator=torch.Generator().manual_seed(2))
    p = make_params(n_fft, hop, wl, window, center, "constant", normalized)
    S = stmod.stft(x, n_fft, hop, wl, window, center=center, normalized=normalized, device="cpu")
    want = stmod._istft_core(S, p, length)
    got = stmod._istft_core(S, p, length, tri, S)
    assert got.shape == want.shape and got.dtype == want.dtype
    tol = 1e-6 if dtype == torch.float32 else 1e-13
    assert float((got - want).abs().max()) <= tol * float(want.abs().max())
    if center and length is None:  # and it inverts the forward transform
        n = got.shape[-1]  # default length: the frames' span (<= the input length)
        assert n > 900 and float((got - x[..., :n]).abs().max()) < (1e-5 if dtype == torch.float32 else 1e-12)


def test_istft_kernel_flags_nan(tri):
    x = torch.randn(2, 600)
    p = make_params(64, 16)
    S = stmod.stft(x, 64, 16, device="cpu")
    S[1, 5, 7] = complex(float("nan"), 0.0)
    from ironwave.errors import InvalidAudio

    with pytest.raises(InvalidAudio, match="NaN"):
        stmod._istft_core(S, p, None, tri, S)


@settings(max_examples=20, deadline=None)
@given(L=st.integers(64, 600), hop=st.sampled_from([4, 8, 16, 21]), length=st.one_of(st.none(), st.integers(0, 700)))
def test_istft_kernel_property(tri, L, hop, length):
    x = torch.randn(1, L, generator=torch.Generator().manual_seed(L))
    p = make_params(64, hop)
    S = stmod.stft(x, 64, hop, device="cpu")
    want = stmod._istft_core(S, p, length)
    got = stmod._istft_core(S, p, length, tri, S)
    assert got.shape == want.shape
    assert float((got - want).abs().max()) <= 1e-6 * max(1.0, float(want.abs().max()))
