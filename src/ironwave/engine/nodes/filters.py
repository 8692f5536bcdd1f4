"""Biquad (RBJ) and SOS filters, batched over nodes in block state-space form.

A biquad in transposed direct form II has state ``s = [s1, s2]``::

    y = b0 x + s1
    s' = A s + B x,   A = [[-a1, 1], [-a2, 0]],  B = [b1 - a1 b0, b2 - a2 b0]

Over a chunk of K samples the whole update is one matrix product: with the
row vector ``z = [x_0 .. x_{K-1}, s1, s2]``, ``z @ M = [y_0 .. y_{K-1}, s1', s2']``
where M holds the Markov parameters (Toeplitz), ``C A^i`` and ``A^{K-1-j} B``
and ``A^K`` (:func:`block_matrix`). A block is processed in spans of C <= 8
chunks with three batched products per span over all nodes and channels
(:func:`block_operators`): the chunk start states ``S = [s0, x] @ Q``, the
zero-state chunk responses ``x_chunks @ T`` and ``+= S @ O``; no chunk waits
for the previous one. The operators are built in float64 and cast once; they are
rebuilt only while the parameters move (once per block).
"""
from __future__ import annotations

import math
from typing import Any

import torch

from ironwave.engine.errors import GraphError
from ironwave.engine.nodes.base import Node, register
from ironwave.engine.params import ParamSpec

KINDS = ("lowpass", "highpass", "bandpass", "notch", "peak", "lowshelf", "highshelf", "allpass")


def rbj(kind: str, freq: torch.Tensor, q: torch.Tensor, gain_db: torch.Tensor, sample_rate: float) -> torch.Tensor:
    """RBJ cookbook biquad coefficients ``[..., 6]`` = (b0, b1, b2, a0, a1, a2), not normalized.

    Args:
        kind: one of :data:`KINDS`.
        freq: centre/cutoff frequency in Hz (clamped to (0, sr/2)).
        q: quality factor (> 0).
        gain_db: gain in dB (peak and shelf kinds).
        sample_rate: Hz.
    """
    f = freq.clamp(1e-3, sample_rate * 0.49999)
    w0 = 2 * math.pi * f / sample_rate
    cw, sw = torch.cos(w0), torch.sin(w0)
    alpha = sw / (2 * q.clamp_min(1e-4))
    A = torch.pow(10.0, gain_db / 40)
    one = torch.ones_like(cw)
    if kind == "lowpass":
        b = ((1 - cw) / 2, 1 - cw, (1 - cw) / 2); a = (1 + alpha, -2 * cw, 1 - alpha)
    elif kind == "highpass":
        b = ((1 + cw) / 2, -(1 + cw), (1 + cw) / 2); a = (1 + alpha, -2 * cw, 1 - alpha)
    elif kind == "bandpass":
        b = (alpha, 0 * cw, -alpha); a = (1 + alpha, -2 * cw, 1 - alpha)
    elif kind == "notch":
        b = (one, -2 * cw, one); a = (1 + alpha, -2 * cw, 1 - alpha)
    elif kind == "allpass":
        b = (1 - alpha, -2 * cw, 1 + alpha); a = (1 + alpha, -2 * cw, 1 - alpha)
    elif kind == "peak":
        b = (1 + alpha * A, -2 * cw, 1 - alpha * A); a = (1 + alpha / A, -2 * cw, 1 - alpha / A)
    elif kind == "lowshelf":
        sa = 2 * torch.sqrt(A) * alpha
        b = (A * ((A + 1) - (A - 1) * cw + sa), 2 * A * ((A - 1) - (A + 1) * cw), A * ((A + 1) - (A - 1) * cw - sa))
        a = ((A + 1) + (A - 1) * cw + sa, -2 * ((A - 1) + (A + 1) * cw), (A + 1) + (A - 1) * cw - sa)
    elif kind == "highshelf":
        sa = 2 * torch.sqrt(A) * alpha
        b = (A * ((A + 1) + (A - 1) * cw + sa), -2 * A * ((A - 1) + (A + 1) * cw), A * ((A + 1) + (A - 1) * cw - sa))
        a = ((A + 1) - (A - 1) * cw + sa, 2 * ((A - 1) - (A + 1) * cw), (A + 1) - (A - 1) * cw - sa)
    else:
        raise GraphError(f"unknown filter kind {kind!r}; accepted: {', '.join(KINDS)}")
    return torch.stack([*b, *a], dim=-1)


