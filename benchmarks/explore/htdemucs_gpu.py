"""Exploration (GPU): HTDemucs forward time and peak memory per batch size, torch GroupNorm vs the
split-reduction GroupNorm, cudnn.benchmark, bf16, and the top kernels at batch 1."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cuda_time import bench  # noqa: E402
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.bench_htdemucs import _kernel_table  # noqa: E402
from ironwave.models import HTDEMUCS_KWARGS, SOURCES_4, HTDemucs  # noqa: E402
from ironwave.models.apply import tf32_mode  # noqa: E402
from ironwave.nn import layers  # noqa: E402


def peak(fn):
    torch.cuda.synchronize(); torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn(); torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def main():
    dev = torch.device("cuda")
    torch.manual_seed(0)
    m = HTDemucs(list(SOURCES_4), **HTDEMUCS_KWARGS).eval().to(dev)
    L = m.training_length
    split_rows = layers.SPLIT_MAX_ROWS
    with torch.no_grad(), tf32_mode(False):
        x1 = torch.randn(1, 2, L, device=dev)
        layers.SPLIT_MAX_ROWS = 0
        want = m(x1)
        layers.SPLIT_MAX_ROWS = split_rows
        got = m(x1)
        print("split GN vs torch GN max abs", float((got - want).abs().max()), flush=True)
        for gn in ("torch", "split"):
            layers.SPLIT_MAX_ROWS = 0 if gn == "torch" else split_rows
            for b in (1, 2, 4, 8):
                x = torch.randn(b, 2, L, device=dev)
                t = bench(lambda: m(x), n=5, warmup=2)
                mb = peak(lambda: m(x))
                print(f"GN={gn} batch={b}: {t:.1f} ms ({t / b:.1f} ms/segment) peak {mb:.0f} MiB", flush=True)
        layers.SPLIT_MAX_ROWS = split_rows
        print("batch1 kernels:", _kernel_table(lambda: m(x1), n=14), flush=True)
        x4 = torch.randn(4, 2, L, device=dev)
        print("batch4 kernels:", _kernel_table(lambda: m(x4), n=14), flush=True)
        torch.backends.cudnn.benchmark = True
        for b in (1, 4):
            x = torch.randn(b, 2, L, device=dev)
            t = bench(lambda: m(x), n=5, warmup=2)
            print(f"cudnn.benchmark batch={b}: {t:.1f} ms peak {peak(lambda: m(x)):.0f} MiB", flush=True)
        torch.backends.cudnn.benchmark = False
        for b in (1, 4, 8):
            x = torch.randn(b, 2, L, device=dev)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                t = bench(lambda: m(x), n=5, warmup=2)
                mb = peak(lambda: m(x))
            print(f"bf16 batch={b}: {t:.1f} ms ({t / b:.1f} ms/seg) peak {mb:.0f} MiB", flush=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            print("bf16 batch4 kernels:", _kernel_table(lambda: m(x4), n=14), flush=True)
        # torch.compile (default mode), batch 1 and 4
        try:
            t0 = time.perf_counter()
            mc = torch.compile(m)
            mc(x1); torch.cuda.synchronize()
            print(f"compile time {time.perf_counter() - t0:.1f} s; diff vs eager",
                  float((mc(x1) - got).abs().max()), flush=True)
            print(f"compiled batch=1: {bench(lambda: mc(x1), n=5, warmup=2):.1f} ms peak {peak(lambda: mc(x1)):.0f} MiB", flush=True)
            mc(x4)
            print(f"compiled batch=4: {bench(lambda: mc(x4), n=5, warmup=2):.1f} ms peak {peak(lambda: mc(x4)):.0f} MiB", flush=True)
        except Exception as e:  # noqa: BLE001
            print("compile failed", type(e).__name__, str(e)[:300], flush=True)


if __name__ == "__main__":
    main()
