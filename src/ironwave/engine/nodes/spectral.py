"""STFT-domain processing inside the engine: a spectral noise gate.

Hop = block size ``F``; frame = ``fft_size`` (a multiple of F, >= 2F);
sqrt-Hann analysis and synthesis windows (their product, a periodic Hann,
overlap-adds to ``fft_size / (2F)``, which is divided out). Latency
``fft_size - F`` samples.
"""
from __future__ import annotations

import math

import torch

from ironwave.engine.errors import GraphError
from ironwave.engine.nodes.base import Node, irfft_rows, register, rfft_rows
from ironwave.engine.params import ParamSpec


@register
class SpectralGate(Node):
    """Per-bin noise gate: bins below a threshold are attenuated."""

    type_name = "spectral_gate"
    inputs = {"in": None}
    outputs = {"out": None}
    params = {
        "threshold_db": ParamSpec(-50.0, -160.0, 20.0, 0.02, "dB", doc="bin level (re. a full-scale sine) below which the bin is gated"),
        "reduction_db": ParamSpec(-40.0, -160.0, 0.0, 0.02, "dB", doc="gain applied to gated bins"),
    }
    config = {"fft_size": 1024}
    doc = ("Spectral gate over an STFT with hop = block size and frame `fft_size` (multiple of the block, >= 2 blocks); "
           "latency fft_size - block samples.")

    @classmethod
    def group_key(cls, config):
        return int(config.get("fft_size", 1024))

    @classmethod
    def validate_config(cls, node, config):
        N = config.get("fft_size", 1024)
        if isinstance(N, bool) or not isinstance(N, int) or N < 16 or N > 1 << 16:
            raise GraphError(f"node {node!r} (spectral_gate): fft_size must be an integer in 16..65536, got {N!r}")

    def setup(self) -> None:
        n, c, F = self.n, self.channels, self.frames
        N = self.N = int(self.configs[0].get("fft_size", 1024))
        if N % F or N < 2 * F:
            raise GraphError(f"spectral_gate nodes {self.names}: fft_size {N} must be a multiple of the block size {F} and at least 2 blocks")
        self.latency = N - F
        hann = torch.hann_window(N, periodic=True, dtype=torch.float64)
        w = torch.sqrt(hann)
        norm = N / (2.0 * F)
        self.wa = w.float().to(self.device)
        self.ws = (w / norm).float().to(self.device)
        self.ref = float(hann.sum() / 2)  # |X| of a full-scale sine at its bin
        self.hist = self.add_state("hist", self.zeros(n, c, N))
        self.ola = self.add_state("ola", self.zeros(n, c, N))
        self.tmp = self.zeros(n, c, N - F)
        self.fr = self.zeros(n, c, N)
        self.X = torch.zeros(n, c, N // 2 + 1, dtype=torch.complex64, device=self.device)
        self.mag = self.zeros(n, c, N // 2 + 1)
        self.mb = self.zeros(n, c, N // 2 + 1, dtype=torch.bool)
        self.g = self.zeros(n, c, N // 2 + 1)
        self.thr = self.zeros(n, 1, 1)
        self.floor = self.zeros(n, 1, 1)
        self.y = self.zeros(n, c, N)

    def process(self, ins, outs, p):
        F, N = self.frames, self.N
        self.tmp.copy_(self.hist[:, :, F:])
        self.hist[:, :, : N - F].copy_(self.tmp)
        self.hist[:, :, N - F:].copy_(ins[0])
        torch.mul(self.hist, self.wa, out=self.fr)
        rfft_rows(self.fr, N, self.X)
        if self.X.device.type == "cpu" and self.n > 1:  # SIMD body vs scalar tail round |z| differently
            for i in range(self.n):
                torch.abs(self.X[i], out=self.mag[i])
        else:
            torch.abs(self.X, out=self.mag)
        # threshold and floor from dB, once per block (last sample of the ramp)
        torch.mul(p[0][:, :, -1:], self.k(math.log(10) / 20), out=self.thr)
        self.thr.exp_().mul_(self.ref)
        torch.mul(p[1][:, :, -1:], self.k(math.log(10) / 20), out=self.floor)
        self.floor.exp_()
        torch.gt(self.mag, self.thr, out=self.mb)
        self.g.copy_(self.mb)
        torch.mul(self.floor, self.k(-1.0), out=self.thr)  # reuse: 1 - floor
        self.thr.add_(self.k(1.0))
        self.g.mul_(self.thr).add_(self.floor)
        self.X.mul_(self.g)
        irfft_rows(self.X, N, self.y)
        self.y.mul_(self.ws)
        self.ola.add_(self.y)
        outs[0].copy_(self.ola[:, :, :F])
        self.tmp.copy_(self.ola[:, :, F:])
        self.ola[:, :, : N - F].copy_(self.tmp)
        self.ola[:, :, N - F:].zero_()
