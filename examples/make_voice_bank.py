"""Generate examples/voice_bank.yaml: N synth voices (saw -> lowpass -> ADSR -> pan) into a mixer.

``python examples/make_voice_bank.py [N]`` (default 8). Every voice type runs as
one batched kernel call per block, whatever N is.
"""
import sys
from pathlib import Path

import yaml

NOTES = [110.0, 138.59, 164.81, 220.0, 277.18, 329.63, 440.0, 554.37, 659.26, 880.0]


def bank(n: int) -> dict:
    nodes = {"vibrato": {"type": "lfo", "params": {"rate": 5.0, "depth": 0.01}}}
    conns = []
    for k in range(n):
        f = NOTES[k % len(NOTES)] * (2 ** (k // len(NOTES)))
        nodes[f"osc{k}"] = {"type": "saw" if k % 2 == 0 else "square", "params": {"freq": round(f, 2), "amp": 0.2}}
        nodes[f"lp{k}"] = {"type": "biquad", "config": {"kind": "lowpass"}, "params": {"freq": 1200.0 + 200 * k, "q": 1.2}}
        nodes[f"env{k}"] = {"type": "adsr", "params": {"attack": 0.02 + 0.01 * k, "decay": 0.2, "sustain": 0.6, "release": 0.5, "gate": 1.0}}
        nodes[f"pan{k}"] = {"type": "pan", "params": {"pan": round(-0.8 + 1.6 * k / max(n - 1, 1), 3)}}
        conns += [f"vibrato -> osc{k}.fm", f"osc{k} -> lp{k}", f"lp{k} -> env{k}", f"env{k} -> pan{k}", f"pan{k} -> mix"]
    nodes["mix"] = {"type": "mixer", "params": {"gain": round(1.0 / n ** 0.5, 4)}}
    nodes["meter"] = {"type": "meter"}
    nodes["out"] = {"type": "output", "channels": 2}
    conns += ["mix -> meter", "meter -> out"]
    return {"name": f"voice bank ({n} voices)", "sample_rate": 48000, "block": 128,
            "metadata": {"description": "polyphonic synth voices, batched per node type", "generator": "make_voice_bank.py"},
            "nodes": nodes, "connections": conns}


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    out = Path(__file__).resolve().parent / "voice_bank.yaml"
    out.write_text(yaml.safe_dump(bank(n), sort_keys=False))
    print(f"wrote {out}")
