"""Basic nodes: input, output, gain, mixer, pan, oscillators, noise, LFO, ADSR, meter.

All kernels run over ``n`` nodes at once and allocate nothing per block.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from ironwave.engine.errors import GraphError
from ironwave.engine.nodes.base import Node, register
from ironwave.engine.params import ParamSpec

TWO_PI = 2.0 * math.pi


@register
class InputNode(Node):
    """The engine's audio input (from the driver or the input file): ``[channels, frames]``."""

    type_name = "input"
    outputs = {"out": None}
    default_channels = 2
    doc = "Audio input of the engine (driver ports or input file). At most one per graph."

    def setup(self) -> None:
        self.src = self.resources.input_buffer if self.resources is not None else self.zeros(self.channels, self.frames)

    def process(self, ins, outs, p):
        outs[0][0].copy_(self.src)


@register
class OutputNode(Node):
    """The engine's audio output (to the driver or the output file)."""

    type_name = "output"
    inputs = {"in": None}
    default_channels = 2
    doc = "Audio output of the engine. Sources are summed; at most one per graph."

    def setup(self) -> None:
        self.dst = self.resources.output_buffer if self.resources is not None else self.zeros(self.channels, self.frames)

    def process(self, ins, outs, p):
        self.dst.copy_(ins[0][0])


@register
class Gain(Node):
    """``out = in * (gain + mod)``: linear gain with sample-accurate smoothing."""

    type_name = "gain"
    inputs = {"in": None, "mod": 1}
    outputs = {"out": None}
    params = {"gain": ParamSpec(1.0, -100.0, 100.0, 0.005, "", doc="linear gain factor")}
    doc = "Linear gain. The optional mono `mod` input is added to the gain per sample (tremolo from an LFO)."

    def setup(self) -> None:
        self.g = self.zeros(self.n, 1, self.frames)

    def process(self, ins, outs, p):
        if self.connected.get("mod"):
            torch.add(p[0], ins[1], out=self.g)
            torch.mul(ins[0], self.g, out=outs[0])
        else:
            torch.mul(ins[0], p[0], out=outs[0])


@register
class Mixer(Node):
    """Summing bus: every source of ``in`` is summed, then scaled by ``gain``."""

    type_name = "mixer"
    inputs = {"in": None}
    outputs = {"out": None}
    params = {"gain": ParamSpec(1.0, -100.0, 100.0, 0.005, doc="master gain (linear)")}
    doc = "Summing mixer: all sources connected to `in` are summed (fan-in), then multiplied by `gain`."

    def process(self, ins, outs, p):
        torch.mul(ins[0], p[0], out=outs[0])


@register
class Pan(Node):
    """Equal-power pan (mono in) or balance (stereo in) to a stereo output."""

    type_name = "pan"
    inputs = {"in": None, "mod": 1}
    outputs = {"out": 2}
    params = {"pan": ParamSpec(0.0, -1.0, 1.0, 0.005, doc="-1 left .. 0 centre .. +1 right")}
    doc = "Equal-power panner (mono input) or balance (stereo input); output is stereo. `mod` adds to `pan` per sample."

    def setup(self) -> None:
        if self.channels > 2:
            raise GraphError(f"pan nodes {self.names}: input must be mono or stereo, got {self.channels} channels")
        F = self.frames
        self.th = self.zeros(self.n, 1, F)
        self.gl = self.zeros(self.n, 1, F)
        self.gr = self.zeros(self.n, 1, F)

    def process(self, ins, outs, p):
        th = self.th
        if self.connected.get("mod"):
            torch.add(p[0], ins[1], out=th)
            th.add_(self.k(1.0))
        else:
            th.copy_(p[0])
            th.add_(self.k(1.0))
        th.clamp_(0.0, 2.0).mul_(self.k(math.pi / 4))
        torch.cos(th, out=self.gl)
        torch.sin(th, out=self.gr)
        x, y = ins[0], outs[0]
        if self.channels == 2:
            self.gl.mul_(self.k(math.sqrt(2.0)))
            self.gr.mul_(self.k(math.sqrt(2.0)))
            torch.mul(x[:, 0:1], self.gl, out=y[:, 0:1])
            torch.mul(x[:, 1:2], self.gr, out=y[:, 1:2])
        else:
            torch.mul(x, self.gl, out=y[:, 0:1])
            torch.mul(x, self.gr, out=y[:, 1:2])


