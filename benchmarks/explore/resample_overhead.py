"""Host overhead of resample() on CUDA: time per call of resample() vs the bare kernel on a tiny
input (the kernel itself ~10 us), and a cProfile of 2000 resample() calls (top functions)."""
from __future__ import annotations

import cProfile
import pstats
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
from ironwave.dsp import _resample_triton as rt  # noqa: E402
from ironwave.dsp.resample import design, resample  # noqa: E402

x = torch.randn(1, 4800, device="cuda")
plan = design(48000, 44100)
flag = torch.zeros(1, dtype=torch.int32, device="cuda")


def per_call(fn, n=2000):
    for _ in range(50):
        fn()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / n * 1e6


print(f"resample() {per_call(lambda: resample(x, 48000, 44100)):.1f} us/call")
print(f"resample_triton + flag.item() {per_call(lambda: (rt.resample_triton(x, plan, flag=flag), int(flag.item()))):.1f} us/call")
print(f"resample_triton async {per_call(lambda: rt.resample_triton(x, plan, flag=flag)):.1f} us/call")
print(f"torch.zeros(1) {per_call(lambda: torch.zeros(1, dtype=torch.int32, device='cuda')):.1f} us/call")
print(f"flag.item() {per_call(lambda: int(flag.item())):.1f} us/call")
pr = cProfile.Profile()
pr.enable()
for _ in range(2000):
    resample(x, 48000, 44100)
pr.disable()
pstats.Stats(pr).sort_stats("tottime").print_stats(18)
