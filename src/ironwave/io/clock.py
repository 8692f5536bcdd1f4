"""Offline file clock: drive an engine block by block as fast as possible, sample-exact.

The output has exactly as many frames as the input (or ``seconds * sample_rate``),
the last partial block is zero-padded on the way in and trimmed on the way out.
"""
from __future__ import annotations

import gc
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable, Iterator

import torch

from ironwave.errors import InvalidAudio, InvalidParameter

if TYPE_CHECKING:  # pragma: no cover
    from ironwave.engine.engine import Engine


@contextmanager
def realtime_gc(threads: int | None = 1) -> Iterator[None]:
    """Real-time section: Python's cyclic GC cannot pause the audio thread (collect, freeze,
    disable; restored after), and torch's CPU intra-op pool is limited to *threads*
    (small per-block ops only lose to thread hand-offs, badly so on a loaded machine)."""
    was = gc.isenabled()
    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.unfreeze()
        if was:
            gc.enable()
        if threads is not None:
            torch.set_num_threads(old_threads)


def render(engine: "Engine", x: torch.Tensor | None = None, *, seconds: float | None = None,
           on_block: Callable[[int, "Engine"], None] | None = None, progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """Render through *engine* with the offline clock.

    Args:
        engine: the engine (its ``in_channels`` must match *x*).
        x: input ``[in_channels, time]`` (any float dtype; CPU or device), or None for silence.
        seconds: length when *x* is None (and the output length cap otherwise).
        on_block: called as ``on_block(k, engine)`` before block k (automation, edits).
        progress: called as ``progress(done_blocks, total_blocks)`` every 64 blocks.

    Returns:
        float32 CPU tensor ``[out_channels, time]``, same length as the input.
    """
    F = engine.block
    if x is None:
        if seconds is None or seconds <= 0:
            raise InvalidParameter("render needs an input signal or seconds > 0")
        n = int(round(seconds * engine.sample_rate))
    else:
        if x.ndim != 2 or x.shape[0] != engine.in_channels:
            raise InvalidAudio(f"input must be [{engine.in_channels}, time] for this engine, got {list(x.shape)}")
        if not bool(torch.isfinite(x).all()):
            raise InvalidAudio("input contains NaN or Inf samples")
        n = x.shape[-1] if seconds is None else min(x.shape[-1], int(round(seconds * engine.sample_rate)))
        x = x.detach().to("cpu", torch.float32)
    blocks = -(-n // F)
    out = torch.zeros(engine.out_channels, blocks * F)
    host_in = engine.host_in
    t0 = time.perf_counter()
    engine.resources.offline = True
    with realtime_gc():
        for k in range(blocks):
            if on_block is not None:
                on_block(k, engine)
            if x is not None:
                a, b = k * F, min((k + 1) * F, n)
                if b - a == F:
                    host_in.copy_(x[:, a:b])
                else:
                    host_in.zero_()
                    host_in[:, : b - a].copy_(x[:, a:b])
            y = engine.process_block()
            out[:, k * F:(k + 1) * F].copy_(y)
            if progress is not None and (k & 63) == 63:
                progress(k + 1, blocks)
    engine.last_render_s = time.perf_counter() - t0
    engine.resources.offline = False
    engine.collect()
    engine.flush_telemetry(engine.last_render_s)
    return out[:, :n]


def render_file(engine: "Engine", input_path: str | None, output_path: str, *, seconds: float | None = None,
                progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """Render an audio file (or silence) through *engine* into *output_path* (WAV/FLAC/...)."""
    from ironwave.io.files import read_audio, write_audio

    x = None
    if input_path is not None:
        x, sr = read_audio(input_path)
        if sr != engine.sample_rate:
            raise InvalidAudio(f"{input_path} is at {sr} Hz but the engine runs at {engine.sample_rate} Hz; resample it or set the patch's sample_rate")
        if x.shape[0] != engine.in_channels:
            if x.shape[0] == 1:
                x = x.expand(engine.in_channels, -1)
            else:
                raise InvalidAudio(f"{input_path} has {x.shape[0]} channels; the patch's input has {engine.in_channels}")
    y = render(engine, x, seconds=seconds, progress=progress)
    write_audio(output_path, y, engine.sample_rate)
    return y
