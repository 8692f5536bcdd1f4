"""Profile one engine block on CUDA: kernels per block and the most expensive ones.

Run on a GPU machine: ``python benchmarks/profile_engine_gpu.py``. For the 16-node
chain and the 10,000-voice patch it prints, for the **steady** block (constant
parameters: what the steady CUDA graph holds) and the **update** block (parameter
copies, ramps, coefficient rebuilds: the update graph), the number of CUDA
kernels/memcpys one block launches (eager steps) and the top kernels by GPU time,
plus the replayed steady graph's wall time per block.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.bench_engine import chain, voices  # noqa: E402
from ironwave.engine import Engine  # noqa: E402


def profile(name: str, graph) -> None:
    eng = Engine(graph, block=128, device="cuda", in_channels=1 if "voice" in name else 2,
                 out_channels=1 if "voice" in name else 2)
    plan = eng.plan
    for _ in range(20):
        eng.process_block()
    assert not plan._pick_update()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(200):
        eng.process_block()
    t_graph = (time.perf_counter() - t0) / 200
    from torch.profiler import ProfilerActivity, profile as tprof

    for update in (False, True):
        steps = plan.steps if update else plan.steady_steps
        plan._force(update)
        try:
            with tprof(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as p:
                for s in steps:
                    s()
                torch.cuda.synchronize()
        finally:
            plan._force(None)
        evs = [e for e in p.events() if e.device_type == torch.autograd.DeviceType.CUDA]
        kind = "update" if update else "steady"
        print(f"== {name} [{kind} block]: groups={len(plan.groups)} steps={len(steps)} cuda events per block={len(evs)} "
              f"steady graph replay+sync per block={t_graph * 1e6:.1f} us")
        print(p.key_averages().table(sort_by="cuda_time_total", row_limit=12, max_name_column_width=60))


if __name__ == "__main__":
    profile("chain16", chain(16))
    profile("voices10000", voices(10000))
