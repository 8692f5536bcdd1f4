"""Parameters: specs, and the per-group bank of smoothed values.

Every node parameter is a float with a range and a default smoothing time.
A change is a *ramp* from the current value to a target over ``total`` samples,
linear or exponential-shaped (both reach the target exactly), starting at a
sample offset inside the block: ramps are sample-accurate.

The bank of a group of ``n`` nodes with ``P`` params holds (leading dim n, so
rows can be moved between plans):

* ``ctrl [n, P, 5]``: target, total (samples), curve (0 linear, 1 exponential),
  new-ramp flag, start offset (samples). Written by the audio thread when it
  applies a command. On CUDA this is a pinned host tensor copied to the device
  inside the captured graph, so the graph sees new values.
* ``cur, start, elapsed [n, P]``: device state, updated in place every block.

Per block the bank yields per-sample values ``[n, P, frames]`` while a ramp is
active, or the constant targets ``[n, P, 1]`` (views of ``ctrl``) when none is,
allocating nothing. Which of the two is decided on the host from ``ramp_left``
(an integer the audio thread already owns: no device sync). A ramp keeps the
bank in ramp mode for ``ceil((total + offset) / frames) + 1`` blocks, so the
last ramped block writes the exact target into ``cur`` before the bank goes
back to the constant views. On CUDA the plan captures two graphs, one with
every bank forced to ramp mode (``force = True``) and one with every bank
constant (``force = False``), and replays the update graph while any bank of
the plan has ``ramp_left > 0``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

EXP_K = 5.0  # curvature of exponential ramps: remaining fraction exp(-k p/T), rescaled to hit 0 at T
_EK = math.exp(-EXP_K)

LINEAR, EXPONENTIAL = 0, 1
CURVES = {"linear": LINEAR, "exp": EXPONENTIAL, "exponential": EXPONENTIAL}


@dataclass(frozen=True)
class ParamSpec:
    """A smoothed node parameter.

    Attributes:
        default: initial value.
        lo / hi: accepted range (inclusive).
        smooth: default ramp time in seconds for a change without an explicit ramp.
        unit: unit shown in docs and errors ("Hz", "dB", "s", "" ...).
        curve: default ramp curve, "linear" or "exp".
        doc: one-line description.
    """

    default: float
    lo: float = -math.inf
    hi: float = math.inf
    smooth: float = 0.005
    unit: str = ""
    curve: str = "linear"
    doc: str = ""


class ParamBank:
    """Smoothed parameter state of one group (see module docs)."""

    def __init__(self, n: int, names: list[str], initial: list[list[float]], frames: int, device: torch.device,
                 always_ramp: bool = False) -> None:
        self.n, self.P, self.F = n, len(names), frames
        self.names = names
        self.device = device
        self.always_ramp = always_ramp
        self._consts: dict[float, torch.Tensor] = {}
        self.ramp_left = 0  # blocks left with an active ramp (host-side; CUDA: update graph while > 0)
        self.dirty = False  # CUDA: host mirror flags need clearing after the block
        # None: decide from ramp_left (eager run); True/False: force ramp/constant mode
        # (set by the plan while it captures its update/steady CUDA graphs)
        self.force: bool | None = True if always_ramp else None
        P = max(self.P, 1)
        init = torch.tensor(initial, dtype=torch.float32).reshape(n, self.P) if self.P else torch.zeros(n, 1)
        cuda = device.type == "cuda"
        self.ctrl = torch.zeros(n, P, 5, pin_memory=cuda)
        self.ctrl[:, : self.P, 0] = init[:, : self.P] if self.P else 0.0
        self.ctrl_np = self.ctrl.numpy()
        self.ctrl_dev = self.ctrl.to(device) if cuda else self.ctrl
        self.cur = self.ctrl_dev[:, :, 0].clone()
        self.start = self.cur.clone()
        self.elapsed = torch.full((n, P), 1e9, device=device)
        # scratch
        self.t = torch.arange(1, frames + 1, dtype=torch.float32, device=device)
        self._newb = torch.zeros(n, P, dtype=torch.bool, device=device)
        self._modeb = torch.zeros(n, P, 1, dtype=torch.bool, device=device)
        self._tot = torch.zeros(n, P, 1, device=device)
        self._negoff = torch.zeros(n, P, device=device)
        self._tmpP = torch.zeros(n, P, device=device)
        self._diff = torch.zeros(n, P, 1, device=device)
        self._p = torch.zeros(n, P, frames, device=device)
        self._e = torch.zeros(n, P, frames, device=device)
        self.values = torch.zeros(n, P, frames, device=device)
        self.const = self.ctrl_dev[:, :, 0:1]  # [n, P, 1] view of the targets
        self.ramp_views = [self.values[:, j:j + 1, :] for j in range(self.P)]  # [n, 1, F]
        self.const_views = [self.ctrl_dev[:, j:j + 1, 0:1] for j in range(self.P)]  # [n, 1, 1]

    def k(self, value: float) -> torch.Tensor:
        c = self._consts.get(value)
        if c is None:
            c = self._consts[value] = torch.tensor(float(value), device=self.device)
        return c

    # -- audio thread: commands --------------------------------------------
    def set(self, row: int, j: int, value: float, total: float, curve: int, offset: float) -> None:
        """Start a ramp of param *j* of node *row* to *value* over *total* samples."""
        c = self.ctrl_np[row, j]
        c[0] = value
        c[1] = total
        c[2] = curve
        c[3] = 1.0
        c[4] = offset
        blocks = int((total + offset) // self.F) + 2
        if blocks > self.ramp_left:
            self.ramp_left = blocks
        self.dirty = True

    # -- audio thread: per block -------------------------------------------
    def views(self) -> list[torch.Tensor]:
        """Param values for this block: ``[n, 1, F]`` (ramping) or ``[n, 1, 1]`` views."""
        f = self.force
        if f is None:
            if self.ramp_left > 0:
                self.ramp_left -= 1
                if self.P:
                    self.ramp()
                    return self.ramp_views
            return self.const_views
        if f and self.P:
            self.ramp()
            return self.ramp_views
        return self.const_views

    def ramp(self) -> None:
        """Compute per-sample values into :attr:`values` (in place, no allocation)."""
        c = self.ctrl_dev
        torch.ge(c[:, :, 3], self.k(0.5), out=self._newb)
        torch.where(self._newb, self.cur, self.start, out=self._tmpP)
        self.start.copy_(self._tmpP)
        torch.neg(c[:, :, 4], out=self._negoff)
        torch.where(self._newb, self._negoff, self.elapsed, out=self._tmpP)
        self.elapsed.copy_(self._tmpP)
        c[:, :, 3].zero_()
        torch.add(self.elapsed.unsqueeze(-1), self.t, out=self._p)
        torch.clamp(c[:, :, 1:2], min=1.0, out=self._tot)
        self._p.div_(self._tot)  # p / T
        # exponential remaining fraction
        torch.mul(self._p, self.k(-EXP_K), out=self._e)
        self._e.exp_().sub_(self.k(_EK)).div_(self.k(1.0 - _EK)).clamp_(0.0, 1.0)
        # linear remaining fraction (in place in _p)
        self._p.neg_().add_(self.k(1.0)).clamp_(0.0, 1.0)
        torch.ge(c[:, :, 2:3], self.k(0.5), out=self._modeb)
        torch.where(self._modeb, self._e, self._p, out=self._e)
        torch.sub(c[:, :, 0:1], self.start.unsqueeze(-1), out=self._diff)
        torch.mul(self._e, self._diff, out=self.values)
        self.values.neg_().add_(c[:, :, 0:1])  # target - diff * remaining (same bits as a subtraction)
        self.cur.copy_(self.values[:, :, -1])
        self.elapsed.add_(self.k(float(self.F)))

    def state(self) -> dict[str, torch.Tensor]:
        """Tensors with leading dim n that make up the param state."""
        return {"param.ctrl": self.ctrl, "param.cur": self.cur, "param.start": self.start, "param.elapsed": self.elapsed}
