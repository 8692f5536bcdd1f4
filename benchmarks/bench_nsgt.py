"""NSGT benchmarks: ironwave.spectral NSGT/sliCQ forward+backward vs the nsgt package (CPU only).

Bars (issue #5): a 3-minute stereo song at 44.1 kHz, forward + backward: <= 0.2 s on a GPU;
on the CPU faster than the nsgt package (a 10 s stereo excerpt on CPU to keep the run short).
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

from benchmarks.harness import Harness
from ironwave.spectral import NSGT, OctScale, SliCQ

SR = 44100


def _ref():
    import importlib.util
    import pathlib

    p = pathlib.Path(__file__).resolve().parent.parent / "tests" / "spectral" / "_nsgt_ref.py"
    spec = importlib.util.spec_from_file_location("_nsgt_ref", p)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run(h: Harness) -> None:
    dev = h.device
    secs = 180 if dev.type == "cuda" else 10
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((2, SR * secs)).astype(np.float32)).to(dev)
    scale = OctScale(32.7, 20000, 24)
    full = NSGT(scale, SR, x.shape[-1], matrixform=False)
    sl = SliCQ(scale, 2 ** 16, 2 ** 12, SR, matrixform=True)

    def ours_full():
        return full.backward(full.forward(x))

    def ours_sl():
        return sl.backward(sl.forward(x), x.shape[-1])

    y = ours_full()
    h.record(f"NSGT full fwd+bwd rel. error ({secs} s stereo, float32)", float((y - x).norm() / x.norm()), "rel")
    y = ours_sl()
    h.record(f"sliCQ fwd+bwd rel. error ({secs} s stereo, float32)", float((y - x).norm() / x.norm()), "rel")
    peer_full = peer_sl = None
    if dev.type == "cpu":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = _ref()
            xn = x.double().numpy()
            R = ref.NSGT(ref.OctScale(32.7, 20000, 24), SR, xn.shape[-1], real=True, matrixform=False)
            RS = ref.NSGT_sliced(ref.OctScale(32.7, 20000, 24), 2 ** 16, 2 ** 12, SR, real=True, matrixform=True)

            def peer_full():
                return [R.backward(R.forward(ch)) for ch in xn]

            def peer_sl():
                return [np.concatenate(list(RS.backward(list(RS.forward((ch,))))))[: xn.shape[-1]] for ch in xn]

    tgt = "<= 0.2 s on GPU (3 min stereo)" if dev.type == "cuda" else "faster than nsgt (CPU, 10 s stereo)"
    h.compare(f"NSGT full fwd+bwd, {secs} s stereo @44.1k, 24 bpo", ours_full, peer_full, peer_name="nsgt.NSGT",
              repeat=3, warmup=1, target=tgt, target_ratio=1.0 if peer_full else None,
              target_ours_s=0.2 if dev.type == "cuda" else None)
    h.compare(f"sliCQ fwd+bwd, {secs} s stereo @44.1k, 24 bpo", ours_sl, peer_sl, peer_name="nsgt.NSGT_sliced",
              repeat=3, warmup=1, target=tgt, target_ratio=1.0 if peer_sl else None,
              target_ours_s=0.2 if dev.type == "cuda" else None)
