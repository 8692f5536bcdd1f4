"""Commands from the control thread to the audio thread (through a lock-free SPSC ring).

Each command is built on the control thread (allocation happens there) and
applied by the audio thread at a block boundary with :meth:`Command.apply`,
which allocates nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:  # pragma: no cover
    from ironwave.engine.compiler import Plan
    from ironwave.engine.engine import Engine
    from ironwave.engine.graph import NodeId


class Command:
    """Base class: ``apply(engine)`` runs on the audio thread."""

    def apply(self, engine: "Engine") -> None:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass
class SetParam(Command):
    """Ramp ``node.param`` to *value* over *total* samples, starting at absolute sample time *at* (or now)."""

    node: "NodeId"
    index: int
    value: float
    total: float
    curve: int
    at: int | None = None

    def apply(self, engine: "Engine") -> None:
        loc = (engine.naive or engine.plan).loc.get(self.node)
        if loc is None:  # node removed meanwhile
            engine.dropped_commands += 1
            return
        g, row = loc
        off = 0.0
        if self.at is not None and self.at > engine.sample_time:
            off = float(self.at - engine.sample_time)
        g.bank.set(row, self.index, self.value, self.total, self.curve, off)


@dataclass
class SwapPlan(Command):
    """Make *plan* the live plan (state of surviving nodes is carried over)."""

    plan: "Plan"

    def apply(self, engine: "Engine") -> None:
        old = engine.plan
        self.plan.adopt(old)
        engine.plan = self.plan
        engine._retired.push(old)
        engine.swaps += 1


@dataclass
class Mute(Command):
    """Mute or unmute the engine output with a short fade (no click)."""

    on: bool

    def apply(self, engine: "Engine") -> None:
        engine._mute_target = 0.0 if self.on else 1.0


@dataclass
class LoadState(Command):
    """Write saved per-node state rows into the live plan (index copies)."""

    plan_id: int
    copies: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]

    def apply(self, engine: "Engine") -> None:
        if engine.plan.id != self.plan_id:
            engine.dropped_commands += 1
            return
        for dst, idx, values in self.copies:
            dst.index_copy_(0, idx, values)
        for b in engine.plan.banks:
            b.ramp_left = max(b.ramp_left, 2)
            b.dirty = True


@dataclass
class Snapshot(Command):
    """Copy the live plan's state into preallocated buffers, then flag completion."""

    plan_id: int
    copies: list[tuple[torch.Tensor, torch.Tensor]]
    done: list[bool] = field(default_factory=lambda: [False])

    def apply(self, engine: "Engine") -> None:
        if engine.plan.id == self.plan_id:
            for dst, src in self.copies:
                dst.copy_(src)
            self.done[0] = True
        else:
            self.done[0] = None  # type: ignore[call-overload]


@dataclass
class Call(Command):
    """Run a callable on the audio thread (tests, tools). It must not allocate or block."""

    fn: Any

    def apply(self, engine: "Engine") -> None:
        self.fn(engine)
