"""Fused Triton path of :func:`ironwave.dsp.iir.sosfilt` for CUDA tensors (many channels).

Three passes over a signal ``[rows, T]`` cut into chunks of ``L`` samples; one
GPU lane per (row, chunk) runs scipy's transposed-direct-form-II recurrence
sample by sample, with a float64 state (float32 or float64 input/output):

1. :func:`_chunk_state_kernel`: every chunk from zero state -> chunk-end state
   ``u_k`` (``2 S`` float64 numbers per chunk; the signal is read once).
2. The chunk states are combined with the existing block-parallel scan
   (:func:`ironwave.dsp.iir._statespace.run_scan`, a few float64 GEMMs on tiny
   data): ``S_{k+1} = A^L S_k + u_k`` with the cascade folded into one state
   space (``A`` is ``2 S x 2 S``), in the Lyapunov basis where ``A`` is a
   contraction (robust for low, high-Q resonances and long cascades).
3. :func:`_chunk_output_kernel`: every chunk again from its true start state,
   writing ``y`` (the signal is read a second time and written once).

Memory traffic: about 3 signal-sized passes (the old scan made ~5 plus
GEMM work). Samples are loaded as tiles ``[BLOCK lanes, 8 samples]`` (each lane's
8 samples are one contiguous 32-byte sector) and split into 8 columns with
``tl.reshape``/``tl.split`` (outputs are re-assembled with ``tl.join``), so
global memory is read and written in whole sectors instead of one 4-byte
gather per lane and sample.

Up to 4 sections run per kernel (the states live in registers); longer cascades
run in groups of 4 sections, each group a full 3-pass run over the previous
group's output (in place).

Only long-stable Triton language features are used (``tl.load``, ``tl.store``,
``tl.program_id``, ``tl.arange``, ``tl.where``, ``tl.reshape``, ``tl.split``,
``tl.join``, loops, ``constexpr`` branches). The kernels also run under the
Triton interpreter (``TRITON_INTERPRET=1``, CPU tensors), which the tests use.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
import triton
import triton.language as tl

from . import _statespace as ssp

MAX_SECTIONS = 4  # sections per kernel launch (register-resident state)
TILE = 8  # samples per tile; hard-wired into _split8/_join8
# Launch defaults, from the H200 sweep of benchmarks/bench_iir.py (1024 ch x 10 s, chunk 1024):
# biquad: (32 lanes, 1 warp) 3.28 ms, (64, 2) 3.63, (128, 4) 3.65; 4 sections: (128, 4) 3.06,
# (64, 2) 3.07, (32, 1) 3.43; the in-thread vector loads (HALVES=True) took 7.8 / 6.9 ms.
# Second sweep (same GPU): biquad (16, 1) 2.66 ms, (32, 1) 3.26, (256, 8) 3.68; 4 sections
# (256, 8) 2.98, (64, 2) 3.06, (16, 1) 3.73.
HALVES = False  # tiles [BLOCK, 8] coalesced across threads (compiler transposes via shared memory)
LAUNCH = {1: (16, 1)}  # sections -> (lanes per program, warps)
LAUNCH_DEFAULT = (64, 2)
TARGET_LANES = 1 << 17  # pick the longest chunk that still gives this many lanes
CHUNKS = (1024, 512, 256, 128, 64)

_CACHE = ssp.PlanCache(32)


def clear_cache() -> None:
    """Forget cached scan plans."""
    _CACHE.clear()


# --------------------------------------------------------------------------- kernels
@triton.jit
def _split8(x8, BLOCK: tl.constexpr):
    """``[BLOCK, 8]`` -> its 8 columns (``[BLOCK]`` each), by reshape + split."""
    x3 = tl.reshape(x8, [BLOCK, 2, 2, 2])  # [r, i4, i2, i1] = x[4 i4 + 2 i2 + i1]
    e, o = tl.split(x3)  # i1 = 0 / 1
    e0, e1 = tl.split(e)  # i2
    o0, o1 = tl.split(o)
    x0, x4 = tl.split(e0)  # i4
    x2, x6 = tl.split(e1)
    x1, x5 = tl.split(o0)
    x3_, x7 = tl.split(o1)
    return x0, x1, x2, x3_, x4, x5, x6, x7


@triton.jit
def _join8(y0, y1, y2, y3, y4, y5, y6, y7, BLOCK: tl.constexpr):
    """Inverse of :func:`_split8`: 8 columns ``[BLOCK]`` -> ``[BLOCK, 8]``."""
    e = tl.join(tl.join(y0, y4), tl.join(y2, y6))  # [r, i4, i2]
    o = tl.join(tl.join(y1, y5), tl.join(y3, y7))
    return tl.reshape(tl.join(e, o), [BLOCK, 8])


@triton.jit
def _split4(x4, BLOCK: tl.constexpr):
    """``[BLOCK, 4]`` -> its 4 columns."""
    x2 = tl.reshape(x4, [BLOCK, 2, 2])  # [r, i2, i1] = x[2 i2 + i1]
    e, o = tl.split(x2)
    x0, x2_ = tl.split(e)
    x1, x3 = tl.split(o)
    return x0, x1, x2_, x3


@triton.jit
def _join4(y0, y1, y2, y3, BLOCK: tl.constexpr):
    """Inverse of :func:`_split4`."""
    return tl.reshape(tl.join(tl.join(y0, y2), tl.join(y1, y3)), [BLOCK, 4])


@triton.jit
def _section(v, z0, z1, b0, b1, b2, a1, a2):
    """One transposed-direct-form-II biquad step (scipy's order of operations)."""
    y = b0 * v + z0
    z0n = b1 * v - a1 * y + z1
    z1n = b2 * v - a2 * y
    return y, z0n, z1n


@triton.jit
def _step(v, valid, a0, b0, a1, b1, a2, b2, a3, b3,
          c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15, c16, c17, c18, c19,
          S: tl.constexpr, FREEZE: tl.constexpr):
    """One sample through the cascade of ``S`` (<= 4) sections; float64 state ``(a_s, b_s)``.

    With ``FREEZE`` the state is kept where ``valid`` is False (past the end of the signal).
    """
    v = v.to(tl.float64)
    y, n_a0, n_b0 = _section(v, a0, b0, c0, c1, c2, c3, c4)
    n_a1, n_b1, n_a2, n_b2, n_a3, n_b3 = a1, b1, a2, b2, a3, b3
    if S > 1:
        y, n_a1, n_b1 = _section(y, a1, b1, c5, c6, c7, c8, c9)
    if S > 2:
        y, n_a2, n_b2 = _section(y, a2, b2, c10, c11, c12, c13, c14)
    if S > 3:
        y, n_a3, n_b3 = _section(y, a3, b3, c15, c16, c17, c18, c19)
    if FREEZE:
        n_a0 = tl.where(valid, n_a0, a0)
        n_b0 = tl.where(valid, n_b0, b0)
        if S > 1:
            n_a1 = tl.where(valid, n_a1, a1)
            n_b1 = tl.where(valid, n_b1, b1)
        if S > 2:
            n_a2 = tl.where(valid, n_a2, a2)
            n_b2 = tl.where(valid, n_b2, b2)
        if S > 3:
            n_a3 = tl.where(valid, n_a3, a3)
            n_b3 = tl.where(valid, n_b3, b3)
    return y, n_a0, n_b0, n_a1, n_b1, n_a2, n_b2, n_a3, n_b3


@triton.jit
def _tile(xa, xh, t0, n_valid, a0, b0, a1, b1, a2, b2, a3, b3,
          c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15, c16, c17, c18, c19,
          S: tl.constexpr, FREEZE: tl.constexpr, HALVES: tl.constexpr, BLOCK: tl.constexpr):
    """Run the 8 samples of the tile at chunk offset ``t0`` -> (outputs (float64), state).

    ``HALVES``: the tile is two ``[BLOCK, 4]`` halves ``xa``, ``xh`` (outputs likewise);
    else ``xa`` is ``[BLOCK, 8]`` (``xh`` unused) and the output comes back as ``[BLOCK, 8]`` twice.
    """
    if HALVES:
        x0, x1, x2, x3 = _split4(xa, BLOCK)
        x4, x5, x6, x7 = _split4(xh, BLOCK)
    else:
        x0, x1, x2, x3, x4, x5, x6, x7 = _split8(xa, BLOCK)
    y0, a0, b0, a1, b1, a2, b2, a3, b3 = _step(
        x0, t0 + 0 < n_valid, a0, b0, a1, b1, a2, b2, a3, b3,
        c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15, c16, c17, c18, c19, S, FREEZE)
    y1, a0, b0, a1, b1, a2, b2, a3, b3 = _step(
        x1, t0 + 1 < n_valid, a0, b0, a1, b1, a2, b2, a3, b3,
        c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15, c16, c17, c18, c19, S, FREEZE)
    y2, a0, b0, a1, b1, a2, b2, a3, b3 = _step(
        x2, t0 + 2 < n_valid, a0, b0, a1, b1, a2, b2, a3, b3,
        c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15, c16, c17, c18, c19, S, FREEZE)
    y3, a0, b0, a1, b1, a2, b2, a3, b3 = _step(
        x3, t0 + 3 < n_valid, a0, b0, a1, b1, a2, b2, a3, b3,
        c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15, c16, c17, c18, c19, S, FREEZE)
    y4, a0, b0, a1, b1, a2, b2, a3, b3 = _step(
        x4, t0 + 4 < n_valid, a0, b0, a1, b1, a2, b2, a3, b3,
        c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15, c16, c17, c18, c19, S, FREEZE)
    y5, a0, b0, a1, b1, a2, b2, a3, b3 = _step(
        x5, t0 + 5 < n_valid, a0, b0, a1, b1, a2, b2, a3, b3,
        c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15, c16, c17, c18, c19, S, FREEZE)
    y6, a0, b0, a1, b1, a2, b2, a3, b3 = _step(
        x6, t0 + 6 < n_valid, a0, b0, a1, b1, a2, b2, a3, b3,
        c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15, c16, c17, c18, c19, S, FREEZE)
    y7, a0, b0, a1, b1, a2, b2, a3, b3 = _step(
        x7, t0 + 7 < n_valid, a0, b0, a1, b1, a2, b2, a3, b3,
        c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15, c16, c17, c18, c19, S, FREEZE)
    if HALVES:
        ya = _join4(y0, y1, y2, y3, BLOCK)
        yh = _join4(y4, y5, y6, y7, BLOCK)
    else:
        ya = _join8(y0, y1, y2, y3, y4, y5, y6, y7, BLOCK)
        yh = ya
    return ya, yh, a0, b0, a1, b1, a2, b2, a3, b3


@triton.jit
def _tile_mask(t0, cols, lane_ok, n_valid, EVEN: tl.constexpr):
    """Mask of the tile at chunk offset *t0*: lanes in range and samples inside the signal."""
    if EVEN:  # T % 8 == 0: a tile is all in or all out (mask constant along the tile: vector loads)
        m = (lane_ok & (t0 < n_valid))[:, None]
    else:
        m = lane_ok[:, None] & ((t0 + cols)[None, :] < n_valid[:, None])
    return m


@triton.jit
def _load_cols(xb, t0, cols, lane_ok, n_valid, L: tl.constexpr, EVEN: tl.constexpr):
    """Samples ``[BLOCK, len(cols)]`` at chunk offset *t0* (zeros past the chunk or the signal)."""
    m = _tile_mask(t0, cols, lane_ok & (t0 < L), n_valid, EVEN)
    return tl.load(xb[:, None] + (t0 + cols)[None, :], mask=m, other=0.0)


@triton.jit
def _load_tile(xb, t0, lane_ok, n_valid, L: tl.constexpr, EVEN: tl.constexpr, HALVES: tl.constexpr):
    """The tile of 8 samples at chunk offset *t0*: two ``[BLOCK, 4]`` halves, or ``[BLOCK, 8]`` twice."""
    if HALVES:
        c4 = tl.arange(0, 4)
        xa = _load_cols(xb, t0, c4, lane_ok, n_valid, L, EVEN)
        xh = _load_cols(xb, t0 + 4, c4, lane_ok, n_valid, L, EVEN)
    else:
        xa = _load_cols(xb, t0, tl.arange(0, 8), lane_ok, n_valid, L, EVEN)
        xh = xa
    return xa, xh


@triton.jit
def _store_tile(yb, t0, ya, yh, lane_ok, n_valid, EVEN: tl.constexpr, HALVES: tl.constexpr):
    """Store a tile's outputs (see :func:`_tile`) at chunk offset *t0*."""
    if HALVES:
        c4 = tl.arange(0, 4)
        tl.store(yb[:, None] + (t0 + c4)[None, :], ya.to(yb.dtype.element_ty),
                 mask=_tile_mask(t0, c4, lane_ok, n_valid, EVEN))
        tl.store(yb[:, None] + (t0 + 4 + c4)[None, :], yh.to(yb.dtype.element_ty),
                 mask=_tile_mask(t0 + 4, c4, lane_ok, n_valid, EVEN))
    else:
        c8 = tl.arange(0, 8)
        tl.store(yb[:, None] + (t0 + c8)[None, :], ya.to(yb.dtype.element_ty),
                 mask=_tile_mask(t0, c8, lane_ok, n_valid, EVEN))


@triton.jit
def _lanes(n_lanes, K, T, coef_ptr, L: tl.constexpr, PER_ROW: tl.constexpr, BLOCK: tl.constexpr):
    """Lane bookkeeping: lane q = row * K + chunk."""
    q = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    lane_ok = q < n_lanes
    q = tl.where(lane_ok, q, 0)
    r = q // K
    start = (q - r * K) * L
    n_valid = T - start  # samples of this chunk inside the signal (>= L except for the last chunk)
    r64 = r.to(tl.int64)
    if PER_ROW:
        cp = coef_ptr + r64 * 20
    else:
        cp = coef_ptr
    return q, lane_ok, n_valid, r64, start, cp


@triton.jit
def _chunk_state_kernel(x_ptr, coef_ptr, u_ptr, T, K, n_lanes, stride_x,
                        L: tl.constexpr, S: tl.constexpr, PER_ROW: tl.constexpr, EVEN: tl.constexpr,
                        HALVES: tl.constexpr, BLOCK: tl.constexpr):
    """Pass 1: end state (float64 ``[n_lanes, 2 S]``) of every chunk run from zero state."""
    q, lane_ok, n_valid, r64, start, cp = _lanes(n_lanes, K, T, coef_ptr, L, PER_ROW, BLOCK)
    c0 = tl.load(cp + 0)
    c1 = tl.load(cp + 1)
    c2 = tl.load(cp + 2)
    c3 = tl.load(cp + 3)
    c4 = tl.load(cp + 4)
    c5 = tl.load(cp + 5)
    c6 = tl.load(cp + 6)
    c7 = tl.load(cp + 7)
    c8 = tl.load(cp + 8)
    c9 = tl.load(cp + 9)
    c10 = tl.load(cp + 10)
    c11 = tl.load(cp + 11)
    c12 = tl.load(cp + 12)
    c13 = tl.load(cp + 13)
    c14 = tl.load(cp + 14)
    c15 = tl.load(cp + 15)
    c16 = tl.load(cp + 16)
    c17 = tl.load(cp + 17)
    c18 = tl.load(cp + 18)
    c19 = tl.load(cp + 19)
    a0 = tl.zeros([BLOCK], dtype=tl.float64)
    b0 = tl.zeros([BLOCK], dtype=tl.float64)
    a1 = tl.zeros([BLOCK], dtype=tl.float64)
    b1 = tl.zeros([BLOCK], dtype=tl.float64)
    a2 = tl.zeros([BLOCK], dtype=tl.float64)
    b2 = tl.zeros([BLOCK], dtype=tl.float64)
    a3 = tl.zeros([BLOCK], dtype=tl.float64)
    b3 = tl.zeros([BLOCK], dtype=tl.float64)
    xb = x_ptr + (r64 * stride_x + start)
    xa_next, xh_next = _load_tile(xb, 0, lane_ok, n_valid, L, EVEN, HALVES)
    for t0 in range(0, L, 8):
        xa = xa_next
        xh = xh_next
        # prefetch the next tile (more bytes in flight per thread)
        xa_next, xh_next = _load_tile(xb, t0 + 8, lane_ok, n_valid, L, EVEN, HALVES)
        ya, yh, a0, b0, a1, b1, a2, b2, a3, b3 = _tile(
            xa, xh, t0, n_valid, a0, b0, a1, b1, a2, b2, a3, b3,
            c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15, c16, c17, c18, c19, S, False, HALVES, BLOCK)
    up = u_ptr + q.to(tl.int64) * (2 * S)
    tl.store(up + 0, a0, mask=lane_ok)
    tl.store(up + 1, b0, mask=lane_ok)
    if S > 1:
        tl.store(up + 2, a1, mask=lane_ok)
        tl.store(up + 3, b1, mask=lane_ok)
    if S > 2:
        tl.store(up + 4, a2, mask=lane_ok)
        tl.store(up + 5, b2, mask=lane_ok)
    if S > 3:
        tl.store(up + 6, a3, mask=lane_ok)
        tl.store(up + 7, b3, mask=lane_ok)


@triton.jit
def _chunk_output_kernel(x_ptr, coef_ptr, s_ptr, y_ptr, zf_ptr, T, K, n_lanes, stride_x, stride_y,
                         L: tl.constexpr, S: tl.constexpr, PER_ROW: tl.constexpr, EVEN: tl.constexpr,
                         FREEZE: tl.constexpr, WRITE_ZF: tl.constexpr, HALVES: tl.constexpr,
                         BLOCK: tl.constexpr):
    """Pass 3: every chunk from its start state (float64 ``[n_lanes, 2 S]``) -> ``y``; with
    ``WRITE_ZF`` the last chunk of every row also writes the final state (float64 ``[rows, 2 S]``;
    ``FREEZE`` stops the state at the end of the signal when the last chunk is partial)."""
    q, lane_ok, n_valid, r64, start, cp = _lanes(n_lanes, K, T, coef_ptr, L, PER_ROW, BLOCK)
    c0 = tl.load(cp + 0)
    c1 = tl.load(cp + 1)
    c2 = tl.load(cp + 2)
    c3 = tl.load(cp + 3)
    c4 = tl.load(cp + 4)
    c5 = tl.load(cp + 5)
    c6 = tl.load(cp + 6)
    c7 = tl.load(cp + 7)
    c8 = tl.load(cp + 8)
    c9 = tl.load(cp + 9)
    c10 = tl.load(cp + 10)
    c11 = tl.load(cp + 11)
    c12 = tl.load(cp + 12)
    c13 = tl.load(cp + 13)
    c14 = tl.load(cp + 14)
    c15 = tl.load(cp + 15)
    c16 = tl.load(cp + 16)
    c17 = tl.load(cp + 17)
    c18 = tl.load(cp + 18)
    c19 = tl.load(cp + 19)
    a0 = tl.zeros([BLOCK], dtype=tl.float64)
    b0 = tl.zeros([BLOCK], dtype=tl.float64)
    a1 = tl.zeros([BLOCK], dtype=tl.float64)
    b1 = tl.zeros([BLOCK], dtype=tl.float64)
    a2 = tl.zeros([BLOCK], dtype=tl.float64)
    b2 = tl.zeros([BLOCK], dtype=tl.float64)
    a3 = tl.zeros([BLOCK], dtype=tl.float64)
    b3 = tl.zeros([BLOCK], dtype=tl.float64)
    sp = s_ptr + q.to(tl.int64) * (2 * S)
    a0 = tl.load(sp + 0, mask=lane_ok, other=0.0)
    b0 = tl.load(sp + 1, mask=lane_ok, other=0.0)
    if S > 1:
        a1 = tl.load(sp + 2, mask=lane_ok, other=0.0)
        b1 = tl.load(sp + 3, mask=lane_ok, other=0.0)
    if S > 2:
        a2 = tl.load(sp + 4, mask=lane_ok, other=0.0)
        b2 = tl.load(sp + 5, mask=lane_ok, other=0.0)
    if S > 3:
        a3 = tl.load(sp + 6, mask=lane_ok, other=0.0)
        b3 = tl.load(sp + 7, mask=lane_ok, other=0.0)
    xb = x_ptr + (r64 * stride_x + start)
    yb = y_ptr + (r64 * stride_y + start)
    xa_next, xh_next = _load_tile(xb, 0, lane_ok, n_valid, L, EVEN, HALVES)
    for t0 in range(0, L, 8):
        xa = xa_next
        xh = xh_next
        xa_next, xh_next = _load_tile(xb, t0 + 8, lane_ok, n_valid, L, EVEN, HALVES)
        ya, yh, a0, b0, a1, b1, a2, b2, a3, b3 = _tile(
            xa, xh, t0, n_valid, a0, b0, a1, b1, a2, b2, a3, b3,
            c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15, c16, c17, c18, c19, S, FREEZE, HALVES, BLOCK)
        _store_tile(yb, t0, ya, yh, lane_ok, n_valid, EVEN, HALVES)
    if WRITE_ZF:
        lane_ok = lane_ok & (n_valid <= L)  # the last chunk of its row
        up = zf_ptr + r64 * (2 * S)
        tl.store(up + 0, a0, mask=lane_ok)
        tl.store(up + 1, b0, mask=lane_ok)
        if S > 1:
            tl.store(up + 2, a1, mask=lane_ok)
            tl.store(up + 3, b1, mask=lane_ok)
        if S > 2:
            tl.store(up + 4, a2, mask=lane_ok)
            tl.store(up + 5, b2, mask=lane_ok)
        if S > 3:
            tl.store(up + 6, a3, mask=lane_ok)
            tl.store(up + 7, b3, mask=lane_ok)


# --------------------------------------------------------------------------- driver
def pick_chunk(rows: int, T: int) -> int:
    """Chunk length (samples): the longest of 1024..64 that still gives >= 2^17 (row, chunk) lanes."""
    for L in CHUNKS:
        if rows * -(-T // L) >= TARGET_LANES:
            return L
    return CHUNKS[-1]


def _coef_array(sub: np.ndarray) -> np.ndarray:
    """``[..., S, 6]`` normalised SOS -> ``[..., 20]`` float64 (b0 b1 b2 a1 a2 per section, padded
    with identity sections to 4)."""
    S = sub.shape[-2]
    pad = np.zeros((*sub.shape[:-2], MAX_SECTIONS - S, 6))
    pad[..., 0] = 1.0
    pad[..., 3] = 1.0
    full = np.concatenate([sub, pad], -2)
    return np.ascontiguousarray(full[..., [0, 1, 2, 4, 5]].reshape(*sub.shape[:-2], 5 * MAX_SECTIONS))


def _plan(sub: np.ndarray, L: int, K: int, device: torch.device) -> tuple:
    """(coef [..., 20], scan levels, Rt, Rit) for one group of <= 4 sections (float64, on *device*)."""
    key = (sub.tobytes(), sub.shape, L, K, str(device))
    hit = _CACHE.get(key)
    if hit is not None:
        return hit
    s = torch.from_numpy(np.ascontiguousarray(sub))
    A, _, _, _ = ssp.sos_to_ss(s)
    R, Ri = ssp.lyapunov_basis(A)
    Ab = R @ A @ Ri
    M = torch.linalg.matrix_power(Ab, L).transpose(-1, -2)  # row convention: S_{k+1} = S_k M + u_k
    levels = ssp.scan_levels(M, K)
    hit = (torch.from_numpy(_coef_array(sub)).to(device),
           [lv.to(torch.float64, device) for lv in levels],
           R.transpose(-1, -2).contiguous().to(device), Ri.transpose(-1, -2).contiguous().to(device))
    _CACHE.put(key, hit)
    return hit


def sosfilt_triton(sos64: np.ndarray, x: torch.Tensor, zi: torch.Tensor | None, bshape: tuple[int, ...],
                   chunk: int | None = None, *, block: int | None = None, num_warps: int | None = None,
                   halves: bool | None = None, on_nonfinite: Callable[[], None] | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Filter ``x [..., T]`` (float32/float64, CUDA; or CPU under ``TRITON_INTERPRET=1``).

    Args:
        sos64: normalised float64 SOS ``[..., S, 6]`` (checked stable); leading dims
            broadcast against ``bshape``.
        x: signal ``[..., T]`` whose leading dims broadcast to ``bshape``.
        zi: ``None`` or float64 initial state ``[*bshape, S, 2]`` (scipy TDF-II), on x's device.
        bshape: the broadcast batch shape.
        chunk: chunk length in samples (a multiple of 8); default :func:`pick_chunk`.
        block, num_warps, halves: launch configuration (lanes per program, warps per
            program, tile loading; defaults :data:`LAUNCH` per number of sections, :data:`HALVES`).
            ``halves=True`` loads each lane's 8 samples as two 16-byte vectors that stay in
            the thread (no shared memory); ``False`` loads ``[BLOCK, 8]`` tiles coalesced
            across threads and lets the compiler transpose them through shared memory.
        on_nonfinite: called (to raise) when a chunk-end state of pass 1 is not finite:
            a NaN/Inf sample always leaves a non-finite state behind (IEEE arithmetic
            of the recurrence never turns NaN/Inf back into a finite number), so the
            caller's NaN/Inf check of the input costs no extra pass over the signal
            (one host sync on the tiny state array). Finite values so large that the
            state overflows also trigger it; the callback then checks the input exactly.

    Returns:
        ``(y [*bshape, T] in x's dtype, zf [*bshape, S, 2] float64 or None)``.
    """
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"triton sosfilt needs float32/float64, got {x.dtype}")
    dev = x.device
    T = x.shape[-1]
    rows = math.prod(bshape)
    xr = x.expand(*bshape, T).reshape(rows, T)
    if xr.stride(-1) != 1:
        xr = xr.contiguous()
    L = chunk or pick_chunk(rows, T)
    if L % TILE:
        raise ValueError(f"chunk must be a multiple of {TILE}, got {L}")
    K = -(-T // L)
    n_lanes = rows * K
    halves = HALVES if halves is None else bool(halves)
    even = T % TILE == 0
    freeze = zi is not None and T % L != 0  # exact zf: the last chunk's state stops at T (pass 3)
    cb = sos64.shape[:-2]
    per_row = math.prod(cb) > 1
    S_all = sos64.shape[-2]
    y = None
    zfs = []
    for g0 in range(0, S_all, MAX_SECTIONS):
        g = slice(g0, min(g0 + MAX_SECTIONS, S_all))
        Sg = g.stop - g.start
        N = 2 * Sg
        blk, nw = LAUNCH.get(Sg, LAUNCH_DEFAULT)
        blk, nw = block or blk, num_warps or nw
        grid = (triton.cdiv(n_lanes, blk),)
        sub = sos64[..., g, :] if per_row else sos64[..., g, :].reshape(Sg, 6)
        coef, levels, Rt, Rit = _plan(sub, L, K, dev)
        if per_row:
            coef = coef.expand(*bshape, 5 * MAX_SECTIONS).reshape(rows, 5 * MAX_SECTIONS).contiguous()
        src = xr if y is None else y
        if y is None:
            y = torch.empty(rows, T, dtype=x.dtype, device=dev)
        U = torch.empty(rows, K, N, dtype=torch.float64, device=dev)
        _chunk_state_kernel[grid](src, coef, U, T, K, n_lanes, src.stride(0), L=L, S=Sg, PER_ROW=per_row,
                                  EVEN=even, HALVES=halves, BLOCK=blk, num_warps=nw)
        if on_nonfinite is not None and g0 == 0 and not bool(torch.isfinite(U).all()):
            on_nonfinite()
        # pass 2: carried chunk states (float64 scan, Lyapunov basis)
        Ub = U.reshape(*bshape, K, N) @ Rt
        if zi is not None:
            s0 = (zi[..., g, :].reshape(*bshape, 1, N) @ Rt).squeeze(-2)
        else:
            s0 = torch.zeros(*bshape, N, dtype=torch.float64, device=dev)
        Sall = ssp.run_scan(Ub, s0, levels) @ Rit  # [*bshape, K + 1, N], TDF-II coordinates
        starts = Sall[..., :K, :].contiguous()
        zf = torch.empty(rows, N, dtype=torch.float64, device=dev) if zi is not None else starts
        _chunk_output_kernel[grid](src, coef, starts, y, zf, T, K, n_lanes, src.stride(0), y.stride(0), L=L, S=Sg,
                                   PER_ROW=per_row, EVEN=even, FREEZE=freeze, WRITE_ZF=zi is not None,
                                   HALVES=halves, BLOCK=blk, num_warps=nw)
        if zi is not None:
            zfs.append(zf.reshape(*bshape, Sg, 2))
    assert y is not None
    zf = torch.cat(zfs, -2) if zi is not None else None
    return y.reshape(*bshape, T), zf
