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
    """Phase-accumulating oscillator base (phase in cycles, state per node).

    The phase is accumulated and wrapped to [0, 1) in **float64** and the wave
    shapes are evaluated in float64 before the cast to the float32 output, so
    CPU and CUDA agree to float32 rounding: a float32 cumulative sum (a
    parallel scan on CUDA, a serial loop on the CPU) rounds differently on the
    two devices, and a polyBLEP edge amplifies a phase error by ``2/dt``.
    With a constant frequency and no FM (the common case on the CPU) the phase
    is one fused op, ``frac(phase0 + inc * [1..F])``; while the frequency ramps
    or FM is connected it is ``frac(phase0 + cumsum(inc))``.
    """

    inputs = {"fm": 1}
    outputs = {"out": None}
    params = {
        "freq": ParamSpec(440.0, 0.0, 96000.0, 0.005, "Hz", "exp", "frequency"),
        "amp": ParamSpec(0.5, -10.0, 10.0, 0.005, "", doc="linear amplitude"),
    }
    config = {"phase": 0.0}
    default_channels = 1
    f64 = torch.float64

    def setup(self) -> None:
        n, F = self.n, self.frames
        f64 = torch.float64
        ph0 = torch.tensor([float(v or 0.0) % 1.0 for v in self.cfg("phase")], dtype=f64).reshape(n, 1, 1)
        self.phase = self.add_state("phase", ph0.to(self.device))
        self.inc64 = {1: self.zeros(n, 1, 1, dtype=f64), F: self.zeros(n, 1, F, dtype=f64)}  # cycles/sample
        self.inc32 = {1: self.zeros(n, 1, 1), F: self.zeros(n, 1, F)}
        self.ph64 = self.zeros(n, 1, F, dtype=f64)
        self.ph64_last = self.ph64[:, :, -1:]
        self.ramp = torch.arange(1, F + 1, dtype=f64, device=self.device).reshape(1, 1, F)
        self.ph = self.zeros(n, 1, F)  # float32 phase in [0, 1]
        self.tmp = self.zeros(n, 1, F)
        self.tmp64 = self.zeros(n, 1, F, dtype=f64) if self.connected.get("fm") else None
        self.wave = self.zeros(n, 1, F)

    def advance(self, p, ins) -> torch.Tensor:
        """Advance the phase over the block (float64 ``ph64``, float32 copy ``ph``); returns
        the float32 increment ([n,1,1] or [n,1,F])."""
        f = p[0]
        fm = self.connected.get("fm")
        ph = self.ph64
        if f.shape[-1] == 1 and not fm:
            inc = self.inc64[1]
            inc.copy_(f)
            inc.div_(self.k64(float(self.sample_rate)))
            torch.addcmul(self.phase, inc, self.ramp, out=ph)
        else:
            inc = self.inc64[self.frames]
            inc.copy_(f)  # broadcast [n,1,1] or [n,1,F] -> [n,1,F]
            inc.div_(self.k64(float(self.sample_rate)))
            if fm:
                # 2**fm in float64: a float32 exp2 differs by an ulp between CPU and CUDA, and
                # that increment error accumulates in the phase (then x 2/dt at a polyBLEP edge).
                self.tmp64.copy_(ins[0])
                self.tmp64.exp2_()
                inc.mul_(self.tmp64)
            torch.cumsum(inc, dim=-1, out=ph)
            ph.add_(self.phase)
        ph.frac_()  # phases are >= 0: frac == wrap to [0, 1)
        self.phase.copy_(self.ph64_last)
        self.ph.copy_(ph)
        inc32 = self.inc32[inc.shape[-1]]
        inc32.copy_(inc)
        return inc32

    def emit(self, p, outs, scale: float = 1.0) -> None:
        y = outs[0]
        torch.mul(self.wave, p[1], out=y[:, 0:1])
        if scale != 1.0:
            y[:, 0:1].mul_(self.k(scale))
        if self.channels > 1:
            y[:, 1:].copy_(y[:, 0:1])

    def process(self, ins, outs, p):
        inc = self.advance(p, ins)
        self.shape(p, inc)
        self.emit(p, outs)

    def shape(self, p, inc) -> None:
        raise NotImplementedError


