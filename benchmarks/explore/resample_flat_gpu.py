"""Exploration (GPU): flattened (group x k-step) resample kernel vs the per-group kernel vs julius."""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cuda_time import bench  # noqa: E402
from ironwave.dsp import _resample_triton as rt  # noqa: E402
from ironwave.dsp.resample import design, resample  # noqa: E402


def main():
    import julius

    x = torch.randn(64, 60 * 48000, device="cuda")
    xs = x[:2, :48000 * 5]
    for orig, new in ((48000, 44100), (44100, 48000)):
        plan = design(orig, new)
        ref = resample(xs.double(), orig, new, backend="torch")
        tj = bench(lambda: julius.resample_frac(x, orig, new))
        td = bench(lambda: rt.resample_triton(x, plan))
        print(f"{orig}->{new}: julius {tj:.3f} ms; per-group kernel {td:.3f} ms ({tj / td:.2f}x)", flush=True)
        for bq, nw, ns in ((128, 4, 3), (128, 4, 4), (128, 4, 5), (128, 8, 3), (128, 8, 4), (64, 4, 4), (256, 8, 3)):
            try:
                kw = dict(block_q=bq, num_warps=nw, num_stages=ns, flat=True)
                t = bench(lambda: rt.resample_triton(x, plan, **kw))
                y = rt.resample_triton(xs, plan, **kw)
                err = float((y.double() - ref).abs().max() / ref.abs().max())
                print(f"  flat bq={bq} w={nw} s={ns}: {t:.3f} ms ({tj / t:.2f}x julius) err {err:.2e}", flush=True)
            except Exception as e:  # noqa: BLE001
                print(f"  flat bq={bq} w={nw} s={ns}: FAILED {type(e).__name__}: {str(e)[:200]}", flush=True)


if __name__ == "__main__":
    main()
