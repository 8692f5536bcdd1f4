"""Audio file reading and writing (soundfile), with clear errors.

Audio comes back as float32 tensors ``[channels, time]`` plus the sample rate (Hz).
Writes go to a temporary file first and are renamed into place, so an existing
file is never left half-written.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import numpy as np
import soundfile as sf
import torch

from ironwave.errors import InvalidAudio, InvalidParameter

PathLike = Union[str, os.PathLike]

FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".aiff": "AIFF", ".aif": "AIFF"}


def read_audio(path: PathLike, *, frames: int = -1, start: int = 0) -> tuple[torch.Tensor, int]:
    """Read an audio file.

    Args:
        path: file path.
        frames: number of frames to read (-1: all).
        start: first frame to read.

    Returns:
        ``(audio [channels, time] float32, sample_rate_hz)``.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"audio file not found: {p}")
    try:
        data, sr = sf.read(str(p), frames=frames, start=start, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise InvalidAudio(f"cannot read {p} as audio: {e}") from None
    if data.shape[0] == 0:
        raise InvalidAudio(f"{p} contains no audio frames")
    x = torch.from_numpy(np.ascontiguousarray(data.T))
    if not bool(torch.isfinite(x).all()):
        raise InvalidAudio(f"{p} contains NaN or Inf samples")
    return x, int(sr)


def audio_info(path: PathLike) -> sf._SoundFileInfo:
    """soundfile's info (frames, samplerate, channels) without reading samples."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"audio file not found: {p}")
    try:
        return sf.info(str(p))
    except (sf.LibsndfileError, RuntimeError) as e:
        raise InvalidAudio(f"cannot read {p} as audio: {e}") from None


def write_audio(path: PathLike, audio: torch.Tensor | np.ndarray, sample_rate: int, *, subtype: str | None = None) -> Path:
    """Write ``[channels, time]`` (or ``[time]``) audio atomically.

    The format comes from the suffix (.wav, .flac, .ogg, .aiff). Returns the path.
    """
    p = Path(path)
    fmt = FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise InvalidParameter(f"unsupported output format {p.suffix!r} for {p}; accepted: {', '.join(FORMATS)}")
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise InvalidParameter(f"sample_rate must be a positive integer (Hz), got {sample_rate!r}")
    a = audio.detach().cpu().numpy() if isinstance(audio, torch.Tensor) else np.asarray(audio)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2:
        raise InvalidAudio(f"audio to write must be [channels, time], got shape {list(a.shape)}")
    if subtype is None:
        subtype = "PCM_24" if fmt in ("FLAC", "AIFF") else ("FLOAT" if fmt == "WAV" else None)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.part")
    try:
        sf.write(str(tmp), np.ascontiguousarray(a.T.astype(np.float32)), int(sample_rate), format=fmt, subtype=subtype)
        os.replace(tmp, p)
    finally:
        if tmp.exists():
            tmp.unlink()
    return p