class _Oscillator(Node):
    """Phase-accumulating oscillator base (phase in cycles, state per node)."""

    inputs = {"fm": 1}
    outputs = {"out": None}
    params = {
        "freq": ParamSpec(440.0, 0.0, 96000.0, 0.005, "Hz", "exp", "frequency"),
        "amp": ParamSpec(0.5, -10.0, 10.0, 0.005, "", doc="linear amplitude"),
    }
    config = {"phase": 0.0}
    default_channels = 1

    def setup(self) -> None:
        n, F = self.n, self.frames
        ph0 = torch.tensor([float(v or 0.0) for v in self.cfg("phase")], dtype=torch.float32).reshape(n, 1, 1)
        self.phase = self.add_state("phase", ph0.to(self.device))
        self.inc = self.zeros(n, 1, F)
        self.ph = self.zeros(n, 1, F)
        self.tmp = self.zeros(n, 1, F)
        self.wave = self.zeros(n, 1, F)

    def advance(self, p, ins) -> None:
        self.inc.copy_(p[0])  # broadcast [n,1,1] or [n,1,F] -> [n,1,F]
        self.inc.mul_(self.k(1.0 / self.sample_rate))
        if self.connected.get("fm"):
            torch.exp2(ins[0], out=self.tmp)
            self.inc.mul_(self.tmp)
        torch.cumsum(self.inc, dim=-1, out=self.ph)
        self.ph.add_(self.phase)
        torch.remainder(self.ph, self.k(1.0), out=self.ph)
        self.phase.copy_(self.ph[:, :, -1:])

    def emit(self, p, outs) -> None:
        y = outs[0]
        torch.mul(self.wave, p[1], out=y[:, 0:1])
        if self.channels > 1:
            y[:, 1:].copy_(y[:, 0:1])

    def process(self, ins, outs, p):
        self.advance(p, ins)
        self.shape(p)
        self.emit(p, outs)

    def shape(self, p) -> None:
        raise NotImplementedError


@register
class Sine(_Oscillator):
    """Sine oscillator."""

    type_name = "sine"
    doc = "Sine oscillator. `fm` (mono, octaves) multiplies the frequency by 2**fm per sample."

    def shape(self, p):
        torch.mul(self.ph, self.k(TWO_PI), out=self.wave)
        self.wave.sin_()


def _blep(ph: torch.Tensor, dt: torch.Tensor, out: torch.Tensor, a: torch.Tensor, b: torch.Tensor, m: torch.Tensor, k) -> None:
    """Subtract the polyBLEP residual of a unit saw reset at phase 0 from *out* (in place).

    *k* maps a float to a cached 0-dim tensor (no per-op scalar allocation)."""
    torch.div(ph, dt, out=a)  # t = ph/dt near the reset
    torch.mul(a, a, out=b)
    a.mul_(k(2.0)).sub_(b).sub_(k(1.0))
    torch.lt(ph, dt, out=m)
    torch.where(m, a, k(0.0), out=a)
    out.sub_(a)
    torch.sub(ph, k(1.0), out=a)
    a.div_(dt)
    torch.mul(a, a, out=b)
    a.mul_(k(2.0)).add_(b).add_(k(1.0))
    torch.add(ph, dt, out=b)
    torch.gt(b, k(1.0), out=m)
    torch.where(m, a, k(0.0), out=a)
    out.sub_(a)


@register
class Saw(_Oscillator):
    """Band-limited (polyBLEP) sawtooth."""

    type_name = "saw"
    doc = "Sawtooth oscillator with polyBLEP anti-aliasing."

    def setup(self) -> None:
        super().setup()
        n, F = self.n, self.frames
        self.a, self.b = self.zeros(n, 1, F), self.zeros(n, 1, F)
        self.m = self.zeros(n, 1, F, dtype=torch.bool)
        self.dt = self.zeros(n, 1, F)

    def shape(self, p):
        torch.clamp(self.inc, 1e-7, 0.5, out=self.dt)
        torch.mul(self.ph, self.k(2.0), out=self.wave)
        self.wave.sub_(self.k(1.0))
        _blep(self.ph, self.dt, self.wave, self.a, self.b, self.m, self.k)


@register
class Square(Saw):
    """Band-limited (polyBLEP) pulse wave: the difference of two saws."""

    type_name = "square"
    params = {**_Oscillator.params, "width": ParamSpec(0.5, 0.01, 0.99, 0.005, doc="duty cycle")}
    doc = "Pulse/square oscillator (polyBLEP); `width` is the duty cycle."

    def setup(self) -> None:
        super().setup()
        self.ph2 = self.zeros(self.n, 1, self.frames)
        self.w2 = self.zeros(self.n, 1, self.frames)

    def shape(self, p):
        super().shape(p)  # saw at phase -> wave
        torch.sub(self.ph, p[2], out=self.ph2)
        torch.remainder(self.ph2, self.k(1.0), out=self.ph2)
        torch.mul(self.ph2, self.k(2.0), out=self.w2)
        self.w2.sub_(self.k(1.0))
        _blep(self.ph2, self.dt, self.w2, self.a, self.b, self.m, self.k)
        self.wave.sub_(self.w2)
        self.wave.mul_(self.k(0.5))


