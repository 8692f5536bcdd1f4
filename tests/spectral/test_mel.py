"""Mel filterbanks, melspectrogram and the NNLS inverse against librosa."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

librosa = pytest.importorskip("librosa")

from ironwave.errors import InvalidAudio, InvalidParameter
from ironwave.spectral import MelSpectrogram, mel_filterbank, mel_to_stft, melspectrogram


@pytest.mark.parametrize("htk", [False, True])
@pytest.mark.parametrize("norm", ["slaney", None, 2.0])
@pytest.mark.parametrize("sr,n_fft,n_mels,fmin,fmax", [(22050, 2048, 128, 0.0, None), (16000, 512, 40, 50.0, 7000.0)])
def test_filterbank_matches_librosa(htk, norm, sr, n_fft, n_mels, fmin, fmax):
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm, dtype=np.float64)
    ours = mel_filterbank(sr, n_fft, n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm, dtype=torch.float64).numpy()
    assert np.abs(ours - ref).max() <= 1e-5 * np.abs(ref).max()


def test_melspectrogram_random_and_real(real_audio):
    x, sr = real_audio
    y = x[0, : sr * 2].numpy()
    for sig in (y, np.random.default_rng(0).standard_normal(8000).astype(np.float32)):
        ref = librosa.feature.melspectrogram(y=sig, sr=sr, n_fft=1024, hop_length=256, n_mels=64)
        ours = melspectrogram(sig, sr, n_fft=1024, hop_length=256, n_mels=64)
        assert isinstance(ours, np.ndarray) and ours.dtype == np.float32 and ours.shape == ref.shape
        assert np.abs(ours - ref).max() <= 1e-5 * np.abs(ref).max()


def test_melspectrogram_batched_keeps_dtype():
    x = torch.randn(2, 3, 4000, dtype=torch.float64)
    out = melspectrogram(x, 16000, n_fft=512, hop_length=128, n_mels=32)
    assert out.shape[:3] == (2, 3, 32) and out.dtype == torch.float64
    one = melspectrogram(x[1, 2], 16000, n_fft=512, hop_length=128, n_mels=32)
    torch.testing.assert_close(out[1, 2], one)


def test_mel_to_stft_fits_better_than_librosa():
    rng = np.random.default_rng(1)
    y = rng.standard_normal(6000)
    M = librosa.feature.melspectrogram(y=y, sr=16000, n_fft=512, hop_length=128, n_mels=48)[:, :30]
    fb = librosa.filters.mel(sr=16000, n_fft=512, n_mels=48)
    ref = librosa.feature.inverse.mel_to_stft(M, sr=16000, n_fft=512)
    ours = mel_to_stft(M, 16000, n_fft=512)
    assert ours.min() >= 0
    err_ref = np.linalg.norm(fb @ ref**2 - M) / np.linalg.norm(M)
    err_ours = np.linalg.norm(fb @ ours**2 - M) / np.linalg.norm(M)
    assert err_ours <= err_ref * 1.01 + 1e-9


def test_errors():
    with pytest.raises(InvalidParameter, match="Nyquist"):
        mel_filterbank(16000, 512, 40, fmax=9000)
    with pytest.raises(InvalidParameter, match="fmin"):
        mel_filterbank(16000, 512, 40, fmin=5000, fmax=4000)
    with pytest.raises(InvalidAudio, match="NaN"):
        melspectrogram(torch.tensor([0.0, float("nan")] * 600), 16000, n_fft=256)


@settings(max_examples=10, deadline=None)
@given(st.lists(st.integers(1, 700), min_size=1, max_size=8))
def test_streaming_equals_offline(blocks):
    x = torch.randn(2, sum(blocks) + 600, dtype=torch.float64)
    m = MelSpectrogram(16000, n_fft=256, hop_length=64, n_mels=20, dtype=torch.float64)
    outs, pos = [], 0
    for b in blocks + [600]:
        outs.append(m.process(x[:, pos: pos + b]))
        pos += b
    got = torch.cat(outs, dim=-1)
    ref = melspectrogram(x, 16000, n_fft=256, hop_length=64, n_mels=20, center=False)
    torch.testing.assert_close(got, ref)


@pytest.mark.gpu
def test_cuda_matches_cpu():
    x = torch.randn(2, 8000)
    ref = melspectrogram(x, 16000, n_fft=512, hop_length=128)
    got = melspectrogram(x.cuda(), 16000, n_fft=512, hop_length=128)
    assert got.device.type == "cuda"
    torch.testing.assert_close(got.cpu(), ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))
