"""Launch one resample kernel variant 3 times (for Nsight Compute / cuobjdump of Triton's cache).

    python resample_prof.py VARIANT      # x3 | x3-notma | x3-nocap | tf32 | ieee
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from ironwave.dsp import _resample_triton as rt  # noqa: E402
from ironwave.dsp.resample import design  # noqa: E402

VARIANTS = {
    "x3": lambda x, p: rt.resample_triton(x, p),
    "x3-notma": lambda x, p: rt.resample_triton(x, p, tma=False),
    "x3-nocap": lambda x, p: rt.resample_triton(x, p, maxnreg=0),
    "tf32": lambda x, p: rt.resample_triton(x, p, precision="tf32"),
    "ieee": lambda x, p: rt.resample_triton(x, p, precision="ieee"),
}


def main() -> None:
    x = torch.randn(64, 60 * 48000, device="cuda")
    p = design(48000, 44100)
    for _ in range(3):
        VARIANTS[sys.argv[1]](x, p)
    torch.cuda.synchronize()


if __name__ == "__main__":
    main()
