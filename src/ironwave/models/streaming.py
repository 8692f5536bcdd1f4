"""Low-latency streaming source separation with a fixed, stated latency.

:class:`StreamingSeparator` wraps a separation model (an :class:`~ironwave.models.HTDemucs`)
so that audio can be pushed block by block (any block size) and the separated stems come
back delayed by exactly :attr:`StreamingSeparator.latency` samples.

Design (all lengths in samples at ``model.samplerate``; ``L = model.training_length``)::

    H  = hop        (new input per model run; the region emitted by one run)
    A  = lookahead  (future input the model sees after the emitted region)
    F  = crossfade  (extra samples emitted by each run, cross-faded with the next run; 0 = none)
    P  = context    (past input before the emitted region; default: L - H - F - A)
    W  = P + H + F + A <= L   (the window; HTDemucs zero-pads shorter input to L, so a
                               full window costs the same as a short one)

Run ``k`` (k = 0, 1, ...) happens when input sample ``E_k = (k + 1) H + F + A`` has
arrived. It separates the window ``x[E_k - W, E_k)`` (zeros before the start of the
stream, as the offline path pads the start) and takes its output for
``[k H, (k + 1) H + F)``: the first ``F`` samples are cross-faded with the previous
run's last ``F`` (linear complementary ramps ``r = (i + 0.5) / F`` and ``1 - r``, i.e.
demucs' triangular weighting for two overlapping estimates), the next ``H - F`` are
emitted as they are and the last ``F`` wait for run ``k + 1``. So stem sample ``t`` is
final once input sample ``t + F + A + H`` (at worst) has arrived, and the output
stream is the separated signal delayed by a constant::

    latency = H + F + A  samples

``process(block)`` returns exactly ``block.shape[-1]`` samples: the stems of the input
``latency`` samples earlier (zeros during the first ``latency`` samples), like an audio
plugin that reports its latency. :meth:`StreamingSeparator.flush` returns the last
``latency`` samples (computed with zeros as future input, as the offline path pads the
end) and resets the stream. Because runs are triggered by the input sample count only,
the output does not depend on how the input was cut into blocks (bit-identical on the
CPU, tested; on CUDA as deterministic as the model's forward kernels).

Compared with the offline :func:`~ironwave.models.apply_model` (segments of ``L`` with 25 %
overlap: each output sample sees on average ~L/2 of context on both sides), the
streaming mode sees only ``A`` (+ up to ``H + F``) samples of future, and costs one
forward per ``H`` samples instead of one per ``0.75 L``; see docs/streaming-separation.md
for the measured trade-off.

What allocates after :meth:`StreamingSeparator.prepare`: nothing on the input/output
path (ring buffer writes, window assembly, cross-fade and output reads are in-place
copies into preallocated buffers; ``out=`` is filled in place, and without ``out=`` a
view of an internal buffer is returned when the block fits ``max_block``). The model
forward, once per hop, allocates in eager mode (CPU, or CUDA with ``graph=False``); on
CUDA the default (``graph=None``) replays a captured CUDA graph
(:class:`~ironwave.models.apply.BatchedForward`), which allocates nothing. Copies across
devices or dtypes (e.g. CPU float64 blocks into a CUDA model) go through torch's
``copy_`` and may stage temporaries.
"""
from __future__ import annotations

import math
import time
from typing import Any

import torch

from ironwave.backend.device import DeviceLike, resolve_device
from ironwave.backend.telemetry import telemetry
from ironwave.backend.validate import as_tensor, check_finite, restore_type
from ironwave.errors import InvalidAudio, InvalidParameter
from ironwave.models.apply import PRECISIONS, BatchedForward, tf32_mode

__all__ = ["StreamingSeparator", "separate_streaming"]

