"""Triton path of :func:`ironwave.dsp.resample.resample` for CUDA float32 signals.

The polyphase resampler is a matrix product per block of input hops. Output
phase ``r`` of hop ``q`` (output sample ``q * L + r``) is
``sum_t x[q * M + base_r + t - left_pad] * h[r, t]`` (see
:mod:`ironwave.dsp.resample`). One Triton program computes, for one signal row,
``BQ`` consecutive hops: for each group ``g`` of ``BN`` consecutive phases

    out[BQ, BN] = Xwin[BQ, KP] @ W_g[KP, BN]

where row ``i`` of ``Xwin`` is the input window ``x[(q0 + i) * M + b0_g + k]``,
``k < KP`` (overlapping windows loaded with 2-D pointer arithmetic: coalesced
along ``k``, the overlap served from L1/L2), and ``W_g`` is the group's slice of
the polyphase filter bank laid out so that phase ``r`` puts ``h[r, t]`` at row
``base_r - b0_g + t`` (zero elsewhere; zero columns of the whole group trimmed,
``KP`` = the widest group rounded up to ``BK``). The left zero padding and the
right zero extension are load masks (no padded copy of the input; tiles whose
windows all lie inside the signal, i.e. all but a row's first and last, load
without masks); outputs are
stored straight into the ``[rows, ceil(n L / M)]`` result (no slicing copy).

Ratios with few phases (``L < BN``: 2:1, 1:3, 16k -> 48k, ...) are computed on
*super-hops* of ``U`` hops (``L' = U L`` phases, ``M' = U M`` input samples), so
the ``BN`` columns of a tile are not mostly padding.

The product runs on tensor cores with ``tl.dot``. The default precision follows torch's
float32 matmul setting (:func:`default_precision`): ``"tf32x3"`` (3 TF32 products with a
hi/lo split of both operands: about float32 accuracy) under ``"highest"`` (torch's
default), ``"tf32"`` (one TF32 product, ~1e-3 relative) under ``"high"``/``"medium"``.
``"ieee"`` (float32 FMA) and ``"bf16x6"`` (6 bf16 products of a 3-way split, ~float32
accuracy; newer Triton only) are there for the benchmark.

On Hopper and later (compute capability >= 9.0) the interior tiles load their overlapping
window rows through a TMA tensor descriptor ``[rows, super-hops, window]`` with strides
``[x_stride, MP, 1]`` when everything it addresses is 16-byte aligned (:func:`tma_usable`).

Triton language features used: ``tl.load``, ``tl.store``, ``tl.dot`` with
``input_precision``, ``tl.program_id``, ``tl.arange``, ``tl.zeros``, loops, and host
tensor descriptors (``triton.tools.tensor_descriptor``, only where available). The kernel also runs under the Triton interpreter
(``TRITON_INTERPRET=1``, CPU tensors), which the tests use.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Optional

import torch
import triton
import triton.language as tl

PRECISIONS = ("tf32x3", "ieee", "tf32", "bf16x6")


class Unsupported(ValueError):
    """The ratio, filter or signal length is outside what the kernel handles (use the torch path)."""

DEFAULT_PRECISION = "tf32x3"
# Launch defaults (block_q hops x block_n phases, block_k input samples per dot step, warps, stages),
# from the H200 sweeps of benchmarks/bench_resample.py --device cuda (docs/dsp-stft-resample.md).
BLOCK_Q = 128  # H200 sweep (64 x 60 s, 48k->44.1k, tf32x3): bq=128 2.08 ms, bq=64 2.13, bq=256 (8 warps) 2.30
BLOCK_N = 32
BLOCK_K = 32
NUM_WARPS = 4
NUM_STAGES = 3
INTERIOR = True  # unmasked loads for tiles whose windows all lie inside the signal
ALIGN = 4  # window starts aligned to this many samples (capped by BK and the 2-power in MP): 16-byte
# vector loads of the window rows (4 B each when unaligned); 16/32 (full 128-byte lines) can add a BK step to KP
BIG_HOPS = 8  # super-hop of big batches (big_hops)
TMA_MAXNREG = 168  # H200, tf32x3, BQ 128 / 4 warps: 168 registers fit 3 blocks per SM (uncapped: 199, 2 blocks):
# interior kernel 1.475 vs 1.66 ms (benchmarks/explore/resample_tma.py, mode 0)
MAX_KP = 4096  # widest group window (input samples); beyond: the torch path
MAX_PHASES = 4096  # L' (phases per super-hop); beyond: the torch path


@triton.jit
def _group_tile(xrow, w_ptr, g, b0, q, n, KP: tl.constexpr, BQ: tl.constexpr, BN: tl.constexpr,
                BK: tl.constexpr, PREC: tl.constexpr, MP: tl.constexpr, MASKED: tl.constexpr,
                ALIGN: tl.constexpr):
    """``Xwin[BQ, KP] @ W_g[KP, BN]`` for one phase group (``MASKED``: zero outside ``[0, n)``)."""
    kk = tl.arange(0, BK)
    nn = tl.arange(0, BN)
    acc = tl.zeros([BQ, BN], dtype=tl.float32)
    for k0 in range(0, KP, BK):
        off = b0 + k0
        if ALIGN > 1:
            # b0 (bank layout) and k0 are multiples of ALIGN, and so is MP: with an aligned row start
            # the window rows load as 16-byte vectors (cp.async 16 B instead of 4 B per element)
            off = tl.multiple_of(off, ALIGN)
        p = q[:, None] * MP + off + kk[None, :]
        if MASKED:
            a = tl.load(xrow + p, mask=(p >= 0) & (p < n), other=0.0)
        else:
            a = tl.load(xrow + p)
        w = tl.load(w_ptr + (g * KP + k0) * BN + kk[:, None] * BN + nn[None, :])
        acc = tl.dot(a, w, acc, input_precision=PREC)
    return acc


@triton.jit
def _store_tile(yrow, flag_ptr, acc, q, g, n_out, LP: tl.constexpr, BN: tl.constexpr):
    """Store one group's output tile into ``[rows, n_out]`` and count its non-finite samples."""
    nn = tl.arange(0, BN)
    col = g * BN + nn
    m = q[:, None] * LP + col[None, :]
    sm = (col[None, :] < LP) & (m < n_out)
    tl.store(yrow + m, acc, mask=sm)
    # NaN/Inf screen on the output tile (a non-finite input sample reaches every output whose
    # window loads it, also through zero taps: NaN * 0 = NaN): count, add only when non-zero
    bad = tl.sum(tl.where(sm & ((acc != acc) | (acc == float("inf")) | (acc == float("-inf"))), 1, 0))
    tl.atomic_add(flag_ptr, bad, mask=bad > 0)