@register
class Sine(_Oscillator):
    """Sine oscillator."""

    type_name = "sine"
    doc = "Sine oscillator. `fm` (mono, octaves) multiplies the frequency by 2**fm per sample."

    def setup(self) -> None:
        super().setup()
        self.w64 = self.zeros(self.n, 1, self.frames, dtype=torch.float64)

    def shape(self, p, inc):
        torch.mul(self.ph64, self.k64(TWO_PI), out=self.w64)
        self.w64.sin_()
        self.wave.copy_(self.w64)


class _BlepTables:
    """Per-node polyBLEP constants for increments of shape [n,1,1] and [n,1,F]."""

    def __init__(self, node: Node) -> None:
        n, F = node.n, node.frames
        self.shapes = {1: (node.zeros(n, 1, 1), node.zeros(n, 1, 1)), F: (node.zeros(n, 1, F), node.zeros(n, 1, F))}

    def get(self, node: Node, inc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``idt = 1/dt`` and ``off = 1 - idt/2`` with ``dt = clamp(inc, 1e-7, 0.5)``."""
        idt, off = self.shapes[inc.shape[-1]]
        torch.clamp(inc, 1e-7, 0.5, out=idt)
        idt.reciprocal_()
        torch.mul(idt, node.k(-0.5), out=off)
        off.add_(node.k(1.0))
        return idt, off


def _blep_saw(ph: torch.Tensor, idt: torch.Tensor, off: torch.Tensor, out: torch.Tensor, f: torch.Tensor, k) -> None:
    """polyBLEP saw ``2 ph - 1 - blep(ph)`` in 7 fused ops (into *out*; *f* is scratch).

    With ``c = 0.5 - ph`` the polyBLEP residual of the reset at phase 0 is
    ``-sign(c) * max(0, (|c| - (0.5 - dt)) / dt)**2`` (``-(1 - ph/dt)**2`` for
    ``ph < dt``, ``(1 - (1 - ph)/dt)**2`` for ``ph > 1 - dt``, 0 elsewhere), so
    ``saw = copysign(r, c) - 2 c`` with ``r = max(0, |c|/dt + 1 - 1/(2 dt))**2``.
    """
    torch.sub(k(0.5), ph, out=out)  # c
    torch.abs(out, out=f)
    torch.addcmul(off, f, idt, out=f)
    f.clamp_min_(0.0)
    f.mul_(f)
    torch.copysign(f, out, out=f)
    torch.add(f, out, alpha=-2.0, out=out)


@register
class Saw(_Oscillator):
    """Band-limited (polyBLEP) sawtooth."""

    type_name = "saw"
    doc = "Sawtooth oscillator with polyBLEP anti-aliasing."

    def setup(self) -> None:
        super().setup()
        self.blep = _BlepTables(self)
        self.f = self.zeros(self.n, 1, self.frames)

    def shape(self, p, inc):
        idt, off = self.blep.get(self, inc)
        _blep_saw(self.ph, idt, off, self.wave, self.f, self.k)


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

    def shape(self, p, inc):
        idt, off = self.blep.get(self, inc)
        _blep_saw(self.ph, idt, off, self.wave, self.f, self.k)
        torch.sub(self.ph, p[2], out=self.ph2)
        torch.remainder(self.ph2, self.k(1.0), out=self.ph2)
        _blep_saw(self.ph2, idt, off, self.w2, self.f, self.k)
        self.wave.sub_(self.w2)

    def process(self, ins, outs, p):
        inc = self.advance(p, ins)
        self.shape(p, inc)
        self.emit(p, outs, 0.5)


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

    def setup(self) -> None:
        super().setup()
        self.w64 = self.zeros(self.n, 1, self.frames, dtype=torch.float64)

    def process(self, ins, outs, p):
        self.advance(p, ins)
        w = self.configs[0].get("wave", "sine")
        ph, wave = self.ph, self.wave
        if w == "sine":
            torch.mul(self.ph64, self.k64(TWO_PI), out=self.w64)
            self.w64.sin_()
            wave.copy_(self.w64)
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
        self.chb = self.zeros(n, 1, 1, dtype=torch.bool)
        self.times = self.zeros(n, 4, 1)  # attack, decay, (sustain), release in samples
        self.on = self.zeros(n, 4, 1)  # gate on:  a, b, g, d
        self.off = self.zeros(n, 4, 1)  # gate off: a, b, g=2, d=0
        self.off[:, 2] = 2.0
        self.sel = self.zeros(n, 4, 1)
        # views made once (a slice costs about as much as a small op)
        self.v_times = (self.times[:, 0:1], self.times[:, 1:2], self.times[:, 3:4])
        self.v_on = tuple(self.on[:, j:j + 1] for j in range(4))
        self.v_off = (self.off[:, 0:1], self.off[:, 1:2])
        self.v_sel = tuple(self.sel[:, j:j + 1] for j in range(4))
        self.ta, self.s_ = self.zeros(n, 1, 1), self.zeros(n, 1, 1)
        self.ramp = torch.arange(1, F + 1, dtype=torch.float32, device=self.device).reshape(1, 1, F)
        self.l2 = self.zeros(n, 1, F)

    def process(self, ins, outs, p):
        """Piecewise-linear envelope from per-node lines (few ops over [n,1,F]).

        With ``tt = t + [1..F]`` samples since the last gate edge and ``from`` the level
        at that edge: gate on: ``env = min(from + tt/A, max(1 - (tt - ta)(1 - S)/D, S))``
        (``ta = (1 - from) A``: the attack line wins before the peak, the decay line,
        floored at S, after it); gate off: ``env = max(0, from (1 - tt/R))``. Both are
        ``max(0, min(a + b r, max(g + d r, S)))`` over the ramp ``r = [1..F]`` with
        per-node ``a, b, g, d`` ([n,1,1]) chosen by the gate.
        """
        # gate edge at the block start: restart the segment clock from the current level
        torch.ge(p[4][:, :, :1], self.k(0.5), out=self.gb)
        self.gf.copy_(self.gb)
        torch.ne(self.gf, self.gprev, out=self.chb)
        self.tst.masked_fill_(self.chb, 0.0)
        torch.where(self.chb, self.level, self.frm, out=self.frm)
        self.gprev.copy_(self.gf)
        S = p[2][:, :, :1]
        frm, t = self.frm, self.tst
        # the params are rows of one bank tensor: attack..release first samples in one view
        p0 = p[0]
        if p[3].data_ptr() == p0.data_ptr() + 3 * p0.stride(1) * p0.element_size():
            torch.mul(p0.as_strided((self.n, 4, 1), (p0.stride(0), p0.stride(1), 1)), self.k(float(self.sample_rate)), out=self.times)
        else:  # not a bank view (direct kernel use)
            for j in (0, 1, 3):
                torch.mul(p[j][:, :, :1], self.k(float(self.sample_rate)), out=self.times[:, j:j + 1])
        self.times.clamp_min_(1.0)
        A, D, R = self.v_times
        a, b, g, d = self.v_on
        off_a, off_b = self.v_off
        # gate on: attack line a + b r, decay line g + d r
        torch.sub(self.k(1.0), frm, out=self.ta)
        self.ta.clamp_min_(0.0).mul_(A)  # samples from `from` to the peak
        torch.reciprocal(A, out=b)
        torch.addcmul(frm, b, t, out=a)  # a = from + t/A
        torch.sub(self.k(1.0), S, out=self.s_)
        torch.div(self.s_, D, out=d).neg_()  # d = -(1 - S)/D
        torch.sub(t, self.ta, out=g)
        torch.addcmul(self.k(1.0), g, d, out=g)  # g = 1 + (t - ta) d
        # gate off: release line from + b (t + r), b = -from/R; decay line pushed above 1
        torch.div(frm, R, out=off_b).neg_()
        torch.addcmul(frm, off_b, t, out=off_a)
        torch.where(self.gb, self.on, self.off, out=self.sel)
        s_a, s_b, s_g, s_d = self.v_sel
        env = outs[1]
        torch.addcmul(s_a, s_b, self.ramp, out=env)
        torch.addcmul(s_g, s_d, self.ramp, out=self.l2)
        torch.maximum(self.l2, S, out=self.l2)
        torch.minimum(env, self.l2, out=env)
        env.clamp_min_(0.0)
        self.level.copy_(env[:, :, -1:])
        self.tst.add_(self.k(float(self.frames)))
        torch.mul(ins[0], env, out=outs[0])


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