_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _seconds_to_samples(name: str, value: float, sr: int, *, positive: bool) -> int:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidParameter(f"{name} must be a number of seconds, got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (positive and v <= 0):
        want = "> 0" if positive else ">= 0"
        raise InvalidParameter(f"{name} must be a finite number of seconds {want}, got {value!r}")
    n = int(round(v * sr))
    if positive and n < 1:
        raise InvalidParameter(f"{name}={value!r} s is less than one sample at {sr} Hz")
    return n


class StreamingSeparator:
    """Block-by-block separation with a fixed latency of ``hop + crossfade + lookahead``.

    Args:
        model: an :class:`~ironwave.models.HTDemucs` (or anything with ``samplerate``,
            ``training_length``, ``sources``, ``audio_channels`` and ``forward(mix)``).
            It is moved to ``device`` and put in eval mode.
        lookahead: seconds of future input the model sees after the emitted region (>= 0).
        hop: seconds of new input per model run, and of output emitted per run (> 0).
            Compute is one forward per hop: a real-time factor of ``forward_seconds / hop``.
        context: seconds of past input in each window (>= 0). None (default): as much
            as the model's training segment allows (``segment - hop - crossfade - lookahead``).
        crossfade: seconds each run's output overlaps the next one's, cross-faded linearly
            to hide seams between hops (>= 0, <= hop). Adds to the latency. Default 0.
        device: where the model runs (``"auto"``, ``"cpu"``, ``"cuda[:N]"``). Blocks may live
            anywhere; the output comes back on the block's device and dtype.
        precision: ``"float32"``, ``"bf16"``/``"bfloat16"`` or ``"fp16"``/``"float16"`` (autocast).
        graph: replay a captured CUDA graph of the forward (see
            :class:`~ironwave.models.apply.BatchedForward`); None: on CUDA yes, on the CPU no.
        time_only: run only the waveform branch of HTDemucs (faster, lower quality).
        tf32: allow TF32 on CUDA during the forward; None: off for float32 (as apply_model).
        check_finite: reject NaN/Inf in blocks (one reduction per block).

    Attributes:
        latency: output delay in samples (``hop + crossfade + lookahead`` in samples).
        hop_samples, lookahead_samples, crossfade_samples, context_samples,
        window_samples: the design lengths in samples (see the module docstring).

    Example::

        sep = StreamingSeparator(model, lookahead=1.0, hop=0.5)
        sep.prepare(max_block=1024)
        for block in blocks:                 # [2, n] at 44.1 kHz, any n
            stems = sep.process(block)       # [4, 2, n]: the stems of the input sep.latency samples ago
        tail = sep.flush()                   # [4, 2, sep.latency]
    """

    def __init__(self, model: Any, *, lookahead: float, hop: float, context: float | None = None,
                 crossfade: float = 0.0, device: DeviceLike = "auto", precision: str = "float32",
                 graph: bool | None = None, time_only: bool = False, tf32: bool | None = None,
                 check_finite: bool = True) -> None:
        for attr in ("samplerate", "training_length", "sources", "audio_channels"):
            if not hasattr(model, attr):
                raise InvalidParameter(f"model has no attribute {attr!r}; a StreamingSeparator needs an HTDemucs-like "
                                       "model (samplerate, training_length, sources, audio_channels, forward)")
        if precision not in PRECISIONS:
            raise InvalidParameter(f"unknown precision {precision!r}; accepted: {', '.join(PRECISIONS)}")
        sr = int(model.samplerate)
        L = int(model.training_length)
        self.samplerate = sr
        self.segment_samples = L
        self.lookahead_samples = _seconds_to_samples("lookahead", lookahead, sr, positive=False)
        self.hop_samples = _seconds_to_samples("hop", hop, sr, positive=True)
        self.crossfade_samples = _seconds_to_samples("crossfade", crossfade, sr, positive=False)
        H, A, F = self.hop_samples, self.lookahead_samples, self.crossfade_samples
        if F > H:
            raise InvalidParameter(f"crossfade ({F} samples) must not exceed hop ({H} samples)")
        need = H + F + A
        if need > L:
            raise InvalidParameter(
                f"hop + crossfade + lookahead = {H} + {F} + {A} = {need} samples ({need / sr:.3f} s) exceeds the "
                f"model's segment of {L} samples ({L / sr:.3f} s); shorten hop or lookahead")
        if context is None:
            P = L - need
        else:
            P = _seconds_to_samples("context", context, sr, positive=False)
            if P + need > L:
                raise InvalidParameter(
                    f"context + hop + crossfade + lookahead = {P + need} samples exceeds the model's segment of {L} "
                    f"samples; context can be at most {(L - need) / sr:.4f} s here")
        self.context_samples = P
        self.window_samples = P + need
        self.latency = need
        self.model = model
        self.sources = list(model.sources)
        self.channels = int(model.audio_channels)
        self._requested = device
        self.device = resolve_device(device)
        self.precision = precision
        self.graph = graph
        self.time_only = time_only
        self.check_finite = check_finite
        if self.device.type == "cuda":
            self._tf32: bool | None = (False if PRECISIONS[precision] is None else None) if tf32 is None else bool(tf32)
        else:
            self._tf32 = None
        self._fwd: BatchedForward | None = None
        self.max_block = 0
        self._calls = 0
        self._hops_flushed = 0
        self._calls_flushed = 0
        self.hops_run = 0
        """Model forwards run by this separator (all streams)."""
        telemetry.check("models.StreamingSeparator", device, self.device)
        telemetry.register_source(self)

    # ------------------------------------------------------------------ properties
    @property
    def latency_seconds(self) -> float:
        """:attr:`latency` in seconds."""
        return self.latency / self.samplerate

    @property
    def real_time_cost(self) -> float:
        """Model forwards per second of audio (``samplerate / hop_samples``)."""
        return self.samplerate / self.hop_samples

    @property
    def prepared(self) -> bool:
        return self._fwd is not None

    # ------------------------------------------------------------------ set-up
    def prepare(self, max_block: int = 4096, *, io_device: DeviceLike = None,
                dtype: torch.dtype = torch.float32) -> "StreamingSeparator":
        """Allocate every buffer (and capture the forward on CUDA); resets the stream.

        Args:
            max_block: largest block (samples) whose output fits the internal output buffer
                returned when ``process`` gets no ``out=``. Larger blocks still work (they
                are processed in pieces) but then the result tensor is allocated.
            io_device: device of the blocks (default: the model's device); the internal
                output buffer lives there.
            dtype: dtype of the blocks (the internal output buffer's dtype).
        """
        mb = int(max_block)
        if mb < 1:
            raise InvalidParameter(f"max_block must be >= 1 sample, got {max_block}")
        if dtype not in _FLOATS:
            raise InvalidParameter(f"dtype {dtype} is not a float dtype; accepted: {', '.join(map(str, _FLOATS))}")
        dev = self.device
        S, C, W, H, F = len(self.sources), self.channels, self.window_samples, self.hop_samples, self.crossfade_samples
        if self._fwd is None:
            self.model.to(dev)
            self.model.eval()
            with tf32_mode(self._tf32):
                self._fwd = BatchedForward(self.model, dev, 1, W, precision=self.precision, graph=self.graph,
                                           time_only=self.time_only, requested=self._requested)
            prog = self._fwd.program
            # graph mode: assemble windows straight into the captured program's static input
            self._win = prog.inputs[0] if prog is not None else torch.zeros(1, C, W, device=dev)
            self._ring = torch.zeros(C, W, device=dev)
            self._queue = torch.zeros(S, C, 2 * H, device=dev)  # finished stem samples not yet read
            self._tail = torch.zeros(S, C, max(F, 1), device=dev)  # last run's (1 - r)-weighted tail
            r = (torch.arange(F, dtype=torch.float64) + 0.5) / max(F, 1)
            self._ramp_in = r.to(device=dev, dtype=torch.float32)
            self._ramp_out = (1 - r).to(device=dev, dtype=torch.float32)
        io = resolve_device(io_device) if io_device is not None else dev
        self._out = torch.zeros(S, C, mb, device=io, dtype=dtype)
        self.max_block = mb
        telemetry.record("models.StreamingSeparator.prepare", dev, 0.0, self._requested)
        self.reset()
        return self

    def reset(self) -> None:
        """Start a new stream (history cleared; buffers and the captured forward kept)."""
        if self._fwd is None:
            self.prepare()
            return
        self._ring.zero_()
        self._tail.zero_()
        self._pos = 0                          # ring write position (== oldest sample)
        self._until = self.latency             # input samples until the next run (E_0 = H + F + A)
        self._hops = 0                         # runs in this stream
        self._read = 0                         # output samples returned so far
        self._io: tuple[torch.device, torch.dtype, bool] | None = None

    # ------------------------------------------------------------------ hot path
    def _run_window(self) -> torch.Tensor:
        """Separate the current window; returns ``[S, C, W]`` (a static buffer in graph mode)."""
        W, pos = self.window_samples, self._pos
        win = self._win[0]
        win[:, :W - pos].copy_(self._ring[:, pos:])
        if pos:
            win[:, W - pos:].copy_(self._ring[:, :pos])
        fwd = self._fwd
        assert fwd is not None
        with tf32_mode(self._tf32):
            if fwd.program is not None:
                y = fwd.program.replay()[0]  # no clone, no lock: the static output is consumed right here
            else:
                y = fwd(self._win)
        return y[0]

    def _hop(self) -> None:
        H, F, P = self.hop_samples, self.crossfade_samples, self.context_samples
        y = self._run_window()
        j = (self._hops * H) % (2 * H)
        dst = self._queue[..., j:j + H]
        if F:
            head = y[..., P:P + F]
            if self._hops:
                torch.mul(head, self._ramp_in, out=dst[..., :F])
                dst[..., :F].add_(self._tail[..., :F])
            else:
                dst[..., :F].copy_(head)
            dst[..., F:].copy_(y[..., P + F:P + H])
            torch.mul(y[..., P + H:P + H + F], self._ramp_out, out=self._tail[..., :F])
        else:
            dst.copy_(y[..., P:P + H])
        self._hops += 1
        self.hops_run += 1

    def _push(self, x: torch.Tensor | None, a: int, k: int) -> None:
        """Write input samples ``x[:, a:a+k]`` (zeros when ``x`` is None) into the ring."""
        W, pos = self.window_samples, self._pos
        k1 = min(k, W - pos)
        if x is None:
            self._ring[:, pos:pos + k1].zero_()
            if k > k1:
                self._ring[:, :k - k1].zero_()
        else:
            self._ring[:, pos:pos + k1].copy_(x[:, a:a + k1])
            if k > k1:
                self._ring[:, :k - k1].copy_(x[:, a + k1:a + k])
        self._pos = (pos + k) % W

    def _pull(self, res: torch.Tensor, a: int, k: int) -> None:
        """Read the next ``k`` output samples into ``res[..., a:a+k]``."""
        D, Q = self.latency, 2 * self.hop_samples
        t0, t1 = self._read, self._read + k
        z = min(t1, D)
        if t0 < z:
            res[..., a:a + z - t0].zero_()
        s0, s1 = max(t0, D) - D, t1 - D
        b = a + (max(t0, D) - t0)
        while s0 < s1:
            q = s0 % Q
            m = min(s1 - s0, Q - q)
            res[..., b:b + m].copy_(self._queue[..., q:q + m])
            s0 += m
            b += m
        self._read = t1

    def _stream(self, x: torch.Tensor | None, n: int, res: torch.Tensor) -> None:
        a = 0
        while a < n:
            k = min(n - a, self._until)  # never past the next run: one run per piece
            self._push(x, a, k)
            self._until -= k
            if self._until == 0:
                self._hop()
                self._until = self.hop_samples
            self._pull(res, a, k)
            a += k

    def process(self, block: Any, out: Any = None) -> Any:
        """Push ``block [channels, n]`` (any ``n >= 0``); returns the stems ``[sources, channels, n]``.

        The output is the separated signal delayed by :attr:`latency` samples: output sample
        ``t`` of the stream (counting from the first block) holds the stems of input sample
        ``t - latency`` (zeros for ``t < latency``). A model forward runs whenever the input
        crosses a hop boundary, so a call costs 0, 1 or several forwards.

        Args:
            block: tensor or numpy array at ``model.samplerate`` Hz; numpy in -> numpy out.
            out: optional ``[sources, channels, n]`` destination (any float dtype/device),
                filled in place and returned. Without it the result is a view of an internal
                buffer that the next call overwrites (when ``n <= max_block`` and the block's
                device/dtype match :meth:`prepare`), else a new tensor.
        """
        if self._fwd is None:
            self.prepare()
        x, was_numpy = as_tensor(block, "block")
        if x.is_complex() or x.dtype not in _FLOATS:
            raise InvalidAudio(f"block has dtype {x.dtype}; accepted: {', '.join(map(str, _FLOATS))}")
        if x.ndim != 2 or x.shape[0] != self.channels:
            raise InvalidAudio(f"block has shape {list(x.shape)}; expected [channels={self.channels}, n] "
                               f"(the model's audio_channels; duplicate mono to {self.channels} channels)")
        if self.check_finite:
            check_finite(x, "block")
        n = x.shape[-1]
        S, C = len(self.sources), self.channels
        if out is not None:
            o, _ = as_tensor(out, "out")
            if tuple(o.shape) != (S, C, n) or o.dtype not in _FLOATS:
                raise InvalidParameter(f"out has shape {list(o.shape)} and dtype {o.dtype}; expected a float "
                                       f"tensor shaped [{S}, {C}, {n}]")
            res = o
        elif n <= self.max_block and x.device == self._out.device and x.dtype == self._out.dtype:
            res = self._out[..., :n]
        else:
            res = torch.empty(S, C, n, dtype=x.dtype, device=x.device)
        self._io = (x.device, x.dtype, was_numpy)
        self._stream(x, n, res)
        self._calls += 1
        if out is not None:
            return out
        return restore_type(res, was_numpy)

    def flush(self, out: Any = None) -> Any:
        """End the stream: returns the last :attr:`latency` output samples ``[sources, channels, latency]``
        (the input is continued with zeros, as the offline path pads the end), then :meth:`reset`.

        Concatenating every ``process`` output and this tail gives ``latency`` samples of
        zeros followed by the stems of the whole input.
        """
        if self._fwd is None:
            self.prepare()
        dev, dt, was_numpy = self._io if self._io is not None else (self._out.device, self._out.dtype, False)
        D, S, C = self.latency, len(self.sources), self.channels
        if out is not None:
            res, _ = as_tensor(out, "out")
            if tuple(res.shape) != (S, C, D):
                raise InvalidParameter(f"out has shape {list(res.shape)}; expected [{S}, {C}, {D}] (latency samples)")
        else:
            res = torch.empty(S, C, D, dtype=dt, device=dev)
        self._stream(None, D, res)
        self._calls += 1
        self.reset()
        if out is not None:
            return out
        return restore_type(res, was_numpy)

    def flush_telemetry(self) -> None:
        """Push the process calls and model runs counted since the last flush to telemetry."""
        n, h = self._calls - self._calls_flushed, self.hops_run - self._hops_flushed
        if n > 0:
            self._calls_flushed += n
            telemetry.add("models.StreamingSeparator.process", self.device, n)
        if h > 0:
            self._hops_flushed += h
            telemetry.add("models.StreamingSeparator.hop", self.device, h)


def separate_streaming(model: Any, mix: Any, *, lookahead: float, hop: float, context: float | None = None,
                       crossfade: float = 0.0, device: DeviceLike = "auto", precision: str = "float32",
                       graph: bool | None = None, time_only: bool = False, block: int | None = None) -> Any:
    """Functional form: what a :class:`StreamingSeparator` produces for ``mix``, latency removed.

    Args:
        mix: ``[channels, time]`` at ``model.samplerate`` Hz (numpy in -> numpy out).
        block: feed the stream in blocks of this many samples (None: one block); the
            result does not depend on it.
        (others): as :class:`StreamingSeparator`.

    Returns:
        ``[sources, channels, time]`` aligned with ``mix`` (the stems each sample would get in
        real time, with ``lookahead`` s of future), on the device and dtype of ``mix``.
    """
    x, was_numpy = as_tensor(mix, "mix")
    if x.ndim != 2:
        raise InvalidAudio(f"mix has shape {list(x.shape)}; expected [channels, time]")
    t0 = time.perf_counter()
    sep = StreamingSeparator(model, lookahead=lookahead, hop=hop, context=context, crossfade=crossfade,
                             device=device, precision=precision, graph=graph, time_only=time_only)
    n = x.shape[-1]
    bs = max(n, 1) if block is None else int(block)
    if bs < 1:
        raise InvalidParameter(f"block must be >= 1 sample, got {block}")
    sep.prepare(max(1, min(bs, n)), io_device=x.device, dtype=x.dtype if x.dtype in _FLOATS else torch.float32)
    D = sep.latency
    y = torch.empty(len(sep.sources), sep.channels, n + D, dtype=x.dtype, device=x.device)
    for a in range(0, n, bs):
        b = min(n, a + bs)
        sep.process(x[:, a:b], out=y[..., a:b])
    sep.flush(out=y[..., n:])
    sep.flush_telemetry()
    telemetry.record("models.separate_streaming", sep.device, time.perf_counter() - t0, device)
    return restore_type(y[..., D:], was_numpy)
