"""Run benchmark suites: ``python benchmarks/run.py [--device cpu|cuda] [--quick] [SUITE...]``.

Each ``benchmarks/bench_<suite>.py`` defines ``run(h: Harness) -> None``.
Results go to ``benchmarks/results/<suite>-<device>.json``.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.harness import RESULTS, Harness  # noqa: E402


def suites() -> list[str]:
    return sorted(p.stem[len("bench_"):] for p in HERE.glob("bench_*.py"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("suites", nargs="*")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args(argv)
    if a.list:
        print("\n".join(suites()))
        return 0
    from ironwave.backend import resolve_device

    device = resolve_device(a.device)
    chosen = a.suites or suites()
    unknown = [s for s in chosen if s not in suites()]
    if unknown:
        print(f"error: unknown suite(s) {unknown}; available: {suites()}", file=sys.stderr)
        return 2
    failed = []
    for s in chosen:
        print(f"== {s} on {device}", flush=True)
        mod = importlib.import_module(f"benchmarks.bench_{s}")
        h = Harness(s, device, quick=a.quick, out_dir=a.out)
        try:
            mod.run(h)
        except Exception:
            traceback.print_exc()
            failed.append(s)
        if h.entries:
            print(f"   -> {h.save()}", flush=True)
    if failed:
        print(f"suites with errors: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
