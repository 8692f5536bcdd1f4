"""CQT benchmarks: ironwave.spectral.cqt vs librosa.cqt (CPU) and nnAudio CQT (same device).

Bars (issue #5): CPU, 10 s at 22.05 kHz, 84 bins: no slower than librosa (ratio >= 1).
GPU, batch of 64 such signals: >= 5x nnAudio's throughput on the same GPU.
"""
from __future__ import annotations

import numpy as np
import torch

from benchmarks.harness import Harness
from ironwave.spectral import CQT

SR = 22050


def run(h: Harness) -> None:
    dev = h.device
    rng = np.random.default_rng(0)
    y = rng.standard_normal(SR * 10).astype(np.float32)
    plan = CQT(SR, hop_length=512, n_bins=84)
    yt = torch.from_numpy(y).to(dev)
    ours_one = lambda: plan.forward(yt)  # noqa: E731
    try:
        import librosa

        C_ref = np.abs(librosa.cqt(y, sr=SR))
        C = plan.forward(torch.from_numpy(y)).abs().numpy()
        h.record("CQT |C| max rel. diff vs librosa.cqt (default res)", float(np.abs(C - C_ref).max() / C_ref.max()), "rel")
        if dev.type == "cpu":
            h.compare("CQT 10 s @22.05 kHz, 84 bins, hop 512", ours_one, lambda: librosa.cqt(y, sr=SR),
                      peer_name="librosa.cqt", target="no slower than librosa", target_ratio=1.0)
    except ImportError:
        pass
    try:
        from nnAudio.features import CQT as NNCQT

        nn = NNCQT(sr=SR, hop_length=512, fmin=32.70319566257483, n_bins=84, bins_per_octave=12, verbose=False).to(dev)
        if dev.type == "cpu":
            h.compare("CQT 10 s, 84 bins vs nnAudio (CPU)", ours_one, lambda: nn(yt[None]), peer_name="nnAudio.CQT")
        batch = 64 if dev.type == "cuda" else 4
        yb = torch.from_numpy(rng.standard_normal((batch, SR * 10)).astype(np.float32)).to(dev)
        with torch.no_grad():
            h.compare(f"CQT batch {batch} x 10 s, 84 bins", lambda: plan.forward(yb), lambda: nn(yb),
                      peer_name="nnAudio.CQT", repeat=10 if dev.type == "cuda" else 3, warmup=2,
                      target=">= 5x nnAudio throughput (GPU)" if dev.type == "cuda" else None,
                      target_ratio=5.0 if dev.type == "cuda" else None, params={"batch": batch})
    except ImportError:
        pass
    # inverse
    C = plan.forward(yt)
    h.compare("iCQT 10 s, 84 bins", lambda: plan.inverse(C, length=yt.shape[-1]), None, peer_name="-", repeat=5)
