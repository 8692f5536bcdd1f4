"""Exploration (GPU): union-window resample kernel vs the per-group kernel vs julius, 48k->44.1k and
44.1k->48k, 64 x 60 s; max relative error vs the float64 torch path."""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
from ironwave.dsp import _resample_triton as rt  # noqa: E402
from ironwave.dsp.resample import design, resample  # noqa: E402


def bench(fn, n=10):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(n):
        a, b = torch.cuda.Event(True), torch.cuda.Event(True)
        a.record(); fn(); b.record(); b.synchronize()
        ts.append(a.elapsed_time(b))
    ts.sort()
    return ts[len(ts) // 2]


def main():
    import julius

    x = torch.randn(64, 60 * 48000, device="cuda")
    xs = x[:2, :48000 * 5]
    for orig, new in ((48000, 44100), (44100, 48000)):
        plan = design(orig, new)
        ref = resample(xs.double(), orig, new, backend="torch")
        tj = bench(lambda: julius.resample_frac(x, orig, new))
        td = bench(lambda: rt.resample_triton(x, plan))
        print(f"{orig}->{new}: julius {tj:.3f} ms; per-group kernel {td:.3f} ms ({tj / td:.2f}x); "
              f"resample() {bench(lambda: resample(x, orig, new)):.3f} ms", flush=True)
        for bq, nw, ns in ((64, 4, 2), (64, 4, 3), (128, 8, 2), (128, 8, 3), (128, 4, 2), (32, 4, 3), (64, 8, 2),
                           (256, 8, 2)):
            try:
                f = lambda: rt.resample_triton_union(x, plan, block_q=bq, num_warps=nw, num_stages=ns)  # noqa: E731
                t = bench(f)
                y = rt.resample_triton_union(xs, plan, block_q=bq, num_warps=nw, num_stages=ns)
                err = float((y.double() - ref).abs().max() / ref.abs().max())
                print(f"  union bq={bq} w={nw} s={ns}: {t:.3f} ms ({tj / t:.2f}x julius) err {err:.2e}", flush=True)
            except Exception as e:  # noqa: BLE001
                print(f"  union bq={bq} w={nw} s={ns}: FAILED {type(e).__name__}: {str(e)[:200]}", flush=True)


if __name__ == "__main__":
    main()