def block_matrix(sos: torch.Tensor, K: int) -> torch.Tensor:
    """State-space chunk matrix ``[..., K+2, K+2]`` (float64) of biquads ``sos [..., 6]``."""
    sos = sos.to(torch.float64)
    a0 = sos[..., 3:4]
    b0, b1, b2, a1, a2 = (sos[..., i] / a0[..., 0] for i in (0, 1, 2, 4, 5))
    lead = b0.shape
    Am = torch.zeros(*lead, 2, 2, dtype=torch.float64, device=sos.device)
    Am[..., 0, 0] = -a1
    Am[..., 0, 1] = 1.0
    Am[..., 1, 0] = -a2
    Bv = torch.stack([b1 - a1 * b0, b2 - a2 * b0], dim=-1)  # [..., 2]
    P = [torch.eye(2, dtype=torch.float64, device=sos.device).expand(*lead, 2, 2)]
    for _ in range(K):
        P.append(P[-1] @ Am)
    Pst = torch.stack(P, dim=-3)  # [..., K+1, 2, 2]
    CA = Pst[..., :K, 0, :]  # C A^i, i=0..K-1: [..., K, 2]
    AB = (Pst[..., :K, :, :] @ Bv[..., None, :, None])[..., 0]  # A^i B: [..., K, 2]
    h = torch.cat([b0[..., None], (CA[..., : K - 1, :] * Bv[..., None, :]).sum(-1), torch.zeros_like(b0)[..., None]], dim=-1)  # [..., K+1]
    i = torch.arange(K, device=sos.device)
    idx = (i[None, :] - i[:, None])  # [j, i] = i - j
    idx = torch.where(idx >= 0, idx, torch.full_like(idx, K))
    M = torch.zeros(*lead, K + 2, K + 2, dtype=torch.float64, device=sos.device)
    M[..., :K, :K] = h[..., idx]
    M[..., K:, :K] = CA.transpose(-1, -2)  # [r, i] = (C A^i)[r]
    M[..., :K, K:] = AB.flip(-2)  # [j, r] = (A^{K-1-j} B)[r]
    M[..., K:, K:] = Pst[..., K, :, :].transpose(-1, -2)  # [r, q] = A^K[q, r]
    return M


