"""The HTDemucs forward path is CUDA-graph capturable: our iSTFT equals torch.istft, and a
warmed-up forward issues no op that reads a device value on the host.

A CUDA graph capture fails on any host synchronisation (``.item()``, ``bool(tensor)``,
``torch.equal``, ``nonzero``, data-dependent shapes) and on host->device copies of
Python data (``torch.tensor([...], device="cuda")``). There is no GPU here, so the
second forward is run under a dispatch mode that lists every aten op it issues; the
forbidden ops are the ones that would break a capture on CUDA. ``torch.istft`` itself
trips the detector (its NOLA check), which shows the detector can fail.
"""
from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ironwave.errors import InvalidParameter
from ironwave.models import SOURCES_4
from ironwave.models.htdemucs import istft, overlap_add

# ops that synchronise with the host or turn Python data into a tensor
_FORBIDDEN = ("_local_scalar_dense", "aten.item", "aten.equal", "is_nonzero", "aten.nonzero", "masked_select",
              "aten.unique", "_unique", "lift_fresh", "aten.allclose", "_assert_async", "aten.any.", "aten.all.",
              "aten.repeat_interleave.Tensor")


class _OpLog(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []
        self.device_copies: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        name = str(func)
        self.ops.append(name)
        if name.startswith("aten._to_copy") and "device" in kwargs and args and isinstance(args[0], torch.Tensor):
            if kwargs["device"] is not None and torch.device(kwargs["device"]) != args[0].device:
                self.device_copies.append(name)
        return func(*args, **kwargs)


def _forbidden(ops: list[str]) -> list[str]:
    return sorted({o for o in ops if any(f in o for f in _FORBIDDEN)})


@pytest.mark.parametrize("n_fft,hop,normalized,center,length", [
    (4096, 1024, True, True, None), (4096, 1024, True, True, 20000), (512, 128, False, True, None),
    (512, 128, True, True, 41000),  # longer than the frames cover: zero-padded tail
    (512, 160, True, False, None), (500, 125, False, True, 39999)])
def test_istft_equals_torch_istft(n_fft, hop, normalized, center, length):
    torch.manual_seed(n_fft + hop)
    w = torch.hann_window(n_fft) if center and length in (None, 20000) else torch.hamming_window(n_fft)
    x = torch.randn(3, 2, 40000)
    z = torch.stft(x.reshape(-1, 40000), n_fft, hop, window=w, normalized=normalized, center=center,
                   return_complex=True)
    z = (z + 0.05 * torch.randn_like(z)).reshape(3, 2, *z.shape[-2:])  # not a consistent STFT
    want = torch.istft(z.reshape(6, *z.shape[-2:]), n_fft, hop, window=w, win_length=n_fft, normalized=normalized,
                       center=center, length=length).reshape(3, 2, -1)
    cache: dict = {}
    for _ in range(2):  # second call uses the cached envelope
        got = istft(z, n_fft, hop, w, normalized=normalized, center=center, length=length, envelope_cache=cache)
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    assert len(cache) == 1


def test_istft_round_trip_and_nola_error():
    x = torch.randn(2, 8192, dtype=torch.float64)
    w = torch.hann_window(1024, dtype=torch.float64)
    z = torch.stft(x, 1024, 256, window=w, normalized=True, return_complex=True)
    torch.testing.assert_close(istft(z, 1024, 256, w, normalized=True, length=8192), x, rtol=0, atol=1e-12)
    with pytest.raises(InvalidParameter, match="NOLA"):  # hann without centring: zero envelope at the edges
        istft(torch.stft(x, 1024, 256, window=w, center=False, return_complex=True), 1024, 256, w, center=False)
    with pytest.raises(InvalidParameter, match="frequency bins"):
        istft(z[..., :-1, :], 1024, 256, w)


def test_overlap_add_equals_loop():
    fr = torch.randn(3, 7, 16)
    want = torch.zeros(3, 16 + 5 * 6)
    for i in range(7):
        want[:, 5 * i:5 * i + 16] += fr[:, i]
    torch.testing.assert_close(overlap_add(fr, 5), want)


def test_torch_istft_trips_the_detector():
    w = torch.hann_window(512)
    z = torch.stft(torch.randn(2, 4000), 512, 128, window=w, return_complex=True)
    with _OpLog() as log:
        torch.istft(z, 512, 128, window=w)
    assert _forbidden(log.ops), "the detector must see torch.istft's host-side NOLA check"
    with _OpLog() as log:
        istft(z, 512, 128, w, envelope_cache={("warm",): w})  # cache miss: the eager NOLA check runs
    assert _forbidden(log.ops)  # (on CUDA this happens in the warm-up, never inside a capture)


@pytest.mark.parametrize("time_only", [False, True])
def test_warm_forward_has_no_host_sync(time_only, h):
    _, ours = h.pair(SOURCES_4, h.SMALL, seed=21)
    x = torch.randn(1, 2, ours.training_length)
    with torch.no_grad():
        first = ours(x, time_only=time_only)  # warm-up: fills the window/envelope/embedding caches
        with _OpLog() as log:
            second = ours(x, time_only=time_only)
    assert log.ops, "the dispatch mode saw nothing"
    assert _forbidden(log.ops) == [], _forbidden(log.ops)
    assert log.device_copies == []
    if not time_only:
        assert any("fft_c2r" in o for o in log.ops) and not any("unfold_backward" in o for o in log.ops)
    torch.testing.assert_close(first, second, rtol=0, atol=0)


@pytest.mark.parametrize("freq", [True, False])
def test_chunked_dconv_equals_whole(freq):
    """DConv rows are independent, so chunking them (to bound peak memory) changes nothing."""
    from ironwave.models.htdemucs import DConv, _dconv_apply

    torch.manual_seed(3)
    d = DConv(16, compress=4, depth=2, init=0.5).eval()
    y = torch.randn(3, 16, 24, 50) if freq else torch.randn(5, 16, 300)
    with torch.no_grad():
        whole = _dconv_apply(d, y, freq, max_elements=1 << 30)
        chunked = _dconv_apply(d, y, freq, max_elements=16 * 50 * 3 * 5 if freq else 16 * 300 * 2)
    assert chunked.shape == whole.shape
    torch.testing.assert_close(chunked, whole, rtol=1e-6, atol=1e-6)
