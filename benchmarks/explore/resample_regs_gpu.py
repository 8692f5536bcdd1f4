"""Exploration (GPU): resample kernel with a register cap (more blocks per SM) vs the default."""
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
    plan = design(48000, 44100)
    ref = resample(xs.double(), 48000, 44100, backend="torch")
    tj = bench(lambda: julius.resample_frac(x, 48000, 44100))
    td = bench(lambda: rt.resample_triton(x, plan))
    print(f"julius {tj:.3f} ms; default kernel {td:.3f} ms ({tj / td:.2f}x)", flush=True)
    for bq, nw, ns, reg in ((128, 4, 2, 168), (128, 4, 2, 128), (128, 4, 3, 168), (128, 4, 2, 200),
                            (64, 4, 2, 128), (64, 4, 3, 96), (128, 8, 2, 96), (128, 8, 3, 96), (256, 8, 2, 128)):
        try:
            kw = dict(block_q=bq, num_warps=nw, num_stages=ns, maxnreg=reg)
            t = bench(lambda: rt.resample_triton(x, plan, **kw))
            y = rt.resample_triton(xs, plan, **kw)
            err = float((y.double() - ref).abs().max() / ref.abs().max())
            print(f"  bq={bq} w={nw} s={ns} maxnreg={reg}: {t:.3f} ms ({tj / t:.2f}x julius) err {err:.2e}", flush=True)
        except Exception as e:  # noqa: BLE001
            print(f"  bq={bq} w={nw} s={ns} maxnreg={reg}: FAILED {type(e).__name__}: {str(e)[:200]}", flush=True)


if __name__ == "__main__":
    main()
