"""Engine benchmarks: the compiled, batched graph vs a plain-Python per-node loop over the same graph.

CPU (64 frames): 1000 independent gain nodes (target <= 30 us/block) and a
1000-node voice patch, 250 x (oscillator -> biquad -> ADSR -> gain) -> mixer
(target <= 300 us/block). The peer is :class:`ironwave.engine.NaiveRunner`, one
kernel call per node in topological order (same kernels, same results).

CUDA (128 frames, captured CUDA graph): 10,000 voices = 40,000 nodes within half
of the 2.67 ms deadline, and a 16-node chain's full host round trip (pinned
input copy in, every level, output copy out, sync) with p99 <= 100 us. The
peer on CUDA is the same patch batched on the CPU.
"""
from __future__ import annotations

import numpy as np
import torch

from benchmarks.harness import Harness
from ironwave.engine import Engine, Graph
from ironwave.io.clock import realtime_gc


def gains(n: int) -> Graph:
    g = Graph()
    g.add("input", "in", channels=1)
    for k in range(n):
        g.add("gain", f"g{k}", params={"gain": 0.5 + k / (2 * n)})
        g.connect("in", f"g{k}")
    return g


def voices(n: int) -> Graph:
    g = Graph()
    for k in range(n):
        g.add("saw", f"o{k}", params={"freq": 55.0 * 2 ** (k % 48 / 12), "amp": 0.1})
        g.add("biquad", f"f{k}", params={"freq": 800.0 + 10 * (k % 100), "q": 1.2})
        g.add("adsr", f"e{k}", params={"gate": 1.0, "attack": 0.01})
        g.add("gain", f"a{k}", params={"gain": 0.5})
    g.add("mixer", "mix", params={"gain": 1.0 / max(n, 1) ** 0.5})
    g.add("output", "out", channels=1)
    for k in range(n):
        g.connect(f"o{k}", f"f{k}")
        g.connect(f"f{k}", f"e{k}")
        g.connect(f"e{k}", f"a{k}")
        g.connect(f"a{k}", "mix")
    g.connect("mix", "out")
    return g


def chain(n: int) -> Graph:
    g = Graph()
    g.add("input", "in", channels=2)
    prev = "in"
    for k in range(n - 2):
        g.add("gain", f"g{k}", params={"gain": 0.99})
        g.connect(prev, f"g{k}")
        prev = f"g{k}"
    g.add("output", "out", channels=2)
    g.connect(prev, "out")
    return g


def record_ops(h: Harness, eng: Engine, label: str, steady_target: int | None = None) -> None:
    """Aten ops per block (dispatch count, views excluded: ~ the kernels of the captured CUDA
    graph) of the steady block (constant params) and the update block (ramps + coefficient
    rebuilds). Before the two-graph split every CUDA block ran the update path: H200 profile
    450 CUDA events (chain16) and 409 with 60 float64 GEMMs (10,000-voice patch)."""
    eng.process_block()
    for update in (False, True):
        c = eng.plan.op_counts(update=update)
        kind = "update" if update else "steady"
        target = met = None
        if not update and steady_target is not None:
            target, met = f"<= {steady_target} ops, 0 float64 matmuls", c["ops"] <= steady_target and c["float64_matmuls"] == 0
        h.record(f"{label}: ops per {kind} block", c["ops"], "ops", target=target, met=met,
                 params={"float64_matmuls": c["float64_matmuls"], "by_op": c["by_op"], "device": str(eng.device)})


def p99_us(eng: Engine, blocks: int) -> tuple[float, float]:
    eng.reset_stats()
    for _ in range(blocks):
        eng.process_block()
    t = eng.block_times()
    return float(np.percentile(t, 99) * 1e6), float(np.median(t) * 1e6)


def run(h: Harness) -> None:
    dev = h.device
    with realtime_gc():
        if dev.type == "cpu":
            _cpu(h)
        else:
            _cuda(h)


def _cpu(h: Harness) -> None:
    # Small blocks are op-overhead bound: one torch thread (as the drivers' realtime_gc()
    # does) avoids thread hand-off on every ~16k-element op; recorded in every case's params.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _cpu_cases(h)
    finally:
        torch.set_num_threads(threads)


