"""Side-by-side benchmark harness: ironwave and a peer in the same process.

Each comparison warms both up, then takes the median of N timed runs (CUDA work
is synchronized before the clock is read), prints the ratio peer/ours (> 1 means
ironwave is faster) and stores everything in JSON with device, versions and date.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def _sync(device: torch.device | None) -> None:
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def time_fn(fn: Callable[[], Any], *, warmup: int = 3, repeat: int = 20, device: torch.device | None = None,
            min_time: float = 0.0) -> dict[str, float]:
    """Median/min/p90 seconds of ``fn()`` after *warmup* calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    ts: list[float] = []
    t_start = time.perf_counter()
    while len(ts) < repeat or (time.perf_counter() - t_start) < min_time:
        t0 = time.perf_counter()
        fn()
        _sync(device)
        ts.append(time.perf_counter() - t0)
        if len(ts) >= repeat * 20:
            break
    ts.sort()
    return {"median_s": statistics.median(ts), "min_s": ts[0], "p90_s": ts[int(0.9 * (len(ts) - 1))],
            "p99_s": ts[int(0.99 * (len(ts) - 1))], "n": len(ts)}


def device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        from ironwave.backend.profile import cpu_model_name

        name = cpu_model_name()
    except Exception:
        name = platform.processor()
    return f"{name} ({os.cpu_count()} cores)"


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


@dataclass
class Harness:
    """Collects comparisons of one suite on one device."""

    suite: str
    device: torch.device
    quick: bool = False
    out_dir: Path = RESULTS
    entries: list[dict[str, Any]] = field(default_factory=list)

    def compare(self, name: str, ours: Callable[[], Any], peer: Optional[Callable[[], Any]], *, peer_name: str,
                warmup: int = 3, repeat: int = 20, peer_device: torch.device | None = None,
                target: str | None = None, target_ratio: float | None = None,
                target_ours_s: float | None = None, params: dict[str, Any] | None = None,
                note: str | None = None) -> dict[str, Any]:
        """Time *ours* and *peer*; ratio = peer_time / ours_time (> 1: ironwave faster).

        ``target_ratio`` (minimum ratio) and ``target_ours_s`` (maximum time of
        ours) mark the issue's bar; the entry records whether it was met.
        """
        if self.quick:
            repeat = max(3, repeat // 4)
            warmup = max(1, warmup // 2)
        o = time_fn(ours, warmup=warmup, repeat=repeat, device=self.device)
        p = time_fn(peer, warmup=warmup, repeat=repeat, device=peer_device or self.device) if peer is not None else None
        ratio = (p["median_s"] / o["median_s"]) if p else None
        met = None
        if target_ratio is not None and ratio is not None:
            met = ratio >= target_ratio
        if target_ours_s is not None:
            met = (met is not False) and o["median_s"] <= target_ours_s
        e = {"name": name, "peer": peer_name, "ours": o, "peer_time": p, "ratio": ratio, "target": target,
             "target_met": met, "params": params or {}, "note": note}
        self.entries.append(e)
        r = f"{ratio:6.2f}x" if ratio is not None else "   n/a "
        flag = "" if met is None else ("  [target met]" if met else "  [TARGET MISSED]")
        pt = f"{p['median_s'] * 1e3:10.3f} ms" if p else "      -     "
        print(f"  {name:58s} ours {o['median_s'] * 1e3:10.3f} ms  {peer_name:>18s} {pt}  ratio {r}{flag}", flush=True)
        return e

    def record(self, name: str, value: float, unit: str, *, target: str | None = None, met: bool | None = None,
               params: dict[str, Any] | None = None, note: str | None = None) -> None:
        """Store a non-timing measurement (quality metric, throughput, ...)."""
        self.entries.append({"name": name, "value": value, "unit": unit, "target": target, "target_met": met,
                             "params": params or {}, "note": note})
        print(f"  {name:58s} {value:.6g} {unit}" + ("" if met is None else ("  [target met]" if met else "  [TARGET MISSED]")), flush=True)

    def save(self) -> Path:
        import numpy
        import scipy

        import ironwave

        versions = {"ironwave": ironwave.__version__, "python": sys.version.split()[0], "torch": torch.__version__,
                    "cuda": torch.version.cuda, "numpy": numpy.__version__, "scipy": scipy.__version__}
        for mod in ("librosa", "soxr", "pedalboard", "julius", "nnAudio", "nsgt", "torchaudio", "demucs"):
            try:
                m = __import__(mod)
                versions[mod] = getattr(m, "__version__", "?")
            except Exception:
                pass
        doc = {"suite": self.suite, "device": device_label(self.device), "device_type": self.device.type,
               "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "quick": self.quick,
               "versions": versions, "entries": self.entries}
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"{self.suite}-{slug(device_label(self.device))}.json"
        path.write_text(json.dumps(doc, indent=2, default=float))
        return path
