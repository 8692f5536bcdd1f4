"""Built-in test signals (no files needed)."""
from __future__ import annotations

import math

import torch


def demo_signal(seconds: float = 4.0, sample_rate: int = 48000, channels: int = 2, seed: int = 0) -> torch.Tensor:
    """A short musical phrase: a plucked chord progression with noise-burst drums.

    Returns:
        float32 tensor ``[channels, round(seconds * sample_rate)]`` in [-1, 1].
    """
    n = int(round(seconds * sample_rate))
    t = torch.arange(n, dtype=torch.float64) / sample_rate
    g = torch.Generator().manual_seed(seed)
    out = torch.zeros(channels, n, dtype=torch.float64)
    chords = [(220.0, 277.18, 329.63), (196.0, 246.94, 293.66), (174.61, 220.0, 261.63), (196.0, 246.94, 311.13)]
    beat = 0.5
    for k in range(int(seconds / beat) + 1):
        start = k * beat
        i0 = int(start * sample_rate)
        if i0 >= n:
            break
        tt = t[i0:] - start
        env = torch.exp(-tt * 3.0)
        for j, f in enumerate(chords[(k // 2) % len(chords)]):
            tone = torch.sin(2 * math.pi * f * tt) + 0.3 * torch.sin(4 * math.pi * f * tt)
            pan = (j + 1) / 4
            out[0, i0:] += 0.15 * (1 - pan) * env * tone
            if channels > 1:
                out[1, i0:] += 0.15 * pan * env * tone
        m = min(n - i0, int(0.08 * sample_rate))
        burst = torch.randn(m, generator=g, dtype=torch.float64) * torch.exp(-torch.arange(m) / (0.015 * sample_rate))
        out[:, i0:i0 + m] += 0.3 * burst
    for c in range(2, channels):
        out[c] = out[c % 2]
    out = out / out.abs().max().clamp_min(1e-9) * 0.8
    return out.to(torch.float32)


def sine(freq: float, seconds: float, sample_rate: int = 48000, amplitude: float = 0.5) -> torch.Tensor:
    """A sine ``[time]`` of *freq* Hz lasting *seconds*."""
    n = int(round(seconds * sample_rate))
    t = torch.arange(n, dtype=torch.float64) / sample_rate
    return (amplitude * torch.sin(2 * math.pi * freq * t)).to(torch.float32)
