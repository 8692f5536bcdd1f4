"""Core subcommands: info, calibrate, demo, bench."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ironwave.cli.main import UserError, app, console


@app.command()
def info(json_out: bool = typer.Option(False, "--json", help="print JSON instead of tables")) -> None:
    """Versions, devices and the hardware profile (with crossovers)."""
    import numpy
    import scipy
    import torch

    import ironwave
    from ironwave.backend.profile import cache_dir, hardware_profile

    prof = hardware_profile()
    data = {
        "ironwave": ironwave.__version__, "python": sys.version.split()[0], "torch": torch.__version__,
        "cuda": torch.version.cuda, "numpy": numpy.__version__, "scipy": scipy.__version__,
        "profile": prof.to_json(), "cache_dir": str(cache_dir()),
    }
    if json_out:
        console.print_json(json.dumps(data))
        return
    t = Table(title="ironwave", show_header=False)
    for k in ("ironwave", "python", "torch", "cuda", "numpy", "scipy", "cache_dir"):
        t.add_row(k, str(data[k]))
    t.add_row("cpu", f"{prof.cpu_name} ({prof.cpu_cores} cores)")
    if not prof.gpus:
        t.add_row("gpu", "none (CUDA not available)")
    for g in prof.gpus:
        t.add_row(f"cuda:{g.index}", f"{g.name}, {g.multiprocessors} SMs, {g.memory_bytes / 2**30:.1f} GiB, cc {g.compute_capability}")
    console.print(t)
    c = Table(title=f"CPU/GPU crossover (total samples; {'calibrated ' + str(prof.calibrated_at) if prof.calibrated else 'defaults, run `ironwave calibrate`'})")
    c.add_column("op family")
    c.add_column("GPU from", justify="right")
    for k, v in sorted(prof.crossover.items()):
        c.add_row(k, "never" if v >= 1 << 60 else f"{v:,}")
    console.print(c)


@app.command()
def calibrate(repeat: int = typer.Option(5, min=1, help="timed repeats per size")) -> None:
    """Measure the CPU/GPU crossover per op family and cache it."""
    from ironwave.backend.profile import _cache_file, calibrate as run_calibration

    with console.status("calibrating CPU/GPU crossovers..."):
        prof = run_calibration(repeat=repeat)
    if not prof.gpus:
        console.print("no CUDA device: every op family stays on the CPU")
    for k, v in sorted(prof.crossover.items()):
        console.print(f"  {k:10s} GPU from {'never' if v >= 1 << 60 else f'{v:,} samples'}")
    console.print(f"saved to {_cache_file(prof)}")


def _demo_fallback(output: Path, device: str, seconds: float) -> None:
    """Until the engine lands: a small chain on a built-in signal through the backend."""
    import torch

    from ironwave.backend import resolve_device, telemetry
    from ironwave.io.files import write_audio
    from ironwave.signals import demo_signal

    dev = resolve_device(device)
    sr = 48000
    x = demo_signal(seconds, sr).to(dev)
    t0 = time.perf_counter()
    with telemetry.track("demo.gain", dev, requested=device):
        y = x * 0.8
    with telemetry.track("demo.reverb_fftconv", dev, requested=device):
        g = torch.Generator().manual_seed(1)
        n_ir = int(0.6 * sr)
        ir = (torch.randn(2, n_ir, generator=g) * torch.exp(-torch.arange(n_ir) / (0.12 * sr))).to(dev) * 0.05
        ir[:, 0] = 1.0
        n = y.shape[-1] + n_ir - 1
        nfft = 1 << (n - 1).bit_length()
        y = torch.fft.irfft(torch.fft.rfft(y, nfft) * torch.fft.rfft(ir, nfft), nfft)[..., : y.shape[-1]]
    with telemetry.track("demo.normalize", dev, requested=device):
        y = y / y.abs().max().clamp_min(1e-9) * 0.9
    elapsed = time.perf_counter() - t0
    write_audio(output, y.cpu(), sr)
    console.print(telemetry.table("demo telemetry"))
    console.print(f"rendered {seconds:.1f} s of stereo at {sr} Hz on {dev} in {elapsed * 1e3:.1f} ms "
                  f"({seconds / max(elapsed, 1e-9):.0f}x real time) -> {output}")


@app.command()
def demo(
    output: Path = typer.Option(Path("ironwave-demo.wav"), "--output", "-o", help="WAV file to write"),
    device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N"),
    seconds: float = typer.Option(4.0, min=0.1, max=600.0, help="length of the built-in input"),
    block: int = typer.Option(128, help="block size in frames (engine demo)"),
) -> None:
    """Run the built-in demo on a built-in input, write a WAV and print a report."""
    try:
        from ironwave.engine.demo import run_demo  # the engine's built-in patch, once it exists
    except ModuleNotFoundError as e:
        if not (e.name or "").startswith("ironwave.engine"):
            raise
        _demo_fallback(output, device, seconds)
        return
    run_demo(output=output, device=device, seconds=seconds, block=block)


def benchmarks_dir() -> Path:
    """The repository's benchmarks/ folder (cwd first, then next to the source tree)."""
    for cand in (Path.cwd() / "benchmarks", Path(__file__).resolve().parents[3] / "benchmarks"):
        if (cand / "run.py").exists():
            return cand
    raise UserError("benchmarks/ not found: run `ironwave bench` from a clone of the ironwave repository")


@app.command()
def bench(
    suites: Optional[list[str]] = typer.Argument(None, help="suite names (default: all); see --list"),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    quick: bool = typer.Option(False, help="fewer repeats and smaller sizes"),
    out: Optional[Path] = typer.Option(None, help="folder for result JSON (default benchmarks/results)"),
    list_: bool = typer.Option(False, "--list", help="list suites and exit"),
) -> None:
    """Run benchmark suites side by side with their peers; print ratios; write JSON."""
    bdir = benchmarks_dir()
    cmd = [sys.executable, str(bdir / "run.py"), "--device", device]
    if quick:
        cmd.append("--quick")
    if out:
        cmd += ["--out", str(out)]
    if list_:
        cmd.append("--list")
    cmd += list(suites or [])
    env = dict(os.environ)
    env["PYTHONPATH"] = str(bdir.parent) + os.pathsep + env.get("PYTHONPATH", "")
    rc = subprocess.call(cmd, env=env)
    if rc:
        raise typer.Exit(rc)
