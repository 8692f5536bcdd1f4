"""File player and recorder: disk I/O on background threads, SPSC rings to the audio thread.

The audio thread only copies between a preallocated staging buffer and an
:class:`~ironwave.backend.buffers.SPSCRing`; reading/decoding and
encoding/writing happen on a background thread per file. On CUDA the staging
buffers are pinned and the host<->device copies are part of the captured graph.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from ironwave.backend.buffers import SPSCRing
from ironwave.engine.errors import GraphError
from ironwave.engine.nodes.base import Node, register
from ironwave.engine.params import ParamSpec


class FileReader:
    """Background reader: decodes *path* into an SPSC ring (``[frames, channels]``)."""

    def __init__(self, path: str, sample_rate: int, loop: bool = False, seconds_buffered: float = 1.0) -> None:
        from ironwave.io.files import audio_info

        info = audio_info(path)
        if info.samplerate != sample_rate:
            raise GraphError(f"file {path} is at {info.samplerate} Hz but the engine runs at {sample_rate} Hz; resample it first")
        self.path, self.loop, self.channels = path, loop, info.channels
        self.ring = SPSCRing(int(seconds_buffered * sample_rate), info.channels)
        self.underruns = 0
        self.eof = False
        self._stop = False
        self._chunk = 4096
        self._thread = threading.Thread(target=self._run, name=f"ironwave-reader:{Path(path).name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with sf.SoundFile(self.path) as f:
            while not self._stop:
                if self.ring.writable() < self._chunk:
                    time.sleep(0.002)
                    continue
                data = f.read(self._chunk, dtype="float32", always_2d=True)
                if len(data) == 0:
                    if self.loop:
                        f.seek(0)
                        continue
                    self.eof = True
                    return
                self.ring.write(data)

    def wait_ready(self, frames: int, timeout: float = 2.0) -> None:
        t0 = time.perf_counter()
        while self.ring.readable() < frames and not self.eof and time.perf_counter() - t0 < timeout:
            time.sleep(0.001)

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=2.0)


class FileWriter:
    """Background writer: drains an SPSC ring into *path* (WAV/FLAC/...)."""

    def __init__(self, path: str, sample_rate: int, channels: int, seconds_buffered: float = 2.0) -> None:
        from ironwave.io.files import FORMATS

        p = Path(path)
        fmt = FORMATS.get(p.suffix.lower())
        if fmt is None:
            raise GraphError(f"recorder path {path}: unsupported format {p.suffix!r}; accepted: {', '.join(FORMATS)}")
        p.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.channels = p, channels
        self.ring = SPSCRing(int(seconds_buffered * sample_rate), channels)
        self.overruns = 0
        self._f = sf.SoundFile(str(p), "w", samplerate=sample_rate, channels=channels, format=fmt,
                               subtype="FLOAT" if fmt == "WAV" else None)
        self._buf = np.zeros((4096, channels), dtype=np.float32)
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=f"ironwave-writer:{p.name}", daemon=True)
        self._thread.start()

    def _drain(self) -> int:
        n = self.ring.read(self._buf)
        if n:
            self._f.write(self._buf[:n])
        return n

    def wait_room(self, frames: int, timeout: float = 2.0) -> None:
        t0 = time.perf_counter()
        while self.ring.writable() < frames and time.perf_counter() - t0 < timeout:
            time.sleep(0.001)

    def _run(self) -> None:
        while not self._stop:
            if not self._drain():
                time.sleep(0.002)

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=2.0)
        while self._drain():
            pass
        self._f.close()


def _check_path(node: str, typ: str, config: dict, must_exist: bool) -> None:
    path = config.get("path")
    if not isinstance(path, str) or not path:
        raise GraphError(f"node {node!r} ({typ}): option 'path' (audio file) is required")
    if must_exist and not Path(path).exists():
        raise GraphError(f"node {node!r} ({typ}): audio file not found: {path}")


@register
class FilePlayer(Node):
    """Plays an audio file (streamed from disk by a background thread)."""

    type_name = "player"
    outputs = {"out": None}
    params = {"gain": ParamSpec(1.0, 0.0, 100.0, 0.005)}
    config = {"path": None, "loop": False}
    host_io = True
    doc = "Streams the audio file `path` (optionally `loop`ing) from a background thread; silence after the end."

    @classmethod
    def validate_config(cls, node, config):
        _check_path(node, "player", config, True)

    @classmethod
    def config_channels(cls, config):
        from ironwave.io.files import audio_info

        return int(audio_info(config["path"]).channels)

    def setup(self) -> None:
        n, c, F = self.n, self.channels, self.frames
        self.readers: list[FileReader] = []
        for cfg, nid in zip(self.configs, self.ids):
            def make(cfg=cfg) -> FileReader:
                return FileReader(cfg["path"], self.sample_rate, bool(cfg.get("loop", False)))
            r = self.resources.get(nid, "player", make) if self.resources is not None else make()
            if r.channels != c:
                raise GraphError(f"player {cfg['path']}: file has {r.channels} channels, node has {c}")
            r.wait_ready(F)
            self.readers.append(r)
        cuda = self.device.type == "cuda"
        self.host = torch.zeros(n, F, c, pin_memory=cuda)
        self.host_np = [self.host[i].numpy() for i in range(n)]
        self.dev = self.host.to(self.device) if cuda else self.host

    def pre_host(self) -> None:
        F = self.frames
        offline = getattr(self.resources, "offline", False)
        for r, buf in zip(self.readers, self.host_np):
            if offline:  # the file clock may wait for the reader; a live driver never does
                r.wait_ready(F)
            got = r.ring.read(buf)
            if got < F:
                buf[got:] = 0.0
                if not r.eof:
                    r.underruns += 1

    def process(self, ins, outs, p):
        if self.dev is not self.host:
            self.dev.copy_(self.host, non_blocking=True)
        torch.mul(self.dev.transpose(1, 2), p[0], out=outs[0])


@register
class Recorder(Node):
    """Records its input to an audio file (written by a background thread); passes audio through."""

    type_name = "recorder"
    inputs = {"in": None}
    outputs = {"out": None}
    config = {"path": None}
    host_io = True
    doc = "Writes its input to the file `path` (WAV/FLAC/OGG/AIFF) from a background thread; passes audio through."

    @classmethod
    def validate_config(cls, node, config):
        _check_path(node, "recorder", config, False)

    def setup(self) -> None:
        n, c, F = self.n, self.channels, self.frames
        self.writers: list[FileWriter] = []
        for cfg, nid in zip(self.configs, self.ids):
            def make(cfg=cfg) -> FileWriter:
                return FileWriter(cfg["path"], self.sample_rate, c)
            self.writers.append(self.resources.get(nid, "recorder", make) if self.resources is not None else make())
        cuda = self.device.type == "cuda"
        self.host = torch.zeros(n, F, c, pin_memory=cuda)
        self.host_np = [self.host[i].numpy() for i in range(n)]
        self.dev = self.zeros(n, F, c) if cuda else self.host

    def process(self, ins, outs, p):
        self.dev.copy_(ins[0].transpose(1, 2))
        if self.dev is not self.host:
            self.host.copy_(self.dev, non_blocking=True)
        outs[0].copy_(ins[0])

    def post_host(self) -> None:
        F = self.frames
        offline = getattr(self.resources, "offline", False)
        for w, buf in zip(self.writers, self.host_np):
            if offline:
                w.wait_room(F)
            if w.ring.write(buf) < F:
                w.overruns += 1
