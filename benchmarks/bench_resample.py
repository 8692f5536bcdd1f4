"""Resampling: ironwave vs soxr / scipy.signal.resample_poly (CPU) and julius (GPU batched),
plus measured passband ripple and stopband attenuation of each (``h.record``).

Quality is measured with pure tones through each resampler (48 kHz -> 44.1 kHz):
* passband ripple (dB): max |20 log10(out_rms / in_rms)| over tones in
  [50 Hz, 0.85 * 22.05 kHz] (edges trimmed);
* stopband attenuation (dB): min over tones in [22.05 kHz, 0.995 * 24 kHz] (which
  would alias into the audible band) of -20 log10(out_rms / in_rms).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from benchmarks.harness import Harness
from ironwave.dsp.resample import resample

ORIG, NEW = 48000, 44100


def tone_quality(fn: Callable[[np.ndarray], np.ndarray], orig: int = ORIG, new: int = NEW, n: int = 48000,
                 n_pass: int = 48, n_stop: int = 24) -> tuple[float, float]:
    """(passband ripple dB, stopband attenuation dB) of a resampler ``fn([k, n]) -> [k, m]``."""
    ny_new, ny_old = new / 2, orig / 2
    f_pass = np.linspace(50.0, 0.85 * ny_new, n_pass)
    f_stop = np.linspace(ny_new, 0.995 * ny_old, n_stop)
    t = np.arange(n) / orig
    fr = np.concatenate([f_pass, f_stop])
    x = np.sin(2 * np.pi * fr[:, None] * t[None, :] + 0.3)
    y = np.asarray(fn(x.astype(np.float64)))
    e_in, e_out = int(0.1 * n), int(0.1 * y.shape[-1])
    rin = np.sqrt(np.mean(x[:, e_in:-e_in] ** 2, axis=-1))
    rout = np.sqrt(np.mean(y[:, e_out:-e_out] ** 2, axis=-1))
    g = 20 * np.log10(np.maximum(rout / rin, 1e-300))
    ripple = float(np.max(np.abs(g[:n_pass])))
    atten = float(-np.max(g[n_pass:]))
    return ripple, atten


def run(h: Harness) -> None:
    dev = h.device
    h.record("torch intra-op threads", torch.get_num_threads(), "threads")
    import scipy.signal as ss

    try:
        import soxr
    except Exception:  # pragma: no cover
        soxr = None
    try:
        import julius
    except Exception:  # pragma: no cover
        julius = None

    # ---- quality (device independent; measured on the CPU in float64)
    qual = {"ironwave": lambda a: resample(torch.from_numpy(a), ORIG, NEW, device="cpu").numpy(),
            "scipy.resample_poly": lambda a: ss.resample_poly(a, 147, 160, axis=-1)}
    if soxr is not None:
        qual["soxr(HQ)"] = lambda a: np.stack([soxr.resample(r, ORIG, NEW) for r in a])
        qual["soxr(VHQ)"] = lambda a: np.stack([soxr.resample(r, ORIG, NEW, quality="VHQ") for r in a])
    if julius is not None:
        qual["julius"] = lambda a: julius.resample_frac(torch.from_numpy(a), ORIG, NEW).numpy()
    for name, fn in qual.items():
        rip, att = tone_quality(fn, n=24000 if h.quick else 48000)
        h.record(f"{name}: passband ripple 48k->44.1k", rip, "dB", params={"band_hz": [50, 0.85 * NEW / 2]})
        h.record(f"{name}: stopband attenuation 48k->44.1k", att, "dB", params={"band_hz": [NEW / 2, 0.995 * ORIG / 2]})

    # ---- speed
    if dev.type == "cpu":
        secs = 2 if h.quick else 10
        x = torch.randn(ORIG * secs)
        xn = x.numpy()
        if soxr is not None:
            h.compare(f"48k->44.1k, {secs} s mono (CPU)", lambda: resample(x, ORIG, NEW, device="cpu"),
                      lambda: soxr.resample(xn, ORIG, NEW), peer_name="soxr(HQ)", target="within 2x of soxr",
                      target_ratio=0.5, params={"seconds": secs})
        h.compare(f"48k->44.1k, {secs} s mono (CPU)", lambda: resample(x, ORIG, NEW, device="cpu"),
                  lambda: ss.resample_poly(xn, 147, 160), peer_name="resample_poly", params={"seconds": secs})
        h.compare(f"44.1k->48k, {secs} s mono (CPU)", lambda: resample(x, NEW, ORIG, device="cpu"),
                  (lambda: soxr.resample(xn, NEW, ORIG)) if soxr is not None else None, peer_name="soxr(HQ)",
                  params={"seconds": secs})
        xs = torch.randn(2, ORIG * secs)
        xsn = xs.numpy()
        if soxr is not None:
            h.compare(f"48k->44.1k, {secs} s stereo (CPU)", lambda: resample(xs, ORIG, NEW, device="cpu"),
                      lambda: soxr.resample(xsn.T, ORIG, NEW), peer_name="soxr(HQ)", params={"seconds": secs})
        if julius is not None:
            xb = torch.randn(8, ORIG * (1 if h.quick else 5))
            h.compare("48k->44.1k, 8 x 5 s batch (CPU)", lambda: resample(xb, ORIG, NEW, device="cpu"),
                      lambda: julius.resample_frac(xb, ORIG, NEW), peer_name="julius")
    else:
        secs = 5 if h.quick else 60
        batch = 16 if h.quick else 64
        xb = torch.randn(batch, ORIG * secs, device=dev)
        if julius is not None:
            h.compare(f"48k->44.1k, {batch} x {secs} s batch (GPU)", lambda: resample(xb, ORIG, NEW, device=dev),
                      lambda: julius.resample_frac(xb, ORIG, NEW), peer_name="julius", target=">= 10x julius",
                      target_ratio=10.0, params={"batch": batch, "seconds": secs})
            for g in (1, 2, 4, 8):
                h.compare(f"48k->44.1k, {batch} x {secs} s, groups={g} (GPU)",
                          lambda g=g: resample(xb, ORIG, NEW, groups=g, device=dev),
                          lambda: julius.resample_frac(xb, ORIG, NEW), peer_name="julius", repeat=5,
                          params={"batch": batch, "seconds": secs, "groups": g})
        # correctness on the device: same result as the CPU
        y_gpu = resample(xb[:2, : ORIG * 2], ORIG, NEW, device=dev).cpu()
        y_cpu = resample(xb[:2, : ORIG * 2].cpu(), ORIG, NEW, device="cpu")
        err = float((y_gpu - y_cpu).abs().max() / y_cpu.abs().max())
        h.record("GPU vs CPU max relative difference", err, "ratio", met=err < 1e-5)
    _ = math  # keep import for typing tools


if __name__ == "__main__":  # pragma: no cover
    import sys

    sys.exit("run through benchmarks/run.py resample")
