"""Phase reconstruction: GL vs fast GL vs PGHI on real speech; spectral convergence."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ironwave.errors import InvalidAudio
from ironwave.spectral import griffinlim, pghi, spectral_convergence
from ironwave.spectral._common import get_window, stft

N_FFT, HOP = 512, 128


def _mag(x):
    return stft(x, N_FFT, HOP, get_window("hann", N_FFT, dtype=x.dtype)).abs()


def test_fgla_beats_gl_and_pghi_init_beats_random(real_speech):
    x, sr = real_speech
    y = x[0, : sr].contiguous()
    S = _mag(y)
    sc = {}
    for name, kw in [("gl", dict(momentum=0.0)), ("fgla", dict(momentum=0.99)),
                     ("pghi+fgla", dict(momentum=0.99, init="pghi"))]:
        rec = griffinlim(S, n_iter=24, hop_length=HOP, length=y.shape[-1], **kw)
        sc[name] = spectral_convergence(S, rec, hop_length=HOP)
    sc["pghi"] = spectral_convergence(S, griffinlim(S, n_iter=0, init="pghi", hop_length=HOP, length=y.shape[-1]), hop_length=HOP)
    sc["random"] = spectral_convergence(S, griffinlim(S, n_iter=0, hop_length=HOP, length=y.shape[-1]), hop_length=HOP)
    print("spectral convergence:", {k: round(v, 4) for k, v in sc.items()})
    assert sc["fgla"] < sc["gl"]
    assert sc["pghi+fgla"] < sc["fgla"]
    assert sc["pghi"] < sc["random"]


def test_spectral_convergence_of_truth_is_zero():
    x = torch.randn(4000, dtype=torch.float64)
    assert spectral_convergence(_mag(x), x, hop_length=HOP) < 1e-10


def test_batched_and_librosa_like():
    librosa = pytest.importorskip("librosa")
    x = torch.randn(2, 4000)
    S = _mag(x)
    y = griffinlim(S, n_iter=4, hop_length=HOP, length=4000)
    assert y.shape == (2, 4000) and y.dtype == torch.float32
    yl = librosa.griffinlim(S[0].numpy(), n_iter=4, hop_length=HOP, length=4000, init=None)
    ours = griffinlim(S[0], n_iter=4, hop_length=HOP, length=4000, init=None)
    np.testing.assert_allclose(ours.numpy(), yl, atol=1e-4 * float(np.abs(yl).max()))


def test_pghi_phase_shape_and_errors():
    S = _mag(torch.randn(3000))
    ph = pghi(S, hop_length=HOP)
    assert ph.shape == S.shape
    with pytest.raises(InvalidAudio):
        griffinlim(-S, hop_length=HOP)


@pytest.mark.gpu
def test_cuda_matches_cpu():
    x = torch.randn(2, 8000)
    S = _mag(x)
    a = griffinlim(S, n_iter=8, hop_length=HOP, length=8000)
    b = griffinlim(S.cuda(), n_iter=8, hop_length=HOP, length=8000)
    assert b.device.type == "cuda"
    torch.testing.assert_close(b.cpu(), a, rtol=1e-3, atol=1e-3)