@triton.jit
def _resample_kernel(x_ptr, w_ptr, b0_ptr, y_ptr, flag_ptr,
                     n, n_out, tiles, x_stride, y_stride, b_min, b_max,
                     LP: tl.constexpr, MP: tl.constexpr, G: tl.constexpr, KP: tl.constexpr,
                     BQ: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, PREC: tl.constexpr,
                     INTERIOR: tl.constexpr, ALIGN: tl.constexpr):
    """Pointer loads, all tiles (program ``pid`` = row x tile); the path without TMA."""
    pid = tl.program_id(0)
    row = pid // tiles
    tile = pid - row * tiles
    q = tile * BQ + tl.arange(0, BQ)  # super-hop indices of this tile
    xrow = x_ptr + row.to(tl.int64) * x_stride
    yrow = y_ptr + row.to(tl.int64) * y_stride
    # interior tiles (every window inside [0, n): all but the first and last tiles of a row) load unmasked
    lo = tile * (BQ * MP) + b_min
    hi = (tile * BQ + BQ - 1) * MP + b_max + KP
    inside = (lo >= 0) & (hi <= n)
    for g in range(G):
        b0 = tl.load(b0_ptr + g)  # input offset of the group's window (left padding included)
        if INTERIOR and inside:
            acc = _group_tile(xrow, w_ptr, g, b0, q, n, KP, BQ, BN, BK, PREC, MP, False, ALIGN)
        else:
            acc = _group_tile(xrow, w_ptr, g, b0, q, n, KP, BQ, BN, BK, PREC, MP, True, ALIGN)
        _store_tile(yrow, flag_ptr, acc, q, g, n_out, LP, BN)


