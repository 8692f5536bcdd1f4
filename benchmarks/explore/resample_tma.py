"""Exploration: the CUDA resample kernel with TMA (tensor-descriptor) loads of the window rows.

The shipped kernel (``ironwave.dsp._resample_triton``) builds the overlapping window rows
``x[(q0 + i) * MP + b0 + k]`` with 2-D pointer arithmetic; Nsight Compute showed it
latency-bound (235 registers per thread, 2 blocks per SM). Here the rows come from a 3-D
tensor descriptor ``[rows, super-hops, window]`` with strides ``[x_stride, MP, 1]`` (rows
overlap: the copy engine reads each window row as its own box row), so address arithmetic
leaves the registers and the loads run on the copy engine. Interior tiles only; the first
and last tiles of a row keep the masked pointer path.

Prints each variant's time, its ratio to julius and its error against the shipped kernel.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
import triton
import triton.language as tl

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cuda_time import bench  # noqa: E402

from ironwave.dsp import _resample_triton as rt  # noqa: E402
from ironwave.dsp.resample import design, resample  # noqa: E402


@triton.jit
def _tma_kernel(x_desc, w_desc, x_ptr, w_ptr, b0_ptr, y_ptr, flag_ptr,
                n, n_out, tiles, x_stride, y_stride, b_min, b_max, C,
                LP: tl.constexpr, MP: tl.constexpr, G: tl.constexpr, KP: tl.constexpr,
                BQ: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, PREC: tl.constexpr,
                ALIGN: tl.constexpr, W_TMA: tl.constexpr):
    pid = tl.program_id(0)
    row = pid // tiles
    tile = pid - row * tiles
    q0 = tile * BQ
    q = q0 + tl.arange(0, BQ)
    xrow = x_ptr + row.to(tl.int64) * x_stride
    yrow = y_ptr + row.to(tl.int64) * y_stride
    nn = tl.arange(0, BN)
    kk = tl.arange(0, BK)
    lo = tile * (BQ * MP) + b_min
    hi = (tile * BQ + BQ - 1) * MP + b_max + KP
    inside = (lo >= 0) & (hi <= n)
    for g in range(G):
        b0 = tl.load(b0_ptr + g)
        if inside:
            acc = tl.zeros([BQ, BN], dtype=tl.float32)
            for k0 in range(0, KP, BK):
                a = x_desc.load([row, q0 - C, b0 + C * MP + k0]).reshape(BQ, BK)
                if W_TMA:
                    w = w_desc.load([g * KP + k0, 0])
                else:
                    w = tl.load(w_ptr + (g * KP + k0) * BN + kk[:, None] * BN + nn[None, :])
                acc = tl.dot(a, w, acc, input_precision=PREC)
        else:
            acc = rt._group_tile(xrow, w_ptr, g, b0, q, n, KP, BQ, BN, BK, PREC, MP, True, ALIGN)
        col = g * BN + nn
        m = q[:, None] * LP + col[None, :]
        sm = (col[None, :] < LP) & (m < n_out)
        tl.store(yrow + m, acc, mask=sm)
        bad = tl.sum(tl.where(sm & ((acc != acc) | (acc == float("inf")) | (acc == float("-inf"))), 1, 0))
        tl.atomic_add(flag_ptr, bad, mask=bad > 0)


@triton.jit
def _tma_persistent(x_desc, w_desc, x_ptr, w_ptr, b0_ptr, y_ptr, flag_ptr,
                    n, n_out, tiles, total, x_stride, y_stride, b_min, b_max, C,
                    LP: tl.constexpr, MP: tl.constexpr, G: tl.constexpr, KP: tl.constexpr,
                    BQ: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, PREC: tl.constexpr,
                    ALIGN: tl.constexpr, NPROG: tl.constexpr):
    """Persistent grid: each program walks (tile, group) work items, one flat k loop each."""
    start = tl.program_id(0)
    nn = tl.arange(0, BN)
    NK: tl.constexpr = KP // BK
    for item in range(start, total * G, NPROG):
        pid = item // G
        g = item - pid * G
        row = pid // tiles
        tile = pid - row * tiles
        q0 = tile * BQ
        q = q0 + tl.arange(0, BQ)
        lo = tile * (BQ * MP) + b_min
        hi = (tile * BQ + BQ - 1) * MP + b_max + KP
        inside = (lo >= 0) & (hi <= n)
        b0 = tl.load(b0_ptr + g)
        if inside:
            acc = tl.zeros([BQ, BN], dtype=tl.float32)
            for kstep in range(NK):
                k0 = kstep * BK
                a = x_desc.load([row, q0 - C, b0 + C * MP + k0]).reshape(BQ, BK)
                w = w_desc.load([g * KP + k0, 0])
                acc = tl.dot(a, w, acc, input_precision=PREC)
        else:
            xrow = x_ptr + row.to(tl.int64) * x_stride
            acc = rt._group_tile(xrow, w_ptr, g, b0, q, n, KP, BQ, BN, BK, PREC, MP, True, ALIGN)
        yrow = y_ptr + row.to(tl.int64) * y_stride
        col = g * BN + nn
        m = q[:, None] * LP + col[None, :]
        sm = (col[None, :] < LP) & (m < n_out)
        tl.store(yrow + m, acc, mask=sm)
        bad = tl.sum(tl.where(sm & ((acc != acc) | (acc == float("inf")) | (acc == float("-inf"))), 1, 0))
        tl.atomic_add(flag_ptr, bad, mask=bad > 0)


@triton.jit
def _tf32_split(a):
    """``a = hi + lo`` with ``hi`` rounded to TF32 (10 mantissa bits, round half away) by integer ops."""
    hi = ((a.to(tl.int32, bitcast=True) + 0x1000) & -8192).to(tl.float32, bitcast=True)
    return hi, a - hi


@triton.jit
def _split_tile(xrow, x_desc, row, qd, wh_ptr, wl_ptr, g, b0, q, n, C, KP: tl.constexpr, BQ: tl.constexpr,
                BN: tl.constexpr, BK: tl.constexpr, MP: tl.constexpr, MASKED: tl.constexpr, ALIGN: tl.constexpr,
                USE_TMA: tl.constexpr):
    """3xTF32 with the weights split on the host (hi/lo, each TF32-exact) and the window split here."""
    kk = tl.arange(0, BK)
    nn = tl.arange(0, BN)
    acc = tl.zeros([BQ, BN], dtype=tl.float32)
    for k0 in range(0, KP, BK):
        if USE_TMA:
            a = x_desc.load([row, qd, b0 + C * MP + k0]).reshape(BQ, BK)
        else:
            off = tl.multiple_of(b0 + k0, ALIGN)
            p = q[:, None] * MP + off + kk[None, :]
            if MASKED:
                a = tl.load(xrow + p, mask=(p >= 0) & (p < n), other=0.0)
            else:
                a = tl.load(xrow + p)
        wo = (g * KP + k0) * BN + kk[:, None] * BN + nn[None, :]
        wh = tl.load(wh_ptr + wo)
        wl = tl.load(wl_ptr + wo)
        ah, al = _tf32_split(a)
        acc = tl.dot(al, wh, acc, input_precision="tf32")
        acc = tl.dot(ah, wl, acc, input_precision="tf32")
        acc = tl.dot(ah, wh, acc, input_precision="tf32")
    return acc


@triton.jit
def _split_kernel(x_desc, x_ptr, wh_ptr, wl_ptr, b0_ptr, y_ptr, flag_ptr,
                  n, n_out, tiles, x_stride, y_stride, b_min, b_max, C,
                  LP: tl.constexpr, MP: tl.constexpr, G: tl.constexpr, KP: tl.constexpr,
                  BQ: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, ALIGN: tl.constexpr, USE_TMA: tl.constexpr):
    pid = tl.program_id(0)
    row = pid // tiles
    tile = pid - row * tiles
    q0 = tile * BQ
    q = q0 + tl.arange(0, BQ)
    xrow = x_ptr + row.to(tl.int64) * x_stride
    yrow = y_ptr + row.to(tl.int64) * y_stride
    nn = tl.arange(0, BN)
    lo = tile * (BQ * MP) + b_min
    hi = (tile * BQ + BQ - 1) * MP + b_max + KP
    inside = (lo >= 0) & (hi <= n)
    for g in range(G):
        b0 = tl.load(b0_ptr + g)
        if inside:
            acc = _split_tile(xrow, x_desc, row, q0 - C, wh_ptr, wl_ptr, g, b0, q, n, C, KP, BQ, BN, BK, MP, False,
                              ALIGN, USE_TMA)
        else:
            acc = _split_tile(xrow, x_desc, row, q0 - C, wh_ptr, wl_ptr, g, b0, q, n, C, KP, BQ, BN, BK, MP, True,
                              ALIGN, False)
        col = g * BN + nn
        m = q[:, None] * LP + col[None, :]
        sm = (col[None, :] < LP) & (m < n_out)
        tl.store(yrow + m, acc, mask=sm)
        bad = tl.sum(tl.where(sm & ((acc != acc) | (acc == float("inf")) | (acc == float("-inf"))), 1, 0))
        tl.atomic_add(flag_ptr, bad, mask=bad > 0)


def tf32_round(w: torch.Tensor) -> torch.Tensor:
    """Round float32 to the nearest TF32 value (ties away from zero), as float32."""
    return ((w.view(torch.int32) + 0x1000) & -8192).view(torch.float32)


_SPLIT: dict = {}


def run_split(x, plan, *, bq=128, bn=32, bk=32, warps=4, stages=3, tma=True, align=4):
    from triton.tools.tensor_descriptor import TensorDescriptor
    bank = rt.bank_for(plan, x.device, bn, bk, align)
    key = id(bank)
    if key not in _SPLIT:
        wh = tf32_round(bank.w)
        _SPLIT[key] = (wh.contiguous(), tf32_round(bank.w - wh).contiguous())
    wh, wl = _SPLIT[key]
    R, n = x.shape
    n_out = plan.out_length(n)
    y = torch.empty(R, n_out, dtype=torch.float32, device=x.device)
    q_total = -(-n_out // bank.LP)
    tiles = -(-q_total // bq)
    C = max(0, -(-(-bank.b_min) // bank.MP))
    x_desc = TensorDescriptor(x, [R, q_total + bq + C, bank.KP + bank.b_max + C * bank.MP], [x.stride(0), bank.MP, 1],
                              [1, bq, bk])
    flag = torch.zeros(1, dtype=torch.int32, device=x.device)
    _split_kernel[(R * tiles,)](x_desc, x, wh, wl, bank.b0, y, flag, n, n_out, tiles, x.stride(0), y.stride(0),
                                bank.b_min, bank.b_max, C, LP=bank.LP, MP=bank.MP, G=bank.G, KP=bank.KP, BQ=bq, BN=bn,
                                BK=bk, ALIGN=bank.A, USE_TMA=tma, num_warps=warps, num_stages=stages)
    return y


@triton.jit
def _flat_interior(x_desc, w_desc, b0_ptr, y_ptr, flag_ptr, n_out, tiles_in, t_first, y_stride, C,
                   LP: tl.constexpr, MP: tl.constexpr, G: tl.constexpr, KP: tl.constexpr,
                   BQ: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, PREC: tl.constexpr,
                   STAGES: tl.constexpr, WS: tl.constexpr):
    """Interior tiles only (no masks, no branches around the loop): one flat pipelined loop over
    (group, k-step) with TMA loads of both operands; a group's epilogue runs at its last k-step."""
    pid = tl.program_id(0)
    row = pid // tiles_in
    tile = t_first + pid - row * tiles_in
    q0 = tile * BQ
    q = q0 + tl.arange(0, BQ)
    yrow = y_ptr + row.to(tl.int64) * y_stride
    nn = tl.arange(0, BN)
    NK: tl.constexpr = KP // BK
    acc = tl.zeros([BQ, BN], dtype=tl.float32)
    for i in tl.range(0, G * NK, num_stages=STAGES, warp_specialize=WS):
        g = i // NK
        ks = i - g * NK
        b0 = tl.load(b0_ptr + g)
        a = x_desc.load([row, q0 - C, b0 + C * MP + ks * BK]).reshape(BQ, BK)
        w = w_desc.load([g * KP + ks * BK, 0])
        acc = tl.dot(a, w, acc, input_precision=PREC)
        if ks == NK - 1:
            col = g * BN + nn
            m = q[:, None] * LP + col[None, :]
            sm = (col[None, :] < LP) & (m < n_out)
            tl.store(yrow + m, acc, mask=sm)
            bad = tl.sum(tl.where(sm & ((acc != acc) | (acc == float("inf")) | (acc == float("-inf"))), 1, 0))
            tl.atomic_add(flag_ptr, bad, mask=bad > 0)
            acc = tl.zeros([BQ, BN], dtype=tl.float32)


