"""Capture once, replay many: block-processing programs with static buffers.

:class:`CapturedProgram` wraps ``fn(*inputs) -> outputs`` (tensors). Inputs and
outputs live in static buffers allocated at construction. On CUDA the call is
captured once as a CUDA graph and every :meth:`~CapturedProgram.replay` relaunches
it with no allocation and one launch. On the CPU the plain callable is run; if
it writes into preallocated buffers with ``out=`` ops and returns them, replay
allocates nothing there either.

:class:`AsyncRunner` puts a program behind a triple-buffered queue whose
:meth:`~AsyncRunner.try_submit` never blocks: an audio thread hands a block over
and collects finished blocks with :meth:`~AsyncRunner.poll`.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, Sequence

import torch

from ironwave.backend.buffers import CommandRing
from ironwave.backend.device import DeviceLike, resolve_device
from ironwave.backend.telemetry import telemetry
from ironwave.errors import InvalidParameter

Outputs = tuple[torch.Tensor, ...]


def _as_tuple(out: Any) -> Outputs:
    if isinstance(out, torch.Tensor):
        return (out,)
    if isinstance(out, (tuple, list)) and all(isinstance(o, torch.Tensor) for o in out):
        return tuple(out)
    raise InvalidParameter(f"a captured program must return a tensor or a tuple of tensors, got {type(out).__name__}")


class CapturedProgram:
    """A block-processing callable with static input/output buffers.

    Args:
        fn: ``fn(*inputs) -> Tensor | tuple[Tensor, ...]``. It must use only the
            tensors it is given (and state it owns on the same device), and be
            deterministic in shape: same input shapes, same output shapes.
        example_inputs: tensors giving the shapes/dtypes of the inputs (values
            are copied into the static buffers and used for warm-up).
        device: where to run; ``"auto"`` picks CUDA when present. An explicit
            CUDA request without CUDA raises ``BackendUnavailable``.
        warmup: eager calls before capture (CUDA) to settle lazy allocations.
        use_graph: capture a CUDA graph on CUDA (default True). False runs the
            callable eagerly on either device (useful for debugging).
        name: op name in telemetry.

    Attributes:
        inputs: the static input tensors; write into them and call :meth:`replay`
            for the zero-copy path.
        outputs: the static output tensors, overwritten by each replay.
    """

    def __init__(self, fn: Callable[..., Any], example_inputs: Sequence[torch.Tensor], *, device: DeviceLike = "auto",
                 warmup: int = 3, use_graph: bool = True, name: str = "program") -> None:
        self.fn = fn
        self.name = name
        self.device = resolve_device(device)
        self._requested = device
        self.inputs: Outputs = tuple(t.detach().to(self.device).clone() for t in example_inputs)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.replays = 0
        self._flushed = 0
        telemetry.check(name, device, self.device)  # strict mode: refuse a CPU run of CUDA work up front
        telemetry.register_source(self)
        if self.device.type == "cuda" and use_graph:
            stream = torch.cuda.Stream(self.device)
            stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(stream):
                for _ in range(max(1, warmup)):
                    fn(*self.inputs)
            torch.cuda.current_stream(self.device).wait_stream(stream)
            torch.cuda.synchronize(self.device)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.outputs: Outputs = _as_tuple(fn(*self.inputs))
            torch.cuda.synchronize(self.device)
        else:
            first = _as_tuple(fn(*self.inputs))
            self.outputs = tuple(o if o.device == self.device else o.to(self.device) for o in first)
            # If fn returns its own persistent buffers, keep them as the outputs (no copy later).
            self._returns_static = True

    @property
    def captured(self) -> bool:
        """True when a CUDA graph is replayed."""
        return self.graph is not None

    def replay(self) -> Outputs:
        """Run on the current contents of :attr:`inputs`; returns :attr:`outputs`."""
        if self.graph is not None:
            self.graph.replay()
        else:
            out = self.fn(*self.inputs)
            if isinstance(out, torch.Tensor):
                if out is not self.outputs[0]:
                    self.outputs[0].copy_(out)
            else:
                for o, s in zip(out, self.outputs):
                    if o is not s:
                        s.copy_(o)
        self.replays += 1  # pushed to telemetry by flush_telemetry(): no lock on the audio path
        return self.outputs

    def flush_telemetry(self) -> None:
        """Push the replays counted since the last flush to telemetry (control thread)."""
        n = self.replays - self._flushed
        if n > 0:
            self._flushed += n
            telemetry.add(self.name, self.device, n)

    def __call__(self, *inputs: torch.Tensor) -> Outputs:
        """Copy *inputs* into the static buffers, replay, return the static outputs.

        The returned tensors are overwritten by the next call: copy them to keep them.
        """
        if len(inputs) != len(self.inputs):
            raise InvalidParameter(f"{self.name}: expected {len(self.inputs)} input(s), got {len(inputs)}")
        for dst, src in zip(self.inputs, inputs):
            if src.shape != dst.shape:
                raise InvalidParameter(f"{self.name}: input shaped {list(src.shape)} does not match the captured shape {list(dst.shape)}")
            dst.copy_(src, non_blocking=True)
        return self.replay()


_FREE, _BUSY, _DONE = 0, 1, 2


class AsyncRunner:
    """Triple-buffered asynchronous execution of a :class:`CapturedProgram`.

    ``try_submit(*host_inputs)`` copies the block into a free slot and starts it
    without waiting; it returns False at once when all slots are busy. Results
    come back in submission order from :meth:`poll`, which also never blocks.
    On CUDA the copies and the replay run on a side stream with pinned host
    buffers and an event per slot; on the CPU a worker thread runs the program.

    Args:
        program: the program to run.
        slots: number of blocks in flight (3 = triple buffering).
    """

    def __init__(self, program: CapturedProgram, slots: int = 3) -> None:
        if slots < 1:
            raise InvalidParameter(f"slots must be >= 1, got {slots}")
        self.program = program
        self.slots = slots
        self.cuda = program.device.type == "cuda"
        pin = self.cuda
        self._in = [tuple(torch.empty(t.shape, dtype=t.dtype, pin_memory=pin) for t in program.inputs) for _ in range(slots)]
        self._out = [tuple(torch.empty(t.shape, dtype=t.dtype, pin_memory=pin) for t in program.outputs) for _ in range(slots)]
        self._state = [_FREE] * slots
        self._next_submit = 0
        self._next_poll = 0
        self.rejected = 0
        if self.cuda:
            self._stream = torch.cuda.Stream(program.device)
            self._events = [torch.cuda.Event() for _ in range(slots)]
        else:
            self._queue: CommandRing[int] = CommandRing(slots * 2)
            self._stop = False
            self._thread = threading.Thread(target=self._worker, name="ironwave-async", daemon=True)
            self._thread.start()

    def _worker(self) -> None:
        prog = self.program
        while not self._stop:
            i = self._queue.pop()
            if i is None:
                time.sleep(50e-6)
                continue
            for dst, src in zip(prog.inputs, self._in[i]):
                dst.copy_(src)
            outs = prog.replay()
            for dst, src in zip(self._out[i], outs):
                dst.copy_(src)
            self._state[i] = _DONE

    def try_submit(self, *host_inputs: torch.Tensor) -> bool:
        """Hand one block over; False (immediately) when every slot is busy."""
        i = self._next_submit
        if self._state[i] != _FREE:
            self.rejected += 1
            return False
        for dst, src in zip(self._in[i], host_inputs):
            dst.copy_(src)
        self._state[i] = _BUSY
        self._next_submit = (i + 1) % self.slots
        if self.cuda:
            prog = self.program
            with torch.cuda.stream(self._stream):
                for dst, src in zip(prog.inputs, self._in[i]):
                    dst.copy_(src, non_blocking=True)
                outs = prog.replay()
                for dst, src in zip(self._out[i], outs):
                    dst.copy_(src, non_blocking=True)
                self._events[i].record(self._stream)
        else:
            self._queue.push(i)
        return True

    def poll(self) -> Outputs | None:
        """The oldest finished block's outputs (host tensors, valid until that
        slot is reused), or None if it is not finished yet."""
        i = self._next_poll
        st = self._state[i]
        if st == _FREE:
            return None
        if self.cuda:
            if not self._events[i].query():
                return None
        elif st != _DONE:
            return None
        self._state[i] = _FREE
        self._next_poll = (i + 1) % self.slots
        return self._out[i]

    def in_flight(self) -> int:
        return sum(1 for s in self._state if s != _FREE)

    def close(self) -> None:
        """Stop the CPU worker thread (no-op on CUDA)."""
        if not self.cuda:
            self._stop = True
            self._thread.join(timeout=1.0)

    def __enter__(self) -> "AsyncRunner":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