@register
class Noise(Node):
    """White noise from a counter-based integer hash: identical on CPU and CUDA, graph-safe."""

    type_name = "noise"
    outputs = {"out": None}
    params = {"amp": ParamSpec(0.5, -10.0, 10.0, 0.005, doc="linear amplitude (uniform in [-amp, amp))")}
    config = {"seed": None}
    default_channels = 1
    doc = "Uniform white noise; `seed` (int) makes it reproducible (default: derived from the node name)."

    M32 = 0xFFFFFFFF

    def setup(self) -> None:
        import zlib

        n, F = self.n, self.frames
        seeds = [int(s) if s is not None else zlib.crc32(nm.encode()) for s, nm in zip(self.cfg("seed"), self.names)]
        self.seed = torch.tensor([(s * 0x9E3779B1) & self.M32 for s in seeds], dtype=torch.int64, device=self.device).reshape(n, 1, 1)
        self.counter = self.add_state("counter", torch.zeros(n, 1, 1, dtype=torch.int64, device=self.device))
        self.ar = torch.arange(F, dtype=torch.int64, device=self.device)
        self.kk = torch.zeros(n, 1, F, dtype=torch.int64, device=self.device)
        self.t = torch.zeros(n, 1, F, dtype=torch.int64, device=self.device)
        self.f = self.zeros(n, 1, F)

    def process(self, ins, outs, p):
        k, t = self.kk, self.t
        torch.add(self.counter, self.ar, out=k)
        k.mul_(2654435761).add_(self.seed).bitwise_and_(self.M32)
        for mul, sh in ((0x7FEB352D, 16), (0x846CA68B, 15)):
            torch.bitwise_right_shift(k, sh, out=t)
            k.bitwise_xor_(t).mul_(mul).bitwise_and_(self.M32)
        torch.bitwise_right_shift(k, 16, out=t)
        k.bitwise_xor_(t)
        self.f.copy_(k)
        self.f.mul_(self.k(2.0 / 4294967296.0))
        self.f.sub_(self.k(1.0))
        self.counter.add_(self.frames)
        y = outs[0]
        torch.mul(self.f, p[0], out=y[:, 0:1])
        if self.channels > 1:
            y[:, 1:].copy_(y[:, 0:1])


@register
class LFO(_Oscillator):
    """Low-frequency oscillator: ``offset + depth * wave(rate)``."""

    type_name = "lfo"
    inputs = {}
    params = {
        "rate": ParamSpec(1.0, 0.0, 1000.0, 0.01, "Hz", doc="rate"),
        "depth": ParamSpec(1.0, -100.0, 100.0, 0.01, doc="peak deviation"),
        "offset": ParamSpec(0.0, -1e5, 1e5, 0.01, doc="added constant"),
    }
    config = {"phase": 0.0, "wave": "sine"}
    doc = "LFO with waves sine|triangle|square|saw (config `wave`), output offset + depth*wave; feed it to gain.mod, pan.mod or an oscillator's fm."

    @classmethod
    def group_key(cls, config):
        return config.get("wave", "sine")

    @classmethod
    def validate_config(cls, node, config):
        w = config.get("wave", "sine")
        if w not in ("sine", "triangle", "square", "saw"):
            raise GraphError(f"node {node!r} (lfo): wave must be sine|triangle|square|saw, got {w!r}")

    def process(self, ins, outs, p):
        self.advance(p, ins)
        w = self.configs[0].get("wave", "sine")
        ph, wave = self.ph, self.wave
        if w == "sine":
            torch.mul(ph, self.k(TWO_PI), out=wave)
            wave.sin_()
        elif w == "triangle":  # 1 - 4|ph - 0.5|  -> [-1, 1]
            torch.sub(ph, self.k(0.5), out=wave)
            wave.abs_().mul_(self.k(-4.0)).add_(self.k(1.0))
        elif w == "square":
            torch.lt(ph, self.k(0.5), out=wave)
            wave.mul_(self.k(2.0)).sub_(self.k(1.0))
        else:
            torch.mul(ph, self.k(2.0), out=wave)
            wave.sub_(self.k(1.0))
        y = outs[0]
        torch.mul(wave, p[1], out=y[:, 0:1])
        y[:, 0:1].add_(p[2])
        if self.channels > 1:
            y[:, 1:].copy_(y[:, 0:1])


