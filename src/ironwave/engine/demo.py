"""``ironwave demo``: a built-in patch on a built-in input, through the engine, with a run report."""
from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import torch

from ironwave.engine.engine import Engine
from ironwave.engine.graph import Graph


def demo_ir(path: Path, sample_rate: int = 48000, seconds: float = 1.2, seed: int = 7) -> Path:
    """Write a synthetic room impulse response (early reflections + exponentially decaying,
    frequency-dependent diffuse tail) as a stereo float WAV."""
    from ironwave.io.files import write_audio

    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    ir = np.zeros((2, n))
    ir[:, 0] = 1.0
    for _ in range(24):  # early reflections 3..60 ms
        d = int(rng.uniform(0.003, 0.06) * sample_rate)
        ir[rng.integers(0, 2), d] += rng.uniform(-0.6, 0.6) * math.exp(-d / sample_rate / 0.15)
    rt60 = 1.0
    tail = rng.standard_normal((2, n)) * np.exp(-6.91 * t / rt60)
    # darker late tail: one-pole lowpass whose cutoff falls with time (crudely, by blending)
    from scipy.signal import lfilter

    dark = lfilter([0.15], [1, -0.85], tail, axis=-1)
    w = np.clip(t / seconds, 0, 1)
    tail = (1 - w) * tail + w * dark * 2.5
    onset = np.clip((t - 0.01) / 0.03, 0, 1)
    ir += 0.35 * tail * onset
    ir /= np.sqrt((ir ** 2).sum(axis=-1, keepdims=True)).max()
    write_audio(path, torch.from_numpy(ir.astype(np.float32)), sample_rate)
    return path


def demo_graph(ir_path: Path) -> Graph:
    """Input -> (dry + convolution reverb + feedback echo + pad voices) -> limiter-ish gain -> meter -> output."""
    g = Graph()
    g.add("input", "in", channels=2)
    g.add("biquad", "hp", config={"kind": "highpass"}, params={"freq": 80.0, "q": 0.7071})
    g.add("convolver", "reverb", config={"ir": str(ir_path)}, params={"mix": 0.35})
    g.add("delay", "echo", params={"time": 0.375}, config={"max_time": 1.0})
    g.add("gain", "echo_fb", params={"gain": 0.35})
    g.add("biquad", "echo_tone", config={"kind": "lowpass"}, params={"freq": 3000.0})
    g.add("lfo", "wobble", params={"rate": 0.25, "depth": 0.004, "offset": 0.0})
    for k, f in enumerate((110.0, 164.81, 220.0, 277.18)):
        g.add("saw", f"pad{k}", params={"freq": f, "amp": 0.05})
        g.add("biquad", f"pad{k}_lp", params={"freq": 900.0, "q": 1.5})
        g.add("adsr", f"pad{k}_env", params={"attack": 1.0, "release": 1.5, "sustain": 0.8, "gate": 1.0})
        g.add("pan", f"pad{k}_pan", params={"pan": -0.6 + 0.4 * k})
        g.connect("wobble", f"pad{k}.fm")
        g.connect(f"pad{k}", f"pad{k}_lp")
        g.connect(f"pad{k}_lp", f"pad{k}_env")
        g.connect(f"pad{k}_env", f"pad{k}_pan")
    g.add("mixer", "bus", params={"gain": 0.8})
    for k in range(4):
        g.connect(f"pad{k}_pan", "bus")
    g.connect("in", "hp")
    g.connect("hp", "bus")
    g.connect("bus", "echo")
    g.connect("echo", "echo_tone")
    g.connect("echo_tone", "echo_fb")
    g.connect("echo_fb", "echo")  # feedback loop through the delay
    g.add("mixer", "bus2", params={"gain": 1.0})
    g.connect("bus", "bus2")
    g.connect("echo_fb", "bus2")
    g.connect("bus2", "reverb")
    g.add("gain", "master", params={"gain": 0.8})
    g.add("meter", "meter")
    g.add("output", "out", channels=2)
    g.connect("reverb", "master")
    g.connect("master", "meter")
    g.connect("meter", "out")
    return g


def run_demo(output: Path, device: str = "auto", seconds: float = 4.0, block: int = 128) -> None:
    """Render the built-in demo patch over :func:`ironwave.signals.demo_signal` with the
    offline clock, write *output* (WAV) and print a run report."""
    from rich.console import Console
    from rich.table import Table

    from ironwave.backend.telemetry import telemetry
    from ironwave.io.clock import render
    from ironwave.io.files import write_audio
    from ironwave.signals import demo_signal

    console = Console()
    sr = 48000
    with tempfile.TemporaryDirectory() as tmp:
        ir = demo_ir(Path(tmp) / "room.wav", sr)
        eng = Engine(demo_graph(ir), sample_rate=sr, block=block, device=device, in_channels=2, out_channels=2)
        x = demo_signal(seconds, sr, 2)
        # automation: open the pads' filters, release them in the second half
        half = int(len(range(0, x.shape[-1], block)) * 0.6)

        def automate(k: int, e: Engine) -> None:
            if k == 8:
                for v in range(4):
                    e.set_param(f"pad{v}_lp", "freq", 2500.0, ramp=seconds * 0.4, curve="exp")
            if k == half:
                for v in range(4):
                    e.set_param(f"pad{v}_env", "gate", 0.0)

        y = render(eng, x, on_block=automate)
        eng.close()
    write_audio(output, y, sr)
    st = eng.stats()
    t = Table(title="ironwave engine demo")
    t.add_column("metric")
    t.add_column("value", justify="right")
    rows = [
        ("backend", st["backend"]), ("nodes / batched groups", f"{st['nodes']} / {st['groups']}"),
        ("block", f"{block} frames @ {sr} Hz (deadline {st['deadline_us']:.0f} us)"), ("blocks", str(st["blocks"])),
        ("block time p50 / p90 / p99 / max", f"{st['p50_us']:.0f} / {st['p90_us']:.0f} / {st['p99_us']:.0f} / {st['max_us']:.0f} us"),
        ("deadline misses", str(st["deadline_misses"])),
        ("render", f"{seconds:.1f} s in {eng.last_render_s * 1e3:.0f} ms ({seconds / max(eng.last_render_s, 1e-9):.0f}x real time)"),
        ("output peak", f"{float(y.abs().max()):.3f}"), ("output", str(output)),
    ]
    for k, v in rows:
        t.add_row(k, v)
    console.print(t)
    console.print(telemetry.table("telemetry"))
