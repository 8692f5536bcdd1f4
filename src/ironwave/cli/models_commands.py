"""Model subcommands: ``separate`` (source separation of audio files) and ``models`` (what is installed)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ironwave.cli.main import UserError, app, console


@app.command()
def separate(
    files: list[Path] = typer.Argument(..., help="audio files to separate (wav, flac, ogg, aiff)"),
    out: Path = typer.Option(..., "--out", "-o", help="output folder; stems are written as <name>.<source>.<format>"),
    model: str = typer.Option("htdemucs", "--model", "-m", help="htdemucs | htdemucs_6s | PATH to a .th/.safetensors checkpoint"),
    device: str = typer.Option("auto", "--device", "-d", help="auto | cpu | cuda | cuda:N"),
    fmt: str = typer.Option("wav", "--format", "-f", help="wav (32-bit float) | flac (24-bit)"),
    shifts: int = typer.Option(0, min=0, max=20, help="random time shifts to average (quality vs. time)"),
    overlap: float = typer.Option(0.25, min=0.0, max=0.95, help="segment overlap fraction"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1,
                                             help="segments per forward pass (default: 1 in float32, with a CUDA "
                                                  "graph on GPUs, at the reference's memory; 8 for bf16/fp16 on "
                                                  "GPUs). Larger batches: faster, activation memory grows"),
    precision: str = typer.Option("float32", help="float32 | bfloat16 | float16 (autocast)"),
    time_only: bool = typer.Option(False, "--time-only", help="fast mode: waveform branch only (lower quality)"),
) -> None:
    """Separate audio files into stems (drums, bass, other, vocals[, guitar, piano]) with HTDemucs."""
    from ironwave.backend.device import resolve_device
    from ironwave.io.files import audio_info
    from ironwave.models.apply import PRECISIONS, SeparationStats, separate_file
    from ironwave.models.registry import load_model

    if fmt.lower() not in ("wav", "flac"):
        raise UserError(f"unsupported --format {fmt!r}; accepted: wav, flac")
    if precision not in PRECISIONS:
        raise UserError(f"unknown --precision {precision!r}; accepted: float32, bfloat16, float16")
    dev = resolve_device(device)
    # check every input before loading the model, so a typo fails fast
    for f in files:
        if not f.exists():
            raise FileNotFoundError(f"audio file not found: {f}")
        if f.is_dir():
            raise UserError(f"{f} is a directory; give audio files")
        info = audio_info(f)
        if info.frames == 0:
            raise UserError(f"{f} contains no audio frames")
    net = load_model(model)
    console.print(f"model {model}: sources {', '.join(net.sources)}; {net.samplerate} Hz; device {dev}")
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=console, transient=False) as bar:
        for f in files:
            task = bar.add_task(f.name, total=None)

            def tick(done: int, total: int, task: int = task) -> None:
                bar.update(task, completed=done, total=total)

            st = SeparationStats()
            paths = separate_file(net, f, out, fmt=fmt.lower(), shifts=shifts, overlap=overlap,
                                  batch_size=batch_size, device=device, precision=precision, time_only=time_only,
                                  progress=tick, stats=st)
            for note in st.notes:
                bar.console.print(f"[yellow]note:[/] {note}", highlight=False)
            bar.console.print(f"{f.name}: {len(paths)} stems in {st.seconds:.1f} s -> {out}", highlight=False)


@app.command()
def models(json_out: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """List the separation models, their sources, and where their weights are expected."""
    from ironwave.models.registry import MODELS, find_weights, models_dir

    d = models_dir()
    rows = []
    for name, info in MODELS.items():
        p = find_weights(name)
        rows.append({"name": name, "sources": list(info.sources), "weights": str(p) if p else None,
                     "expected": str(d / f"{name}.th"), "release_file": info.release_file, "url": info.url,
                     "description": info.description})
    if json_out:
        console.print_json(json.dumps({"models_dir": str(d), "models": rows}))
        return
    t = Table(title=f"separation models (weights dir: {d})")
    for c in ("name", "sources", "weights", "description"):
        t.add_column(c)
    for r in rows:
        t.add_row(r["name"], ", ".join(r["sources"]), r["weights"] or "[red]missing[/]", r["description"])
    console.print(t)
    if any(r["weights"] is None for r in rows):
        console.print(f"Missing weights: no download happens. Place each model's demucs checkpoint in {d} as "
                      "<name>.th (or under its release name), e.g.:", highlight=False)
        for r in rows:
            if r["weights"] is None:
                console.print(f"  {r['name']}: {r['url']} -> {r['expected']}", highlight=False)
        console.print("Any checkpoint also works directly: ironwave separate song.wav -o out --model PATH.th", highlight=False)


