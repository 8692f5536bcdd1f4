"""Low-latency streaming separation: quality against the offline path, and real-time factor.

Quality: SDR (dB, mean over the 4 stems) of :func:`ironwave.models.separate_streaming` (the
:class:`~ironwave.models.streaming.StreamingSeparator` stream, latency removed) against the
offline :func:`ironwave.models.apply_model` output (shifts=0, overlap=0.25) on real music
(tests/data: loop_compus + loop_amen + ambi_piano + guit_harmonics, 44.1 kHz stereo) for a
grid of (lookahead, hop[, crossfade]).

NO TRAINED WEIGHTS exist on this machine: the model is the full ``htdemucs`` architecture with
RANDOM weights (seed 0). The SDR therefore measures how much the model's output depends on
the context it sees (streaming window vs. offline segments), not separation quality; a
trained model's dependence on context may be larger or smaller. As a yardstick, the offline
path itself with overlap=0.5 instead of 0.25 is compared with the same reference.

Real-time factor (RTF): seconds of compute per second of audio = (time of one ``process``
call that runs one forward) / hop; every hop costs one full-segment forward whatever its
length, so RTF scales as 1 / hop. ``offline`` is apply_model's RTF on the same audio.

On the CPU the grid is made affordable by a memoising model wrapper: windows with identical
content (the same window end on the 0.25 s grid shared by every configuration) are run
once. The streaming code path is unchanged (the wrapper only answers the forward call).
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from benchmarks.harness import Harness
from ironwave.models import HTDEMUCS_KWARGS, SOURCES_4, HTDemucs, apply_model, find_weights, load_model
from ironwave.models.streaming import StreamingSeparator, separate_streaming

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
FILES = ["loop_compus.flac", "loop_amen.flac", "ambi_piano.flac", "guit_harmonics.flac"]
SR = 44100


def _music(seconds: float | None) -> torch.Tensor:
    """The tests/data music files concatenated, stereo 44.1 kHz ``[2, time]`` float32."""
    import soundfile as sf

    from ironwave.dsp import resample

    parts = []
    for f in FILES:
        d, sr = sf.read(str(DATA / f), dtype="float32", always_2d=True)
        t = torch.from_numpy(np.ascontiguousarray(d.T))
        if t.shape[0] == 1:
            t = t.expand(2, -1)
        t = t[:2]
        if sr != SR:
            t = torch.as_tensor(resample(t, sr, SR, device="cpu"))
        parts.append(t)
    x = torch.cat(parts, -1).contiguous()
    return x if seconds is None else x[:, :int(seconds * SR)].contiguous()


def _sdr(ref: torch.Tensor, est: torch.Tensor) -> float:
    """Mean over stems of 10 log10(|ref|^2 / |ref - est|^2), dB."""
    num = ref.double().pow(2).sum(dim=(-1, -2))
    den = (ref.double() - est.double()).pow(2).sum(dim=(-1, -2)).clamp_min(1e-30)
    return float((10 * torch.log10(num / den)).mean())


class _Memo(nn.Module):
    """Forwards to ``model``, remembering outputs by input content (CPU grid only)."""

    def __init__(self, model: HTDemucs) -> None:
        super().__init__()
        self.inner = model
        for a in ("samplerate", "segment", "sources", "audio_channels", "training_length"):
            setattr(self, a, getattr(model, a))
        self.cache: dict[bytes, torch.Tensor] = {}
        self.calls = 0

    def forward(self, x: torch.Tensor, **kw) -> torch.Tensor:
        key = hashlib.blake2b(x.detach().cpu().numpy().tobytes(), digest_size=16).digest() + repr(kw).encode()
        y = self.cache.get(key)
        if y is None:
            self.calls += 1
            y = self.cache[key] = self.inner(x, **kw)
        return y.clone()


def run(h: Harness) -> None:
    dev = h.device
    cuda = dev.type == "cuda"
    if find_weights("htdemucs") is not None:  # trained weights in the cache dir: the numbers mean quality
        model = load_model("htdemucs").eval().to(dev)
        note = f"trained htdemucs weights ({find_weights('htdemucs')})"
    else:
        torch.manual_seed(0)
        model = HTDemucs(list(SOURCES_4), **HTDEMUCS_KWARGS).eval().to(dev)
        note = "RANDOM weights (full htdemucs architecture, seed 0): SDR measures context dependence, not quality"
    seconds = None if cuda else (6.0 if h.quick else 8.0)
    x = _music(seconds).to(dev)
    dur = x.shape[-1] / SR
    print(f"  audio: {dur:.2f} s of tests/data music; {note}", flush=True)

    # ---------------------------------------------------------------- real-time factor (first: a clean process)
    ref = apply_model(model, x, shifts=0, overlap=0.25, device=dev)
    e = h.compare(f"offline apply_model {dur:.1f} s (overlap 0.25)", lambda: apply_model(model, x, device=dev), None,
                  peer_name="-", warmup=0 if not cuda else 2, repeat=2 if not cuda else 10, params={"seconds": dur})
    h.record("offline apply_model RTF", e["ours"]["median_s"] / dur, "s/s", params={"seconds": dur, "overlap": 0.25})
    _rtf(h, model, x, dev)

    # ---------------------------------------------------------------- quality grid
    alt = apply_model(model, x, shifts=0, overlap=0.5, device=dev)
    h.record("offline overlap=0.5 vs overlap=0.25 (yardstick)", _sdr(ref, alt), "dB SDR",
             params={"seconds": dur}, note=note)

    if cuda:
        grid = [(a, hp, 0.0) for a in (0.0, 0.25, 0.5, 1.0, 2.0, 3.0) for hp in (0.1, 0.25, 0.5, 1.0)]
        grid += [(a, hp, xf) for a, hp in ((0.5, 0.25), (1.0, 0.5), (2.0, 1.0)) for xf in (0.01, 0.05)]
    elif h.quick:
        grid = [(1.0, 0.5, 0.0), (2.0, 1.0, 0.0)]
    else:
        grid = [(a, hp, 0.0) for a in (0.5, 1.0, 2.0, 3.0) for hp in (0.25, 0.5, 1.0)]
        # same latency as (lookahead + 0.25, hop) but 0.25 s of it spent on a cross-fade (same window grid)
        grid += [(0.25, 0.25, 0.25), (0.75, 0.5, 0.25), (1.75, 1.0, 0.25)]
    fwd_model = model if cuda else _Memo(model)
    for a, hp, xf in grid:
        if hp + a + xf > model.training_length / SR:
            continue
        t0 = time.perf_counter()
        y = separate_streaming(fwd_model, x, lookahead=a, hop=hp, crossfade=xf, device=dev)
        lat = round(hp * SR) + round(a * SR) + round(xf * SR)
        h.record(f"SDR vs offline lookahead={a} hop={hp} crossfade={xf}", _sdr(ref, y), "dB SDR",
                 params={"lookahead_s": a, "hop_s": hp, "crossfade_s": xf, "latency_s": lat / SR, "seconds": dur,
                         "wall_s": time.perf_counter() - t0}, note=note)
    if isinstance(fwd_model, _Memo):
        print(f"  (distinct windows run: {fwd_model.calls})", flush=True)
        fwd_model.cache.clear()


def _rtf(h: Harness, model: HTDemucs, x: torch.Tensor, dev: torch.device) -> None:
    """Time one hop (= one forward) and the per-block cost between hops."""
    cuda = dev.type == "cuda"
    hops = (0.25, 1.0) if cuda else (1.0,)
    graphs = (None, False) if cuda else (None,)
    precisions = ("float32", "bf16") if cuda else ("float32",)
    for hp in hops:
        for g, prec in [(g, "float32") for g in graphs] + [(None, p) for p in precisions[1:]]:
            sep = StreamingSeparator(model, lookahead=1.0, hop=hp, device=dev, graph=g,
                                     precision=prec).prepare(round(hp * SR))
            H = sep.hop_samples
            blk = x[:, :H].contiguous()
            sep.process(x[:, :sep.latency - H])  # align: from here on every H-block runs exactly one forward
            label = "graph" if (sep._fwd is not None and sep._fwd.program is not None) else "eager"
            label += "" if prec == "float32" else f", {prec}"
            e = h.compare(f"process one hop ({hp} s, {label}) = 1 forward", lambda: sep.process(blk), None,
                          peer_name="-", warmup=1 if not cuda else 3, repeat=3 if not cuda else 20,
                          params={"hop_s": hp, "graph": label, "precision": prec})
            t_hop = e["ours"]["median_s"]
            for hp2 in ((hp,) if cuda else (0.25, 0.5, 1.0)):
                h.record(f"streaming RTF hop={hp2} ({label})", t_hop / hp2, "s/s",
                         params={"hop_s": hp2, "forward_s": t_hop, "measured_hop_s": hp},
                         note=None if hp2 == hp else "forward time measured at hop=1.0 s / hop (one forward per hop)")
    # per-block cost between hops (what an audio callback pays when no forward is due)
    sep = StreamingSeparator(model, lookahead=1.0, hop=1.0, device=dev).prepare(512)
    small = x[:, :512].contiguous()
    out = torch.empty(len(model.sources), x.shape[0], 512, device=dev)
    sep.process(x[:, :sep.latency])  # right after a forward: the next 86 blocks of 512 run none
    hops0 = sep.hops_run
    h.compare("process 512 samples between hops", lambda: sep.process(small, out=out), None, peer_name="-",
              warmup=3, repeat=50, params={"block": 512})
    assert sep.hops_run == hops0, "a forward ran during the between-hops timing"
