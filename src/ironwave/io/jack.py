"""JACK driver (JACK-Client): the engine runs inside the JACK process callback.

* one JACK input port per engine input channel, one output port per output channel
  (or a file source/sink on either side: decoded/encoded by a background thread);
* the server's block size and sample rate must equal the engine's;
* server xruns are counted through JACK's xrun callback (``engine.xruns``);
* while running, Python's GC is frozen/disabled and the callback allocates no tensors.

Example::

    eng = Engine.from_patch("examples/reverb.yaml")
    with JackDriver(eng, input="jack", output="jack"):
        time.sleep(10)
    print(eng.stats())
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from ironwave.errors import BackendUnavailable, IronwaveError
from ironwave.io.clock import realtime_gc

if TYPE_CHECKING:  # pragma: no cover
    from ironwave.engine.engine import Engine


class DriverError(IronwaveError, RuntimeError):
    """An audio driver could not start or failed while running."""


def _import_jack() -> Any:
    try:
        import jack  # type: ignore
    except (ImportError, OSError) as e:  # OSError: libjack missing
        raise BackendUnavailable(f"JACK is not available ({e}); install JACK-Client (pip) and libjack (e.g. apt-get install jackd2)") from None
    return jack


class _Sides:
    """Shared input/output plumbing of the realtime drivers (file source/sink, recording)."""

    def __init__(self, engine: "Engine", input: str | None, output: str | None, record_frames: int = 0) -> None:
        self.engine = engine
        self.in_np = engine.host_in.numpy()
        self.out_np = engine.host_out.numpy()
        self.source = None
        self.sink = None
        self._tmp_in = np.zeros((engine.block, engine.in_channels), dtype=np.float32)
        self._tmp_out = np.zeros((engine.block, engine.out_channels), dtype=np.float32)
        if input is not None and input not in ("jack", "portaudio"):
            from ironwave.engine.nodes.fileio import FileReader

            self.source = FileReader(input, engine.sample_rate)
            if self.source.channels != engine.in_channels:
                self.source.close()
                raise DriverError(f"{input} has {self.source.channels} channels; the patch's input has {engine.in_channels}")
            self.source.wait_ready(engine.block * 8)
        if output is not None and output not in ("jack", "portaudio"):
            from ironwave.engine.nodes.fileio import FileWriter

            self.sink = FileWriter(output, engine.sample_rate, engine.out_channels)
        self.record = np.zeros((engine.out_channels, record_frames), dtype=np.float32) if record_frames else None
        self.recorded = 0
        self.callbacks = 0
        self.error: BaseException | None = None

    def read_source(self) -> None:
        if self.source is not None:
            got = self.source.ring.read(self._tmp_in)
            if got < len(self._tmp_in):
                self._tmp_in[got:] = 0.0
            np.copyto(self.in_np, self._tmp_in.T)

    def write_sink(self) -> None:
        if self.sink is not None:
            np.copyto(self._tmp_out, self.out_np.T)
            self.sink.ring.write(self._tmp_out)
        rec = self.record
        if rec is not None and self.recorded < rec.shape[1]:
            n = min(self.out_np.shape[1], rec.shape[1] - self.recorded)
            rec[:, self.recorded:self.recorded + n] = self.out_np[:, :n]
            self.recorded += n

    def close(self) -> None:
        if self.source is not None:
            self.source.close()
        if self.sink is not None:
            self.sink.close()


class _LiveDriver:
    """Lifecycle shared by the live drivers: GC frozen and the engine marked running while
    the device runs; on stop the side threads close and telemetry is flushed."""

    engine: Any
    sides: Any
    _rt: Any

    @property
    def error(self) -> BaseException | None:
        """The exception raised inside the audio callback, if any."""
        return self.sides.error

    @property
    def callbacks(self) -> int:
        """Audio callbacks run so far."""
        return self.sides.callbacks

    @property
    def record(self) -> np.ndarray | None:
        """The recorded output ``[frames, channels]`` (when recording was asked for)."""
        return self.sides.record

    def _activate(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _deactivate(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def start(self) -> Any:
        """Start the device (the audio callback begins)."""
        self._rt.__enter__()
        self.engine.running = True
        self._activate()
        return self

    def stop(self) -> None:
        """Stop and close the device; restore GC; record telemetry."""
        try:
            self._deactivate()
        finally:
            self.engine.running = False
            self._rt.__exit__(None, None, None)
            self.sides.close()
            self.engine.collect()
            self.engine.flush_telemetry()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class JackDriver(_LiveDriver):
    """Run an engine from a JACK server's process callback.

    Args:
        engine: the engine (its block size and rate must match the server's).
        client_name: JACK client name.
        input: ``"jack"`` (ports), an audio file path, or None (silence).
        output: ``"jack"`` (ports), an audio file path, or None.
        connect: connect our ports to the server's physical ports (``system:*``).
        servername: JACK server name (default: ``$JACK_DEFAULT_SERVER``).
        record_frames: keep the first N output frames in :attr:`record` (for tests).
    """

    def __init__(self, engine: "Engine", client_name: str = "ironwave", *, input: str | None = "jack",
                 output: str | None = "jack", connect: bool = True, servername: str | None = None,
                 record_frames: int = 0) -> None:
        jack = _import_jack()
        self.engine = engine
        try:
            self.client = jack.Client(client_name, no_start_server=True, servername=servername)
        except jack.JackError as e:
            raise DriverError(f"cannot connect to the JACK server{' ' + repr(servername) if servername else ''}: {e}; is jackd running?") from None
        c = self.client
        sr, bs = c.samplerate, c.blocksize
        if sr != engine.sample_rate:
            c.close()
            raise DriverError(f"JACK runs at {sr} Hz but the engine at {engine.sample_rate} Hz; set the patch's sample_rate to {sr}")
        if bs != engine.block:
            c.close()
            raise DriverError(f"JACK's buffer size is {bs} frames but the engine's block is {engine.block}; use --block {bs}")
        self.sides = _Sides(engine, None if input == "jack" else input, None if output == "jack" else output, record_frames)
        self.inports = [c.inports.register(f"in_{k + 1}") for k in range(engine.in_channels)] if input == "jack" else []
        self.outports = [c.outports.register(f"out_{k + 1}") for k in range(engine.out_channels)] if output == "jack" else []
        self.connect = connect
        self.xruns = 0
        c.set_process_callback(self._process)
        c.set_xrun_callback(self._xrun)
        self._rt = realtime_gc()
        self._lock = threading.Lock()

    def _xrun(self, delay_usecs: float) -> None:
        self.xruns += 1
        self.engine.xruns += 1

    def _process(self, frames: int) -> None:
        s = self.sides
        s.callbacks += 1
        if s.error is not None:
            for p in self.outports:
                p.get_array().fill(0.0)
            return
        try:
            in_np = s.in_np
            for k, p in enumerate(self.inports):
                in_np[k] = p.get_array()
            s.read_source()
            self.engine.process_block()
            out_np = s.out_np
            for k, p in enumerate(self.outports):
                p.get_array()[:] = out_np[k]
            s.write_sink()
        except BaseException as e:  # never let an exception kill the JACK thread
            s.error = e

    def _activate(self) -> None:
        """Activate the client (and connect physical ports)."""
        self.client.activate()
        if self.connect:
            caps = self.client.get_ports(is_physical=True, is_output=True, is_audio=True)
            plays = self.client.get_ports(is_physical=True, is_input=True, is_audio=True)
            for p, src in zip(self.inports, caps):
                self.client.connect(src, p)
            for p, dst in zip(self.outports, plays):
                self.client.connect(p, dst)

    def _deactivate(self) -> None:
        self.client.deactivate()
        self.client.close()
