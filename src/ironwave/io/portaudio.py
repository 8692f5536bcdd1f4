"""PortAudio driver (sounddevice): the engine runs inside the stream callback.

Input/output under/overflows reported by PortAudio count as xruns. With a JACK
server running, PortAudio lists JACK as a host API (import sounddevice after
the server started).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ironwave.errors import BackendUnavailable
from ironwave.io.clock import realtime_gc
from ironwave.io.jack import DriverError, _LiveDriver, _Sides

if TYPE_CHECKING:  # pragma: no cover
    from ironwave.engine.engine import Engine


def _import_sd() -> Any:
    try:
        import sounddevice as sd  # type: ignore
    except (ImportError, OSError) as e:
        raise BackendUnavailable(f"PortAudio is not available ({e}); install sounddevice (pip) and libportaudio2") from None
    return sd


class PortAudioDriver(_LiveDriver):
    """Run an engine from a PortAudio stream callback.

    Args:
        engine: the engine; the stream uses its block size and sample rate.
        device: PortAudio device name/index (None: default).
        input: ``"portaudio"``, an audio file path, or None.
        output: ``"portaudio"``, an audio file path, or None.
        latency: PortAudio latency hint ("low", "high" or seconds).
        record_frames: keep the first N output frames in :attr:`record` (tests).
    """

    def __init__(self, engine: "Engine", device: Any = None, *, input: str | None = "portaudio",
                 output: str | None = "portaudio", latency: Any = "low", record_frames: int = 0) -> None:
        sd = _import_sd()
        self.engine = engine
        self.sides = _Sides(engine, None if input == "portaudio" else input, None if output == "portaudio" else output, record_frames)
        self.use_in, self.use_out = input == "portaudio", output == "portaudio"
        if isinstance(device, str) and device.isdigit():
            device = int(device)
        kw = dict(samplerate=engine.sample_rate, blocksize=engine.block, dtype="float32", latency=latency,
                  device=device, callback=self._callback)
        try:
            if self.use_in and self.use_out:
                self.stream = sd.Stream(channels=(engine.in_channels, engine.out_channels), **kw)
            elif self.use_out:
                self.stream = sd.OutputStream(channels=engine.out_channels, **kw)
            elif self.use_in:
                self.stream = sd.InputStream(channels=engine.in_channels, **kw)
            else:
                raise DriverError("PortAudioDriver needs input or output = 'portaudio'")
        except sd.PortAudioError as e:
            self.sides.close()
            raise DriverError(f"cannot open PortAudio stream ({engine.sample_rate} Hz, {engine.block} frames, device {device!r}): {e}") from None
        self.xruns = 0
        self._rt = realtime_gc()

    def _callback(self, *args: Any) -> None:
        s = self.sides
        s.callbacks += 1
        if self.use_in and self.use_out:
            indata, outdata, frames, _t, status = args
        elif self.use_out:
            outdata, frames, _t, status = args
            indata = None
        else:
            indata, frames, _t, status = args
            outdata = None
        if status:
            self.xruns += 1
            self.engine.xruns += 1
        if s.error is not None or frames != self.engine.block:
            if outdata is not None:
                outdata.fill(0.0)
            return
        try:
            if indata is not None:
                np.copyto(s.in_np, indata.T)
            s.read_source()
            self.engine.process_block()
            if outdata is not None:
                np.copyto(outdata, s.out_np.T)
            s.write_sink()
        except BaseException as e:
            s.error = e

    def _activate(self) -> None:
        self.stream.start()

    def _deactivate(self) -> None:
        self.stream.stop()
        self.stream.close()
