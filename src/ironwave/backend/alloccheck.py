"""Allocation counters used to prove that a real-time path allocates nothing.

* CPU tensors: torch's profiler with ``profile_memory=True`` attributes every
  CPU allocation to the op that made it; we count ops with positive memory.
* CUDA tensors: the caching allocator's ``allocation.all.allocated`` counter.
* Python objects: tracemalloc's net growth attributed to given files.
"""
from __future__ import annotations

import tracemalloc
from typing import Callable

import torch


def count_cpu_tensor_allocations(fn: Callable[[], object], n: int = 20) -> int:
    """Number of CPU tensor allocations made by *n* calls of *fn*."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        for _ in range(n):
            fn()
    return sum(1 for e in prof.events() if e.name != "[memory]" and (e.cpu_memory_usage or 0) > 0)


def count_cuda_allocations(fn: Callable[[], object], n: int = 20, device: torch.device | None = None) -> int:
    """Number of CUDA caching-allocator allocations made by *n* calls of *fn*."""
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_stats(device).get("allocation.all.allocated", 0)
    for _ in range(n):
        fn()
    torch.cuda.synchronize(device)
    return torch.cuda.memory_stats(device).get("allocation.all.allocated", 0) - before


def python_growth_bytes(fn: Callable[[], object], n: int = 200, warmup: int = 20, path_filter: str = "ironwave") -> int:
    """Net bytes of Python memory still held after *n* calls, counted in files matching *path_filter*."""
    for _ in range(warmup):
        fn()
    tracemalloc.start()
    try:
        s1 = tracemalloc.take_snapshot()
        for _ in range(n):
            fn()
        s2 = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    return sum(d.size_diff for d in s2.compare_to(s1, "filename") if path_filter in str(d.traceback))
