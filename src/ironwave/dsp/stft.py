"""Short-time Fourier transform: ``stft``, ``istft``, COLA/NOLA checks, streaming.

Conventions (same as ``torch.stft`` and ``librosa.stft``):

* input ``[..., time]`` real, output complex ``[..., n_fft // 2 + 1, frames]``;
* frame ``t`` covers samples ``[t * hop, t * hop + n_fft)`` of the signal padded
  by ``n_fft // 2`` on both sides when ``center=True`` (no padding otherwise);
  ``frames = 1 + (padded_length - n_fft) // hop``;
* a window shorter than ``n_fft`` (``win_length``) is zero-padded, centred;
* no normalization unless ``normalized=True`` (then ``n_fft ** -0.5``).

Two exact methods compute the forward transform:

``method="torch"``
    ``torch.stft`` with the window tensor: the plain-torch reference path.
``method="freqwin"``
    for cosine-sum windows (hann, hamming, blackman, rect) whose length is
    ``n_fft``. The unwindowed overlapping frames are an ``as_strided`` *view*
    of one padded copy of the input (cuFFT/pocketfft read it in place: no
    frame matrix is materialized), the rFFT runs on that view, and the window is
    applied in the frequency domain as a 3-tap (hann/hamming) or 5-tap
    (blackman) filter across bins, ``Y[f] = a0 X[f] + sum_k (-1)^k a_k / 2
    (X[f-k] + X[f+k])`` (conjugate-symmetric bins at the edges), one conv1d.
    Mathematically identical to time-domain windowing; it differs from
    ``torch.stft`` only by float rounding (tests hold it to 1e-6 relative).

``method="triton"`` (CUDA, float32/float64, no autograd)
    one Triton kernel reads the *unpadded* signal and writes the windowed frames
    contiguously, applying the centre padding by index arithmetic (no padded copy,
    no strided window pass), then cuFFT's batched R2C runs on the contiguous frames
    (:mod:`ironwave.dsp._stft_triton`). Same arithmetic as ``torch.stft``.

``method="auto"`` (default) picks per device from :data:`AUTO_METHOD`: ``"torch"`` on
the CPU (``freqwin`` measured slower there), ``"triton"`` on CUDA when Triton imports
and no gradient is needed (else ``"torch"``; a kernel failure warns once and falls
back). Timings in docs/dsp-stft-resample.md. ``freqwin`` is never picked by ``auto``.

``istft`` is a weighted overlap-add (``sum_t w * frame_t / sum_t w^2``): an
exact inverse of :func:`stft` for any window/hop that satisfies NOLA (checked;
:func:`check_cola` reports COLA/WOLA/NOLA).

Streaming: :class:`STFTStream` (push audio blocks of any size, get frames as
they complete) and :class:`ISTFTStream` (push frames, get final audio). Their
composition has a latency of ``n_fft - hop`` samples (hop-aligned blocks).
Engine face: ``prepare(...)`` then ``process(block, out=None)``: fixed block of
``k * hop`` samples <-> ``k`` frames per call, preallocated buffers, no tensor
allocated per call on the CPU (numpy 2 pocketfft with ``out=``).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F

from ironwave.backend.device import DeviceLike, choose_device, resolve_device
from ironwave.backend.telemetry import telemetry
from ironwave.backend.validate import as_tensor, check_audio, check_finite, restore_type
from ironwave.dsp._optional import kernel_failed, optional_module
from ironwave.dsp.windows import WindowSpec, cosine_sum_coefficients, describe, finite_fast, get_window, pad_window
from ironwave.errors import BackendUnavailable, InvalidAudio, InvalidParameter

_PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "replicate", "edge": "replicate",
              "circular": "circular", "wrap": "circular"}
_METHODS = ("auto", "torch", "freqwin", "triton")
_TRITON_MOD = "ironwave.dsp._stft_triton"
NOLA_TOL = 1e-11

#: What ``method="auto"`` runs per device type (set ``"freqwin"`` where it measures faster).
AUTO_METHOD: dict[str, str] = {"cpu": "torch", "cuda": "triton"}


# ----------------------------------------------------------------------------- device / telemetry
def run_device(family: str, size: int, batch: int, device: DeviceLike, home: torch.device) -> torch.device:
    """Device an op runs on for the caller's ``device`` request and the input's ``home`` device.

    An explicit device is honoured (``BackendUnavailable`` if it cannot be met). ``"auto"``
    (or ``None``) keeps input that already lives on a GPU there (shipping it to the CPU
    and back costs a sync and two copies); CPU input goes through the calibrated
    CPU/GPU crossover of *family* (``IRONWAVE_DEVICE`` overrides both).
    """
    return choose_device(family, size, batch, "auto" if device is None else device, home=home)


def record_ran(op: str, result: torch.Tensor, t0: float, requested: DeviceLike) -> None:
    """Telemetry for one call: the backend is the device *result* was computed on."""
    telemetry.record(op, result.device, time.perf_counter() - t0, requested=requested)


# ----------------------------------------------------------------------------- params
@dataclass(frozen=True)
class STFTParams:
    """Validated STFT parameters (all in samples)."""

    n_fft: int
    hop_length: int
    win_length: int
    window: Any
    center: bool
    pad_mode: str
    normalized: bool

    @property
    def n_freq(self) -> int:
        """Number of frequency bins, ``n_fft // 2 + 1``."""
        return self.n_fft // 2 + 1

    @property
    def pad(self) -> int:
        """Samples of padding on each side when ``center`` (else 0)."""
        return self.n_fft // 2 if self.center else 0

    def n_frames(self, length: int) -> int:
        """Frames produced for a signal of ``length`` samples."""
        return 1 + (length + 2 * self.pad - self.n_fft) // self.hop_length

    def window_tensor(self, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """The analysis window zero-padded to ``n_fft`` samples."""
        return pad_window(get_window(self.window, self.win_length, dtype=dtype, device=device), self.n_fft)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def make_params(n_fft: int, hop_length: Optional[int] = None, win_length: Optional[int] = None,
                window: WindowSpec = "hann", center: bool = True, pad_mode: str = "constant",
                normalized: bool = False) -> STFTParams:
    """Validate STFT parameters and fill defaults (``win_length = n_fft``, ``hop = win_length // 4``)."""
    if not _is_int(n_fft) or n_fft < 2:
        raise InvalidParameter(f"n_fft must be an integer >= 2 (samples), got {n_fft!r}")
    if win_length is None:
        win_length = n_fft
    if not _is_int(win_length) or win_length < 1:
        raise InvalidParameter(f"win_length must be a positive integer (samples), got {win_length!r}")
    if win_length > n_fft:
        raise InvalidParameter(f"win_length={win_length} is larger than n_fft={n_fft}; need 1 <= win_length <= n_fft")
    if hop_length is None:
        hop_length = max(win_length // 4, 1)
    if not _is_int(hop_length) or hop_length < 1:
        raise InvalidParameter(f"hop_length must be a positive integer (samples), got {hop_length!r}")
    if hop_length > win_length:
        raise InvalidParameter(f"hop_length={hop_length} is larger than win_length={win_length}: frames would skip samples "
                               "and the transform could not be inverted; need 1 <= hop_length <= win_length")
    if not isinstance(pad_mode, str) or pad_mode.lower() not in _PAD_MODES:
        raise InvalidParameter(f"pad_mode={pad_mode!r}; accepted: {', '.join(map(repr, _PAD_MODES))}")
    # validate the window now (raises on bad specs / lengths)
    get_window(window, win_length, dtype=torch.float64)
    return STFTParams(int(n_fft), int(hop_length), int(win_length), window, bool(center),
                      _PAD_MODES[pad_mode.lower()], bool(normalized))


# ----------------------------------------------------------------------------- COLA / NOLA
@dataclass(frozen=True)
class COLAResult:
    """Overlap-add properties of a window at a hop (see :func:`check_cola`).

    Attributes:
        cola: ``sum_t w[n - t hop]`` is constant (plain overlap-add of windowed
            frames reconstructs the signal up to :attr:`cola_sum`).
        cola_deviation: worst-case ``|sum - mean| / mean`` of that sum.
        cola_sum: mean value of ``sum_t w[n - t hop]``.
        wola: ``sum_t w^2[n - t hop]`` is constant (analysis+synthesis with the
            same window needs no normalization).
        wola_deviation: worst-case relative deviation of the squared sum.
        nola: ``sum_t w^2[n - t hop] > 0`` everywhere: :func:`istft` is an exact
            inverse (weighted overlap-add divides by this sum).
        nola_min: minimum of the squared sum.
        hop_length / n_fft: the checked configuration (samples).
    """

    cola: bool
    cola_deviation: float
    cola_sum: float
    wola: bool
    wola_deviation: float
    nola: bool
    nola_min: float
    hop_length: int
    n_fft: int

    def __bool__(self) -> bool:
        return self.cola


def _ola_periodic_sum(w: torch.Tensor, hop: int) -> torch.Tensor:
    n = w.shape[0]
    m = -(-n // hop) * hop
    return F.pad(w, (0, m - n)).view(-1, hop).sum(0)


def check_cola(window: WindowSpec, hop_length: int, n_fft: Optional[int] = None, *,
               win_length: Optional[int] = None, tol: float = 1e-10) -> COLAResult:
    """Check COLA (constant overlap-add), WOLA and NOLA of a window at a hop.

    Args:
        window: a window spec (``"hann"``, ``("kaiser", 8.0)``, samples, ...).
        hop_length: hop in samples (> 0).
        n_fft: frame length in samples; default: the window length (``win_length``
            or the number of samples of a tensor window).
        win_length: window length in samples (<= n_fft), for named windows.
        tol: relative tolerance of the COLA/WOLA deviation and absolute floor of NOLA.

    Returns:
        :class:`COLAResult` (truthy when COLA holds).
    """
    if isinstance(window, torch.Tensor) or hasattr(window, "shape"):
        wl = int(len(window))
    else:
        wl = win_length if win_length is not None else n_fft
        if wl is None:
            raise InvalidParameter("check_cola needs n_fft or win_length for a named window")
    n = n_fft if n_fft is not None else wl
    if not _is_int(hop_length) or hop_length < 1:
        raise InvalidParameter(f"hop_length must be a positive integer (samples), got {hop_length!r}")
    if not _is_int(n) or n < 1 or wl > n:
        raise InvalidParameter(f"need 1 <= win_length ({wl}) <= n_fft ({n})")
    w = pad_window(get_window(window, wl, dtype=torch.float64), n)
    s1 = _ola_periodic_sum(w, hop_length)
    s2 = _ola_periodic_sum(w * w, hop_length)
    m1 = float(s1.mean())
    m2 = float(s2.mean())
    dev1 = float((s1 - m1).abs().max()) / abs(m1) if m1 != 0 else math.inf
    dev2 = float((s2 - m2).abs().max()) / m2 if m2 > 0 else math.inf
    nmin = float(s2.min())
    return COLAResult(cola=dev1 <= tol, cola_deviation=dev1, cola_sum=m1, wola=dev2 <= tol, wola_deviation=dev2,
                      nola=nmin > tol, nola_min=nmin, hop_length=int(hop_length), n_fft=int(n))


# ----------------------------------------------------------------------------- core (forward)
def _freqwin_taps(coefs: tuple[float, ...], scale: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    K = len(coefs) - 1
    c = [0.0] * (2 * K + 1)
    c[K] = coefs[0] * scale
    for k in range(1, K + 1):
        c[K + k] = c[K - k] = ((-1) ** k) * coefs[k] / 2.0 * scale
    return torch.tensor(c, dtype=dtype, device=device).view(1, 1, -1)


FREQWIN_IMPL = "auto"
"""How :func:`_freq_window` applies the taps: ``"conv"`` (one dilated conv1d over the
real view: one pass, used on CUDA), ``"slices"`` (shifted in-place adds: fastest on
CPU), ``"auto"`` (conv on CUDA, slices elsewhere). Both are exact."""


def _edge_fixes(coefs: tuple[float, ...], nf: int, n_fft: int, scale: float) -> dict[int, list[tuple[int, float]]]:
    """Conjugate-symmetric neighbours outside ``[0, n_freq)``: ``X[-m] = conj X[m]``, ``X[j] = conj X[n_fft - j]``."""
    K = len(coefs) - 1
    c = {0: coefs[0] * scale}
    for k in range(1, K + 1):
        c[k] = c[-k] = ((-1) ** k) * coefs[k] / 2.0 * scale
    fixes: dict[int, list[tuple[int, float]]] = {}
    for f in sorted(set(range(0, min(K, nf))) | set(range(max(nf - K, 0), nf))):
        for d in range(-K, K + 1):
            j = f + d
            if j < 0:
                fixes.setdefault(f, []).append((-j, c[d]))
            elif j > nf - 1:
                fixes.setdefault(f, []).append((n_fft - j, c[d]))
    return fixes


def _freq_window(Z: torch.Tensor, coefs: tuple[float, ...], n_fft: int, scale: float, impl: str | None = None) -> torch.Tensor:
    """Apply a cosine-sum window to unwindowed rFFT frames ``Z [N, n_freq]`` in the frequency domain.

    ``Y[f] = sum_d c_d X[f - d]`` with ``c_0 = a_0``, ``c_{+-k} = (-1)^k a_k / 2`` (times
    ``scale``); bins outside ``[0, n_freq)`` come from conjugate symmetry.
    """
    K = len(coefs) - 1
    if K == 0:
        return Z * (coefs[0] * scale) if (coefs[0] * scale) != 1.0 else Z
    N, nf = Z.shape
    impl = impl or FREQWIN_IMPL
    if impl == "auto":
        impl = "conv" if Z.is_cuda else "slices"
    if impl == "conv":
        taps = _freqwin_taps(coefs, scale, Z.real.dtype, Z.device)
        zr = torch.view_as_real(Z).reshape(N, 1, 2 * nf)
        prev_tf32 = torch.backends.cudnn.allow_tf32
        if Z.is_cuda:
            torch.backends.cudnn.allow_tf32 = False  # TF32 would break 1e-5 parity
        try:
            yr = F.conv1d(zr, taps, padding=2 * K, dilation=2)
        finally:
            torch.backends.cudnn.allow_tf32 = prev_tf32
        Y = torch.view_as_complex(yr.view(N, nf, 2))
    else:
        Y = Z * (coefs[0] * scale)
        for k in range(1, K + 1):
            ck = ((-1) ** k) * coefs[k] / 2.0 * scale
            Y[:, k:].add_(Z[:, :-k], alpha=ck)
            Y[:, :-k].add_(Z[:, k:], alpha=ck)
    for f, terms in _edge_fixes(coefs, nf, n_fft, scale).items():
        acc = None
        for src, c in terms:
            t = Z[:, src].conj() * c
            acc = t if acc is None else acc + t
        Y[:, f] += acc
    return Y


def _frames_view(x2: torch.Tensor, p: STFTParams) -> tuple[torch.Tensor, int, int]:
    """Pad ``x2 [R, L]`` once into a row-uniform buffer and return the overlapping frames view.

    Returns ``(frames [(R-1) * rows + T, n_fft] view, rows, T)`` where signal ``r``'s
    frame ``t`` is row ``r * rows + t``.
    """
    R, L = x2.shape
    n_fft, hop, pad = p.n_fft, p.hop_length, p.pad
    T = p.n_frames(L)
    rows = T + (-(-n_fft // hop)) - 1  # frames per signal in the uniform layout (>= T)
    S = rows * hop
    used = (T - 1) * hop + n_fft  # samples of the padded signal that any frame reads (<= S)
    if p.pad_mode == "constant" or pad == 0:
        buf = F.pad(x2, (pad, S - L - pad)) if S - L - pad >= 0 else F.pad(x2, (pad, 0))[:, :S].contiguous()
    else:
        xp = F.pad(x2.unsqueeze(1), (pad, pad), mode=p.pad_mode).squeeze(1)[:, :used]
        buf = F.pad(xp, (0, S - used))
    flat = buf.reshape(-1)
    nrows = (R - 1) * rows + T
    frames = flat.as_strided((nrows, n_fft), (hop, 1))
    return frames, rows, T


def _stft_core(x2: torch.Tensor, p: STFTParams, method: str, flag: torch.Tensor | None = None) -> torch.Tensor:
    """STFT of ``x2 [R, L]`` on its device -> complex ``[R, n_freq, T]``."""
    R, L = x2.shape
    coefs = cosine_sum_coefficients(p.window)
    if method == "freqwin":
        Tn = p.n_frames(L)
        frames, rows, T = _frames_view(x2, p)
        Z = torch.fft.rfft(frames, dim=-1)
        scale = p.n_fft ** -0.5 if p.normalized else 1.0
        Y = _freq_window(Z, coefs, p.n_fft, scale)  # type: ignore[arg-type]
        nf = p.n_freq
        out = Y.as_strided((R, Tn, nf), (rows * nf, nf, 1))
        return out.transpose(1, 2)
    w = p.window_tensor(x2.dtype, x2.device)
    if method == "triton":
        tri = optional_module(_TRITON_MOD)
        if tri is None:
            raise BackendUnavailable("method='triton' needs the triton package (pip install triton) and CUDA")
        if p.normalized:
            w = w * p.n_fft ** -0.5
        return tri.stft_triton(x2, w, p.hop_length, p.pad, p.pad_mode, p.n_frames(L), flag=flag)
    return torch.stft(x2, p.n_fft, p.hop_length, win_length=p.n_fft, window=w, center=p.center,
                      pad_mode=p.pad_mode, normalized=p.normalized, onesided=True, return_complex=True)


def _pick_method(method: str, p: STFTParams, device_type: str = "cpu") -> str:
    if method not in _METHODS:
        raise InvalidParameter(f"method={method!r}; accepted: {', '.join(map(repr, _METHODS))}")
    ok = cosine_sum_coefficients(p.window) is not None and p.win_length == p.n_fft and p.n_fft >= 8
    if method == "freqwin" and not ok:
        raise InvalidParameter("method='freqwin' needs a cosine-sum window ('hann', 'hamming', 'blackman', 'rect') "
                               f"with win_length == n_fft >= 8; got window={describe(p.window)}, win_length={p.win_length}, "
                               f"n_fft={p.n_fft}. Use method='torch' or 'auto'")
    if method == "triton" and device_type != "cuda":
        raise InvalidParameter(f"method='triton' runs on CUDA only; the STFT runs on {device_type!r}. "
                               "Use method='auto' or 'torch'")
    if method == "auto":
        auto = AUTO_METHOD.get(device_type, "torch")
        if auto == "freqwin":
            return "freqwin" if ok else "torch"
        return auto
    return method


def _triton_usable(x2: torch.Tensor) -> bool:
    """``auto`` on CUDA: the Triton kernel applies (float32/64, no gradient, Triton importable)."""
    return (x2.dtype in (torch.float32, torch.float64) and not (x2.requires_grad and torch.is_grad_enabled())
            and optional_module(_TRITON_MOD) is not None)


def _check_length(L: int, p: STFTParams, name: str) -> None:
    if not p.center and L < p.n_fft:
        raise InvalidAudio(f"{name}: signal has {L} samples but center=False needs at least n_fft={p.n_fft}")
    if p.center and p.pad_mode in ("reflect", "circular") and L <= p.pad:
        raise InvalidAudio(f"{name}: pad_mode={p.pad_mode!r} needs more than n_fft // 2 = {p.pad} samples, got {L}; "
                           "use pad_mode='constant' for short signals")


# ----------------------------------------------------------------------------- public forward
def stft(x: Any, n_fft: int, hop_length: Optional[int] = None, win_length: Optional[int] = None,
         window: WindowSpec = "hann", *, center: bool = True, pad_mode: str = "constant", normalized: bool = False,
         method: str = "auto", device: DeviceLike = "auto") -> Any:
    """Short-time Fourier transform of real signals ``[..., time]``.

    Args:
        x: real audio ``[..., time]`` (tensor or numpy; float16/32/64).
        n_fft: FFT size in samples (>= 2).
        hop_length: hop between frames in samples, ``1 <= hop <= win_length``
            (default ``win_length // 4``).
        win_length: window length in samples (default ``n_fft``), zero-padded
            (centred) to ``n_fft``.
        window: ``"hann"``, ``"hamming"``, ``"blackman"``, ``"rect"``,
            ``("kaiser", beta)`` or a 1-D tensor/array of ``win_length`` samples.
        center: pad ``n_fft // 2`` samples on both sides so frame ``t`` is
            centred at sample ``t * hop``.
        pad_mode: ``"constant"`` (zeros, default, as librosa), ``"reflect"``,
            ``"replicate"``/``"edge"``, ``"circular"``/``"wrap"``.
        normalized: multiply by ``n_fft ** -0.5``.
        method: ``"auto"``, ``"torch"``, ``"freqwin"`` or ``"triton"`` (see the module docs).
        device: ``"auto"`` (calibrated crossover), ``"cpu"``, ``"cuda[:N]"``.
            The result comes back on the input's device.

    Returns:
        Complex ``[..., n_fft // 2 + 1, frames]`` (complex64 for float32 input,
        complex128 for float64), numpy if numpy came in. Differentiable.
    """
    p = make_params(n_fft, hop_length, win_length, window, center, pad_mode, normalized)
    t, was_numpy = as_tensor(x, "x")
    t = check_audio(t, "x", finite=False)
    _check_length(t.shape[-1], p, "stft")
    home, dtype = t.device, t.dtype
    work_dtype = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    batch_shape, L = t.shape[:-1], t.shape[-1]
    R = max(int(math.prod(batch_shape)), 1)
    dev = run_device("stft", L, R, device, home)
    m = _pick_method(method, p, dev.type)
    t0 = time.perf_counter()
    x2 = t.reshape(R, L).to(device=dev, dtype=work_dtype)
    if m == "triton" and method == "auto" and not _triton_usable(x2):
        m = "torch"
    y = None
    if m == "triton":
        # the kernel screens the input for NaN/Inf while framing it (no separate pass)
        flag = torch.zeros(1, dtype=torch.int32, device=dev)
        try:
            y = _stft_core(x2, p, m, flag)
        except Exception as e:  # noqa: BLE001 - a broken Triton install must not break stft
            if method != "auto":
                raise
            kernel_failed(_TRITON_MOD, "ironwave.dsp.stft", e, "torch.stft", stacklevel=2)
            m = "torch"
        if y is not None and int(flag.item()):
            check_finite(t, "x")  # raises, naming the first bad sample
    if y is None:
        finite_fast(t, "x")
        y = _stft_core(x2, p, m)
    record_ran(f"dsp.stft.{m}", y, t0, device)
    y = y.reshape(*batch_shape, p.n_freq, y.shape[-1]).to(home)
    return restore_type(y, was_numpy)


# ----------------------------------------------------------------------------- inverse
def _ola(frames: torch.Tensor, hop: int) -> torch.Tensor:
    """Overlap-add ``frames [N, T, n_fft]`` at ``hop`` -> ``[N, n_fft + hop * (T - 1)]``.

    Frames are cut into ``ceil(n_fft / hop)`` hop-sized chunks; chunk ``j`` of all frames
    is one contiguous run of the output shifted by ``j * hop``, so OLA is that many
    shifted adds (no scatter). Very small hops relative to ``n_fft`` use ``F.fold``.
    """
    N, T, n = frames.shape
    total = n + hop * (T - 1)
    if T == 1:
        return frames[:, 0, :]
    c = -(-n // hop)
    if c > 64:
        y = F.fold(frames.transpose(1, 2), output_size=(1, total), kernel_size=(1, n), stride=(1, hop))
        return y.reshape(N, total)
    fr = F.pad(frames, (0, c * hop - n)) if c * hop != n else frames
    fr = fr.reshape(N, T, c, hop)
    y = frames.new_zeros(N, (T + c - 1) * hop)
    for j in range(c):
        chunk = fr[:, :, j, :].reshape(N, T * hop)
        if j == 0:
            y[:, : T * hop] = chunk
        else:
            y[:, j * hop: j * hop + T * hop] += chunk
    return y[:, :total]


def _envelope(w: torch.Tensor, hop: int, T: int) -> torch.Tensor:
    """``sum_t w^2[n - t hop]`` over ``T`` frames -> ``[n_fft + hop * (T - 1)]`` (one row: cheap)."""
    w2 = (w * w).detach()
    return _ola(w2.view(1, 1, -1).expand(1, T, -1).contiguous(), hop)[0]


#: largest ``ceil(n_fft / hop)`` (frames per output sample) the Triton OLA kernel unrolls
TRITON_OLA_MAX_OVERLAP = 64


def _istft_core(S: torch.Tensor, p: STFTParams, length: Optional[int], tri: Any = None,
                check: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Inverse of ``S [R, n_freq, T]`` on its device -> real ``[R, time]``.

    ``tri``: the Triton module (CUDA, no autograd): the OLA runs as one gather kernel and
    ``S`` is screened for NaN/Inf there (``check`` is the original input, re-checked to name
    the sample on a hit)."""
    R, nf, T = S.shape
    real_dtype = S.real.dtype
    w = p.window_tensor(real_dtype, S.device)
    env = _envelope(w, p.hop_length, T)
    total = p.n_fft + p.hop_length * (T - 1)
    start = p.pad
    end = start + length if length is not None else total - p.pad
    stop = min(end, total)
    if stop > start:
        seg = env[start:stop]
        bad = seg <= NOLA_TOL
        if bool(bad.any()):
            i = int(torch.nonzero(bad)[0]) + start
            raise InvalidParameter(
                f"istft: window {describe(p.window)} (win_length={p.win_length}, n_fft={p.n_fft}) with hop_length={p.hop_length} "
                f"violates NOLA: the sum of squared windows is {float(env[i]):.3g} at padded sample {i}, so that sample cannot be "
                "recovered; use a smaller hop, another window, or center=True")
    frames = torch.fft.irfft(S.transpose(1, 2), n=p.n_fft, dim=-1)
    if tri is not None:
        weff = w * math.sqrt(p.n_fft) if p.normalized else w
        flag = torch.zeros(1, dtype=torch.int32, device=S.device)
        y = tri.istft_ola(frames, weff, env, p.hop_length, start, max(end - start, 0), flag)
        if int(flag.item()) and check is not None:
            check_finite(check, "S")  # raises, naming the first bad bin
        return y
    if p.normalized:
        frames = frames * math.sqrt(p.n_fft)
    frames = frames * w
    y = _ola(frames, p.hop_length)
    if stop > start:
        y = y[:, start:stop] / env[start:stop]
    else:
        y = y[:, :0]
    if end > stop:
        y = F.pad(y, (0, end - max(stop, start)))
    return y


def istft(S: Any, hop_length: Optional[int] = None, win_length: Optional[int] = None, window: WindowSpec = "hann", *,
          n_fft: Optional[int] = None, center: bool = True, length: Optional[int] = None, normalized: bool = False,
          device: DeviceLike = "auto") -> Any:
    """Inverse STFT by weighted overlap-add: ``y = sum_t w * frame_t / sum_t w^2``.

    Exact inverse of :func:`stft` (same parameters) for any window/hop that
    satisfies NOLA; raises :class:`~ironwave.errors.InvalidParameter` naming the
    sample where NOLA fails otherwise.

    Args:
        S: complex ``[..., n_fft // 2 + 1, frames]``.
        hop_length / win_length / window / center / normalized: as in :func:`stft`.
        n_fft: FFT size in samples (default ``2 * (n_freq - 1)``).
        length: output length in samples (trim or zero-pad); default
            ``n_fft + hop * (frames - 1) - 2 * (n_fft // 2 if center else 0)``.
        device: as in :func:`stft`; the result comes back on ``S``'s device.

    Returns:
        Real ``[..., time]`` (float32 for complex64 input). Differentiable.
    """
    t, was_numpy = as_tensor(S, "S")
    if not t.is_complex():
        raise InvalidAudio(f"istft: S must be a complex spectrogram [..., n_freq, frames], got dtype {t.dtype}")
    if t.ndim < 2:
        raise InvalidAudio(f"istft: S has shape {list(t.shape)}; expected [..., n_freq, frames]")
    nf, T = t.shape[-2], t.shape[-1]
    if T < 1:
        raise InvalidAudio("istft: S has 0 frames")
    if n_fft is None:
        n_fft = 2 * (nf - 1)
    p = make_params(n_fft, hop_length, win_length, window, center, "constant", normalized)
    if nf != p.n_freq:
        raise InvalidAudio(f"istft: S has {nf} frequency bins but n_fft={n_fft} needs {p.n_freq}")
    if length is not None and (not _is_int(length) or length < 0):
        raise InvalidParameter(f"istft: length must be a non-negative integer (samples), got {length!r}")
    if t.dtype == torch.complex32:
        t = t.to(torch.complex64)
    batch_shape = t.shape[:-2]
    R = max(int(math.prod(batch_shape)), 1)
    home = t.device
    dev = run_device("stft", n_fft + p.hop_length * (T - 1), R, device, home)
    tri = None
    if (dev.type == "cuda" and t.dtype in (torch.complex64, torch.complex128)
            and not (t.requires_grad and torch.is_grad_enabled()) and -(-n_fft // p.hop_length) <= TRITON_OLA_MAX_OVERLAP):
        tri = optional_module(_TRITON_MOD)
    if tri is None:
        finite_fast(t, "S")
    t0 = time.perf_counter()
    S2 = t.reshape(R, nf, T).to(dev)
    try:
        y = _istft_core(S2, p, length, tri, t)
    except (InvalidParameter, InvalidAudio):
        raise
    except Exception as e:  # noqa: BLE001 - a broken Triton install must not break istft
        if tri is None:
            raise
        kernel_failed(_TRITON_MOD, "ironwave.dsp.istft", e, "the torch path", stacklevel=2)
        finite_fast(t, "S")
        y = _istft_core(S2, p, length)
    record_ran("dsp.istft", y, t0, device)
    y = y.reshape(*batch_shape, y.shape[-1]).to(home)
    return restore_type(y, was_numpy)


# ----------------------------------------------------------------------------- real-time helpers
try:  # numpy >= 2: the pocketfft gufuncs take out= and write in place (torch.fft's CPU out= copies from a temporary)
    from numpy.fft import _pocketfft_umath as _pfu

    _PFU_OK = all(hasattr(_pfu, n) for n in ("rfft_n_even", "rfft_n_odd", "irfft"))
except Exception:  # pragma: no cover - other numpy builds
    _pfu, _PFU_OK = None, False

_RT_BACKENDS = ("auto", "numpy", "torch")
#: Calls of ``process()`` between two telemetry records (the first call is always recorded);
#: telemetry takes a lock, so the real-time path records rarely.
RT_TELEMETRY_EVERY = 1024


class _RTCounter:
    """Per-call bookkeeping of the real-time faces: records telemetry every :data:`RT_TELEMETRY_EVERY`
    calls (telemetry takes a lock), for the device the caller asked for."""

    _rt_calls: int = 0
    _rt_requested: DeviceLike = None

    def _rt_reset(self, requested: DeviceLike) -> None:
        self._rt_calls = 0
        self._rt_requested = requested

    def _rt_tick(self, op: str, device: torch.device, t0: float) -> None:
        if self._rt_calls % RT_TELEMETRY_EVERY == 0:
            telemetry.record(op, device, time.perf_counter() - t0, requested=self._rt_requested)
        self._rt_calls += 1


def _rt_result(out: Any, buf: torch.Tensor, buf_np: Optional[np.ndarray], backend: str, was_numpy: bool) -> Any:
    """The block a real-time ``process`` returns: *out* filled from the internal buffer, else the
    buffer itself (its numpy view when numpy came in on the numpy backend)."""
    if out is None:
        return buf_np if was_numpy else buf
    if isinstance(out, np.ndarray):
        np.copyto(out, buf_np if backend == "numpy" else buf.cpu().numpy())
    else:
        out.copy_(buf)
    return out


def _np_rfft(a: np.ndarray, out: np.ndarray) -> None:
    """rFFT along the last axis of *a* into *out* (no allocation of the result)."""
    if _PFU_OK:
        (_pfu.rfft_n_even if a.shape[-1] % 2 == 0 else _pfu.rfft_n_odd)(a, 1.0, axes=[(-1,), (), (-1,)], out=out)
    else:  # pragma: no cover - numpy without the gufuncs
        np.fft.rfft(a, axis=-1, out=out)


def _np_irfft(a: np.ndarray, n: int, out: np.ndarray) -> None:
    """Inverse rFFT of ``a [..., n_freq, k]`` (bins on axis -2) into ``out [..., k, n]``."""
    if _PFU_OK:
        _pfu.irfft(a, 1.0 / n, axes=[(-2,), (), (-1,)], out=out)
    else:  # pragma: no cover
        np.fft.irfft(np.swapaxes(a, -1, -2), n=n, axis=-1, out=out)


def _pos_int(v: Any, name: str, unit: str) -> int:
    if not _is_int(v) or v < 1:
        raise InvalidParameter(f"{name} must be a positive integer ({unit}), got {v!r}")
    return int(v)


def _rt_setup(device: DeviceLike, fallback: DeviceLike, dtype: torch.dtype, backend: str) -> tuple[torch.device, str]:
    """Resolve the device and FFT backend of a ``prepare()`` call."""
    dev = resolve_device(device if device is not None else (fallback if fallback is not None else "cpu"))
    if dtype not in (torch.float32, torch.float64):
        raise InvalidParameter(f"dtype={dtype}; prepare() accepts torch.float32 or torch.float64")
    if backend not in _RT_BACKENDS:
        raise InvalidParameter(f"backend={backend!r}; accepted: {', '.join(map(repr, _RT_BACKENDS))}")
    if backend == "numpy" and dev.type != "cpu":
        raise InvalidParameter(f"backend='numpy' runs on the CPU, but device={dev}; use backend='torch' or 'auto'")
    if backend == "auto":
        backend = "numpy" if dev.type == "cpu" else "torch"
    return dev, backend


def _rt_input(x: Any, shape: tuple[int, ...], dev: torch.device, what: str, layout: str, owner: str) -> tuple[torch.Tensor, bool]:
    """Check a ``process()`` input (tensor on the prepared device, or numpy on the CPU) without copying it."""
    if isinstance(x, np.ndarray):
        if dev.type != "cpu":
            raise InvalidAudio(f"{owner}.process: got a numpy {what} but the stream was prepared on {dev}; pass a tensor on {dev}")
        t, was_numpy = torch.from_numpy(x), True
    elif isinstance(x, torch.Tensor):
        t, was_numpy = x, False
    else:
        raise InvalidAudio(f"{owner}.process: {what} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    if tuple(t.shape) != shape:
        raise InvalidAudio(f"{owner}.process: {what} has shape {list(t.shape)}; prepare() fixed it to {list(shape)} ({layout})")
    if t.device != dev:
        raise InvalidAudio(f"{owner}.process: {what} is on {t.device} but the stream was prepared on {dev}")
    return t, was_numpy


class _STFTRT:
    """Preallocated state of :meth:`STFTStream.prepare` (see there)."""

    def __init__(self, p: STFTParams, block: int, channels: int, batch: int, dev: torch.device, dtype: torch.dtype,
                 backend: str) -> None:
        hop, n = p.hop_length, p.n_fft
        self.B, self.C, self.N, self.k = block, channels, batch, block // hop
        self.device, self.dtype, self.backend = dev, dtype, backend
        R = batch * channels
        off = (p.pad - n) % hop  # samples received but not yet part of a complete frame
        Lh = (self.k - 1) * hop + n + off  # history: everything the next k frames read (+ off)
        self.ov = Lh - block  # history samples kept from call to call
        self.frame_delay = -((p.pad - n - off) // hop + 1)
        kw = dict(dtype=dtype, device=dev)
        self.hist = torch.zeros(R, Lh, **kw)
        self.tmp = torch.zeros(R, max(self.ov, 1), **kw)
        self.keep_src = self.hist[:, block:]
        self.keep_dst = self.hist[:, : self.ov]
        self.tmp_v = self.tmp[:, : self.ov]
        self.hist_in = self.hist[:, self.ov:].view(batch, channels, block)
        scale = n ** -0.5 if p.normalized else 1.0
        self.w = (p.window_tensor(torch.float64, torch.device("cpu")) * scale).to(**kw)
        self.fview = self.hist.as_strided((R, self.k, n), (Lh, hop, 1))
        self.fbuf = torch.zeros(R, self.k, n, **kw)
        self.spec = torch.zeros(R, self.k, p.n_freq, dtype=_complex_of(dtype), device=dev)
        self.frames = self.spec.view(batch, channels, self.k, p.n_freq).transpose(-1, -2)
        self.in_shape = (batch, channels, block)
        self.out_shape = (batch, channels, p.n_freq, self.k)
        if backend == "numpy":
            hn = self.hist.numpy()
            isz = hn.itemsize
            self.fview_np = np.lib.stride_tricks.as_strided(hn, (R, self.k, n), (Lh * isz, hop * isz, isz), writeable=False)
            self.w_np, self.fbuf_np, self.spec_np = self.w.numpy(), self.fbuf.numpy(), self.spec.numpy()
            self.frames_np = self.frames.numpy()
        self.calls = 0

    def reset(self) -> None:
        self.hist.zero_()
        self.calls = 0

    def step(self, x: torch.Tensor) -> None:
        if self.ov:
            self.tmp_v.copy_(self.keep_src)
            self.keep_dst.copy_(self.tmp_v)
        self.hist_in.copy_(x)
        if self.backend == "numpy":
            np.multiply(self.fview_np, self.w_np, out=self.fbuf_np)
            _np_rfft(self.fbuf_np, self.spec_np)
        else:
            torch.mul(self.fview, self.w, out=self.fbuf)
            torch.fft.rfft(self.fbuf, dim=-1, out=self.spec)
        z = self.frame_delay - self.calls * self.k  # leading frames that precede the signal: zeros
        if z > 0:
            self.spec[:, : min(z, self.k)].zero_()
        self.calls += 1


class _ISTFTRT:
    """Preallocated state of :meth:`ISTFTStream.prepare` (see there)."""

    def __init__(self, p: STFTParams, k: int, channels: int, batch: int, dev: torch.device, dtype: torch.dtype,
                 backend: str, lead: int) -> None:
        hop, n = p.hop_length, p.n_fft
        self.k, self.C, self.N, self.lead = k, channels, batch, lead
        self.device, self.dtype, self.backend = dev, dtype, backend
        R = batch * channels
        c = -(-n // hop)  # hop-sized chunks per frame
        self.n, self.hop, self.c = n, hop, c
        kw = dict(dtype=dtype, device=dev)
        self.frbuf = torch.zeros(R, k, c * hop, **kw)  # frames, zero-padded to c * hop
        self.fr4 = self.frbuf.view(batch, channels, k, c * hop)[..., :n]
        self.acc = torch.zeros(R, (k + c - 1) * hop, **kw)
        self.carry = (c - 1) * hop
        self.tmp = torch.zeros(R, max(self.carry, 1), **kw)
        K = k * hop
        self.K = K
        self.ola = [(self.acc[:, j * hop: j * hop + K].view(R, k, hop), self.frbuf[:, :, j * hop:(j + 1) * hop]) for j in range(c)]
        self.acc_out = self.acc[:, :K]
        self.keep_src, self.keep_dst, self.tmp_v = self.acc[:, K:], self.acc[:, : self.carry], self.tmp[:, : self.carry]
        self.acc_new = self.acc[:, self.carry:]
        scale = math.sqrt(n) if p.normalized else 1.0
        w64 = p.window_tensor(torch.float64, torch.device("cpu"))
        self.w = (w64 * scale).to(**kw)
        self.out = torch.zeros(batch, channels, K, **kw)
        self.out2 = self.out.view(R, K)
        self.in_shape = (batch, channels, p.n_freq, k)
        # 1 / sum_t w^2 per output sample, for the calls before the envelope is periodic, then the periodic row.
        w2 = (w64 * w64).numpy()
        pad = p.pad
        thr = max(n - hop, pad, 0)
        rows = []
        i = 0
        while True:
            s0 = (i * k - lead) * hop  # padded-signal sample of this call's first output sample
            sv = np.arange(s0, s0 + K)
            env = np.zeros(K)
            for j in range(c):
                f = np.floor_divide(sv, hop) - j
                idx = sv - f * hop
                ok = (f >= 0) & (idx < n)
                env += np.where(ok, w2[np.clip(idx, 0, n - 1)], 0.0)
            valid = (sv >= pad) & (sv >= 0)
            bad = valid & (env <= NOLA_TOL)
            if bad.any():
                m = int(sv[bad][0]) - pad
                raise InvalidParameter(
                    f"ISTFTStream: window {describe(p.window)} with hop_length={hop}, center={p.center} violates NOLA at output "
                    f"sample {m} (sum of squared windows {float(env[bad][0]):.3g}): it cannot be recovered; use center=True or "
                    "another window/hop")
            rows.append(np.where(valid, 1.0 / np.where(valid, env, 1.0), 0.0))
            if s0 >= thr:
                break
            i += 1
        self.inv = torch.tensor(np.stack(rows), **kw)
        self.inv_rows = [self.inv[r] for r in range(len(rows))]
        if backend == "numpy":
            self.fr4_np, self.w_np, self.out_np = self.fr4.numpy(), self.w.numpy(), self.out.numpy()
            self.ola_np = [(d.numpy(), s_.numpy()) for d, s_ in self.ola]
        self.calls = 0

    def reset(self) -> None:
        self.acc.zero_()
        self.calls = 0

    def step(self, X: torch.Tensor, Xn: Optional[np.ndarray]) -> None:
        if self.backend == "numpy":
            assert Xn is not None
            _np_irfft(Xn, self.n, self.fr4_np)
        else:
            torch.fft.irfft(X.transpose(-1, -2), n=self.n, dim=-1, out=self.fr4)
        z = self.lead - self.calls * self.k  # frames standing for time before the signal: ignored
        if z > 0:
            self.frbuf[:, : min(z, self.k)].zero_()
        if self.backend == "numpy":
            np.multiply(self.fr4_np, self.w_np, out=self.fr4_np)
            for d, s_ in self.ola_np:
                np.add(d, s_, out=d)
        else:
            self.fr4.mul_(self.w)
            for d, s_ in self.ola:
                d.add_(s_)
        inv = self.inv_rows[min(self.calls, len(self.inv_rows) - 1)]
        torch.mul(self.acc_out, inv, out=self.out2)
        if self.carry:
            self.tmp_v.copy_(self.keep_src)
            self.keep_dst.copy_(self.tmp_v)
        self.acc_new.zero_()
        self.calls += 1


# ----------------------------------------------------------------------------- streaming
class STFTStream(_RTCounter):
    """Streaming STFT: push audio blocks of any size, get the frames they complete.

    The concatenation (along frames) of everything :meth:`push` and
    :meth:`flush` return equals ``stft(x, ...)`` of the whole signal. With
    ``center=True`` only ``pad_mode="constant"`` streams (the stream starts
    with ``n_fft // 2`` zeros; :meth:`flush` appends ``n_fft // 2`` zeros).

    Args:
        n_fft / hop_length / win_length / window / center / normalized / method:
            as in :func:`stft`.
        device: where frames are computed (default: where the blocks are).

    Frames come back as complex ``[..., n_freq, k]`` with ``k >= 0``.

    Engine face (allocation-free after :meth:`prepare`)::

        s = STFTStream(2048, 512)
        s.prepare(block_size=1024, channels=2, batch=1)     # block_size = k * hop_length
        F = s.process(block)          # block [1, 2, 1024] -> frames [1, 2, 1025, 2] (the same buffer every call)

    Every :meth:`process` call returns exactly ``k = block_size // hop_length``
    frames: the frames of :func:`stft` delayed by :attr:`frame_delay` frames
    (the first ``frame_delay`` frames are zeros; frame ``j`` of the process stream
    is frame ``j - frame_delay`` of ``stft(x)`` of everything fed so far).
    There is no flush on this path.
    """

    def __init__(self, n_fft: int, hop_length: Optional[int] = None, win_length: Optional[int] = None,
                 window: WindowSpec = "hann", *, center: bool = True, pad_mode: str = "constant",
                 normalized: bool = False, method: str = "auto", device: DeviceLike = None) -> None:
        self.params = make_params(n_fft, hop_length, win_length, window, center, pad_mode, normalized)
        if center and self.params.pad_mode != "constant":
            raise InvalidParameter(f"STFTStream with center=True supports pad_mode='constant' only, got {pad_mode!r} "
                                   "(reflection needs samples that have not arrived yet)")
        self.method = _pick_method(method, self.params, "cuda" if str(device).startswith("cuda") else "cpu")
        if self.method == "triton" and method == "auto" and optional_module(_TRITON_MOD) is None:
            self.method = "torch"
        self.device = device
        self._rt: Optional[_STFTRT] = None
        self.reset()

    def reset(self) -> None:
        """Forget all pushed audio (the next push / process starts a new signal); keeps prepare()'s buffers."""
        self._buf: Optional[torch.Tensor] = None
        self._frames_out = 0
        self._finished = False
        if self._rt is not None:
            self._rt.reset()

    # -- engine face -----------------------------------------------------------
    def prepare(self, block_size: int, channels: int, batch: int = 1, device: DeviceLike = None, *,
                dtype: torch.dtype = torch.float32, backend: str = "auto") -> None:
        """Preallocate everything :meth:`process` needs for blocks ``[batch, channels, block_size]``.

        Args:
            block_size: samples per :meth:`process` call; must be a multiple of
                ``hop_length`` (``k * hop_length``, ``k >= 1``) so that every call
                completes exactly ``k`` frames.
            channels / batch: the block's leading dims.
            device: where to run (default: the constructor's ``device``, else the CPU).
            dtype: ``torch.float32`` (frames complex64) or ``torch.float64`` (complex128).
            backend: ``"auto"`` (``"numpy"`` on the CPU, ``"torch"`` elsewhere),
                ``"numpy"`` (numpy 2's pocketfft with ``out=``: no tensor allocated
                per call) or ``"torch"`` (``torch.fft.rfft(out=)``; on the CPU torch
                copies from a temporary, on CUDA the temporary comes from the caching
                allocator).
        """
        p = self.params
        B = _pos_int(block_size, "block_size", "samples")
        C = _pos_int(channels, "channels", "count")
        N = _pos_int(batch, "batch", "count")
        if B % p.hop_length:
            h = p.hop_length
            raise InvalidParameter(
                f"block_size={B} is not a multiple of hop_length={h}: STFTStream.process needs block_size = k * hop_length "
                f"(k >= 1: {h}, {2 * h}, {4 * h}, ...) so that every call completes exactly k frames; "
                "use push() for arbitrary block sizes")
        dev, be = _rt_setup(device, self.device, dtype, backend)
        self._rt = _STFTRT(p, B, C, N, dev, dtype, be)
        self._rt_reset(device if device is not None else self.device)
        telemetry.record("dsp.stft_stream.prepare", dev, 0.0, requested=self._rt_requested)

    @property
    def frame_delay(self) -> int:
        """Frames by which :meth:`process` output lags :func:`stft` (set by :meth:`prepare`).

        ``frame_delay = (n_fft + off - pad) / hop - 1`` with ``off = (pad - n_fft) mod hop``:
        frame ``t`` of ``stft`` is returned as soon as its last sample has arrived.
        """
        if self._rt is None:
            raise InvalidParameter("frame_delay is defined after prepare()")
        return self._rt.frame_delay

    @property
    def frames_per_block(self) -> int:
        """Frames returned by each :meth:`process` call (``block_size // hop_length``)."""
        if self._rt is None:
            raise InvalidParameter("frames_per_block is defined after prepare()")
        return self._rt.k

    def process(self, block: Any, out: Any = None) -> Any:
        """Analyse one block ``[batch, channels, block_size]``; return ``k`` frames ``[batch, channels, n_freq, k]``.

        Allocates no tensor: the result is an internal buffer (a transposed view of a
        ``[batch, channels, k, n_freq]`` array) that the next call overwrites, or
        *out* (any ``[batch, channels, n_freq, k]`` complex tensor/array), which is
        filled and returned. numpy in -> numpy out. The block must be on the
        prepared device; any float dtype is converted on the copy into the history.
        NaN/Inf are not scanned for here (validate at the engine's input).
        """
        rt = self._rt
        if rt is None:
            raise InvalidParameter("STFTStream.process before prepare(block_size, channels, batch)")
        t0 = time.perf_counter()
        x, was_numpy = _rt_input(block, rt.in_shape, rt.device, "block", "[batch, channels, block_size]", "STFTStream")
        rt.step(x)
        res = _rt_result(out, rt.frames, getattr(rt, "frames_np", None), rt.backend, was_numpy)
        self._rt_tick("dsp.stft_stream.process", rt.device, t0)
        return res

    @property
    def frames_emitted(self) -> int:
        """Frames returned so far."""
        return self._frames_out

    def _start(self, like: torch.Tensor) -> None:
        self._buf = like.new_zeros((*like.shape[:-1], self.params.pad))

    def _emit(self) -> torch.Tensor:
        assert self._buf is not None
        p = self.params
        n = self._buf.shape[-1]
        k = (n - p.n_fft) // p.hop_length + 1 if n >= p.n_fft else 0
        batch = self._buf.shape[:-1]
        if k == 0:
            return torch.zeros((*batch, p.n_freq, 0), dtype=_complex_of(self._buf.dtype), device=self._buf.device)
        seg = self._buf[..., : (k - 1) * p.hop_length + p.n_fft]
        R = max(int(math.prod(batch)), 1)
        q = STFTParams(p.n_fft, p.hop_length, p.win_length, p.window, False, "constant", p.normalized)
        dev = seg.device if self.device is None else run_device("stft", seg.shape[-1], R, self.device, seg.device)
        t0 = time.perf_counter()
        y = _stft_core(seg.reshape(R, -1).to(dev), q, self.method)
        record_ran(f"dsp.stft_stream.{self.method}", y, t0, self.device)
        y = y.reshape(*batch, p.n_freq, k).to(seg.device)
        self._buf = self._buf[..., k * p.hop_length:]
        self._frames_out += k
        return y

    def push(self, block: Any) -> Any:
        """Add ``block [..., n]`` (any ``n >= 0``); return the frames completed, ``[..., n_freq, k]``."""
        t, was_numpy = as_tensor(block, "block")
        t = check_audio(t, "block", min_length=0)
        if self._finished:
            raise InvalidParameter("STFTStream.push after flush(); call reset() to start a new signal")
        if t.dtype in (torch.float16, torch.bfloat16):
            t = t.to(torch.float32)
        if self._buf is None:
            self._start(t)
        assert self._buf is not None
        if t.shape[:-1] != self._buf.shape[:-1]:
            raise InvalidAudio(f"block has batch shape {list(t.shape[:-1])} but the stream started with {list(self._buf.shape[:-1])}")
        self._buf = torch.cat([self._buf, t.to(self._buf.dtype)], dim=-1)
        return restore_type(self._emit(), was_numpy)

    def flush(self) -> torch.Tensor:
        """End of signal: pad (``center``) and return the remaining frames."""
        if self._buf is None:
            raise InvalidParameter("STFTStream.flush before any push: no signal")
        if not self._finished:
            self._buf = F.pad(self._buf, (0, self.params.pad))
            self._finished = True
        return self._emit()


def _complex_of(dtype: torch.dtype) -> torch.dtype:
    return torch.complex128 if dtype == torch.float64 else torch.complex64


class ISTFTStream(_RTCounter):
    """Streaming inverse STFT: push frames, get the audio samples they finalize.

    The concatenation of everything :meth:`push` and :meth:`flush` return equals
    ``istft(S, ...)`` of all frames (default ``length``). Each pushed frame
    releases ``hop`` samples (the first ``n_fft // 2`` are dropped when
    ``center``). Composed with :class:`STFTStream` and hop-aligned blocks, the
    output lags the input by :attr:`latency` = ``n_fft - hop`` samples.
    """

    def __init__(self, n_fft: int, hop_length: Optional[int] = None, win_length: Optional[int] = None,
                 window: WindowSpec = "hann", *, center: bool = True, normalized: bool = False) -> None:
        self.params = make_params(n_fft, hop_length, win_length, window, center, "constant", normalized)
        res = check_cola(get_window(window, self.params.win_length, dtype=torch.float64), self.params.hop_length,
                         self.params.n_fft)
        if not res.nola:
            raise InvalidParameter(f"ISTFTStream: window {describe(window)} with hop_length={self.params.hop_length} violates NOLA "
                                   f"(min sum of squared windows {res.nola_min:.3g}); it cannot be inverted")
        p = self.params
        self._hold = max(0, p.hop_length + p.pad - p.n_fft) if center else 0
        self._rt: Optional[_ISTFTRT] = None
        self.reset()

    # -- engine face -----------------------------------------------------------
    def prepare(self, frames_per_block: int, channels: int, batch: int = 1, device: DeviceLike = None, *,
                dtype: torch.dtype = torch.float32, lead_frames: int = 0, backend: str = "auto") -> None:
        """Preallocate everything :meth:`process` needs for ``frames_per_block`` frames per call.

        Args:
            frames_per_block: frames ``k`` per :meth:`process` call; each call writes
                ``k * hop_length`` samples.
            channels / batch: the frames' leading dims (``[batch, channels, n_freq, k]``).
            device: where to run (default: the CPU).
            dtype: real dtype of the output: ``torch.float32`` (frames complex64) or ``torch.float64``.
            lead_frames: frames at the start of the input stream that stand for time
                *before* the signal (their content is ignored), e.g.
                ``STFTStream.frame_delay`` when fed by :meth:`STFTStream.process`.
            backend: as in :meth:`STFTStream.prepare`.

        Raises:
            InvalidParameter: the window/hop cannot be inverted at the start of the
                signal (NOLA, e.g. ``center=False`` with hann).
        """
        k = _pos_int(frames_per_block, "frames_per_block", "frames")
        C = _pos_int(channels, "channels", "count")
        N = _pos_int(batch, "batch", "count")
        if not _is_int(lead_frames) or lead_frames < 0:
            raise InvalidParameter(f"lead_frames must be a non-negative integer (frames), got {lead_frames!r}")
        dev, be = _rt_setup(device, None, dtype, backend)
        self._rt = _ISTFTRT(self.params, k, C, N, dev, dtype, be, int(lead_frames))
        self._rt_reset(device)
        telemetry.record("dsp.istft_stream.prepare", dev, 0.0, requested=device)

    @property
    def process_delay(self) -> int:
        """Samples by which :meth:`process` output lags :func:`istft` output: ``lead_frames * hop + pad``.

        Output sample ``i`` of the process stream is sample ``i - process_delay`` of
        ``istft`` of the real frames (zeros before). Fed by ``STFTStream.process``
        (``lead_frames = frame_delay``) the round trip delays the input by
        ``frame_delay * hop + pad`` = ``n_fft - hop + ((pad - n_fft) mod hop)`` samples.
        """
        if self._rt is None:
            raise InvalidParameter("process_delay is defined after prepare()")
        return self._rt.lead * self.params.hop_length + self.params.pad

    def process(self, frames: Any, out: Any = None) -> Any:
        """Synthesize ``k`` frames ``[batch, channels, n_freq, k]`` into ``k * hop`` samples ``[batch, channels, k * hop]``.

        Allocates no tensor: returns an internal buffer that the next call
        overwrites, or fills and returns *out*. numpy in -> numpy out. The frames
        may be any strided view (e.g. :attr:`STFTStream.process`'s result) on the
        prepared device, complex64 for float32 / complex128 for float64.
        """
        rt = self._rt
        if rt is None:
            raise InvalidParameter("ISTFTStream.process before prepare(frames_per_block, channels, batch)")
        t0 = time.perf_counter()
        X, was_numpy = _rt_input(frames, rt.in_shape, rt.device, "frames", "[batch, channels, n_freq, frames_per_block]",
                                 "ISTFTStream")
        if X.dtype != _complex_of(rt.dtype):
            raise InvalidAudio(f"ISTFTStream.process: frames are {X.dtype}; prepared for {_complex_of(rt.dtype)}")
        Xn = (frames if was_numpy else X.numpy()) if rt.backend == "numpy" else None
        rt.step(X, Xn)
        res = _rt_result(out, rt.out, getattr(rt, "out_np", None), rt.backend, was_numpy)
        self._rt_tick("dsp.istft_stream.process", rt.device, t0)
        return res

    @property
    def latency(self) -> int:
        """Samples of delay of STFTStream -> ISTFTStream with hop-aligned blocks: ``n_fft - hop``."""
        return self.params.n_fft - self.params.hop_length + self._hold

    def reset(self) -> None:
        """Forget all state (next push starts a new signal)."""
        self._acc: Optional[torch.Tensor] = None
        self._env: Optional[torch.Tensor] = None
        self._skip = self.params.pad
        self._pending: Optional[torch.Tensor] = None  # released but held back (center tail)
        self._finished = False
        if self._rt is not None:
            self._rt.reset()

    def _release(self, y: torch.Tensor, env: torch.Tensor) -> torch.Tensor:
        n = y.shape[-1]
        s = min(self._skip, n)
        self._skip -= s
        y, env = y[..., s:], env[s:]
        if y.shape[-1]:
            bad = env <= NOLA_TOL
            if bool(bad.any()):
                raise InvalidParameter("ISTFTStream: sum of squared windows is zero at an output sample (NOLA); use center=True")
            y = y / env
        if self._hold:
            assert self._pending is not None
            y = torch.cat([self._pending, y], dim=-1)
            cut = max(y.shape[-1] - self._hold, 0)
            y, self._pending = y[..., :cut], y[..., cut:]
        return y

    def push(self, frames: Any) -> Any:
        """Add complex frames ``[..., n_freq, k]``; return the final samples ``[..., n]``."""
        t, was_numpy = as_tensor(frames, "frames")
        if not t.is_complex() or t.ndim < 2:
            raise InvalidAudio(f"frames must be complex [..., n_freq, k], got {t.dtype} shaped {list(t.shape)}")
        p = self.params
        if t.shape[-2] != p.n_freq:
            raise InvalidAudio(f"frames have {t.shape[-2]} bins, n_fft={p.n_fft} needs {p.n_freq}")
        if self._finished:
            raise InvalidParameter("ISTFTStream.push after flush(); call reset() to start a new signal")
        check_finite(t, "frames")
        k = t.shape[-1]
        batch = t.shape[:-2]
        real = t.real.dtype
        w = p.window_tensor(real, t.device)
        ov = p.n_fft - p.hop_length
        if self._acc is None:
            self._acc = torch.zeros((*batch, ov), dtype=real, device=t.device)
            self._env = torch.zeros(ov, dtype=real, device=t.device)
            self._pending = torch.zeros((*batch, 0), dtype=real, device=t.device)
        assert self._env is not None
        if batch != self._acc.shape[:-1]:
            raise InvalidAudio(f"frames have batch shape {list(batch)} but the stream started with {list(self._acc.shape[:-1])}")
        if k == 0:
            return restore_type(torch.zeros((*batch, 0), dtype=real, device=t.device), was_numpy)
        R = max(int(math.prod(batch)), 1)
        with telemetry.track("dsp.istft_stream", t.device):
            fr = torch.fft.irfft(t.reshape(R, p.n_freq, k).transpose(1, 2), n=p.n_fft, dim=-1)
            if p.normalized:
                fr = fr * math.sqrt(p.n_fft)
            fr = fr * w
            y = _ola(fr, p.hop_length)  # [R, n_fft + hop (k - 1)]
            y[:, :ov] += self._acc.reshape(R, ov)
            env = _ola((w * w).view(1, 1, -1).expand(1, k, -1).contiguous(), p.hop_length)[0]
            env[:ov] += self._env
            out_n = k * p.hop_length
            self._acc = y[:, out_n:].reshape(*batch, ov).clone()
            self._env = env[out_n:].clone()
            out = self._release(y[:, :out_n], env[:out_n]).reshape(*batch, -1)
        return restore_type(out, was_numpy)

    def flush(self) -> torch.Tensor:
        """End of signal: return the final samples (the tail minus the ``center`` padding)."""
        if self._acc is None:
            raise InvalidParameter("ISTFTStream.flush before any push: no frames")
        if self._finished:
            return self._acc[..., :0]
        self._finished = True
        p = self.params
        batch = self._acc.shape[:-1]
        ov = self._acc.shape[-1]
        keep = max(ov - p.pad, 0)  # the rest of the tail is the trailing centre padding
        assert self._env is not None
        R = max(int(math.prod(batch)), 1)
        out = self._release(self._acc.reshape(R, ov)[:, :keep], self._env[:keep])
        return out.reshape(*batch, -1)


__all__ = ["stft", "istft", "check_cola", "COLAResult", "STFTParams", "make_params", "STFTStream", "ISTFTStream"]
