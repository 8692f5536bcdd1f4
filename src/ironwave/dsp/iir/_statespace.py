"""Block-parallel state-space evaluation of SOS cascades (the torch/GPU path).

A cascade of ``S`` biquads in scipy's transposed direct form II is one linear
system with ``N = 2 S`` states (row-vector convention, state ``s`` shaped ``[N]``)::

    y[n]   = C s[n] + D x[n]
    s[n+1] = A s[n] + B x[n]

with the per-section state ``(z0, z1)`` exactly scipy's ``zi`` layout, so ``zi``
and ``zf`` are interchangeable with :func:`scipy.signal.sosfilt`. Internally the
state is kept in a basis where ``A`` is a contraction (:func:`lyapunov_basis`),
which keeps float32 results within ~1e-6 of float64 even for a 20 Hz, Q = 10
resonance at 48 kHz; ``zi``/``zf`` are converted at the edges.

Time is split into chunks of ``L`` samples. For chunk ``k`` with start state ``S_k``:

* zero-state output: ``x_k @ T`` with ``T[j, i] = h[i - j]`` (lower-triangular
  Toeplitz of the first ``L`` impulse-response samples; exact),
* chunk-end state from zero state: ``u_k = x_k @ G`` with ``G[j] = (A^{L-1-j} B)^T``,
* carried states: ``S_{k+1} = S_k @ M + u_k`` with ``M = (A^L)^T``, a linear
  recurrence over chunks solved by the same blocking one level up (blocks of
  ``L2`` chunks: one matmul per level, ``log_{L2}(n_chunks)`` levels),
* state contribution: ``S_k @ H`` with ``H[:, i] = (C A^i)^T``.

``x @ [T | G]`` is one GEMM, the state contribution a second one: everything is
batched matmuls (fast on a GPU, exact up to float rounding). All matrices are
built in float64 (powers of ``A`` by repeated doubling) and cast to the signal's
dtype. Everything is differentiable (autograd) in the signal and the coefficients.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

DEFAULT_CHUNK = 32
SCAN_BLOCK = 16
MAX_FOLD = 8  # sections folded into one state space (N = 16 states); longer cascades run group by group


def sos_to_ss(sos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fold a normalised SOS cascade ``[..., S, 6]`` into one state space.

    Returns ``(A [..., N, N], B [..., N], C [..., N], D [...])`` with ``N = 2 S``
    (column-vector convention), states ordered ``z0, z1`` of section 0, then 1, ...
    """
    b0, b1, b2 = sos[..., 0], sos[..., 1], sos[..., 2]
    a1, a2 = sos[..., 4], sos[..., 5]
    one = torch.ones_like(a1)
    zero = torch.zeros_like(a1)
    # per section: A_i = [[-a1, 1], [-a2, 0]], B_i = [b1 - a1 b0, b2 - a2 b0], C_i = [1, 0], D_i = b0
    Ai = torch.stack([torch.stack([-a1, one], -1), torch.stack([-a2, zero], -1)], -2)  # [..., S, 2, 2]
    Bi = torch.stack([b1 - a1 * b0, b2 - a2 * b0], -1)  # [..., S, 2]
    Ci = torch.stack([one, zero], -1)  # [..., S, 2]
    S = sos.shape[-2]
    A, B, C, D = Ai[..., 0, :, :], Bi[..., 0, :], Ci[..., 0, :], b0[..., 0]
    for i in range(1, S):
        n = A.shape[-1]
        top = torch.cat([A, torch.zeros(*A.shape[:-2], n, 2, dtype=A.dtype, device=A.device)], -1)
        bot = torch.cat([Bi[..., i, :, None] * C[..., None, :], Ai[..., i, :, :]], -1)
        A = torch.cat([top, bot], -2)
        B = torch.cat([B, Bi[..., i, :] * D[..., None]], -1)
        C = torch.cat([b0[..., i, None] * C, Ci[..., i, :]], -1)
        D = b0[..., i] * D
    return A, B, C, D


