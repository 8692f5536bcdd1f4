"""Time the CUDA resample kernel with the super-hop size U forced (48k->44.1k, 64 x 60 s).

U hops per super-hop make L' = U * 147 phases, so the last BN-column group wastes fewer columns
(MACs per output: U=1 209, U=3 195, U=5 192, U=8 193 at BN=32, BK=32).
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cuda_time import bench  # noqa: E402
from ironwave.dsp import _resample_triton as rt  # noqa: E402
from ironwave.dsp.resample import design  # noqa: E402
import resample_tma  # noqa: E402

x = torch.randn(64, 60 * 48000, device="cuda")
p = design(48000, 44100)
ref = rt.resample_triton(x, p)
scale = float(ref.abs().max())
orig = rt.super_hop
for U in (1, 3, 5, 8) if len(sys.argv) < 2 else [int(u) for u in sys.argv[1:] if u.isdigit()]:
    rt.super_hop = lambda L, BN, M=1, align=1, U=U: U
    rt._BANKS.clear()
    for label, fn in [("shipped w4", lambda: rt.resample_triton(x, p)),
                      ("shipped w8", lambda: rt.resample_triton(x, p, num_warps=8)),
                      ("shipped bq64", lambda: rt.resample_triton(x, p, block_q=64)),
                      ("tma w8", lambda: resample_tma.run_tma(x, p, warps=8)),
                      ("tma w4", lambda: resample_tma.run_tma(x, p))][: 3 if "--shipped" in sys.argv else 5]:
        try:
            err = float((fn() - ref).abs().max()) / scale
            print(f"U={U} {label}: {bench(fn, n=20):.3f} ms err {err:.1e}", flush=True)
        except Exception as e:  # noqa: BLE001
            print(f"U={U} {label}: FAILED {type(e).__name__}: {str(e)[:200]}", flush=True)
rt.super_hop = orig
