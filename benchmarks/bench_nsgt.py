"""NSGT benchmarks: ironwave.spectral NSGT/sliCQ forward+backward vs the nsgt package.

Bars (issue #5): a 3-minute stereo song at 44.1 kHz, forward + backward: <= 0.2 s on a GPU
(run only with ``--device cuda``; the nsgt package is CPU-only, so those entries have no peer);
on the CPU faster than the nsgt package, measured on a 10 s stereo excerpt to keep the run short.
Scale: OctScale 32.7-20000 Hz, 24 bins/octave (226 bands, ~220 distinct coefficient lengths).
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

from benchmarks.harness import Harness
from ironwave.spectral import NSGT, OctScale, SliCQ

SR = 44100
SL_LEN, TR_AREA = 2 ** 16, 2 ** 12
GPU_SECS = 180  # the bar: a 3-minute song


def _ref():
    import importlib.util
    import pathlib

    p = pathlib.Path(__file__).resolve().parent.parent / "tests" / "spectral" / "_nsgt_ref.py"
    spec = importlib.util.spec_from_file_location("_nsgt_ref", p)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _scale() -> OctScale:
    return OctScale(32.7, 20000, 24)


def _cpu(h: Harness) -> None:
    secs = 10
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((2, SR * secs)).astype(np.float32))
    h.record("torch intra-op threads", torch.get_num_threads(), "threads")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = NSGT(_scale(), SR, x.shape[-1])
        sl = SliCQ(_scale(), SL_LEN, TR_AREA, SR, matrixform=True)
        slr = SliCQ(_scale(), SL_LEN, TR_AREA, SR)
        ref = _ref()
        xn = x.double().numpy()
        R = ref.NSGT(ref.OctScale(32.7, 20000, 24), SR, xn.shape[-1], real=True, matrixform=False)
        RS = ref.NSGT_sliced(ref.OctScale(32.7, 20000, 24), SL_LEN, TR_AREA, SR, real=True, matrixform=True)
        RSR = ref.NSGT_sliced(ref.OctScale(32.7, 20000, 24), SL_LEN, TR_AREA, SR, real=True, matrixform=False)
    h.record("NSGT length classes (batched FFT calls per direction)", len(full.classes), "classes",
             params={"distinct band lengths": len(set(full.coef_lengths)), "bands": full.n_bands})
    for name, T, back in (("NSGT full", full, lambda c: full.backward(c)),
                          ("sliCQ matrix", sl, lambda c: sl.backward(c, x.shape[-1])),
                          ("sliCQ ragged", slr, lambda c: slr.backward(c, x.shape[-1]))):
        y = back(T.forward(x))
        h.record(f"{name} fwd+bwd rel. error ({secs} s stereo, float32)", float((y - x).norm() / x.norm()), "rel")

    def peer_sliced(RR):
        return lambda: [np.concatenate(list(RR.backward(list(RR.forward((ch,))))))[: xn.shape[-1]] for ch in xn]

    tgt = "faster than nsgt (CPU, 10 s stereo)"
    h.compare(f"NSGT full fwd+bwd, {secs} s stereo @44.1k, 24 bpo", lambda: full.backward(full.forward(x)),
              lambda: [R.backward(R.forward(ch)) for ch in xn], peer_name="nsgt.NSGT",
              repeat=5, warmup=1, target=tgt, target_ratio=1.0)
    h.compare(f"sliCQ matrix fwd+bwd, {secs} s stereo @44.1k, 24 bpo", lambda: sl.backward(sl.forward(x), x.shape[-1]),
              peer_sliced(RS), peer_name="nsgt.NSGT_sliced", repeat=3, warmup=1, target=tgt, target_ratio=1.0)
    h.compare(f"sliCQ ragged fwd+bwd, {secs} s stereo @44.1k, 24 bpo", lambda: slr.backward(slr.forward(x), x.shape[-1]),
              peer_sliced(RSR), peer_name="nsgt.NSGT_sliced", repeat=3, warmup=1, target=tgt, target_ratio=1.0)


def _gpu(h: Harness) -> None:
    dev = h.device
    secs = GPU_SECS
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((2, SR * secs)).astype(np.float32)).to(dev)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = [
            ("NSGT full (ragged, nsgt lengths)", NSGT(_scale(), SR, x.shape[-1]), None),
            ("NSGT full (length_rounding=pow2)", NSGT(_scale(), SR, x.shape[-1], length_rounding="pow2"), None),
            ("sliCQ matrix", SliCQ(_scale(), SL_LEN, TR_AREA, SR, matrixform=True), x.shape[-1]),
            # M = 6092 = 4 * 1523 needs cuFFT's internal Bluestein; 6144 is a native size
            ("sliCQ matrix (length_rounding=smooth)",
             SliCQ(_scale(), SL_LEN, TR_AREA, SR, matrixform=True, length_rounding="smooth"), x.shape[-1]),
            ("sliCQ ragged", SliCQ(_scale(), SL_LEN, TR_AREA, SR), x.shape[-1]),
        ]
    for name, T, length in cases:
        def run(T=T, length=length):
            c = T.forward(x)
            return T.backward(c) if length is None else T.backward(c, length)

        y = run()  # builds the plan (index maps, chirp spectra) on the device
        h.record(f"{name} fwd+bwd rel. error ({secs} s stereo, float32, GPU)", float((y - x).norm() / x.norm()), "rel")
        del y
        h.compare(f"{name} fwd+bwd, {secs} s stereo @44.1k, 24 bpo (GPU)", run, None, peer_name="-",
                  repeat=10, warmup=2, target="<= 0.2 s on GPU (3 min stereo)", target_ours_s=0.2,
                  params={"classes": len(T.classes), "seconds": secs})
        torch.cuda.empty_cache()


def run(h: Harness) -> None:
    if h.device.type == "cuda":
        _gpu(h)
    else:
        _cpu(h)