@triton.jit
def _resample_tma_kernel(x_desc, w_desc, x_ptr, w_ptr, b0_ptr, y_ptr, flag_ptr, n, n_out, tiles_in, t_first,
                         n_edge, edge_programs, x_stride, y_stride, b_min, b_max, C,
                         LP: tl.constexpr, MP: tl.constexpr, G: tl.constexpr, KP: tl.constexpr,
                         BQ: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, PREC: tl.constexpr,
                         ALIGN: tl.constexpr):
    """Programs ``[0, edge_programs = rows * n_edge)``: each row's edge tiles (the ``t_first``
    tiles before the interior run and those after it) with masked pointer loads, scheduled first
    so they run in the first wave next to interior tiles rather than after them. The other
    programs: interior tiles (every window inside the signal: no masks, no branch around the
    loops), window rows and weights through TMA descriptors. The window of super-hop ``q``, group
    ``g``, step ``k0`` is descriptor element ``[row, q - C, b0_g + C * MP + k0]`` (``C``
    super-hops make every column non-negative)."""
    pid = tl.program_id(0)
    if pid < edge_programs:
        row = pid // n_edge
        j = pid - row * n_edge
        tile = tl.where(j < t_first, j, j + tiles_in)
        q = tile * BQ + tl.arange(0, BQ)
        xrow = x_ptr + row.to(tl.int64) * x_stride
        yrow = y_ptr + row.to(tl.int64) * y_stride
        for g in range(G):
            b0 = tl.load(b0_ptr + g)
            acc = _group_tile(xrow, w_ptr, g, b0, q, n, KP, BQ, BN, BK, PREC, MP, True, ALIGN)
            _store_tile(yrow, flag_ptr, acc, q, g, n_out, LP, BN)
    else:
        p2 = pid - edge_programs
        row = p2 // tiles_in
        tile = t_first + p2 - row * tiles_in
        q0 = tile * BQ
        q = q0 + tl.arange(0, BQ)
        yrow = y_ptr + row.to(tl.int64) * y_stride
        for g in range(G):
            b0 = tl.load(b0_ptr + g)
            acc = tl.zeros([BQ, BN], dtype=tl.float32)
            for k0 in range(0, KP, BK):
                a = x_desc.load([row, q0 - C, b0 + C * MP + k0]).reshape(BQ, BK)
                w = w_desc.load([g * KP + k0, 0])
                acc = tl.dot(a, w, acc, input_precision=PREC)
            _store_tile(yrow, flag_ptr, acc, q, g, n_out, LP, BN)


@dataclass
class Bank:
    """The polyphase filter bank laid out for the kernel (one per plan, tile shape and device)."""

    U: int  # hops per super-hop
    LP: int  # phases per super-hop (U * L)
    MP: int  # input samples per super-hop (U * M)
    G: int  # phase groups of BN columns
    KP: int  # rows of each group's weight (multiple of BK)
    BN: int
    BK: int
    w: torch.Tensor  # [G, KP, BN] float32
    b0: torch.Tensor  # [G] int32: window start of group g relative to the unpadded input
    b_min: int  # min / max of b0
    b_max: int
    A: int = 1  # every b0 is a multiple of A (and so are MP and BK): the kernel's alignment hint
    w_desc: Any = None  # TMA descriptor of w (built on first use)