def matrix_powers(A: torch.Tensor, n: int) -> torch.Tensor:
    """``[A^0, A^1, ..., A^n]`` stacked as ``[..., n+1, N, N]`` (log2(n) batched matmuls)."""
    eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device).expand(A.shape)
    P = torch.stack([eye, A], dim=-3)
    while P.shape[-3] < n + 1:
        m = P.shape[-3]
        Am = P[..., -1, :, :] @ A  # A^m
        P = torch.cat([P, P @ Am.unsqueeze(-3)], dim=-3)  # powers 0 .. 2m-1
    return P[..., : n + 1, :, :]


@dataclass
class ChunkMats:
    """Row-convention matrices of one chunk length ``L``.

    ``W``: ``[..., L, L + N]`` = ``[T | G]``; ``H``: ``[..., N, L]``;
    ``Mpow``: ``[..., L + 1, N, N]`` with ``Mpow[r] = (A^r)^T``.
    """

    W: torch.Tensor
    H: torch.Tensor
    Mpow: torch.Tensor
    L: int
    N: int

    def to(self, dtype: torch.dtype, device: torch.device) -> "ChunkMats":
        return ChunkMats(self.W.to(device, dtype), self.H.to(device, dtype), self.Mpow.to(device, dtype), self.L, self.N)