def block_operators(sos: torch.Tensor, K: int, C: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Operators of a span of ``L = C*K`` samples split into C chunks of K (float64).

    Row-vector form over one span with input ``x`` (L samples) and start state ``s0``:

    * ``S = [s0, x] @ Q`` (``Q [..., 2+L, 2C+2]``): the states at the start of
      chunks 0..C-1 and the final state (last two columns),
    * ``y = x_chunks @ T + S @ O`` with ``T [..., K, K]`` the chunk's zero-state
      (Toeplitz) response, shared by all chunks, and ``O [..., 2C+2, L]``
      block-diagonal: chunk c's output from its start state (``C A^i``).

    That is 3 batched products per span instead of C chained ones, for
    ``~(K + 2(2C+2)) `` multiply-adds per sample.
    """
    M = block_matrix(sos, K)  # [..., K+2, K+2]
    lead = M.shape[:-2]
    f64, dev = torch.float64, M.device
    T = M[..., :K, :K]
    G = M[..., :K, K:]  # [j, r]: (A^{K-1-j} B)[r]
    AKt = M[..., K:, K:]  # (A^K)^T
    O1 = M[..., K:, :K]  # [r, i]: (C A^i)[r]
    L = C * K
    pw = [torch.eye(2, dtype=f64, device=dev).expand(*lead, 2, 2)]
    for _ in range(C):
        pw.append(pw[-1] @ AKt)  # ((A^K)^c)^T
    Q = torch.zeros(*lead, 2 + L, 2 * C + 2, dtype=f64, device=dev)
    O = torch.zeros(*lead, 2 * C + 2, L, dtype=f64, device=dev)
    for c in range(C + 1):
        Q[..., :2, 2 * c:2 * c + 2] = pw[c]
        for m in range(c):
            Q[..., 2 + m * K:2 + (m + 1) * K, 2 * c:2 * c + 2] = G @ pw[c - 1 - m]
        if c < C:
            O[..., 2 * c:2 * c + 2, c * K:(c + 1) * K] = O1
    return T, Q, O


def _chunk(frames: int) -> tuple[int, int]:
    """(K, C): chunk length K (16 or 8, else the block) and chunks per span C (<= 8, divides frames/K)."""
    K = frames
    for k in (16, 8):
        if frames % k == 0 and frames >= k:
            K = k
            break
    q = frames // K
    C = max(c for c in range(1, 9) if q % c == 0)
    return K, C


class _StateSpace(Node):
    """Shared kernel of biquad/SOS: per section and span, 5 ops over all nodes and channels
    (copy x in, ``S = [s0, x] @ Q``, ``y = x @ T``, ``y += S @ O``, new state)."""

    inputs = {"in": None}
    outputs = {"out": None}
    sections = 1

    def setup(self) -> None:
        n, c, F = self.n, self.channels, self.frames
        K, C = self.K, self.C = _chunk(F)
        L = self.L = K * C
        S = self.n_sections()
        self.T = [self.zeros(n, K, K) for _ in range(S)]
        self.Q = [self.zeros(n, 2 + L, 2 * C + 2) for _ in range(S)]
        self.O = [self.zeros(n, 2 * C + 2, L) for _ in range(S)]
        self.z = [self.zeros(n, c, 2 + L) for _ in range(S)]  # [s1, s2, x_0 .. x_{L-1}]
        self.sv = self.zeros(n, c, 2 * C + 2)
        for k in range(S):
            self.add_state(f"s{k}", self.z[k][:, :, :2])
        self.tmp = self.zeros(n, c, F) if S > 1 else None
        # views made once (a slice costs about as much as a small op)
        self.z_x = [z[:, :, 2:] for z in self.z]
        self.z_s = [z[:, :, :2] for z in self.z]
        self.sv_end = self.sv[:, :, 2 * C:]
        self._chunks: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        span = L < F
        self.xb = self.zeros(n, c, L) if span else None
        self.yb = self.zeros(n, c, L) if span else None
        self.init_coeffs()

    def set_sos(self, k: int, sos: torch.Tensor) -> None:
        """Load section *k* from coefficients ``[n, 6]`` (float64 math, cast once)."""
        T, Q, O = block_operators(sos, self.K, self.C)
        self.T[k].copy_(T)
        self.Q[k].copy_(Q)
        self.O[k].copy_(O)

    def n_sections(self) -> int:
        return 1

    def init_coeffs(self) -> None:
        raise NotImplementedError

    def _chunked(self, t: torch.Tensor) -> torch.Tensor:
        """``t [n, c, L]`` viewed as ``[n, c*C, K]`` (cached per tensor object)."""
        hit = self._chunks.get(id(t))
        if hit is None or hit[0] is not t:
            hit = self._chunks[id(t)] = (t, t.view(self.n, self.channels * self.C, self.K))
        return hit[1]

    def run_section(self, k: int, x: torch.Tensor, y: torch.Tensor) -> None:
        L = self.L
        z, sv = self.z[k], self.sv
        for s0 in range(0, self.frames, L):
            if self.xb is not None:
                xs, ys = self.xb, self.yb
                xs.copy_(x[:, :, s0:s0 + L])
            else:
                xs, ys = x, y
            self.z_x[k].copy_(xs)
            torch.bmm(z, self.Q[k], out=sv)
            torch.bmm(self._chunked(xs), self.T[k], out=self._chunked(ys))
            ys.baddbmm_(sv, self.O[k])
            self.z_s[k].copy_(self.sv_end)
            if self.yb is not None:
                y[:, :, s0:s0 + L].copy_(ys)

    def process(self, ins, outs, p):
        S = len(self.T)
        x = ins[0]
        for k in range(S):
            dst = outs[0] if (S - 1 - k) % 2 == 0 else self.tmp
            self.run_section(k, x, dst)
            x = dst


@register
class Biquad(_StateSpace):
    """RBJ biquad (lowpass, highpass, bandpass, notch, peak, shelves, allpass)."""

    type_name = "biquad"
    params = {
        "freq": ParamSpec(1000.0, 1.0, 96000.0, 0.01, "Hz", "exp", "cutoff / centre frequency"),
        "q": ParamSpec(0.7071, 0.01, 100.0, 0.01, doc="quality factor"),
        "gain_db": ParamSpec(0.0, -60.0, 60.0, 0.01, "dB", doc="gain of peak/shelf kinds"),
    }
    config = {"kind": "lowpass"}
    doc = ("RBJ biquad filter; `kind` = lowpass|highpass|bandpass|notch|peak|lowshelf|highshelf|allpass. Parameters are "
           "smoothed per sample but coefficients follow them once per block.")

    @classmethod
    def group_key(cls, config):
        return config.get("kind", "lowpass")

    @classmethod
    def validate_config(cls, node, config):
        if config.get("kind", "lowpass") not in KINDS:
            raise GraphError(f"node {node!r} (biquad): kind must be one of {', '.join(KINDS)}, got {config.get('kind')!r}")

    def init_coeffs(self) -> None:
        pi = self.param_init
        self._build(pi[:, 0], pi[:, 1], pi[:, 2])

    def _build(self, f, q, g) -> None:
        sos = rbj(self.configs[0].get("kind", "lowpass"), f.double(), q.double(), g.double(), float(self.sample_rate))
        self.set_sos(0, sos)

    def update(self, p):
        self._build(p[0][:, 0, -1], p[1][:, 0, -1], p[2][:, 0, -1])


@register
class SOS(_StateSpace):
    """Cascade of second-order sections with fixed coefficients (e.g. from scipy.signal)."""

    type_name = "sos"
    config = {"sos": None}
    doc = "Second-order-section cascade; config `sos` = list of [b0, b1, b2, a0, a1, a2] rows (scipy's layout)."

    @classmethod
    def group_key(cls, config):
        return len(config["sos"])

    @classmethod
    def validate_config(cls, node, config):
        s = config.get("sos")
        ok = isinstance(s, (list, tuple)) and len(s) > 0 and all(
            isinstance(r, (list, tuple)) and len(r) == 6 and all(isinstance(v, (int, float)) and math.isfinite(v) for v in r) for r in s)
        if not ok:
            raise GraphError(f"node {node!r} (sos): config 'sos' must be a non-empty list of [b0, b1, b2, a0, a1, a2] rows of finite numbers")
        if any(r[3] == 0 for r in s):
            raise GraphError(f"node {node!r} (sos): a0 must be non-zero in every section")

    def n_sections(self) -> int:
        return len(self.configs[0]["sos"])

    def init_coeffs(self) -> None:
        sos = torch.tensor([c["sos"] for c in self.configs], dtype=torch.float64)  # [n, S, 6]
        for k in range(sos.shape[1]):
            self.set_sos(k, sos[:, k])
