"""Applying a separation model to audio of any length.

The signal is cut into segments of the model's training length with 25 %
overlap (by default); each segment is separated and the segments are
cross-faded with demucs' triangular weights, so the output equals
``demucs.apply.apply_model(model, mix, shifts=0, overlap=0.25)`` (same
segment grid, same context padding of the last segments, same weights). Unlike
demucs, segments are run in batches (``batch_size``), the overlap-add buffer is
bounded (a few segments), and the input is read through a window reader, so a
file on disk is separated with memory that does not grow with its length
(:func:`separate_file`).

Options: random time shifts (the "shift trick"), bfloat16/float16 autocast,
CUDA-graph replay of the batched forward (``graph=True``), and a fast mode that
runs only the waveform decoder (``time_only=True``).
"""
from __future__ import annotations

import math
import os
import random
import tempfile
import time
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

from ironwave.backend.device import DeviceLike, resolve_device
from ironwave.backend.program import CapturedProgram
from ironwave.backend.telemetry import telemetry
from ironwave.backend.validate import as_tensor, check_audio, restore_type
from ironwave.errors import InvalidAudio, InvalidParameter

PathLike = Union[str, os.PathLike]
Progress = Callable[[int, int], None]

__all__ = ["apply_model", "separate_file", "separate_files", "SeparationStats", "segment_offsets",
           "transition_weight", "BatchedForward", "PRECISIONS", "DEFAULT_BATCH", "DEFAULT_BATCH_REDUCED",
           "tf32_mode"]

#: segments per forward call when ``batch_size=None``: one, so the forward's peak memory is one
#: segment's activations (the reference's, which runs one segment at a time); on CUDA the speed
#: comes from replaying a CUDA graph of that forward (``graph=None`` -> True on CUDA) instead.
DEFAULT_BATCH = {"cuda": 1, "cpu": 1}

#: segments per forward with ``precision="bf16"/"fp16"`` and ``batch_size=None`` on CUDA: reduced precision is
#: a speed setting, so it batches (activation memory grows with the batch; the memory bar is the float32 default's)
DEFAULT_BATCH_REDUCED = {"cuda": 8, "cpu": 1}


@contextmanager
def tf32_mode(enabled: bool | None) -> Iterator[None]:
    """Set ``torch.backends.cudnn.allow_tf32`` and ``torch.backends.cuda.matmul.allow_tf32`` for a block
    (None: leave them alone); the previous values are restored afterwards."""
    if enabled is None:
        yield
        return
    old = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = enabled
    torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old

PRECISIONS = {"float32": None, "fp32": None, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
              "float16": torch.float16, "fp16": torch.float16}


class _Model(Protocol):  # what apply needs from a model
    samplerate: int
    segment: Any
    sources: list[str]
    audio_channels: int

    def __call__(self, mix: torch.Tensor, **kw: Any) -> torch.Tensor: ...


