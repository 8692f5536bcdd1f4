"""Generate examples/ir/room.flac: a synthetic but realistic stereo room impulse response.

Early reflections (3-60 ms, decaying), then a diffuse exponentially decaying
noise tail (RT60 about 1 s) that darkens over time, as real rooms do. Run:
``python examples/make_ir.py`` (the file is committed; rerun to regenerate).
"""
from pathlib import Path

from ironwave.engine.demo import demo_ir

if __name__ == "__main__":
    out = Path(__file__).resolve().parent / "ir" / "room.flac"
    out.parent.mkdir(exist_ok=True)
    demo_ir(out, sample_rate=48000, seconds=1.0)
    print(f"wrote {out}")