@register
class ADSR(Node):
    """Linear ADSR envelope applied to the input (a VCA), also output on ``env``."""

    type_name = "adsr"
    inputs = {"in": None}
    outputs = {"out": None, "env": 1}
    params = {
        "attack": ParamSpec(0.01, 0.0, 60.0, 0.0, "s"),
        "decay": ParamSpec(0.1, 0.0, 60.0, 0.0, "s"),
        "sustain": ParamSpec(0.7, 0.0, 1.0, 0.005),
        "release": ParamSpec(0.2, 0.0, 60.0, 0.0, "s"),
        "gate": ParamSpec(0.0, 0.0, 1.0, 0.0, doc=">= 0.5 is on; read at block starts"),
    }
    doc = ("ADSR envelope (linear segments). `out = in * env`; `env` carries the envelope. The gate is read at the start "
           "of each block; attack and release start from the current level (no clicks on retrigger).")

    def setup(self) -> None:
        n, F = self.n, self.frames
        self.level = self.add_state("level", self.zeros(n, 1, 1))
        self.frm = self.add_state("from", self.zeros(n, 1, 1))
        self.tst = self.add_state("t", torch.full((n, 1, 1), 1e9, device=self.device))
        self.gprev = self.add_state("gate", self.zeros(n, 1, 1))
        self.gb = self.zeros(n, 1, 1, dtype=torch.bool)
        self.gf = self.zeros(n, 1, 1)
        self.edge = self.zeros(n, 1, 1)
        self.chb = self.zeros(n, 1, 1, dtype=torch.bool)
        self.a_s, self.d_s, self.r_s = self.zeros(n, 1, 1), self.zeros(n, 1, 1), self.zeros(n, 1, 1)
        self.ta, self.oms = self.zeros(n, 1, 1), self.zeros(n, 1, 1)
        self.ar = torch.arange(1, F + 1, dtype=torch.float32, device=self.device)
        self.tt, self.att, self.dec, self.env = (self.zeros(n, 1, F) for _ in range(4))
        self.mb = self.zeros(n, 1, F, dtype=torch.bool)

    def process(self, ins, outs, p):
        sr = float(self.sample_rate)
        torch.ge(p[4][:, :, :1], self.k(0.5), out=self.gb)
        self.gf.copy_(self.gb)
        torch.sub(self.gf, self.gprev, out=self.edge)
        torch.ne(self.edge, self.k(0.0), out=self.chb)
        self.tst.masked_fill_(self.chb, 0.0)
        torch.where(self.chb, self.level, self.frm, out=self.frm)
        self.gprev.copy_(self.gf)
        torch.add(self.tst, self.ar, out=self.tt)
        torch.mul(p[0][:, :, :1], self.k(sr), out=self.a_s).clamp_(min=1.0)
        torch.mul(p[1][:, :, :1], self.k(sr), out=self.d_s).clamp_(min=1.0)
        torch.mul(p[3][:, :, :1], self.k(sr), out=self.r_s).clamp_(min=1.0)
        S = p[2][:, :, :1]
        torch.mul(self.frm, self.k(-1.0), out=self.ta)
        self.ta.add_(self.k(1.0)).clamp_(min=0.0).mul_(self.a_s)  # samples to reach 1 from `from`
        torch.div(self.tt, self.a_s, out=self.att)
        self.att.add_(self.frm)
        torch.sub(self.tt, self.ta, out=self.dec)
        self.dec.div_(self.d_s)
        torch.mul(S, self.k(-1.0), out=self.oms)
        self.oms.add_(self.k(1.0))
        self.dec.mul_(self.oms).neg_().add_(self.k(1.0))
        torch.maximum(self.dec, S, out=self.dec)
        torch.lt(self.tt, self.ta, out=self.mb)
        torch.where(self.mb, self.att, self.dec, out=self.att)
        torch.div(self.tt, self.r_s, out=self.dec)
        self.dec.neg_().add_(self.k(1.0)).clamp_(min=0.0).mul_(self.frm)
        torch.where(self.gb, self.att, self.dec, out=self.env)
        self.level.copy_(self.env[:, :, -1:])
        self.tst.add_(self.k(float(self.frames)))
        torch.mul(ins[0], self.env, out=outs[0])
        outs[1].copy_(self.env)


@register
class Meter(Node):
    """Peak and RMS per channel of each block, readable from the control thread."""

    type_name = "meter"
    inputs = {"in": None}
    outputs = {"out": None}
    host_state = ("peak", "rms")
    doc = "Peak/RMS meter (per channel, per block). Passes audio through. Read with `engine.meter(name)`."

    def setup(self) -> None:
        n, c, F = self.n, self.channels, self.frames
        self.peak = self.add_state("peak", self.zeros(n, c, 1))
        self.rms = self.add_state("rms", self.zeros(n, c, 1))
        self.tmp = self.zeros(n, c, F)

    def process(self, ins, outs, p):
        x = ins[0]
        torch.abs(x, out=self.tmp)
        torch.amax(self.tmp, dim=-1, keepdim=True, out=self.peak)
        torch.mul(x, x, out=self.tmp)
        torch.sum(self.tmp, dim=-1, keepdim=True, out=self.rms)
        self.rms.mul_(self.k(1.0 / self.frames))
        self.rms.sqrt_()
        outs[0].copy_(x)
