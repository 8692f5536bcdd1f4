"""Streaming inference: a module behind preallocated buffers and a captured program,
and a hybrid pipeline that places each stage on its best backend.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch import nn

from ironwave.backend.device import DeviceLike, choose_device, resolve_device
from ironwave.backend.program import CapturedProgram
from ironwave.backend.telemetry import telemetry
from ironwave.errors import InvalidParameter

__all__ = ["StreamingInference", "Stage", "HybridPipeline"]


class StreamingInference:
    """Run ``module`` on fixed-shape blocks with no allocation per call.

    ``prepare`` (the constructor) moves the module to the device, preallocates
    the input and output buffers and captures the forward pass: on CUDA a CUDA
    graph is recorded once and each call replays it (one launch, no allocation);
    on the CPU the same wrapper runs the module eagerly (zero allocation there
    too when the module writes into its own buffers, e.g. a
    :class:`~ironwave.nn.PingPongSequential` of ``forward_into`` layers).

    Args:
        module: ``module(x) -> y`` with static shapes.
        example: an input block ``[batch, channels, frames]`` (any shape the module takes).
        device: ``"auto"``, ``"cpu"``, ``"cuda[:N]"``.
        use_graph: capture a CUDA graph on CUDA (default True).

    ``process(block)`` copies *block* (on the module's device or on the host) into
    the input buffer with ``copy_`` (never ``.to(device)``, which would allocate),
    replays, and returns :attr:`output` (a preallocated tensor on the module's
    device, overwritten by the next call). ``process(block, out=host_tensor)`` also
    copies the result into a caller buffer; host copies are blocking, so *out* is
    ready when the call returns.
    """

    def __init__(self, module: nn.Module, example: torch.Tensor, *, device: DeviceLike = "auto",
                 use_graph: bool = True, name: str = "nn.streaming") -> None:
        self.device = resolve_device(device)
        self._requested = device
        self.module = module.to(self.device).eval()
        self.name = name

        def fn(x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return self.module(x)

        if hasattr(module, "prepare") and callable(getattr(module, "prepare")):
            with torch.no_grad():
                module.prepare(example.to(self.device))  # type: ignore[operator]
        self.program = CapturedProgram(fn, [example.to(self.device)], device=self.device, use_graph=use_graph, name=name)
        self.input = self.program.inputs[0]
        self.output = self.program.outputs[0]
        self.calls = 0

    @property
    def captured(self) -> bool:
        """True when a CUDA graph is replayed."""
        return self.program.captured

    def process(self, block: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """Run one block (same shape as the example); returns the static output (or *out*)."""
        if block.shape != self.input.shape:
            raise InvalidParameter(f"{self.name}: block shaped {list(block.shape)} does not match the prepared shape "
                                   f"{list(self.input.shape)}")
        # Copy into the static input (no allocation whatever the block's device). Host<->device
        # copies are blocking so the caller may refill its host block / read its host ``out`` at once
        # (a non_blocking copy from pinned memory would return before the data moved).
        self.input.copy_(block, non_blocking=block.device.type != "cpu")
        self.program.replay()
        self.calls += 1
        if out is not None:
            out.copy_(self.output, non_blocking=out.device.type != "cpu")
            return out
        return self.output

    __call__ = process


@dataclass
class Stage:
    """One stage of a :class:`HybridPipeline`.

    Attributes:
        name: label (telemetry op name suffix).
        fn: ``fn(x) -> y`` (a module or function of tensors).
        op: op family used to pick the device (``"conv"``, ``"fft"``, ``"matmul"``, ...).
        device: ``"auto"`` (consult the measured crossover) or an explicit device.
    """

    name: str
    fn: Callable[[torch.Tensor], torch.Tensor]
    op: str = "default"
    device: DeviceLike = "auto"


class HybridPipeline:
    """A chain of stages, each placed on its best backend for the work size.

    For each stage :func:`ironwave.backend.choose_device` decides from the
    calibrated CPU/GPU crossover of its op family (or honours an explicit
    device). Data moves between devices only where consecutive stages differ.
    :attr:`placement` lists where each stage ran on the last call.
    """

    def __init__(self, stages: Sequence[Stage]) -> None:
        if not stages:
            raise InvalidParameter("HybridPipeline needs at least one stage")
        self.stages = list(stages)
        self.placement: list[tuple[str, str]] = []

    def plan(self, x: torch.Tensor) -> list[torch.device]:
        """The device of each stage for input *x* (``[..., time]``)."""
        size = x.shape[-1]
        batch = max(1, x.numel() // max(size, 1))
        return [choose_device(s.op, size, batch, s.device) for s in self.stages]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        devices = self.plan(x)
        out_dev = x.device
        self.placement = []
        for stage, dev in zip(self.stages, devices):
            if isinstance(stage.fn, nn.Module):
                stage.fn.to(dev)
            t0 = time.perf_counter()
            with torch.no_grad():
                x = stage.fn(x.to(dev))
            telemetry.record(f"nn.pipeline.{stage.name}", dev, time.perf_counter() - t0, stage.device)
            self.placement.append((stage.name, str(dev)))
        return x.to(out_dev)
