"""Median CUDA-event time of a callable, in milliseconds (for the exploration scripts)."""
from __future__ import annotations

from typing import Callable

import torch


def bench(fn: Callable[[], object], n: int = 10, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(n):
        a, b = torch.cuda.Event(True), torch.cuda.Event(True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b))
    ts.sort()
    return ts[len(ts) // 2]
