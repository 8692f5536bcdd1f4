"""Time the CUDA resample kernel with the super-hop size U forced (``hops=``; 48k->44.1k, 64 x 60 s).

    python resample_u.py [U ...]

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

x = torch.randn(64, 60 * 48000, device="cuda")
p = design(48000, 44100)
ref = rt.resample_triton(x, p)
scale = float(ref.abs().max())
for U in (1, 3, 5, 8) if len(sys.argv) < 2 else [int(u) for u in sys.argv[1:] if u.isdigit()]:
    for label, fn in [("shipped w4", lambda: rt.resample_triton(x, p, hops=U)),
                      ("shipped w8", lambda: rt.resample_triton(x, p, num_warps=8, hops=U)),
                      ("shipped bq64", lambda: rt.resample_triton(x, p, block_q=64, hops=U))]:
        try:
            err = float((fn() - ref).abs().max()) / scale
            print(f"U={U} {label}: {bench(fn, n=20):.3f} ms err {err:.1e}", flush=True)
        except Exception as e:  # noqa: BLE001
            print(f"U={U} {label}: FAILED {type(e).__name__}: {str(e)[:200]}", flush=True)