@dataclass
class SeparationStats:
    """What a separation did (for tests, benchmarks and progress reports).

    Attributes:
        segments: number of model segments run (all shifts).
        batches: number of batched forward calls.
        max_window_samples: the largest stretch of input (samples, per channel)
            held at once, i.e. the bounded-memory proof for streamed files.
        max_buffer_samples: the largest overlap-add buffer (samples per channel).
        seconds: wall-clock seconds.
        notes: conversions that were applied (resampling, channel changes).
    """

    segments: int = 0
    batches: int = 0
    max_window_samples: int = 0
    max_buffer_samples: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def transition_weight(segment_length: int, transition_power: float = 1.0, device: DeviceLike = "cpu") -> torch.Tensor:
    """demucs' triangular cross-fade weight ``[segment_length]`` (max 1 in the middle)."""
    dev = torch.device(device) if not isinstance(device, torch.device) else device
    w = torch.cat([torch.arange(1, segment_length // 2 + 1, device=dev),
                   torch.arange(segment_length - segment_length // 2, 0, -1, device=dev)])
    return (w / w.max()) ** transition_power


def segment_offsets(length: int, segment_length: int, overlap: float) -> range:
    """Start offsets (samples) of the segments covering ``length`` samples."""
    stride = int((1 - overlap) * segment_length)
    if stride < 1:
        raise InvalidParameter(f"overlap={overlap} leaves no stride for a segment of {segment_length} samples")
    return range(0, length, stride)


class _Reader(Protocol):
    length: int
    channels: int
    batch: int

    def read(self, start: int, end: int) -> torch.Tensor:
        """Samples ``[start, end)`` as ``[batch, channels, end-start]`` with zeros outside the signal."""
        ...


class _TensorReader:
    def __init__(self, x: torch.Tensor) -> None:
        self.x = x
        self.length = x.shape[-1]
        self.channels = x.shape[-2]
        self.batch = x.shape[0]

    def read(self, start: int, end: int) -> torch.Tensor:
        a, b = max(0, start), min(self.length, end)
        if a >= b:
            return self.x.new_zeros(*self.x.shape[:-1], end - start)
        return F.pad(self.x[..., a:b], (a - start, end - b))

    def read_into(self, start: int, end: int, out: torch.Tensor) -> None:
        """As :meth:`read`, written into ``out [batch, channels, end-start]`` (one copy)."""
        a, b = max(0, start), min(self.length, end)
        if a >= b:
            out.zero_()
            return
        if a > start:
            out[..., :a - start].zero_()
        if b < end:
            out[..., b - start:].zero_()
        out[..., a - start:b - start].copy_(self.x[..., a:b])


class _FileReader:
    """Random-access window reads from a sound file (mono duplicated; >2 channels: first ones)."""

    def __init__(self, path: Path, channels: int, shift: float = 0.0, scale: float = 1.0) -> None:
        import soundfile as sf

        self.f = sf.SoundFile(str(path))
        self.length = self.f.frames
        self.file_channels = self.f.channels
        self.channels = channels
        self.batch = 1
        self.shift, self.scale = shift, scale

    def read(self, start: int, end: int) -> torch.Tensor:
        a, b = max(0, start), min(self.length, end)
        out = torch.zeros(1, self.channels, end - start)
        if a < b:
            self.f.seek(a)
            data = self.f.read(b - a, dtype="float32", always_2d=True)
            t = torch.from_numpy(np.ascontiguousarray(data.T))
            if t.shape[0] == 1 and self.channels > 1:
                t = t.expand(self.channels, -1)
            elif t.shape[0] > self.channels:
                t = t[: self.channels]
            out[0, :, a - start:b - start] = (t - self.shift) / self.scale
        return out

    def read_into(self, start: int, end: int, out: torch.Tensor) -> None:
        """As :meth:`read`, written into ``out [1, channels, end-start]``."""
        out.copy_(self.read(start, end))

    def close(self) -> None:
        self.f.close()


class BatchedForward:
    """Runs ``model`` on batches of segments ``[n, channels, valid_length]``.

    Handles device placement, autocast (``precision``) and, with ``graph=True``,
    a :class:`~ironwave.backend.program.CapturedProgram` of the fixed-size batch
    (a CUDA graph replayed per batch on CUDA; eager on the CPU). Partial batches
    are zero-padded to the captured size in graph mode.
    """

    def __init__(self, model: Any, device: torch.device, batch_size: int, valid_length: int, *,
                 precision: str = "float32", graph: bool | None = False, time_only: bool = False,
                 requested: DeviceLike = None, mix_batch: int = 1) -> None:
        if precision not in PRECISIONS:
            raise InvalidParameter(f"unknown precision {precision!r}; accepted: {', '.join(PRECISIONS)}")
        self.model = model
        self.device = device
        self.batch_size = batch_size * mix_batch
        self.valid_length = valid_length
        self.dtype = PRECISIONS[precision]
        self.time_only = time_only
        self.requested = requested
        self.program: CapturedProgram | None = None
        self.graph_error: str | None = None
        explicit = graph is not None
        if graph is None:  # auto: a CUDA graph on CUDA for one segment per forward (launch-bound); a batch
            # fills the GPU by itself and a capture per apply call would cost ~2 batched forwards
            graph = device.type == "cuda" and self.batch_size == 1
        self._graph_mode = bool(graph)
        if graph:
            ex = torch.zeros(self.batch_size, model.audio_channels, valid_length, device=device)
            try:
                # one eager warm-up fills the model's caches (window, iSTFT envelope, embeddings), cuFFT plans
                # and cuDNN choices; every apply call captures afresh (~2 forwards of overhead per call)
                self.program = CapturedProgram(self._run, [ex], device=device, warmup=1,
                                               name="models.htdemucs.graph")
            except Exception as e:  # noqa: BLE001 - only the automatic choice falls back, and says so
                if explicit:
                    raise
                self.program = None
                self._graph_mode = False
                self.graph_error = f"{type(e).__name__}: {e}"
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                warnings.warn(f"ironwave: CUDA-graph capture of the HTDemucs forward failed ({self.graph_error}); "
                              "running it eagerly (pass graph=False to skip the attempt)", RuntimeWarning,
                              stacklevel=2)
                telemetry.record("models.htdemucs.graph_fallback", device, 0.0, requested)

    def _autocast(self) -> Any:
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype, cache_enabled=self.program is None)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        # eager: inference_mode (no autograd bookkeeping at all). A captured program's static
        # outputs are written in place on later calls, which inference tensors forbid: no_grad there.
        grad_off = torch.no_grad() if self._graph_mode else torch.inference_mode()
        with grad_off, self._autocast():
            kw = {"time_only": True} if self.time_only else {}
            return self.model(x, **kw).float()

    def close(self) -> None:
        """Release the captured graph and its memory pool now (not at garbage collection)."""
        self.program = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        x = x.to(self.device, non_blocking=True)
        t0 = time.perf_counter()
        if self.program is not None:
            if n < self.batch_size:
                x = F.pad(x, (0, 0, 0, 0, 0, self.batch_size - n))
            y = self.program(x)[0][:n].clone()
        else:
            y = self._run(x)
        telemetry.record("models.htdemucs.forward", self.device, time.perf_counter() - t0, self.requested)
        return y


def _center_trim(x: torch.Tensor, length: int) -> torch.Tensor:
    delta = x.shape[-1] - length
    if delta < 0:
        raise InvalidParameter(f"model output of {x.shape[-1]} samples is shorter than the chunk ({length})")
    return x[..., delta // 2: x.shape[-1] - (delta - delta // 2)] if delta else x


def _run_pass(forward: BatchedForward, reader: _Reader, *, base: int, length: int, segment_length: int,
              valid_length: int, overlap: float, weight: torch.Tensor, batch: int, sources: int,
              emit: Callable[[int, torch.Tensor], None], stats: SeparationStats,
              progress: Callable[[int], None] | None = None) -> None:
    """One pass over a virtual signal ``s[t] = reader[base + t]``, ``t in [0, length)``.

    Emits finished, normalised output blocks ``emit(t0, block [b, S, C, n])`` in order.
    """
    offsets = list(segment_offsets(length, segment_length, overlap))
    stride = int((1 - overlap) * segment_length)
    dev = forward.device
    b = getattr(reader, "batch", 1)
    acc: torch.Tensor | None = None
    wsum: torch.Tensor | None = None
    acc_start = 0  # virtual position of acc[..., 0]
    # On CUDA the host work overlaps the GPU: segments are read into one of two pinned staging
    # buffers and copied asynchronously, and each finished block is handed to ``emit`` (a
    # device->host copy) on a side stream one batch late, while the next forward runs.
    staged = dev.type == "cuda" and hasattr(reader, "read_into")
    stages: list[tuple[torch.Tensor, torch.cuda.Event]] = []
    side = torch.cuda.Stream(dev) if dev.type == "cuda" else None
    pending: list[tuple[int, torch.Tensor, Any]] = []

    def flush() -> None:
        while pending:
            t0, block, ev = pending.pop(0)
            if side is None:
                emit(t0, block)
                continue
            with torch.cuda.stream(side):
                side.wait_event(ev)
                block.record_stream(side)
                emit(t0, block)
            side.synchronize()

    for k, i in enumerate(range(0, len(offsets), batch)):
        group = offsets[i:i + batch]
        lens = [min(length - off, segment_length) for off in group]
        starts = [off - (valid_length - clen) // 2 for off, clen in zip(group, lens)]
        if staged:
            if len(stages) < 2:
                buf = torch.empty(batch * b, reader.channels, valid_length, pin_memory=True)
                stages.append((buf, torch.cuda.Event()))
            buf, ev_in = stages[k % 2]
            ev_in.synchronize()  # its previous upload has finished
            xs = buf[:len(group) * b]
            for j, start in enumerate(starts):
                reader.read_into(base + start, base + start + valid_length, xs[j * b:(j + 1) * b])
            x = xs.to(dev, non_blocking=True)
            ev_in.record()
        else:
            windows = [reader.read(base + start, base + start + valid_length) for start in starts]
            x = torch.cat(windows, 0)
            b = windows[0].shape[0]
        stats.max_window_samples = max(stats.max_window_samples, x.shape[0] // b * valid_length)
        y = forward(x)  # [n*b, S, C, valid]
        stats.batches += 1
        stats.segments += len(group)
        if acc is None:
            span = segment_length + stride * batch
            acc = torch.zeros(b, sources, reader.channels, span, device=dev)
            wsum = torch.zeros(span, device=dev)
        # grow if needed (never beyond one batch of strides + one segment)
        need = group[-1] + segment_length - acc_start
        if need > acc.shape[-1]:
            acc = F.pad(acc, (0, need - acc.shape[-1]))
            wsum = F.pad(wsum, (0, need - wsum.shape[-1]))
        stats.max_buffer_samples = max(stats.max_buffer_samples, acc.shape[-1])
        for j, (off, clen) in enumerate(zip(group, lens)):
            out = _center_trim(y[j * b:(j + 1) * b], clen)
            p = off - acc_start
            acc[..., p:p + clen] += weight[:clen] * out
            wsum[p:p + clen] += weight[:clen]
        nxt = offsets[i + batch] if i + batch < len(offsets) else length
        done = nxt - acc_start
        flush()  # the previous batch's block (its copy overlapped this batch's forward)
        if done > 0:
            block = acc[..., :done] / wsum[:done]
            ev = None
            if side is not None:
                ev = torch.cuda.Event()
                ev.record()
            pending.append((acc_start, block, ev))
            acc = torch.cat([acc[..., done:], torch.zeros_like(acc[..., :done])], -1)
            wsum = torch.cat([wsum[done:], torch.zeros_like(wsum[:done])], -1)
            acc_start = nxt
        if progress is not None:
            progress(len(group))
    flush()


def _tf32_for(tf32: bool | None, precision: str, device: torch.device) -> bool | None:
    if device.type != "cuda":
        return None
    if tf32 is None:
        return False if PRECISIONS.get(precision, 0) is None else None
    return bool(tf32)


def _batch_for(batch_size: int | None, device: torch.device, precision: str = "float32") -> int:
    if batch_size is not None:
        return batch_size
    table = DEFAULT_BATCH if PRECISIONS.get(precision) is None else DEFAULT_BATCH_REDUCED
    return table.get(device.type, 1)


def _prepare(model: Any, segment: float | None, overlap: float, shifts: int, batch_size: int,
             transition_power: float) -> tuple[int, int]:
    if not 0 <= overlap < 1:
        raise InvalidParameter(f"overlap must be in [0, 1), got {overlap}")
    if shifts < 0:
        raise InvalidParameter(f"shifts must be >= 0, got {shifts}")
    if batch_size < 1:
        raise InvalidParameter(f"batch_size must be >= 1, got {batch_size}")
    if transition_power < 1:
        raise InvalidParameter(f"transition_power must be >= 1, got {transition_power}")
    model_seg = model.segment
    if segment is None:
        segment = model_seg
    if segment <= 0:
        raise InvalidParameter(f"segment must be > 0 seconds, got {segment}")
    if getattr(model, "use_train_segment", True) and segment > model_seg:
        raise InvalidParameter(f"segment={float(segment):.3f} s exceeds the model's training segment of "
                               f"{float(model_seg):.3f} s")
    segment_length = int(model.samplerate * segment)
    valid_length = int(segment * model.samplerate) if segment is not None else segment_length
    return segment_length, valid_length


def _separate(model: Any, reader: _Reader, emit: Callable[[int, torch.Tensor], None], *, shifts: int,
              overlap: float, segment: float | None, batch_size: int | None, device: torch.device, precision: str,
              graph: bool | None, time_only: bool, transition_power: float, seed: int | None, requested: DeviceLike,
              stats: SeparationStats, progress: Progress | None, pass_done: Callable[[], None] | None = None) -> None:
    batch_size = _batch_for(batch_size, device, precision)
    segment_length, valid_length = _prepare(model, segment, overlap, shifts, batch_size, transition_power)
    model.to(device)
    model.eval()
    fwd = BatchedForward(model, device, batch_size, valid_length, precision=precision, graph=graph,
                         time_only=time_only, requested=requested, mix_batch=getattr(reader, "batch", 1))
    weight = transition_weight(segment_length, transition_power, device)
    n_sources = len(model.sources)
    length = reader.length
    if shifts:
        rng = random.Random(seed)
        max_shift = int(0.5 * model.samplerate)
        passes = [rng.randint(0, max_shift) for _ in range(shifts)]
        plan = [(off - max_shift, length + max_shift - off, max_shift - off) for off in passes]
    else:
        plan = [(0, length, 0)]
    stride = int((1 - overlap) * segment_length)
    total = sum(len(range(0, ln, stride)) for _, ln, _ in plan)
    done = [0]

    def tick(n: int) -> None:
        done[0] += n
        if progress is not None:
            progress(done[0], total)

    try:
        _run_plan(fwd, reader, emit, plan, length=length, segment_length=segment_length, valid_length=valid_length,
                  overlap=overlap, weight=weight, batch=batch_size, sources=n_sources, stats=stats, tick=tick,
                  pass_done=pass_done)
    finally:
        fwd.close()


def _run_plan(fwd: BatchedForward, reader: _Reader, emit: Callable[[int, torch.Tensor], None],
              plan: list[tuple[int, int, int]], *, length: int, segment_length: int, valid_length: int,
              overlap: float, weight: torch.Tensor, batch: int, sources: int, stats: SeparationStats,
              tick: Callable[[int], None], pass_done: Callable[[], None] | None) -> None:
    for base, ln, drop in plan:
        def emit_pass(t0: int, block: torch.Tensor, drop: int = drop) -> None:
            # virtual position t maps to mix position t - drop; keep [0, length)
            a = max(t0, drop)
            b = min(t0 + block.shape[-1], drop + length)
            if a < b:
                emit(a - drop, block[..., a - t0:b - t0])

        _run_pass(fwd, reader, base=base, length=ln, segment_length=segment_length, valid_length=valid_length,
                  overlap=overlap, weight=weight, batch=batch, sources=sources, emit=emit_pass, stats=stats,
                  progress=tick)
        if pass_done is not None:
            pass_done()


def apply_model(model: Any, mix: Any, *, shifts: int = 0, overlap: float = 0.25, segment: float | None = None,
                batch_size: int | None = None, device: DeviceLike = "auto", precision: str = "float32",
                graph: bool | None = None,
                time_only: bool = False, transition_power: float = 1.0, seed: int | None = None,
                progress: Progress | None = None, stats: SeparationStats | None = None,
                tf32: bool | None = None) -> Any:
    """Separate ``mix`` (``[channels, time]`` or ``[batch, channels, time]``, at ``model.samplerate`` Hz).

    Args:
        model: an :class:`~ironwave.models.HTDemucs` (or anything with ``samplerate``,
            ``segment``, ``sources``, ``audio_channels`` and ``forward(mix)``).
        mix: the mixture; numpy in -> numpy out. Channels must equal ``model.audio_channels``.
        shifts: number of random time shifts (0.0-0.5 s) averaged; 0 disables.
        overlap: segment overlap fraction (demucs default 0.25).
        segment: segment length in seconds (default: the model's training segment).
        batch_size: segments per forward call; None (default): 1 (:data:`DEFAULT_BATCH`; bf16/fp16
            on CUDA: 8, :data:`DEFAULT_BATCH_REDUCED`),
            which keeps the peak (GPU) memory at one segment's activations, like
            demucs. Larger batches are faster per segment on a GPU without
            ``graph`` but their activation memory grows linearly with the batch.
        device: where the model runs (``"auto"``, ``"cpu"``, ``"cuda[:N]"``); the
            result is returned on the device of ``mix``.
        precision: ``"float32"``, ``"bfloat16"``/``"bf16"`` or ``"float16"``/``"fp16"`` (autocast).
        graph: replay a captured CUDA graph of the batched forward (eager on the CPU).
            None (default): True on CUDA when one segment runs per forward (a batch fills
            the GPU by itself); if that automatic capture fails the forward
            runs eagerly with a ``RuntimeWarning``. An explicit True never falls back.
        time_only: fast mode, waveform branch only (see docs/models.md for its quality).
        transition_power: sharpness of the cross-fade (>= 1).
        seed: seed of the random shifts.
        progress: ``progress(done_segments, total_segments)`` callback.
        stats: a :class:`SeparationStats` filled in place.
        tf32: allow TF32 tensor-core math in cuDNN convolutions and matmuls on CUDA during the call
            (the global torch flags are restored afterwards). None (default): off for
            ``precision="float32"`` (float32 means float32: with TF32, as torch's cuDNN default does,
            results differ from the CPU/float32 reference by ~1e-4), unchanged for bf16/fp16.

    Returns:
        ``[sources, channels, time]`` (or ``[batch, sources, channels, time]``), float32.
    """
    x, was_numpy = as_tensor(mix, "mix")
    x = check_audio(x, "mix", min_ndim=2, max_ndim=3)
    if x.shape[-2] != model.audio_channels:
        raise InvalidAudio(f"mix has {x.shape[-2]} channel(s); the model expects {model.audio_channels} "
                           "(duplicate mono or use separate_file, which converts)")
    squeeze = x.ndim == 2
    if squeeze:
        x = x[None]
    requested = device
    dev = resolve_device(device)
    out_dev = x.device
    x = x.float()
    st = stats if stats is not None else SeparationStats()
    out = torch.zeros(x.shape[0], len(model.sources), x.shape[1], x.shape[2], device=out_dev)
    scale = 1.0 / shifts if shifts else 1.0

    def emit(t0: int, block: torch.Tensor) -> None:
        dst = out[..., t0:t0 + block.shape[-1]]
        if shifts:
            dst += (block * scale).to(out_dev)
        else:
            dst.copy_(block)  # one device->host copy straight into the result (no temporary host block)

    t0 = time.perf_counter()
    with tf32_mode(_tf32_for(tf32, precision, dev)):
        _separate(model, _TensorReader(x), emit, shifts=shifts, overlap=overlap, segment=segment,
                  batch_size=batch_size, device=dev, precision=precision, graph=graph, time_only=time_only,
                  transition_power=transition_power, seed=seed, requested=requested, stats=st, progress=progress)
    st.seconds = time.perf_counter() - t0
    telemetry.record("models.apply_model", dev, st.seconds, requested)
    if squeeze:
        out = out[0]
    return restore_type(out, was_numpy)


# --------------------------------------------------------------------------- files
def _streaming_resample(src: Path, dst: Path, sr_out: int, block: int = 1 << 17) -> None:
    """Resample a file to ``sr_out`` Hz into a float WAV, block by block (bounded memory)."""
    import soundfile as sf
    import soxr

    with sf.SoundFile(str(src)) as fin:
        rs = soxr.ResampleStream(fin.samplerate, sr_out, fin.channels, dtype="float32", quality="HQ")
        with sf.SoundFile(str(dst), "w", samplerate=sr_out, channels=fin.channels, subtype="FLOAT",
                          format="WAV") as fout:
            while True:
                data = fin.read(block, dtype="float32", always_2d=True)
                last = data.shape[0] < block
                y = rs.resample_chunk(data, last=last)
                if y.shape[0]:
                    fout.write(y)
                if last:
                    break


def _file_stats(path: Path, channels: int, block: int = 1 << 18) -> tuple[float, float]:
    """Mean and std (over time) of the channel-mean signal, streamed (float64 accumulators)."""
    import soundfile as sf

    n, s, s2 = 0, 0.0, 0.0
    with sf.SoundFile(str(path)) as f:
        while True:
            d = f.read(block, dtype="float64", always_2d=True)
            if d.shape[0] == 0:
                break
            if d.shape[1] > channels:
                d = d[:, :channels]
            m = d.mean(axis=1)
            if not np.isfinite(m).all():
                raise InvalidAudio(f"{path} contains NaN or Inf samples")
            n += m.shape[0]
            s += float(m.sum())
            s2 += float((m * m).sum())
    mean = s / max(n, 1)
    var = max(s2 / max(n, 1) - mean * mean, 0.0) * n / max(n - 1, 1)
    return mean, math.sqrt(var)


class _StemWriters:
    def __init__(self, out_dir: Path, stem: str, sources: Sequence[str], sr: int, channels: int, fmt: str,
                 shift: float, scale: float) -> None:
        import soundfile as sf

        self.fmt = fmt.lower()
        if self.fmt not in ("wav", "flac"):
            raise InvalidParameter(f"unsupported output format {fmt!r}; accepted: wav, flac")
        subtype = "FLOAT" if self.fmt == "wav" else "PCM_24"
        out_dir.mkdir(parents=True, exist_ok=True)
        self.final = [out_dir / f"{stem}.{s}.{self.fmt}" for s in sources]
        self.tmp = [p.with_name(f".{p.name}.part") for p in self.final]
        self.files = [sf.SoundFile(str(t), "w", samplerate=sr, channels=channels, subtype=subtype,
                                   format=self.fmt.upper()) for t in self.tmp]
        self.shift, self.scale = shift, scale
        self.written = 0

    def write(self, t0: int, block: torch.Tensor) -> None:
        if t0 != self.written:
            raise RuntimeError(f"internal: out-of-order block at {t0}, expected {self.written}")
        y = (block[0].float() * self.scale + self.shift).cpu().numpy()
        if self.fmt == "flac":
            y = np.clip(y, -1.0, 1.0 - 2 ** -23)
        for k, f in enumerate(self.files):
            f.write(np.ascontiguousarray(y[k].T))
        self.written += block.shape[-1]

    def close(self, ok: bool) -> list[Path]:
        for f in self.files:
            f.close()
        if not ok:
            for t in self.tmp:
                if t.exists():
                    t.unlink()
            return []
        for t, p in zip(self.tmp, self.final):
            os.replace(t, p)
        return self.final


class _MemmapAccumulator:
    """Accumulates several shift passes on disk (bounded RAM), then hands blocks to a writer."""

    def __init__(self, shape: tuple[int, ...], tmpdir: Path) -> None:
        self.path = tmpdir / "accumulator.f32"
        self.mm = np.memmap(self.path, dtype=np.float32, mode="w+", shape=shape)

    def add(self, t0: int, block: torch.Tensor, scale: float) -> None:
        self.mm[..., t0:t0 + block.shape[-1]] += block[0].float().cpu().numpy() * scale

    def drain(self, writer: _StemWriters, block: int) -> None:
        n = self.mm.shape[-1]
        for a in range(0, n, block):
            writer.write(a, torch.from_numpy(np.array(self.mm[..., a:a + block]))[None])


def separate_file(model: Any, path: PathLike, out_dir: PathLike, *, fmt: str = "wav", shifts: int = 0,
                  overlap: float = 0.25, batch_size: int | None = None, device: DeviceLike = "auto",
                  precision: str = "float32", graph: bool | None = None, time_only: bool = False,
                  normalize: bool = True, seed: int | None = None, progress: Progress | None = None,
                  stats: SeparationStats | None = None, tf32: bool | None = None) -> list[Path]:
    """Separate one audio file into ``out_dir/<name>.<source>.<fmt>``, streaming from disk.

    Memory is bounded by ``batch_size`` segments whatever the file's length: the
    input is read window by window and finished output is written as soon as no
    later segment overlaps it (``stats.max_window_samples`` / ``max_buffer_samples``
    record the largest amounts held). A file at another sample rate is resampled
    (streamed, soxr HQ) to the model's rate; mono is duplicated to stereo; extra
    channels are dropped (first ``audio_channels`` kept). Each conversion is
    listed in ``stats.notes``. With ``normalize`` the input is standardised by
    the mean/std of its channel mean, as the demucs CLI does. ``tf32``: as in :func:`apply_model`.

    Returns:
        The written stem paths, in ``model.sources`` order.
    """
    import soundfile as sf

    from ironwave.io.files import audio_info

    p = Path(path)
    info = audio_info(p)
    if info.frames == 0:
        raise InvalidAudio(f"{p} contains no audio frames")
    st = stats if stats is not None else SeparationStats()
    requested = device
    dev = resolve_device(device)
    t_start = time.perf_counter()
    chans = model.audio_channels
    if info.channels == 1 and chans > 1:
        st.notes.append(f"{p.name}: mono input duplicated to {chans} channels")
    elif info.channels > chans:
        st.notes.append(f"{p.name}: {info.channels} channels; keeping the first {chans}")
    with tempfile.TemporaryDirectory(prefix="ironwave-sep-") as td:
        tmpdir = Path(td)
        src = p
        if int(info.samplerate) != int(model.samplerate):
            st.notes.append(f"{p.name}: resampled from {info.samplerate} Hz to {model.samplerate} Hz")
            src = tmpdir / "resampled.wav"
            _streaming_resample(p, src, int(model.samplerate))
        mean, std = _file_stats(src, chans) if normalize else (0.0, 1.0)
        std = std if std > 1e-8 else 1.0
        reader = _FileReader(src, chans, shift=mean, scale=std)
        writer = _StemWriters(Path(out_dir), p.stem, model.sources, int(model.samplerate), chans, fmt, mean, std)
        ok = False
        tf = tf32_mode(_tf32_for(tf32, precision, dev))
        tf.__enter__()
        try:
            common = dict(shifts=shifts, overlap=overlap, segment=None, batch_size=batch_size, device=dev,
                          precision=precision, graph=graph, time_only=time_only, transition_power=1.0, seed=seed,
                          requested=requested, stats=st, progress=progress)
            if shifts > 1:
                acc = _MemmapAccumulator((len(model.sources), chans, reader.length), tmpdir)
                _separate(model, reader, lambda t0, b: acc.add(t0, b, 1.0 / shifts), **common)  # type: ignore[arg-type]
                acc.drain(writer, 1 << 18)
                del acc
            else:
                _separate(model, reader, writer.write, **common)  # type: ignore[arg-type]
            if writer.written != reader.length:
                raise RuntimeError(f"internal: wrote {writer.written} of {reader.length} samples")
            ok = True
        finally:
            tf.__exit__(None, None, None)
            reader.close()
            paths = writer.close(ok)
    st.seconds = time.perf_counter() - t_start
    telemetry.record("models.separate_file", dev, st.seconds, requested)
    return paths


def separate_files(model: Any, paths: Sequence[PathLike], out_dir: PathLike, **kw: Any) -> dict[str, list[Path]]:
    """:func:`separate_file` over several files (same model, one at a time); returns ``{input: stems}``."""
    return {str(p): separate_file(model, p, out_dir, **kw) for p in paths}
