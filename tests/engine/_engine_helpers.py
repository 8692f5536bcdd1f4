"""Shared helpers of the engine tests: random graphs and block runners."""
from __future__ import annotations

import random

import numpy as np
import soundfile as sf
import torch

from ironwave.engine import Engine, Graph

# type -> (main input port or None, mono ports, output channels rule)
PROCESSORS = ["gain", "mixer", "pan", "biquad", "delay", "adsr", "meter", "spectral_gate", "convolver", "sos"]
SOURCES = ["sine", "saw", "square", "noise", "lfo"]


def small_ir(path) -> str:
    rng = np.random.default_rng(3)
    ir = (rng.standard_normal(300) * np.exp(-np.arange(300) / 60)).astype(np.float32)
    sf.write(str(path), ir, 48000, subtype="FLOAT")
    return str(path)


def random_graph(seed: int, n_nodes: int, ir_path: str, with_io: bool = True, device_stable: bool = False) -> Graph:
    """A random valid graph of *n_nodes* nodes (plus input/output), with fan-in,
    upmix, modulation inputs and feedback loops through delays.

    ``device_stable=True`` (for CPU vs CUDA comparisons) leaves out what turns a
    float32 rounding difference into a large output difference by design: the
    spectral gate (a bin at its threshold flips between pass and -30 dB) and
    oscillator FM driven by processed audio (the phase integrates the input's
    rounding differences and a polyBLEP edge multiplies them by 2/dt); FM from
    sources (LFOs, oscillators) stays, since those are computed identically."""
    rnd = random.Random(seed)
    g = Graph()
    chans: dict[str, int] = {}
    order: list[str] = []
    if with_io:
        g.add("input", "in", channels=2)
        chans["in"] = 2
        order.append("in")
    delays: list[str] = []
    for k in range(n_nodes):
        procs = [p for p in PROCESSORS if p != "spectral_gate"] if device_stable else PROCESSORS
        typ = rnd.choice(SOURCES if k < 2 or rnd.random() < 0.25 else procs)
        name = f"n{k}"
        params, config = {}, {}
        if typ in ("sine", "saw", "square"):
            params = {"freq": rnd.uniform(50, 5000), "amp": rnd.uniform(0.1, 1)}
        elif typ == "lfo":
            params = {"rate": rnd.uniform(0.5, 20), "depth": rnd.uniform(0.0, 0.5)}
            config = {"wave": rnd.choice(["sine", "triangle", "square", "saw"])}
        elif typ == "noise":
            config = {"seed": rnd.randrange(1000)}
        elif typ == "gain":
            params = {"gain": rnd.uniform(-1, 1)}
        elif typ == "pan":
            params = {"pan": rnd.uniform(-1, 1)}
        elif typ == "biquad":
            config = {"kind": rnd.choice(["lowpass", "highpass", "peak"])}
            params = {"freq": rnd.uniform(100, 8000), "q": rnd.uniform(0.3, 4), "gain_db": rnd.uniform(-6, 6)}
        elif typ == "delay":
            params = {"time": rnd.uniform(0.0, 0.01)}
            config = {"max_time": 0.02}
        elif typ == "adsr":
            params = {"attack": rnd.uniform(0, 0.01), "decay": 0.01, "gate": float(rnd.random() < 0.7)}
        elif typ == "spectral_gate":
            config = {"fft_size": 128}
            params = {"threshold_db": rnd.uniform(-80, -20)}
        elif typ == "convolver":
            config = {"ir": ir_path}
        elif typ == "sos":
            config = {"sos": [[0.2, 0.4, 0.2, 1.0, -0.5, 0.3], [1.0, -1.0, 0.0, 1.0, -0.9, 0.0]][: rnd.randint(1, 2)]}
        srcs = []
        if typ not in SOURCES and order:
            srcs = rnd.sample(order, k=min(len(order), rnd.randint(1, 3)))
        if typ == "pan":
            srcs = [s for s in srcs if chans[s] <= 2]
        c = max([chans[s] for s in srcs], default=1)
        if typ == "pan":
            c = min(c, 2)
        g.add(typ, name, params=params, config=config)
        for s in srcs:
            if chans[s] == c or chans[s] == 1:
                g.connect(s, name)
        mono_port = {"gain": "mod", "pan": "mod", "sine": "fm", "saw": "fm", "square": "fm"}.get(typ)
        if mono_port and rnd.random() < 0.3:
            monos = [s for s in order if chans[s] == 1 and g.node(s).type != "adsr"]
            if device_stable and mono_port == "fm":
                monos = [s for s in monos if g.node(s).type in SOURCES]
            if monos:
                g.connect(rnd.choice(monos), f"{name}.{mono_port}")
        if typ == "adsr" and rnd.random() < 0.3:
            chans[name] = c
            order.append(name)
            continue
        chans[name] = 2 if typ == "pan" else c
        order.append(name)
        if typ == "delay":
            delays.append(name)
    # feedback through delays: a later node back into a delay
    for d in delays:
        later = [s for s in order[order.index(d) + 1:] if chans[s] in (1, chans[d])]
        if later and rnd.random() < 0.5:
            g.connect(rnd.choice(later), d)
    if with_io:
        g.add("output", "out", channels=2)
        for s in rnd.sample(order, k=min(len(order), 3)):
            if chans[s] in (1, 2):
                g.connect(s, "out")
    return g


def run_blocks(eng: Engine, x: torch.Tensor, automation=None) -> torch.Tensor:
    F = eng.block
    ys = []
    for k in range(x.shape[-1] // F):
        if automation is not None:
            automation(k, eng)
        ys.append(eng.process(x[:, k * F:(k + 1) * F]))
    return torch.cat(ys, -1)
