"""ironwave.dsp.fft: batched FFTs vs numpy, device/dtype/numpy round trips, telemetry, errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ironwave.backend import telemetry
from ironwave.dsp.fft import fft, ifft, irfft, rfft
from ironwave.errors import BackendUnavailable, InvalidAudio, InvalidParameter


@pytest.mark.parametrize("shape", [(16,), (3, 100), (2, 2, 257)])
def test_rfft_matches_numpy(shape):
    x = np.random.default_rng(0).standard_normal(shape)
    X = rfft(x)
    assert isinstance(X, np.ndarray)
    np.testing.assert_allclose(X, np.fft.rfft(x), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(irfft(X, n=shape[-1]), x, atol=1e-12)


def test_fft_ifft_complex_and_norms():
    x = torch.randn(4, 64, dtype=torch.complex128)
    for norm in ("backward", "ortho", "forward"):
        X = fft(x, norm=norm)
        np.testing.assert_allclose(X.numpy(), np.fft.fft(x.numpy(), norm=norm), atol=1e-10)
        torch.testing.assert_close(ifft(X, norm=norm), x)
    # n pads/truncates
    assert rfft(torch.randn(10), n=32).shape == (17,)
    assert rfft(torch.randn(3, 10), dim=0).shape == (2, 10)


def test_dtype_device_preserved_and_telemetry():
    telemetry.reset()
    x = torch.randn(2, 128, dtype=torch.float32)
    X = rfft(x, device="cpu")
    assert X.dtype == torch.complex64 and X.device == x.device
    assert irfft(X).dtype == torch.float32
    assert telemetry.backends("dsp.rfft") == {"cpu": 1}
    assert telemetry.backends("dsp.irfft") == {"cpu": 1}


def test_gradcheck():
    x = torch.randn(2, 12, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: torch.view_as_real(rfft(t)), (x,))
    X = torch.randn(7, dtype=torch.complex128, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: irfft(t, n=12), (X,))


def test_errors():
    with pytest.raises(InvalidAudio, match="NaN"):
        rfft(torch.tensor([1.0, float("nan")]))
    with pytest.raises(InvalidAudio, match="Inf"):
        fft(torch.tensor([1.0, float("inf")]))
    with pytest.raises(InvalidAudio, match="complex"):
        irfft(torch.randn(8))
    with pytest.raises(InvalidAudio, match="real"):
        rfft(torch.randn(8, dtype=torch.complex64))
    with pytest.raises(InvalidParameter, match="norm"):
        rfft(torch.randn(8), norm="bogus")
    with pytest.raises(InvalidParameter, match="n must be"):
        rfft(torch.randn(8), n=0)
    with pytest.raises(InvalidParameter, match="dim"):
        rfft(torch.randn(8), dim=3)
    with pytest.raises(InvalidAudio, match="scalar"):
        rfft(torch.tensor(1.0))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error path")
def test_explicit_cuda_without_cuda_raises():
    with pytest.raises(BackendUnavailable):
        rfft(torch.randn(8), device="cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_matches_cpu_and_comes_back_home():
    telemetry.reset()
    x = torch.randn(8, 4096)
    X = rfft(x, device="cuda")
    assert X.device.type == "cpu"
    torch.testing.assert_close(X, torch.fft.rfft(x), rtol=1e-4, atol=1e-3)
    assert telemetry.backends("dsp.rfft") == {"cuda": 1}
    xg = x.cuda()
    assert rfft(xg, device="cpu").device.type == "cuda"
