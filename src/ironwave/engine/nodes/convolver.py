"""Uniformly partitioned FFT convolution (overlap-save), batched over nodes.

Partition size = block size ``F``. Per block: one rFFT of ``[prev, x]`` (2F),
a frequency-domain delay line of K partitions shifted by one, a complex
multiply-accumulate against the IR spectra, one irFFT; the last F samples are
the output. Latency 0; cost O(K F) per block.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ironwave.engine.errors import GraphError
from ironwave.engine.nodes.base import Node, cmul_rows, irfft_rows, register, rfft_rows
from ironwave.engine.params import ParamSpec

_IR_CACHE: dict[tuple[str, int], torch.Tensor] = {}


def load_ir(path: str, sample_rate: int) -> torch.Tensor:
    """Load an impulse response ``[channels, taps]`` at *sample_rate* (resampled if needed)."""
    key = (str(Path(path).resolve()), sample_rate)
    if key in _IR_CACHE:
        return _IR_CACHE[key]
    from ironwave.io.files import read_audio

    ir, sr = read_audio(path)
    if sr != sample_rate:
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(sr, sample_rate)
        ir = torch.from_numpy(resample_poly(ir.numpy(), sample_rate // g, sr // g, axis=-1).astype("float32"))
    _IR_CACHE[key] = ir
    return ir


@register
class Convolver(Node):
    """Partitioned convolution with an impulse response file (reverb, cabinet, ...)."""

    type_name = "convolver"
    inputs = {"in": None}
    outputs = {"out": None}
    params = {
        "mix": ParamSpec(1.0, 0.0, 1.0, 0.01, doc="wet fraction: out = (1-mix)*dry + mix*gain*wet"),
        "gain": ParamSpec(1.0, 0.0, 100.0, 0.01, doc="wet gain (linear)"),
    }
    config = {"ir": None, "max_seconds": 10.0}
    doc = ("Zero-latency uniformly partitioned convolution with the IR file `ir` (mono IR: same on every channel; "
           "otherwise one IR channel per channel). `max_seconds` caps the IR length.")

    @classmethod
    def validate_config(cls, node, config):
        ir = config.get("ir")
        if not isinstance(ir, str) or not ir:
            raise GraphError(f"node {node!r} (convolver): option 'ir' (path of an impulse response file) is required")
        if not Path(ir).exists():
            raise GraphError(f"node {node!r} (convolver): impulse response file not found: {ir}")

    def setup(self) -> None:
        n, c, F = self.n, self.channels, self.frames
        irs = []
        for cfg, name in zip(self.configs, self.names):
            ir = load_ir(cfg["ir"], self.sample_rate)
            ir = ir[:, : int(float(cfg.get("max_seconds", 10.0)) * self.sample_rate)]
            if ir.shape[0] not in (1, c):
                raise GraphError(f"node {name!r} (convolver): IR has {ir.shape[0]} channels; the node has {c} (use a mono IR or {c} channels)")
            irs.append(ir.expand(c, -1))
        K = max(1, max(-(-ir.shape[-1] // F) for ir in irs))
        Hs = torch.zeros(n, c, K, F + 1, dtype=torch.complex64)
        for i, ir in enumerate(irs):
            pad = torch.zeros(c, K * F)
            pad[:, : ir.shape[-1]] = ir
            parts = pad.reshape(c, K, F)
            Hs[i] = torch.fft.rfft(parts, n=2 * F)
        self.K = K
        self.H = Hs.to(self.device)
        self.prev = self.add_state("prev", self.zeros(n, c, F))
        self.fdl = self.add_state("fdl", torch.zeros(n, c, K, F + 1, dtype=torch.complex64, device=self.device))
        self.tmp = torch.zeros(n, c, max(K - 1, 1), F + 1, dtype=torch.complex64, device=self.device)
        self.prod = torch.zeros(n, c, K, F + 1, dtype=torch.complex64, device=self.device)
        self.buf = self.zeros(n, c, 2 * F)
        self.X = torch.zeros(n, c, F + 1, dtype=torch.complex64, device=self.device)
        self.Y = torch.zeros(n, c, F + 1, dtype=torch.complex64, device=self.device)
        self.yb = self.zeros(n, c, 2 * F)
        self.wet = self.zeros(n, c, F)
        self.dry = self.zeros(n, 1, F)

    def process(self, ins, outs, p):
        F, K = self.frames, self.K
        x = ins[0]
        self.buf[:, :, :F].copy_(self.prev)
        self.buf[:, :, F:].copy_(x)
        self.prev.copy_(x)
        rfft_rows(self.buf, 2 * F, self.X)
        if K > 1:
            self.tmp.copy_(self.fdl[:, :, : K - 1])
            self.fdl[:, :, 1:].copy_(self.tmp)
        self.fdl[:, :, 0].copy_(self.X)
        cmul_rows(self.fdl, self.H, self.prod)
        torch.sum(self.prod, dim=2, out=self.Y)
        irfft_rows(self.Y, 2 * F, self.yb)
        torch.mul(self.yb[:, :, F:], p[1], out=self.wet)
        self.wet.mul_(p[0])
        self.dry.copy_(p[0])
        self.dry.mul_(self.k(-1.0)).add_(self.k(1.0))
        torch.mul(x, self.dry, out=outs[0])
        outs[0].add_(self.wet)
