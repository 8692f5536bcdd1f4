"""Fractional delay line: the only legal feedback path of a graph."""
from __future__ import annotations

import torch

from ironwave.engine.errors import GraphError
from ironwave.engine.nodes.base import Node, register
from ironwave.engine.params import ParamSpec


@register
class Delay(Node):
    """Linear-interpolated fractional delay.

    In a feed-forward position the delay may be 0..``max_time``. When the delay
    closes a cycle (feedback), it reads its history at its level and writes its
    input after every other node has run; its delay is then at least one block
    (``frames`` samples), which is clamped.
    """

    type_name = "delay"
    inputs = {"in": None}
    outputs = {"out": None}
    params = {"time": ParamSpec(0.25, 0.0, 3600.0, 0.02, "s", doc="delay time")}
    config = {"max_time": 2.0}
    doc = ("Fractional (linear-interpolated) delay up to `max_time` seconds. The only node allowed to close a cycle; "
           "inside a cycle the delay is at least one block.")

    @classmethod
    def group_key(cls, config):
        return float(config.get("max_time", 2.0))

    @classmethod
    def validate_config(cls, node, config):
        m = config.get("max_time", 2.0)
        if isinstance(m, bool) or not isinstance(m, (int, float)) or not 0 < m <= 600:
            raise GraphError(f"node {node!r} (delay): max_time must be a number of seconds in (0, 600], got {m!r}")

    def setup(self) -> None:
        n, c, F = self.n, self.channels, self.frames
        self.max_d = float(self.configs[0].get("max_time", 2.0)) * self.sample_rate
        H = 1
        while H < self.max_d + 2 * F + 4:
            H *= 2
        self.H, self.mask = H, H - 1
        self.hist = self.add_state("hist", self.zeros(n, c, H))
        self.pos = self.add_state("pos", torch.zeros(n, 1, 1, dtype=torch.int64, device=self.device))
        self.ar = torch.arange(F, dtype=torch.int64, device=self.device)
        self.arf = torch.arange(F, dtype=torch.float32, device=self.device) + H
        self.widx = torch.zeros(n, 1, F, dtype=torch.int64, device=self.device)
        self.base = self.zeros(n, 1, 1)
        self.d = self.zeros(n, 1, F)
        self.rpos = self.zeros(n, 1, F)
        self.i0 = torch.zeros(n, 1, F, dtype=torch.int64, device=self.device)
        self.i1 = torch.zeros(n, 1, F, dtype=torch.int64, device=self.device)
        self.h0 = self.zeros(n, c, F)
        self.h1 = self.zeros(n, c, F)

    def _write(self, x: torch.Tensor) -> None:
        torch.add(self.pos, self.ar, out=self.widx)
        self.widx.bitwise_and_(self.mask)
        self.hist.scatter_(2, self.widx.expand(self.n, self.channels, self.frames), x)

    def _read(self, d_param: torch.Tensor, y: torch.Tensor) -> None:
        lo = float(self.frames) if self.feedback else 0.0
        self.d.copy_(d_param)
        self.d.mul_(self.k(float(self.sample_rate))).clamp_(lo, self.max_d)
        torch.bitwise_and(self.pos, self.mask, out=self.i0[:, :, :1])
        self.base.copy_(self.i0[:, :, :1])
        torch.add(self.base, self.arf, out=self.rpos)  # (pos mod H) + t + H
        self.rpos.sub_(self.d)
        torch.floor(self.rpos, out=self.d)  # d now holds floor(rpos)
        self.rpos.sub_(self.d)  # fractional part
        self.i0.copy_(self.d)
        self.i1.copy_(self.i0)
        self.i1.add_(1)
        self.i0.bitwise_and_(self.mask)
        self.i1.bitwise_and_(self.mask)
        shape = (self.n, self.channels, self.frames)
        torch.gather(self.hist, 2, self.i0.expand(shape), out=self.h0)
        torch.gather(self.hist, 2, self.i1.expand(shape), out=self.h1)
        self.h1.sub_(self.h0).mul_(self.rpos)
        torch.add(self.h0, self.h1, out=y)

    def process(self, ins, outs, p):
        if not self.feedback:
            self._write(ins[0])
            self._read(p[0], outs[0])
            self.pos.add_(self.frames)
        else:
            self._read(p[0], outs[0])

    def late_write(self, x: torch.Tensor) -> None:
        """Feedback mode: write this block's input after all levels ran."""
        self._write(x)
        self.pos.add_(self.frames)