def _cpu_cases(h: Harness) -> None:
    n_g = 200 if h.quick else 1000
    ours = Engine(gains(n_g), block=64, device="cpu", in_channels=1, out_channels=1)
    peer = Engine(gains(n_g), block=64, device="cpu", in_channels=1, out_channels=1, batch=False)
    h.compare(f"{n_g} independent gain nodes, 64 frames", ours.process_block, peer.process_block,
              peer_name="per-node loop", repeat=400, warmup=50, target="<= 30 us per block", target_ours_s=30e-6,
              params={"nodes": n_g, "frames": 64, "groups": len(ours.plan.groups), "torch_threads": 1})
    # the leanest plain-Python loop (the anchor: 486 us for 1000 gains): one torch op per node
    x = torch.randn(1, 64)
    gs = [0.5 + k / (2 * n_g) for k in range(n_g)]
    outs = [torch.empty(1, 64) for _ in range(n_g)]

    def plain_loop() -> None:
        for g_, o in zip(gs, outs):
            torch.mul(x, g_, out=o)
    h.compare(f"{n_g} independent gain nodes, 64 frames (vs minimal loop)", ours.process_block, plain_loop,
              peer_name="plain torch loop", repeat=400, warmup=50, target="<= 30 us per block", target_ours_s=30e-6)
    p99, _ = p99_us(ours, 2000)
    h.record(f"{n_g} gain nodes p99 block time", p99, "us")
    n_v = 50 if h.quick else 250
    ours = Engine(voices(n_v), block=64, device="cpu", in_channels=1, out_channels=1)
    peer = Engine(voices(n_v), block=64, device="cpu", in_channels=1, out_channels=1, batch=False)
    h.compare(f"{4 * n_v + 2}-node voice patch ({n_v} x osc->biquad->adsr->gain), 64 frames", ours.process_block,
              peer.process_block, peer_name="per-node loop", repeat=200, warmup=20, target="<= 300 us per block",
              target_ours_s=300e-6, params={"voices": n_v, "nodes": 4 * n_v + 2, "frames": 64, "groups": len(ours.plan.groups),
                      "torch_threads": 1})
    p99, _ = p99_us(ours, 1000)
    h.record(f"{4 * n_v + 2}-node voice patch p99 block time", p99, "us", params={"torch_threads": 1})
    ch = Engine(chain(16), block=128, device="cpu")
    p99, med = p99_us(ch, 2000)
    h.record("16-node chain, 128 frames, p99 block time (CPU)", p99, "us")
    record_ops(h, ch, "16-node chain, 128 frames", steady_target=40)
    record_ops(h, Engine(voices(n_v), block=128, device="cpu", in_channels=1, out_channels=1),
               f"{4 * n_v + 2}-node voice patch, 128 frames", steady_target=80)


def _cuda(h: Harness) -> None:
    dev = h.device
    n_v = 1000 if h.quick else 10000
    ours = Engine(voices(n_v), block=128, device=dev, in_channels=1, out_channels=1)
    assert ours.plan.cuda_graph is not None
    cpu = Engine(voices(n_v), block=128, device="cpu", in_channels=1, out_channels=1)
    h.compare(f"{4 * n_v + 2}-node voice patch, 128 frames, CUDA graph", ours.process_block, cpu.process_block,
              peer_name="batched on CPU", peer_device=torch.device("cpu"), repeat=200, warmup=20,
              target="<= 1.33 ms (half of the 2.67 ms deadline)", target_ours_s=1.333e-3,
              params={"voices": n_v, "nodes": 4 * n_v + 2, "frames": 128})
    record_ops(h, ours, f"{4 * n_v + 2}-node voice patch, 128 frames (CUDA eager steps)", steady_target=80)
    p99, med = p99_us(ours, 2000)
    h.record(f"{4 * n_v + 2}-node voice patch p99 block time (CUDA graph, host round trip)", p99, "us",
             target="<= 1333 us", met=p99 <= 1333.0, params={"median_us": med})
    ch = Engine(chain(16), block=128, device=dev)
    cpu_ch = Engine(chain(16), block=128, device="cpu")
    h.compare("16-node chain, 128 frames, full host round trip", ch.process_block, cpu_ch.process_block,
              peer_name="batched on CPU", peer_device=torch.device("cpu"), repeat=2000, warmup=100)
    record_ops(h, ch, "16-node chain, 128 frames (CUDA eager steps)", steady_target=40)
    p99, med = p99_us(ch, 5000)
    h.record("16-node chain round trip p99 (CUDA graph)", p99, "us", target="p99 <= 100 us", met=p99 <= 100.0,
             params={"median_us": med})
