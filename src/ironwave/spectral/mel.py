"""Mel scale: Slaney/HTK filterbanks, mel spectrograms and their inverse (batched NNLS).

Shapes: audio ``[..., time]`` (samples); spectrograms ``[..., freq, frames]``.
Frequencies in Hz, sample rates in Hz. Parity with ``librosa.filters.mel`` and
``librosa.feature.melspectrogram`` (same parameter names and defaults).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ironwave.backend.device import DeviceLike, resolve_device
from ironwave.spectral._common import (InvalidAudio, InvalidParameter, check_finite, check_sr, finish, get_window,
                                       positive, prepare_input, real_dtype, stft, track)

__all__ = ["hz_to_mel", "mel_to_hz", "mel_frequencies", "mel_filterbank", "melspectrogram", "mel_to_stft",
           "mel_to_audio", "nnls", "MelSpectrogram"]

_F_SP = 200.0 / 3
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = math.log(6.4) / 27.0


def hz_to_mel(frequencies: Any, *, htk: bool = False) -> np.ndarray:
    """Hz -> mels (Slaney's auditory-toolbox scale, or HTK ``2595 log10(1 + f/700)``)."""
    f = np.asanyarray(frequencies, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    mels = f / _F_SP
    log_t = f >= _MIN_LOG_HZ
    mels = np.where(log_t, _MIN_LOG_MEL + np.log(np.maximum(f, 1e-300) / _MIN_LOG_HZ) / _LOGSTEP, mels)
    return mels


def mel_to_hz(mels: Any, *, htk: bool = False) -> np.ndarray:
    """Mels -> Hz (inverse of :func:`hz_to_mel`)."""
    m = np.asanyarray(mels, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    freqs = _F_SP * m
    return np.where(m >= _MIN_LOG_MEL, _MIN_LOG_HZ * np.exp(_LOGSTEP * (m - _MIN_LOG_MEL)), freqs)


def mel_frequencies(n_mels: int = 128, *, fmin: float = 0.0, fmax: float = 11025.0, htk: bool = False) -> np.ndarray:
    """``n_mels`` frequencies (Hz) evenly spaced on the mel scale from *fmin* to *fmax*."""
    lo, hi = hz_to_mel(fmin, htk=htk), hz_to_mel(fmax, htk=htk)
    return mel_to_hz(np.linspace(lo, hi, n_mels), htk=htk)


def _check_band(sr: float, fmin: float, fmax: float | None) -> tuple[float, float]:
    nyq = sr / 2.0
    if fmax is None:
        fmax = nyq
    if not (isinstance(fmin, (int, float, np.floating, np.integer)) and math.isfinite(fmin)) or fmin < 0:
        raise InvalidParameter(f"fmin={fmin!r} Hz must be a finite number >= 0")
    if not math.isfinite(fmax) or fmax <= 0:
        raise InvalidParameter(f"fmax={fmax!r} Hz must be a finite positive number")
    if fmax > nyq + 1e-9:
        raise InvalidParameter(f"fmax={fmax} Hz is beyond the Nyquist frequency {nyq} Hz of sr={sr}; use fmax <= sr/2")
    if fmin >= fmax:
        raise InvalidParameter(f"fmin={fmin} Hz must be below fmax={fmax} Hz (Nyquist {nyq} Hz)")
    return float(fmin), float(fmax)


def mel_filterbank(sr: float, n_fft: int, n_mels: int = 128, *, fmin: float = 0.0, fmax: float | None = None,
                   htk: bool = False, norm: str | float | None = "slaney", dtype: torch.dtype = torch.float32,
                   device: DeviceLike = "cpu") -> torch.Tensor:
    """Triangular mel filterbank, shape ``[n_mels, n_fft // 2 + 1]`` (same as ``librosa.filters.mel``).

    Args:
        sr: sample rate (Hz). n_fft: FFT size (samples).
        n_mels: number of bands. fmin / fmax: band edges (Hz); ``fmax=None`` is ``sr / 2``.
        htk: HTK mel formula instead of Slaney's.
        norm: ``"slaney"`` (area normalisation, each triangle divided by its width in Hz),
            ``None`` (peak 1), or a number p (unit p-norm rows; ``inf`` for max).
    """
    sr = check_sr(sr)
    positive("n_fft", n_fft, integer=True)
    positive("n_mels", n_mels, integer=True)
    fmin, fmax = _check_band(sr, fmin, fmax)
    if norm is not None and norm != "slaney" and not isinstance(norm, (int, float)):
        raise InvalidParameter(f"norm={norm!r}; accepted: 'slaney', None or a number p (p-norm)")
    n_fft, n_mels = int(n_fft), int(n_mels)
    fftfreqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    mel_f = mel_frequencies(n_mels + 2, fmin=fmin, fmax=fmax, htk=htk)
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fftfreqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if norm == "slaney":
        enorm = 2.0 / (mel_f[2: n_mels + 2] - mel_f[:n_mels])
        weights *= enorm[:, None]
    elif norm is not None:
        p = float(norm)
        if p == math.inf:
            n = np.max(np.abs(weights), axis=1, keepdims=True)
        elif p <= 0:
            raise InvalidParameter(f"norm={norm!r} must be a positive p-norm order")
        else:
            n = np.sum(np.abs(weights) ** p, axis=1, keepdims=True) ** (1.0 / p)
        weights = weights / np.where(n < np.finfo(np.float64).tiny, 1.0, n)
    dev = resolve_device(device) if device is not None else torch.device("cpu")
    return torch.from_numpy(weights).to(dtype=dtype, device=dev)


def melspectrogram(x: Any, sr: float = 22050, *, n_fft: int = 2048, hop_length: int = 512,
                   win_length: int | None = None, window: Any = "hann", center: bool = True,
                   pad_mode: str = "constant", power: float = 2.0, n_mels: int = 128, fmin: float = 0.0,
                   fmax: float | None = None, htk: bool = False, norm: str | float | None = "slaney",
                   S: Any = None, device: DeviceLike = None) -> Any:
    """Mel spectrogram ``[..., n_mels, frames]`` of audio ``[..., time]`` (librosa.feature.melspectrogram).

    Either audio *x* or a magnitude spectrogram ``S`` ``[..., n_fft//2+1, frames]`` (already raised
    to *power*) is used. Frames are ``hop_length`` samples apart; with ``center=True`` frame t is
    centred at sample ``t * hop_length``.
    """
    sr = check_sr(sr)
    positive("n_fft", n_fft, integer=True)
    positive("hop_length", hop_length, integer=True)
    positive("power", power)
    if S is not None:
        Sx, in_dev, was_np, _ = prepare_input(S, "S", device=device, min_ndim=2)
        if Sx.shape[-2] != n_fft // 2 + 1:
            raise InvalidAudio(f"S has {Sx.shape[-2]} frequency rows; n_fft={n_fft} needs {n_fft // 2 + 1}")
        spec = Sx
    else:
        xt, in_dev, was_np, _ = prepare_input(x, "x", device=device)
        if not center and xt.shape[-1] < n_fft:
            raise InvalidAudio(f"x has {xt.shape[-1]} samples; center=False needs at least n_fft={n_fft}")
        spec = None
    dev = spec.device if spec is not None else xt.device
    with track("spectral.melspectrogram", dev, device):
        if spec is None:
            wl = n_fft if win_length is None else int(win_length)
            if not 0 < wl <= n_fft:
                raise InvalidParameter(f"win_length={win_length} must be in 1..n_fft={n_fft}")
            w = get_window(window, wl, dtype=xt.dtype, device=dev)
            if wl < n_fft:
                lp = (n_fft - wl) // 2
                w = torch.nn.functional.pad(w, (lp, n_fft - wl - lp))
            D = stft(xt, n_fft, hop_length, w, center=center, pad_mode=pad_mode)
            spec = D.abs() if power == 1.0 else (D.abs() ** power if power != 2.0 else D.real ** 2 + D.imag ** 2)
        fb = mel_filterbank(sr, n_fft, n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm, dtype=spec.dtype, device=dev)
        out = torch.matmul(fb, spec)
    return finish(out, in_dev, was_np)


def nnls(A: torch.Tensor, B: torch.Tensor, *, n_iter: int = 300, tol: float = 1e-10,
         x0: torch.Tensor | None = None) -> torch.Tensor:
    """Batched non-negative least squares: ``argmin_{X >= 0} ||A X - B||_F`` for every column of B.

    Accelerated projected gradient (FISTA with adaptive restart), all columns and batch
    entries at once in plain torch ops (CPU or CUDA).

    Args:
        A: ``[m, n]`` matrix. B: ``[..., m, k]`` right-hand sides.
        n_iter: maximum iterations. tol: stop when the relative change of X is below *tol*.
        x0: optional start ``[..., n, k]`` (default: clipped least-norm solution).
    Returns:
        X ``[..., n, k]`` >= 0.
    """
    A = A.to(B.dtype)
    At = A.transpose(-1, -2)
    L = torch.linalg.matrix_norm(A.double(), ord=2).item() ** 2
    if L == 0:
        return torch.zeros(*B.shape[:-2], A.shape[1], B.shape[-1], dtype=B.dtype, device=B.device)
    step = 1.0 / L
    AtB = torch.matmul(At, B)
    if x0 is None:
        x = torch.matmul(torch.linalg.pinv(A.double()).to(B.dtype), B).clamp_min(0)
    else:
        x = x0.clamp_min(0)
    y = x.clone()
    t = 1.0
    for _ in range(int(n_iter)):
        grad = torch.matmul(At, torch.matmul(A, y)) - AtB
        x_new = (y - step * grad).clamp_min(0)
        # adaptive restart (O'Donoghue & Candes): drop momentum when it points uphill
        if float(((y - x_new) * (x_new - x)).sum()) > 0:
            t = 1.0
            y = x_new.clone()
        else:
            t_new = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
            y = x_new + ((t - 1.0) / t_new) * (x_new - x)
            t = t_new
        diff = float((x_new - x).norm())
        x = x_new
        if diff <= tol * max(float(x.norm()), 1e-30):
            break
    return x


def mel_to_stft(M: Any, sr: float = 22050, *, n_fft: int = 2048, power: float = 2.0, n_mels: int | None = None,
                fmin: float = 0.0, fmax: float | None = None, htk: bool = False, norm: str | float | None = "slaney",
                n_iter: int = 300, device: DeviceLike = None) -> Any:
    """Approximate inverse of the mel projection: mel ``[..., n_mels, frames]`` -> linear magnitude
    ``[..., n_fft//2+1, frames]`` (like ``librosa.feature.inverse.mel_to_stft``).

    Solves a non-negative least-squares problem per frame (batched, see :func:`nnls`) and
    returns ``S ** (1 / power)``.
    """
    Mt, in_dev, was_np, _ = prepare_input(M, "M", device=device, min_ndim=2)
    if bool((Mt < 0).any()):
        raise InvalidAudio("M (mel spectrogram) must be non-negative")
    positive("power", power)
    nm = Mt.shape[-2] if n_mels is None else int(n_mels)
    if Mt.shape[-2] != nm:
        raise InvalidAudio(f"M has {Mt.shape[-2]} mel rows but n_mels={n_mels}")
    with track("spectral.mel_to_stft", Mt.device, device):
        fb = mel_filterbank(sr, n_fft, nm, fmin=fmin, fmax=fmax, htk=htk, norm=norm, dtype=Mt.dtype, device=Mt.device)
        S = nnls(fb, Mt, n_iter=n_iter)
        out = S.pow(1.0 / power)
    return finish(out, in_dev, was_np)


def mel_to_audio(M: Any, sr: float = 22050, *, n_fft: int = 2048, hop_length: int = 512, window: Any = "hann",
                 center: bool = True, power: float = 2.0, n_iter: int = 32, length: int | None = None,
                 n_mels: int | None = None, fmin: float = 0.0, fmax: float | None = None, htk: bool = False,
                 norm: str | float | None = "slaney", method: str = "fgla", device: DeviceLike = None) -> Any:
    """Mel spectrogram -> audio: :func:`mel_to_stft` then phase reconstruction
    (:func:`ironwave.spectral.phase.griffinlim`, fast variant by default)."""
    from ironwave.spectral.phase import griffinlim

    S = mel_to_stft(M, sr, n_fft=n_fft, power=power, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm,
                    device=device)
    return griffinlim(S, n_iter=n_iter, hop_length=hop_length, n_fft=n_fft, window=window, center=center,
                      length=length, momentum=0.99 if method == "fgla" else 0.0, device=device)


class MelSpectrogram:
    """Streaming mel spectrogram: feed audio blocks of any size, get the frames that are complete.

    Equals ``melspectrogram(x, center=False)`` of the concatenated input (frames of ``n_fft``
    samples every ``hop_length`` samples). Faces: ``process(block) -> [..., n_mels, new_frames]``;
    ``prepare(max_block)`` preallocates the history buffer.
    """

    def __init__(self, sr: float = 22050, *, n_fft: int = 2048, hop_length: int = 512, window: Any = "hann",
                 power: float = 2.0, n_mels: int = 128, fmin: float = 0.0, fmax: float | None = None,
                 htk: bool = False, norm: str | float | None = "slaney", dtype: torch.dtype = torch.float32,
                 device: DeviceLike = "cpu") -> None:
        self.sr, self.n_fft, self.hop, self.power = check_sr(sr), int(n_fft), int(hop_length), float(power)
        positive("n_fft", n_fft, integer=True)
        positive("hop_length", hop_length, integer=True)
        self.device = resolve_device(device)
        self.dtype = dtype
        self.fb = mel_filterbank(sr, n_fft, n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm, dtype=dtype, device=self.device)
        self.window = get_window(window, self.n_fft, dtype=dtype, device=self.device)
        self.reset()

    def reset(self) -> None:
        """Forget buffered samples."""
        self._buf: torch.Tensor | None = None

    def process(self, block: Any) -> Any:
        """Append ``[..., n]`` samples; return mel frames ``[..., n_mels, k]`` completed by them (k may be 0)."""
        xt, in_dev, was_np, _ = prepare_input(block, "block", device=self.device)
        xt = xt.to(self.dtype)
        buf = xt if self._buf is None else torch.cat([self._buf, xt], dim=-1)
        n = buf.shape[-1]
        k = 0 if n < self.n_fft else (n - self.n_fft) // self.hop + 1
        if k:
            frames = buf[..., : (k - 1) * self.hop + self.n_fft].unfold(-1, self.n_fft, self.hop) * self.window
            spec = torch.fft.rfft(frames, dim=-1).abs().pow(self.power).transpose(-1, -2)
            out = torch.matmul(self.fb, spec)
            buf = buf[..., k * self.hop:]
        else:
            out = torch.zeros(*buf.shape[:-1], self.fb.shape[0], 0, dtype=self.dtype, device=self.device)
        self._buf = buf
        telemetry_dev = self.device
        from ironwave.backend.telemetry import telemetry
        telemetry.record("spectral.MelSpectrogram.process", telemetry_dev)
        return finish(out, in_dev, was_np)
