"""Exploration: interior-only TMA variants of the CUDA resample kernel (48k->44.1k, 64 x 60 s).

``_split_interior`` computes the interior tiles only (outputs compared on those), windows and
weights through TMA descriptors, in four arithmetic modes: 0 = Triton's tf32x3 (what
``ironwave.dsp._resample_triton`` ships, with its 168-register cap), 1 = weights split into TF32
hi/lo on the host and the window split by integer rounding, three TF32 dots into one
accumulator, 2 = the same with the correction products in a second accumulator, 3 = the
correction of each k-step from zero, added in FP32. Prints time, ratio to julius, error against
the shipped kernel and against float64, registers and spills. Earlier variants of this file
(TMA inside the branchy kernel, a persistent grid, a flat (group, k-step) loop, warp
specialisation) are in the git history (session 3); their numbers are in
docs/dsp-stft-resample.md.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
import triton
import triton.language as tl

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cuda_time import bench  # noqa: E402

from ironwave.dsp import _resample_triton as rt  # noqa: E402
from ironwave.dsp.resample import design, resample  # noqa: E402


def tf32_round(w: torch.Tensor) -> torch.Tensor:
    """Round float32 to the nearest TF32 value (ties away from zero), as float32."""
    return ((w.view(torch.int32) + 0x1000) & -8192).view(torch.float32)


_SPLIT: dict = {}


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
        rt._store_tile(yrow, flag_ptr, out, q, g, n_out, LP, BN)


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
    ref64 = None
    try:
        ref64 = resample(x[:4].double(), 48000, 44100)
        s64 = float(ref64.abs().max())
        print(f"shipped err vs float64 {float((ref[:4].double() - ref64).abs().max()) / s64:.1e}", flush=True)
    except Exception as e:  # noqa: BLE001
        print("float64 ref failed", e)
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


if __name__ == "__main__":
    main()