def super_hop(L: int, BN: int, M: int = 1, align: int = 1) -> int:
    """Hops per super-hop ``U``.

    ``L < BN``: the ``U`` whose ``U * L`` phases waste the least of their last ``BN``-column
    group (ties: the smaller ``U``). ``L >= BN``: 1, unless the super-hop's input length
    ``M`` is not a multiple of 4 while *align* asks for 16-byte window starts: then the
    smallest ``U`` (2 or 4) with ``U * M`` a multiple of 4 (44.1k -> 48k: ``M = 147``,
    ``U = 4``, 640 phases in 20 full groups), so window rows load as 16-byte vectors and
    through TMA descriptors. The dense work per output is unchanged (same group widths)."""
    if L >= BN:
        if align >= 4 and M % 4:
            for u in (2, 4):
                if (u * M) % 4 == 0 and u * L <= MAX_PHASES:
                    return u
        return 1
    best, best_waste = 1, 2.0
    for u in range(-(-BN // L), BN + 1):
        lp = u * L
        waste = (-(-lp // BN) * BN - lp) / lp
        if waste < best_waste - 1e-12:
            best, best_waste = u, waste
    return best


def effective_align(MP: int, BK: int, align: int) -> int:
    """The alignment (samples) the bank can guarantee: a power of two dividing ``MP`` and ``BK``, <= *align*."""
    a = 1
    while a * 2 <= align and MP % (a * 2) == 0 and BK % (a * 2) == 0:
        a *= 2
    return a


def build_bank(h: torch.Tensor, base: list[int], L: int, M: int, left_pad: int, BN: int, BK: int,
               device: Any, align: int = 1, hops: Optional[int] = None) -> Optional[Bank]:
    """Lay out ``h [L, taps]`` (float64) for the kernel; ``None`` when the ratio is too large for it.

    *align*: round each group's window start down to a multiple of this many samples
    (:func:`effective_align`; leading zero rows in the weights), so that the kernel's window
    loads are aligned vectors. *hops*: hops per super-hop (``None``: :func:`super_hop`)."""
    U = super_hop(L, BN, M, align) if hops is None else int(hops)
    LP, MP = U * L, U * M
    if LP > MAX_PHASES:
        return None
    A = effective_align(MP, BK, align)
    nz = (h != 0).any(dim=0).nonzero().flatten()
    t_lo, t_hi = (int(nz[0]), int(nz[-1]) + 1) if nz.numel() else (0, 1)
    G = -(-LP // BN)
    blocks, starts = [], []
    for g in range(G):
        rs = range(g * BN, min((g + 1) * BN, LP))
        offs = [(r // L) * M + base[r % L] for r in rs]
        lo = offs[0] + t_lo
        width = offs[-1] + t_hi - lo
        blk = torch.zeros(width, BN, dtype=torch.float64)
        for c, (r, o) in enumerate(zip(rs, offs)):
            blk[o + t_lo - lo: o + t_hi - lo, c] = h[r % L, t_lo:t_hi]
        # trim all-zero rows at both ends (phases whose taps happen to vanish there)
        rows = (blk != 0).any(dim=1).nonzero().flatten()
        if rows.numel():
            a, b = int(rows[0]), int(rows[-1]) + 1
            blk, lo = blk[a:b], lo + a
        sh = (lo - left_pad) % A  # zero rows that move the window start down to a multiple of A
        if sh:
            blk, lo = torch.cat([torch.zeros(sh, BN, dtype=blk.dtype), blk]), lo - sh
        blocks.append(blk)
        starts.append(lo - left_pad)
    KP = -(-max(b.shape[0] for b in blocks) // BK) * BK
    if KP > MAX_KP:
        return None
    w = torch.zeros(G, KP, BN, dtype=torch.float64)
    for g, blk in enumerate(blocks):
        w[g, : blk.shape[0]] = blk
    return Bank(U, LP, MP, G, KP, BN, BK, w.to(device=device, dtype=torch.float32),
                torch.tensor(starts, dtype=torch.int32, device=device), min(starts), max(starts), A)


_BANKS: dict[tuple, Optional[Bank]] = {}


def bank_for(plan: Any, device: torch.device, BN: int = BLOCK_N, BK: int = BLOCK_K,
             align: int = ALIGN, hops: Optional[int] = None) -> Optional[Bank]:
    """Cached :func:`build_bank` of an :class:`ironwave.dsp.resample.PolyphasePlan`."""
    key = (plan.up, plan.down, plan.zeros, plan.rolloff, plan.beta, BN, BK, align, hops, str(device))
    if key not in _BANKS:
        if len(_BANKS) > 64:
            _BANKS.clear()
        _BANKS[key] = build_bank(plan.h, plan.base, plan.up, plan.down, plan.left_pad, BN, BK, device, align, hops)
    return _BANKS[key]


def big_hops(plan: Any, x: torch.Tensor, block_q: int, block_n: int, align: int) -> Optional[int]:
    """``BIG_HOPS`` hops per super-hop for large batches of ratios with many phases (``L >= BN``),
    else None (:func:`super_hop`'s choice).

    Long programs (8 hops: 37 phase groups per tile at 48k -> 44.1k) ran the H200's interior
    tiles 3% faster than one hop (1.45 vs 1.50 ms at 64 x 60 s). Their tiles are 8x longer, so
    they are used only when every row has at least 8 of them (edge tiles, on the masked path,
    stay a small share) and the batch fills the GPU at least twice (3 programs per SM)."""
    L, M = plan.up, plan.down
    R, n = x.shape
    U = BIG_HOPS
    if L < block_n or U * L > MAX_PHASES or (align >= 4 and (U * M) % 4):
        return None
    per_row = n // (block_q * U * M)
    if per_row < 8 or not x.is_cuda:
        return None
    return U if R * per_row >= 2 * 3 * _gpu_info(x.device)[1] else None


@functools.lru_cache(maxsize=None)
def _gpu_props(idx: int) -> tuple[int, int]:
    props = torch.cuda.get_device_properties(idx)
    return props.major, props.multi_processor_count


def _gpu_info(device: torch.device) -> tuple[int, int]:
    """``(major compute capability, multiprocessor count)`` of a CUDA device, asked once per process."""
    return _gpu_props(device.index if device.index is not None else torch.cuda.current_device())


def supported(plan: Any, device: torch.device, BN: int = BLOCK_N, BK: int = BLOCK_K) -> bool:
    """Can the kernel run this ratio/filter (else the torch path)?"""
    return plan.up != plan.down and bank_for(plan, device, BN, BK) is not None


def default_precision() -> str:
    """The kernel's precision under torch's float32 matmul setting: ``"tf32x3"`` (about float32
    accuracy) for ``torch.get_float32_matmul_precision() == "highest"`` (torch's default),
    ``"tf32"`` (one TF32 product, ~1e-3 relative, ~1.5x faster) for ``"high"`` / ``"medium"``, the
    settings under which torch's own float32 matmuls run on TF32 tensor cores."""
    return DEFAULT_PRECISION if torch.get_float32_matmul_precision() == "highest" else "tf32"


def _tensor_descriptor() -> Any:
    """Triton's host-side ``TensorDescriptor`` class, or None in a Triton without it."""
    try:
        from triton.tools.tensor_descriptor import TensorDescriptor
    except Exception:  # pragma: no cover - older Triton
        return None
    return TensorDescriptor


def tma_usable(x: torch.Tensor, bank: Bank, block_q: int, block_k: int) -> bool:
    """Can the interior tiles load their window rows through a TMA tensor descriptor?

    Needs a Triton with host tensor descriptors, a GPU with the tensor memory accelerator
    (compute capability >= 9.0; the Triton interpreter also runs them), and 16-byte alignment
    of everything the copy engine addresses: the row start and row stride of *x*, the super-hop
    stride ``MP`` and every window start (``bank.A >= 4`` samples)."""
    if _tensor_descriptor() is None or bank.A < 4 or bank.MP % 4 or block_k * 4 < 16 or block_q > 256:
        return False
    if x.data_ptr() % 16 or (x.shape[0] > 1 and x.stride(0) % 4):
        return False
    if x.is_cuda:
        return _gpu_info(x.device)[0] >= 9
    return True  # CPU tensors: the Triton interpreter (tests)


def interior_tiles(bank: Bank, n: int, tiles: int, block_q: int) -> tuple[int, int]:
    """``(t_first, count)``: the run of tiles whose windows all lie inside ``[0, n)`` (tile ``t``
    covers super-hops ``[t * block_q, (t + 1) * block_q)``; its windows span input samples
    ``[t * block_q * MP + b_min, ((t + 1) * block_q - 1) * MP + b_max + KP)``)."""
    span = block_q * bank.MP
    t_first = max(0, -(-(-bank.b_min) // span))
    top = n - bank.b_max - bank.KP - (block_q - 1) * bank.MP
    if top < 0:
        return 0, 0
    t_last = min(tiles - 1, top // span)
    return (t_first, t_last - t_first + 1) if t_last >= t_first else (0, 0)


def resample_triton(x: torch.Tensor, plan: Any, *, precision: Optional[str] = None,
                    block_q: int = BLOCK_Q, block_n: int = BLOCK_N, block_k: int = BLOCK_K,
                    num_warps: int = NUM_WARPS, num_stages: int = NUM_STAGES,
                    interior: bool = INTERIOR, align: int = ALIGN, tma: Optional[bool] = None,
                    maxnreg: Optional[int] = None, hops: Optional[int] = None,
                    flag: torch.Tensor | None = None) -> torch.Tensor:
    """Resample ``x [rows, n]`` (float32) with *plan*: ``[rows, ceil(n L / M)]`` float32.

    Same output as the torch path of :func:`ironwave.dsp.resample.resample` (zero-phase,
    zero-extended ends), computed by :func:`_resample_kernel`.

    Args:
        precision: ``None`` (:func:`default_precision`: ``"tf32x3"`` unless torch's float32
            matmul precision allows TF32), ``"tf32x3"`` (~float32 accuracy on tensor cores),
            ``"ieee"`` (float32 FMA), ``"bf16x6"`` (~float32 accuracy, if this Triton has it) or
            ``"tf32"`` (one TF32 product, ~1e-3 relative).
        block_q / block_n / block_k: tile of super-hops, phases and input samples
            (powers of two >= 16).
        num_warps / num_stages: Triton launch options.
        interior: load the windows of interior tiles (all inside the signal) without
            masks (False: every tile masked; for comparisons).
        align: align window starts to this many samples (a power of two; capped by
            ``block_k`` and the power of two in the super-hop's input length) so window
            rows load as 16-byte vectors; 1: unaligned (the first version; for comparisons).
        tma: run :func:`_resample_tma_kernel`, which loads the windows and weights of interior
            tiles (all windows inside the signal) through TMA tensor descriptors (the copy
            engine; Hopper and later) and the edge tiles with masked pointer loads: ``None`` =
            when :func:`tma_usable`, ``False`` = never (:func:`_resample_kernel`, pointer loads
            for all tiles), ``True`` = required (``Unsupported`` if not usable).
        maxnreg: register cap per thread of the TMA kernel (``None``: ``TMA_MAXNREG``, 0: none).
        hops: hops per super-hop (``None``: :func:`big_hops` for large batches, else
            :func:`super_hop`); results are the same for any value.
        flag: optional zeroed int32 ``[1]`` tensor; the number of non-finite output samples is
            added to it (0: all finite; the caller then needs no separate pass over ``x``).

    Raises:
        ValueError: bad precision/tiles or a dtype other than float32.
        Unsupported: a ratio the kernel does not handle (:func:`supported` is False)
            or a row too long for 32-bit indices.
    """
    if precision is None:
        precision = default_precision()
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}; accepted: {', '.join(PRECISIONS)}")
    for name, v in (("block_q", block_q), ("block_n", block_n), ("block_k", block_k)):
        if v < 16 or v & (v - 1):
            raise ValueError(f"{name}={v}: a power of two >= 16 is needed")
    if x.dtype != torch.float32 or x.dim() != 2:
        raise ValueError(f"resample_triton takes float32 [rows, n], got {x.dtype} {list(x.shape)}")
    if align < 1 or align & (align - 1):
        raise ValueError(f"align={align}: a power of two >= 1 is needed")
    if hops is None:
        hops = big_hops(plan, x, block_q, block_n, align)
    if hops is not None and (int(hops) < 1 or int(hops) * plan.up > MAX_PHASES):
        raise ValueError(f"hops={hops}: 1 <= hops and hops * {plan.up} phases <= {MAX_PHASES} are needed")
    bank = bank_for(plan, x.device, block_n, block_k, align, hops)
    if bank is None or plan.up == plan.down:
        raise Unsupported(f"ratio {plan.up}/{plan.down} with {plan.taps} taps is outside the Triton kernel's limits")
    if x.stride(-1) != 1:
        x = x.contiguous()
    R, n = x.shape
    n_out = plan.out_length(n)
    y = torch.empty(R, n_out, dtype=torch.float32, device=x.device)
    if R == 0 or n_out == 0:
        return y
    q_total = -(-n_out // bank.LP)
    tiles = -(-q_total // block_q)
    if R * tiles >= 2**31 or n_out + bank.LP * block_q >= 2**31 or n + bank.MP * block_q + bank.KP >= 2**31:
        raise Unsupported("signal too long for the Triton kernel's 32-bit indexing")
    if flag is None:
        flag = torch.zeros(1, dtype=torch.int32, device=x.device)
    use_tma = bool(interior) and tma is not False and tma_usable(x, bank, block_q, block_k)
    if tma and not use_tma:
        raise Unsupported("tma=True: no TMA here (needs compute capability >= 9.0, a Triton with tensor "
                          "descriptors and 16-byte aligned rows, super-hops and window starts)")
    common = dict(LP=bank.LP, MP=bank.MP, G=bank.G, KP=bank.KP, BQ=block_q, BN=block_n, BK=block_k, PREC=precision)
    t_first, tiles_in = interior_tiles(bank, n, tiles, block_q) if use_tma else (0, 0)
    if tiles_in:
        # C super-hops shift every interior window start to a non-negative descriptor column
        C = max(0, -(-(-bank.b_min) // bank.MP))
        TD = _tensor_descriptor()
        x_desc = TD(x, [R, q_total + block_q + C, bank.KP + bank.b_max + C * bank.MP],
                    [x.stride(0) if R > 1 else n + (-n) % 4, bank.MP, 1], [1, block_q, block_k])
        if bank.w_desc is None:  # the weights never change: one descriptor per bank
            bank.w_desc = TD(bank.w.view(bank.G * bank.KP, block_n), [bank.G * bank.KP, block_n], [block_n, 1],
                             [block_k, block_n])
        w_desc = bank.w_desc
        cap = TMA_MAXNREG if maxnreg is None else maxnreg
        extra = {"maxnreg": cap} if cap and x.is_cuda else {}
        n_edge = tiles - tiles_in
        _resample_tma_kernel[(R * tiles,)](
            x_desc, w_desc, x, bank.w, bank.b0, y, flag, n, n_out, tiles_in, t_first, n_edge, R * n_edge,
            x.stride(0), y.stride(0), bank.b_min, bank.b_max, C, ALIGN=bank.A,
            num_warps=num_warps, num_stages=num_stages, **extra, **common)
    else:
        _resample_kernel[(R * tiles,)](
            x, bank.w, bank.b0, y, flag, n, n_out, tiles, x.stride(0), y.stride(0), bank.b_min,
            bank.b_max, INTERIOR=bool(interior), ALIGN=bank.A, num_warps=num_warps, num_stages=num_stages,
            **common)
    return y


def macs_per_output(plan: Any, BN: int = BLOCK_N, BK: int = BLOCK_K) -> float:
    """Multiply-adds the kernel spends per output sample (dense tiles incl. padding)."""
    bank = bank_for(plan, torch.device("cpu"), BN, BK)
    if bank is None:
        return math.nan
    return bank.G * bank.KP * BN / bank.LP


__all__ = ["Unsupported", "resample_triton", "supported", "default_precision", "tma_usable", "interior_tiles", "big_hops", "bank_for", "build_bank", "super_hop", "PRECISIONS",
           "DEFAULT_PRECISION"]
