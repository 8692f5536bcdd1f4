"""A real audio server: jackd (dummy driver, 48 kHz / 128 frames) drives a 20-node patch for 10 s."""
from __future__ import annotations

import time

import pytest
import torch

from ironwave.engine import Engine, Graph

pytestmark = pytest.mark.jack


def patch20() -> Graph:
    """20 nodes: 4 voices (osc -> filter -> env -> pan), mixer, feedback delay, meter, output."""
    g = Graph()
    for k, (typ, f) in enumerate([("saw", 110.0), ("square", 165.0), ("sine", 220.0), ("saw", 330.0)]):
        g.add(typ, f"osc{k}", params={"freq": f, "amp": 0.2})
        g.add("biquad", f"lp{k}", params={"freq": 900.0 + 300 * k, "q": 1.5})
        g.add("adsr", f"env{k}", params={"attack": 0.05, "gate": 1.0})
        g.add("pan", f"pan{k}", params={"pan": -0.6 + 0.4 * k})
    g.add("mixer", "mix", params={"gain": 0.5})
    for k in range(4):
        for a, b in [(f"osc{k}", f"lp{k}"), (f"lp{k}", f"env{k}"), (f"env{k}", f"pan{k}"), (f"pan{k}", "mix")]:
            g.connect(a, b)
    g.add("delay", "dly", params={"time": 0.25}, config={"max_time": 0.5})
    g.connect("mix", "dly")
    g.connect("dly", "mix")  # feedback through the delay
    g.add("meter", "meter")
    g.add("output", "out", channels=2)
    g.connect("mix", "meter")
    g.connect("meter", "out")
    assert len(g) == 20
    return g


def test_jack_20_nodes_10_seconds_equals_offline(jack_server):
    from ironwave.io.clock import render
    from ironwave.io.jack import JackDriver

    seconds = 10.0
    eng = Engine(patch20(), sample_rate=48000, block=128, device="cpu", in_channels=2, out_channels=2)
    rec_frames = int(seconds * 48000)
    drv = JackDriver(eng, "ironwave-test", input="jack", output="jack", servername=jack_server, record_frames=rec_frames)
    t0 = time.perf_counter()
    with drv:
        while time.perf_counter() - t0 < seconds and drv.sides.recorded < rec_frames:
            time.sleep(0.05)
        elapsed = time.perf_counter() - t0
        calls = drv.callbacks
        meter = eng.meter("meter")
    assert drv.error is None, repr(drv.error)
    rate = calls / elapsed
    assert 340 <= rate <= 410, f"{rate:.1f} callbacks/s (expected ~375)"
    assert eng.xruns == drv.xruns and eng.xruns <= max(3, calls // 200), f"{eng.xruns} xruns in {calls} callbacks"
    assert max(meter["peak"]) > 0.01
    n = drv.sides.recorded
    assert n >= 0.9 * rec_frames
    live = torch.from_numpy(drv.record[:, :n].copy())
    ref = render(Engine(patch20(), sample_rate=48000, block=128, device="cpu", in_channels=2, out_channels=2),
                 seconds=n / 48000)
    assert torch.equal(live, ref[:, :n]), f"max diff {(live - ref[:, :n]).abs().max()}"


def test_jack_mismatched_block_is_a_clear_error(jack_server):
    from ironwave.io.jack import DriverError, JackDriver

    eng = Engine(patch20(), sample_rate=48000, block=64, device="cpu")
    with pytest.raises(DriverError, match="buffer size is 128 frames but the engine's block is 64"):
        JackDriver(eng, "ironwave-bad", servername=jack_server)


def test_portaudio_sees_jack(jack_server):
    """sounddevice, imported after the server started, lists JACK as a host API."""
    import subprocess
    import sys

    code = "import sounddevice as sd; print([h['name'] for h in sd.query_hostapis()])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert "JACK" in out, out
