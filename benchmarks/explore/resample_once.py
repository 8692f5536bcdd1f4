"""Run the CUDA resample kernel a few times (48k->44.1k, 64 x 60 s) for a profiler (ncu) to read."""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
from ironwave.dsp.resample import resample  # noqa: E402

x = torch.randn(64, 60 * 48000, device="cuda")
for _ in range(4):
    resample(x, 48000, 44100)
torch.cuda.synchronize()
print("done")