def run_flat(x, plan, *, bq=128, bn=32, bk=32, warps=4, stages=3, prec="tf32x3", ws=False, y=None):
    """Interior tiles through _flat_interior (edges not computed: compare interior outputs only)."""
    from triton.tools.tensor_descriptor import TensorDescriptor
    bank = rt.bank_for(plan, x.device, bn, bk, 4)
    R, n = x.shape
    n_out = plan.out_length(n)
    if y is None:
        y = torch.zeros(R, n_out, dtype=torch.float32, device=x.device)
    q_total = -(-n_out // bank.LP)
    tiles = -(-q_total // bq)
    ins = [t for t in range(tiles) if t * bq * bank.MP + bank.b_min >= 0
           and (t * bq + bq - 1) * bank.MP + bank.b_max + bank.KP <= n]
    t_first, tiles_in = ins[0], len(ins)
    C = max(0, -(-(-bank.b_min) // bank.MP))
    x_desc = TensorDescriptor(x, [R, q_total + bq + C, bank.KP + bank.b_max + C * bank.MP], [x.stride(0), bank.MP, 1],
                              [1, bq, bk])
    w_desc = TensorDescriptor(bank.w.view(bank.G * bank.KP, bn), [bank.G * bank.KP, bn], [bn, 1], [bk, bn])
    flag = torch.zeros(1, dtype=torch.int32, device=x.device)
    _flat_interior[(R * tiles_in,)](x_desc, w_desc, bank.b0, y, flag, n_out, tiles_in, t_first, y.stride(0), C,
                                    LP=bank.LP, MP=bank.MP, G=bank.G, KP=bank.KP, BQ=bq, BN=bn, BK=bk, PREC=prec,
                                    STAGES=stages, WS=ws, num_warps=warps)
    return y, (t_first * bq * bank.LP, (t_first + tiles_in) * bq * bank.LP)


@triton.jit
def _tf32_round(a):
    """Round float32 to the nearest TF32 value (10 mantissa bits; ties away from zero)."""
    return ((a.to(tl.int32, bitcast=True) + 0x1000) & -8192).to(tl.float32, bitcast=True)


@triton.jit
def _split_interior(x_desc, wh_desc, wl_desc, b0_ptr, y_ptr, flag_ptr, n_out, tiles_in, t_first, y_stride, C,
                    LP: tl.constexpr, MP: tl.constexpr, G: tl.constexpr, KP: tl.constexpr,
                    BQ: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, MODE: tl.constexpr,
                    STAGES: tl.constexpr, ROUND_LO: tl.constexpr):
    """Interior tiles only (no masks, no branch around the loops), all operands through TMA.

    MODE 0: Triton's tf32x3 dot on the float32 weights (wh_desc = the float32 bank).
    MODE 1: weights split on the host (hi/lo, TF32-exact), window split here, 3 TF32 dots into one
    accumulator. MODE 2: the same with the two correction products in a second accumulator.
    ROUND_LO: round the window's low part to TF32 (else the tensor cores truncate it)."""
    pid = tl.program_id(0)
    row = pid // tiles_in
    tile = t_first + pid - row * tiles_in
    q0 = tile * BQ
    q = q0 + tl.arange(0, BQ)
    yrow = y_ptr + row.to(tl.int64) * y_stride
    nn = tl.arange(0, BN)
    NK: tl.constexpr = KP // BK
    for g in range(G):
        b0 = tl.load(b0_ptr + g)
        acc = tl.zeros([BQ, BN], dtype=tl.float32)
        acc2 = tl.zeros([BQ, BN], dtype=tl.float32)
        for ks in tl.range(0, NK, num_stages=STAGES):
            a = x_desc.load([row, q0 - C, b0 + C * MP + ks * BK]).reshape(BQ, BK)
            wh = wh_desc.load([g * KP + ks * BK, 0])
            if MODE == 0:
                acc = tl.dot(a, wh, acc, input_precision="tf32x3")
            else:
                wl = wl_desc.load([g * KP + ks * BK, 0])
                ah = _tf32_round(a)
                al = a - ah
                if ROUND_LO:
                    al = _tf32_round(al)
                if MODE == 2:
                    acc2 = tl.dot(al, wh, acc2, input_precision="tf32")
                    acc2 = tl.dot(ah, wl, acc2, input_precision="tf32")
                elif MODE == 3:
                    # the correction of this k-step from zero (small, accurate), added to acc in FP32
                    c = tl.dot(al, wh, tl.zeros([BQ, BN], dtype=tl.float32), input_precision="tf32")
                    c = tl.dot(ah, wl, c, input_precision="tf32")
                    acc = acc + c
                else:
                    acc = tl.dot(al, wh, acc, input_precision="tf32")
                    acc = tl.dot(ah, wl, acc, input_precision="tf32")
                acc = tl.dot(ah, wh, acc, input_precision="tf32")
        out = acc + acc2 if MODE == 2 else acc
        col = g * BN + nn
        m = q[:, None] * LP + col[None, :]
        sm = (col[None, :] < LP) & (m < n_out)
        tl.store(yrow + m, out, mask=sm)
        bad = tl.sum(tl.where(sm & ((out != out) | (out == float("inf")) | (out == float("-inf"))), 1, 0))
        tl.atomic_add(flag_ptr, bad, mask=bad > 0)


KINFO: dict = {}


def run_split_interior(x, plan, *, bq=128, bn=32, bk=32, warps=4, stages=3, mode=1, round_lo=True, maxnreg=None,
                       y=None):
    from triton.tools.tensor_descriptor import TensorDescriptor
    bank = rt.bank_for(plan, x.device, bn, bk, 4)
    key = id(bank)
    if key not in _SPLIT:
        wh = tf32_round(bank.w)
        _SPLIT[key] = (wh.contiguous(), tf32_round(bank.w - wh).contiguous())
    wh, wl = _SPLIT[key]
    R, n = x.shape
    n_out = plan.out_length(n)
    if y is None:
        y = torch.zeros(R, n_out, dtype=torch.float32, device=x.device)
    q_total = -(-n_out // bank.LP)
    tiles = -(-q_total // bq)
    ins = [t for t in range(tiles) if t * bq * bank.MP + bank.b_min >= 0
           and (t * bq + bq - 1) * bank.MP + bank.b_max + bank.KP <= n]
    t_first, tiles_in = ins[0], len(ins)
    C = max(0, -(-(-bank.b_min) // bank.MP))
    x_desc = TensorDescriptor(x, [R, q_total + bq + C, bank.KP + bank.b_max + C * bank.MP], [x.stride(0), bank.MP, 1],
                              [1, bq, bk])
    GK = bank.G * bank.KP
    wh_desc = TensorDescriptor((bank.w if mode == 0 else wh).view(GK, bn), [GK, bn], [bn, 1], [bk, bn])
    wl_desc = TensorDescriptor(wl.view(GK, bn), [GK, bn], [bn, 1], [bk, bn])
    flag = torch.zeros(1, dtype=torch.int32, device=x.device)
    extra = {} if maxnreg is None else {"maxnreg": maxnreg}
    k = _split_interior[(R * tiles_in,)](x_desc, wh_desc, wl_desc, bank.b0, y, flag, n_out, tiles_in, t_first,
                                     y.stride(0), C, LP=bank.LP, MP=bank.MP, G=bank.G, KP=bank.KP, BQ=bq, BN=bn,
                                     BK=bk, MODE=mode, STAGES=stages, ROUND_LO=round_lo, num_warps=warps, **extra)
    KINFO["regs"], KINFO["spills"] = getattr(k, "n_regs", None), getattr(k, "n_spills", None)
    return y, (t_first * bq * bank.LP, (t_first + tiles_in) * bq * bank.LP)


def run_tma(x, plan, *, bq=128, bn=32, bk=32, warps=4, stages=3, prec="tf32x3", w_tma=True, persistent=0,
            align=4):
    from triton.tools.tensor_descriptor import TensorDescriptor
    bank = rt.bank_for(plan, x.device, bn, bk, align)
    R, n = x.shape
    n_out = plan.out_length(n)
    y = torch.empty(R, n_out, dtype=torch.float32, device=x.device)
    q_total = -(-n_out // bank.LP)
    tiles = -(-q_total // bq)
    C = max(0, -(-(-bank.b_min) // bank.MP))
    QD = q_total + bq + C
    WD = bank.KP + bank.b_max + C * bank.MP
    x_desc = TensorDescriptor(x, [R, QD, WD], [x.stride(0), bank.MP, 1], [1, bq, bk])
    w2 = bank.w.view(bank.G * bank.KP, bn)
    w_desc = TensorDescriptor(w2, [bank.G * bank.KP, bn], [bn, 1], [bk, bn])
    flag = torch.zeros(1, dtype=torch.int32, device=x.device)
    common = dict(LP=bank.LP, MP=bank.MP, G=bank.G, KP=bank.KP, BQ=bq, BN=bn, BK=bk, PREC=prec, ALIGN=bank.A,
                  num_warps=warps, num_stages=stages)
    if persistent:
        nprog = persistent * (torch.cuda.get_device_properties(x.device).multi_processor_count if x.is_cuda else 2)
        _tma_persistent[(nprog,)](x_desc, w_desc, x, bank.w, bank.b0, y, flag, n, n_out, tiles, R * tiles,
                                  x.stride(0), y.stride(0), bank.b_min, bank.b_max, C, NPROG=nprog, **common)
    else:
        _tma_kernel[(R * tiles,)](x_desc, w_desc, x, bank.w, bank.b0, y, flag, n, n_out, tiles, x.stride(0),
                                  y.stride(0), bank.b_min, bank.b_max, C, W_TMA=w_tma, **common)
    return y


def main() -> None:
    print("triton", triton.__version__, "torch", torch.__version__, torch.cuda.get_device_name(0), flush=True)

    def alloc(size, alignment, stream):
        return torch.empty(size, device="cuda", dtype=torch.int8)

    if hasattr(triton, "set_allocator"):
        triton.set_allocator(alloc)
    torch.manual_seed(0)
    x = torch.randn(64, 60 * 48000, device="cuda")
    plan = design(48000, 44100)
    ref = rt.resample_triton(x, plan)
    scale = float(ref.abs().max())
    t_ref = bench(lambda: rt.resample_triton(x, plan), n=20)
    t_def = bench(lambda: resample(x, 48000, 44100), n=20)
    try:
        import julius
        t_j = bench(lambda: julius.resample_frac(x, 48000, 44100), n=10)
    except Exception as e:  # noqa: BLE001
        print("julius unavailable", e)
        t_j = 14.3
    print(f"julius {t_j:.3f} ms | shipped kernel {t_ref:.3f} ms ({t_j / t_ref:.2f}x) | resample() {t_def:.3f} ms "
          f"({t_j / t_def:.2f}x)", flush=True)
    configs = [dict(), dict(warps=8), dict(prec="tf32")] if "--short" in sys.argv else [
        dict(), dict(stages=2), dict(stages=4), dict(warps=8), dict(w_tma=False),
        dict(bq=64), dict(bq=64, stages=4), dict(bq=256, warps=8), dict(bk=16, stages=4),
        dict(bn=64, warps=8), dict(bn=16, bk=16, stages=4),
        dict(persistent=1), dict(persistent=2), dict(persistent=3), dict(persistent=2, stages=4),
        dict(prec="ieee"), dict(prec="tf32"),
        dict(align=1),  # unaligned TMA coordinates: illegal instruction on the H200 (kills the context: last)
    ]
    ref64 = None
    try:
        ref64 = resample(x[:4].double(), 48000, 44100)
        s64 = float(ref64.abs().max())
        print(f"shipped err vs float64 {float((ref[:4].double() - ref64).abs().max()) / s64:.1e}", flush=True)
    except Exception as e:  # noqa: BLE001
        print("float64 ref failed", e)
    if "--split-interior" in sys.argv:
        for cfg in [dict(mode=1, round_lo=False), dict(mode=1), dict(mode=2), dict(mode=0), dict(mode=3, round_lo=False),
                    dict(mode=3), dict(mode=3, round_lo=False, maxnreg=168), dict(mode=2, round_lo=False, maxnreg=168),
                    dict(mode=0, maxnreg=168), dict(mode=1, maxnreg=168), dict(mode=3, round_lo=False, stages=4),
                    dict(mode=3, round_lo=False, maxnreg=128), dict(mode=1, round_lo=False, maxnreg=128)]:
            label = " ".join(f"{k}={v}" for k, v in cfg.items())
            try:
                yb = torch.zeros_like(ref)
                y, (a0, a1) = run_split_interior(x, plan, y=yb, **cfg)
                err = float((y[:, a0:a1] - ref[:, a0:a1]).abs().max()) / scale
                e64 = float((y[:4, a0:a1].double() - ref64[:, a0:a1]).abs().max()) / s64
                t = bench(lambda cfg=cfg: run_split_interior(x, plan, y=yb, **cfg), n=20)
                print(f"  split-interior {label}: {t:.3f} ms = {t_j / t:.2f}x julius, err vs shipped {err:.1e}, "
                      f"vs float64 {e64:.1e}, regs {KINFO.get('regs')} spills {KINFO.get('spills')}", flush=True)
            except Exception as e:  # noqa: BLE001
                print(f"  split-interior {label}: FAILED {type(e).__name__}: {str(e)[:300]}", flush=True)
        return
    for cfg in [dict(), dict(warps=8), dict(stages=4), dict(stages=2), dict(warps=8, stages=4), dict(ws=True),
                dict(ws=True, warps=8), dict(prec="tf32"), dict(prec="tf32", warps=8)]:
        label = " ".join(f"{k}={v}" for k, v in cfg.items()) or "default (bq128 bn32 bk32 w4 s3)"
        try:
            yb = torch.zeros_like(ref)
            y, (a0, a1) = run_flat(x, plan, y=yb, **cfg)
            err = float((y[:, a0:a1] - ref[:, a0:a1]).abs().max()) / scale
            t = bench(lambda cfg=cfg: run_flat(x, plan, y=yb, **cfg), n=20)
            print(f"  flat-interior {label}: {t:.3f} ms = {t_j / t:.2f}x julius (interior {a1 - a0} of "
                  f"{ref.shape[1]} outputs), err vs shipped {err:.1e}", flush=True)
        except Exception as e:  # noqa: BLE001
            print(f"  flat-interior {label}: FAILED {type(e).__name__}: {str(e)[:300]}", flush=True)
    if "--flat-only" in sys.argv:
        return
    for cfg in [dict(), dict(tma=False), dict(warps=8), dict(tma=False, warps=8), dict(stages=4), dict(bq=64),
                dict(stages=2), dict(bq=64, stages=4), dict(bq=256, warps=8)]:
        label = " ".join(f"{k}={v}" for k, v in cfg.items()) or "default (tma bq128 bn32 bk32 w4 s3)"
        try:
            y = run_split(x, plan, **cfg)
            err = float((y - ref).abs().max()) / scale
            e64 = float((y[:4].double() - ref64).abs().max()) / s64 if ref64 is not None else float("nan")
            t = bench(lambda cfg=cfg: run_split(x, plan, **cfg), n=20)
            print(f"  split {label}: {t:.3f} ms = {t_j / t:.2f}x julius, {t_ref / t:.2f}x shipped, err vs shipped "
                  f"{err:.1e}, vs float64 {e64:.1e}", flush=True)
        except Exception as e:  # noqa: BLE001
            print(f"  split {label}: FAILED {type(e).__name__}: {str(e)[:300]}", flush=True)
    for cfg in configs:
        label = " ".join(f"{k}={v}" for k, v in cfg.items()) or "default (bq128 bn32 bk32 w4 s3)"
        try:
            t0 = time.time()
            y = run_tma(x, plan, **cfg)
            comp = time.time() - t0
            err = float((y - ref).abs().max()) / scale
            t = bench(lambda cfg=cfg: run_tma(x, plan, **cfg), n=20)
            print(f"  tma {label}: {t:.3f} ms = {t_j / t:.2f}x julius, {t_ref / t:.2f}x shipped, err vs shipped "
                  f"{err:.1e} (compile {comp:.1f} s)", flush=True)
        except Exception as e:  # noqa: BLE001
            print(f"  tma {label}: FAILED {type(e).__name__}: {str(e)[:300]}", flush=True)


if __name__ == "__main__":
    main()
