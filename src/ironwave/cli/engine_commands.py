"""``ironwave run PATCH``: run a patch file through the engine (offline, JACK or PortAudio)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ironwave.cli.main import UserError, app, console

_RT = ("jack", "portaudio")


def _status_line(st: dict, extra: str = "") -> str:
    return (f"[bold]{st['backend']}[/]  blocks {st['blocks']}  p50 {st['p50_us']:.0f} us  p99 {st['p99_us']:.0f} us  "
            f"max {st['max_us']:.0f} us / deadline {st['deadline_us']:.0f} us  misses {st['deadline_misses']}  xruns {st['xruns']}{extra}")


def _report(eng, title: str) -> None:
    from ironwave.backend.telemetry import telemetry

    st = eng.stats()
    t = Table(title=title)
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k in ("backend", "blocks", "p50_us", "p90_us", "p99_us", "max_us", "deadline_us", "deadline_misses", "xruns",
              "nodes", "groups", "latency_samples"):
        v = st[k]
        t.add_row(k, f"{v:.1f}" if isinstance(v, float) else str(v))
    console.print(t)
    console.print(telemetry.table("telemetry"))


@app.command()
def run(
    patch: Path = typer.Argument(..., help="patch file (.yaml, .yml or .json)"),
    input: Optional[str] = typer.Option(None, "--input", "-i", help="input: an audio FILE, 'jack' or 'portaudio' (default: silence)"),
    output: Optional[str] = typer.Option(None, "--output", "-o", help="output: an audio FILE, 'jack' or 'portaudio'"),
    device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N"),
    block: Optional[int] = typer.Option(None, help="frames per block (default: the patch's, else 128)"),
    seconds: Optional[float] = typer.Option(None, help="how long to run (default: the input file's length; real time: until Ctrl-C)"),
    audio_device: Optional[str] = typer.Option(None, "--audio-device", help="PortAudio device name or index"),
    client_name: str = typer.Option("ironwave", help="JACK client name"),
) -> None:
    """Run PATCH through the real-time engine, offline (files) or live (JACK / PortAudio)."""
    from ironwave.engine import Engine

    if output is None:
        raise UserError("--output is required: an audio file path, 'jack' or 'portaudio'")
    if block is not None and not 1 <= block <= 65536:
        raise UserError(f"--block must be 1..65536 frames, got {block}")
    if seconds is not None and seconds <= 0:
        raise UserError(f"--seconds must be > 0, got {seconds}")
    rt = output in _RT or input in _RT
    if input in _RT and output in _RT and input != output:
        raise UserError(f"--input {input} and --output {output} must use the same audio system")
    if input is not None and input not in _RT and not Path(input).exists():
        raise FileNotFoundError(f"input file not found: {input}")
    kw = {"device": device}
    if block is not None:
        kw["block"] = block
    eng = Engine.from_patch(patch, **kw)
    try:
        if not rt:
            _run_offline(eng, input, output, seconds)
        else:
            _run_realtime(eng, input, output, seconds, "jack" if "jack" in (input, output) else "portaudio",
                          audio_device, client_name)
    finally:
        eng.close()


def _run_offline(eng, input: Optional[str], output: str, seconds: Optional[float]) -> None:
    from ironwave.io.clock import render_file

    if input is None and seconds is None:
        raise UserError("without --input, give --seconds (how long to render)")
    t0 = time.perf_counter()
    with console.status("rendering...") as status:
        def progress(done: int, total: int) -> None:
            status.update(_status_line(eng.stats(), f"  [{done}/{total} blocks]"))
        y = render_file(eng, input, output, seconds=seconds, progress=progress)
    el = time.perf_counter() - t0
    dur = y.shape[-1] / eng.sample_rate
    _report(eng, f"ironwave run: {dur:.2f} s rendered in {el:.2f} s ({dur / max(el, 1e-9):.1f}x real time) -> {output}")


def _run_realtime(eng, input, output, seconds, system, audio_device, client_name) -> None:
    from rich.live import Live

    if system == "jack":
        from ironwave.io.jack import JackDriver as Driver
        drv = Driver(eng, client_name=client_name, input=input, output=output)
    else:
        from ironwave.io.portaudio import PortAudioDriver as Driver
        drv = Driver(eng, device=audio_device, input=input, output=output)
    t0 = time.perf_counter()
    try:
        with drv, Live(console=console, refresh_per_second=4, transient=True) as live:
            while seconds is None or time.perf_counter() - t0 < seconds:
                time.sleep(0.25)
                live.update(_status_line(eng.stats(), f"  {time.perf_counter() - t0:.1f} s"))
                if drv.error is not None:
                    raise drv.error
    except KeyboardInterrupt:
        pass
    _report(eng, f"ironwave run ({system}) for {time.perf_counter() - t0:.1f} s")
