"""Backend benchmarks: captured replay vs eager calls of a 16-kernel block chain."""
from __future__ import annotations

import torch

from benchmarks.harness import Harness
from ironwave.backend import CapturedProgram


def run(h: Harness) -> None:
    dev = h.device
    frames, channels = 128, 2
    gains = [torch.full((channels, 1), 0.9 + 0.001 * i, device=dev) for i in range(16)]

    def chain(x: torch.Tensor) -> torch.Tensor:
        for g in gains:
            x = torch.tanh(x * g)
        return x

    host_in = torch.randn(channels, frames)
    host_out = torch.empty(channels, frames)
    if dev.type == "cuda":
        host_in = host_in.pin_memory()
        host_out = host_out.pin_memory()
    prog = CapturedProgram(chain, [host_in.to(dev)], device=dev, name="bench.chain16")

    def eager() -> None:
        y = chain(host_in.to(dev, non_blocking=True))
        host_out.copy_(y, non_blocking=True)

    def captured() -> None:
        prog.inputs[0].copy_(host_in, non_blocking=True)
        out = prog.replay()[0]
        host_out.copy_(out, non_blocking=True)

    h.compare("16-kernel chain, 2x128 frames, host round trip", captured, eager, peer_name="eager torch",
              repeat=400, warmup=20, target="p99-ish <= 100 us captured on GPU" if dev.type == "cuda" else None)