def lyapunov_basis(A: torch.Tensor, max_iter: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """A state basis in which ``A`` is a contraction, for float32-robust evaluation.

    Solves ``X = I + A^T X A`` (``X = sum_k (A^k)^T A^k``) by squared Smith
    iteration (a sum of positive semi-definite terms: numerically stable even
    for poles at radius 0.9999), factors ``X = R^T R`` and returns ``(R, R^-1)``.
    In the new coordinates ``s' = R s`` the matrix ``R A R^-1`` has 2-norm < 1,
    so its powers and the chunk recurrence stay well conditioned in float32
    (the transposed-direct-form basis of a low, high-Q resonance is not: entries
    ~30 with eigenvalues ~0.98 lose 3-4 digits).
    """
    N = A.shape[-1]
    X = torch.eye(N, dtype=A.dtype, device=A.device).expand(A.shape).clone()
    Am = A
    for _ in range(max_iter):
        X = X + Am.transpose(-1, -2) @ X @ Am
        Am = Am @ Am
        if float(Am.detach().abs().max()) < 1e-30:
            break
    X = (X + X.transpose(-1, -2)) / 2
    R = torch.linalg.cholesky(X).transpose(-1, -2)
    return R, torch.linalg.inv(R)


def chunk_mats(sos: torch.Tensor, L: int, basis: bool = True) -> tuple[ChunkMats, torch.Tensor, torch.Tensor]:
    """Chunk matrices of a normalised float64 SOS ``[..., S, 6]`` for chunk length *L*.

    Returns ``(mats, Rt, Rit)``: row-convention maps between scipy's TDF-II
    state ``zi`` (flattened ``[..., 2S]``) and the internal state:
    ``s_internal = zi @ Rt``, ``zi = s_internal @ Rit``.
    """
    A, B, C, D = sos_to_ss(sos)
    N = A.shape[-1]
    if basis:
        R, Ri = lyapunov_basis(A)
        A = R @ A @ Ri
        B = (R @ B[..., :, None]).squeeze(-1)
        C = (C[..., None, :] @ Ri).squeeze(-2)
    else:
        R = Ri = torch.eye(N, dtype=A.dtype, device=A.device).expand(A.shape)
    P = matrix_powers(A, L)  # [..., L+1, N, N]
    CA = (C[..., None, None, :] @ P).squeeze(-2)  # [..., L+1, N]: C A^k
    AB = (P @ B[..., None, :, None]).squeeze(-1)  # [..., L+1, N]: A^k B
    h = torch.cat([D[..., None], (CA[..., : L - 1, :] * B[..., None, :]).sum(-1)], -1)  # [..., L]
    i = torch.arange(L, device=sos.device)
    idx = i[None, :] - i[:, None]  # [j, i] -> i - j
    T = torch.where(idx >= 0, h[..., idx.clamp(min=0)], torch.zeros((), dtype=h.dtype, device=h.device))
    G = AB[..., :L, :].flip(-2)  # G[j] = A^{L-1-j} B
    W = torch.cat([T, G], -1)
    H = CA[..., :L, :].transpose(-1, -2)
    return ChunkMats(W, H, P.transpose(-1, -2), L, N), R.transpose(-1, -2), Ri.transpose(-1, -2)


@dataclass
class ScanLevel:
    """Matrices of one level of the chunk-state recurrence ``S_{k+1} = S_k @ M + u_k``.

    ``Wex``: ``[..., L2 N, (L2 + 1) N]`` (exclusive in-block prefix states incl. block end);
    ``Q``: ``[..., N, L2 N]`` (``[M^0 | ... | M^{L2-1}]``); ``ML2``: ``M^{L2}``.
    """

    Wex: torch.Tensor
    Q: torch.Tensor
    ML2: torch.Tensor
    L2: int

    def to(self, dtype: torch.dtype, device: torch.device) -> "ScanLevel":
        return ScanLevel(self.Wex.to(device, dtype), self.Q.to(device, dtype), self.ML2.to(device, dtype), self.L2)


def scan_levels(M: torch.Tensor, K: int, block: int = SCAN_BLOCK) -> list[ScanLevel]:
    """Scan matrices for *K* chunks with row-convention chunk matrix *M* ``[..., N, N]`` (float64)."""
    levels: list[ScanLevel] = []
    N = M.shape[-1]
    batch = M.shape[:-2]
    while True:
        L2 = max(1, min(block, K))
        Pw = matrix_powers(M, L2)  # [..., L2+1, N, N]
        m = torch.arange(L2, device=M.device)
        j = torch.arange(L2 + 1, device=M.device)
        p = j[None, :] - 1 - m[:, None]  # [L2, L2+1]
        blocks = torch.where((p >= 0)[:, :, None, None], Pw[..., p.clamp(min=0), :, :],
                             torch.zeros((), dtype=M.dtype, device=M.device))  # [..., L2, L2+1, N, N]
        Wex = blocks.transpose(-3, -2).reshape(*batch, L2 * N, (L2 + 1) * N)
        Q = Pw[..., :L2, :, :].transpose(-3, -2).reshape(*batch, N, L2 * N)
        ML2 = Pw[..., L2, :, :]
        levels.append(ScanLevel(Wex, Q, ML2, L2))
        K1 = -(-K // L2)
        if K1 == 1:
            return levels
        M, K = ML2, K1


def run_scan(U: torch.Tensor, s0: torch.Tensor, levels: list[ScanLevel], i: int = 0) -> torch.Tensor:
    """Solve ``S_{k+1} = S_k @ M + U_k`` with ``S_0 = s0``.

    Args:
        U: ``[..., K, N]``; s0: ``[..., N]``.

    Returns:
        ``[..., K + 1, N]``: the start state of every chunk, then the final state.
    """
    lv = levels[i]
    L2 = lv.L2
    K, N = U.shape[-2], U.shape[-1]
    K1 = -(-K // L2)
    pad = K1 * L2 - K
    if pad:
        U = F.pad(U, (0, 0, 0, pad))
    Sl = U.reshape(*U.shape[:-2], K1, L2 * N) @ lv.Wex  # [..., K1, (L2+1) N]
    E = Sl[..., L2 * N:]
    if K1 == 1:
        Sb = s0.unsqueeze(-2)
        last = (s0.unsqueeze(-2) @ lv.ML2).squeeze(-2) + E[..., 0, :]
    else:
        Sall = run_scan(E, s0, levels, i + 1)
        Sb, last = Sall[..., :K1, :], Sall[..., K1, :]
    S = (Sl[..., : L2 * N] + Sb @ lv.Q).reshape(*Sl.shape[:-2], K1 * L2, N)
    if pad:
        return S[..., : K + 1, :]
    return torch.cat([S, last.unsqueeze(-2)], -2)


def apply(x: torch.Tensor, mats: ChunkMats, levels: list[ScanLevel], s0: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Filter *x* ``[..., T]`` with chunk matrices already in x's dtype/device.

    Coefficient batch dims of the matrices broadcast against ``x.shape[:-1]``.

    Returns:
        ``(y [..., T], zf [..., N])``.
    """
    L, N = mats.L, mats.N
    T = x.shape[-1]
    K = -(-T // L)
    r = T - (K - 1) * L  # length of the last (maybe partial) chunk
    xp = F.pad(x, (0, K * L - T)) if r != L else x
    X = xp.reshape(*x.shape[:-1], K, L)
    bshape = torch.broadcast_shapes(x.shape[:-1], mats.W.shape[:-2], s0.shape[:-1] if s0 is not None else ())
    if mats.W.dim() == 2 and tuple(x.shape[:-1]) == tuple(bshape):
        # shared coefficients: 2-D GEMMs over all rows; the state term is added in place
        # (X @ T and X @ G, the scan, then Y += S @ H: ~5 passes over the signal)
        X2 = X.reshape(-1, L)
        Y2 = X2 @ mats.W[:, :L]
        U = (X2 @ mats.W[:, L:]).reshape(*bshape, K, N)
        s0 = torch.zeros(*bshape, N, dtype=x.dtype, device=x.device) if s0 is None else s0
        S = run_scan(U, s0, levels)
        Y2.addmm_(S[..., :K, :].reshape(-1, N), mats.H)
        Y = Y2.reshape(*bshape, K, L)
    else:
        Y, S = _apply_general(X, mats, levels, s0, bshape)
    y = Y.reshape(*Y.shape[:-2], K * L)
    if r != L:
        y = y[..., :T]
        # state after T samples: from the start state of the last chunk over r samples
        xl = X[..., K - 1, :r].unsqueeze(-2)
        G_r = mats.W[..., L - r:, L:]
        zf = (S[..., K - 1, :].unsqueeze(-2) @ mats.Mpow[..., r, :, :] + xl @ G_r).squeeze(-2)
    else:
        zf = S[..., K, :]
    return y, zf


def _apply_general(X: torch.Tensor, mats: ChunkMats, levels: list[ScanLevel], s0: torch.Tensor | None,
                   bshape: Any) -> tuple[torch.Tensor, torch.Tensor]:
    L, N = mats.L, mats.N
    K = X.shape[-2]
    x = X
    Z = X @ mats.W  # [..., K, L + N]
    Y0, U = Z[..., :L], Z[..., L:]
    if s0 is None:
        s0 = torch.zeros(*bshape, N, dtype=x.dtype, device=x.device)
    else:
        s0 = s0.expand(*bshape, N)
    if tuple(U.shape[:-2]) != tuple(bshape):
        U = U.expand(*bshape, *U.shape[-2:])
        Y0 = Y0.expand(*bshape, *Y0.shape[-2:])
    S = run_scan(U, s0, levels)  # [..., K+1, N]
    Y = Y0 + S[..., :K, :] @ mats.H
    return Y, S


class PlanCache:
    """Small LRU of chunk/scan matrices keyed by coefficient bytes, chunk, length, dtype, device."""

    def __init__(self, capacity: int = 32) -> None:
        self.capacity = capacity
        self._d: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key: Any) -> Any:
        v = self._d.get(key)
        if v is not None:
            self._d.move_to_end(key)
        return v

    def put(self, key: Any, value: Any) -> None:
        self._d[key] = value
        self._d.move_to_end(key)
        while len(self._d) > self.capacity:
            self._d.popitem(last=False)

    def clear(self) -> None:
        self._d.clear()


def default_chunk(n_states: int) -> int:
    """Chunk length used by the functional path: 32 samples for up to 8 states, 64 above."""
    return DEFAULT_CHUNK if n_states <= 8 else 2 * DEFAULT_CHUNK


def n_levels(K: int, block: int = SCAN_BLOCK) -> int:
    return max(1, math.ceil(math.log(max(K, 2), block)))
