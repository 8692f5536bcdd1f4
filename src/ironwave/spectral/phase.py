"""Phase reconstruction from a magnitude spectrogram: Griffin-Lim, fast Griffin-Lim (momentum)
and phase-gradient heap integration (PGHI), plus the spectral-convergence quality measure.

Shapes: magnitudes ``[..., n_fft // 2 + 1, frames]`` (linear, not dB); audio ``[..., time]``.
STFT framing follows librosa/torch.stft (``center=True`` frames centred at ``t * hop_length``).
"""
from __future__ import annotations

import heapq
import math
from typing import Any

import numpy as np
import torch

from ironwave.backend.device import DeviceLike
from ironwave.spectral._common import (InvalidAudio, InvalidParameter, complex_dtype, finish, get_window, istft,
                                       positive, prepare_input, real_dtype, stft, track)

__all__ = ["griffinlim", "fast_griffinlim", "pghi", "spectral_convergence"]

_HANN_LAMBDA = 0.25645  # Gaussian time-frequency ratio equivalent to a Hann window: lambda = 0.25645 L^2


def _geometry(S: torch.Tensor, n_fft: int | None, hop_length: int | None, win_length: int | None,
              window: Any) -> tuple[int, int, torch.Tensor]:
    nf = S.shape[-2]
    n_fft = 2 * (nf - 1) if n_fft is None else int(n_fft)
    if n_fft // 2 + 1 != nf:
        raise InvalidAudio(f"magnitude has {nf} frequency rows; n_fft={n_fft} needs {n_fft // 2 + 1}")
    hop = n_fft // 4 if hop_length is None else int(hop_length)
    positive("hop_length", hop, integer=True)
    wl = n_fft if win_length is None else int(win_length)
    w = get_window(window, wl, dtype=real_dtype(S.dtype), device=S.device)
    if wl < n_fft:
        lp = (n_fft - wl) // 2
        w = torch.nn.functional.pad(w, (lp, n_fft - wl - lp))
    return n_fft, hop, w


def spectral_convergence(mag: Any, x_rec: Any, *, n_fft: int | None = None, hop_length: int | None = None,
                         win_length: int | None = None, window: Any = "hann", center: bool = True) -> float:
    """``||mag - |STFT(x_rec)| ||_F / ||mag||_F`` (lower is better; 0 = consistent magnitude).

    Args:
        mag: target magnitude ``[..., n_fft//2+1, frames]``. x_rec: reconstructed audio ``[..., time]``.
    """
    M, _, _, _ = prepare_input(mag, "mag", min_ndim=2)
    x, _, _, _ = prepare_input(x_rec, "x_rec", device=M.device)
    n_fft, hop, w = _geometry(M, n_fft, hop_length, win_length, window)
    R = stft(x.to(M.dtype), n_fft, hop, w, center=center).abs()
    nf = min(R.shape[-1], M.shape[-1])
    num = torch.linalg.vector_norm(M[..., :nf] - R[..., :nf])
    return float(num / torch.linalg.vector_norm(M[..., :nf]).clamp_min(1e-30))


def griffinlim(S: Any, *, n_iter: int = 32, hop_length: int | None = None, n_fft: int | None = None,
               win_length: int | None = None, window: Any = "hann", center: bool = True, length: int | None = None,
               momentum: float = 0.99, init: Any = "random", seed: int | None = 0, device: DeviceLike = None) -> Any:
    """Griffin-Lim phase reconstruction of a magnitude ``[..., n_fft//2+1, frames]`` -> audio ``[..., time]``.

    ``momentum=0`` is the classic algorithm; ``momentum=0.99`` (default, as librosa) is the fast
    Griffin-Lim of Perraudin et al. ``init``: ``"random"`` (uniform phase, seeded), ``None``
    (zero phase), ``"pghi"`` (phase-gradient heap integration, :func:`pghi`) or a phase tensor
    (radians) / complex tensor with the same shape as ``S``.
    """
    St, in_dev, was_np, _ = prepare_input(S, "S", device=device, min_ndim=2)
    if bool((St < 0).any()):
        raise InvalidAudio("S must be a non-negative magnitude spectrogram")
    positive("n_iter", n_iter, integer=True, allow_zero=True)
    if not 0 <= momentum < 1 + 1e-12:
        raise InvalidParameter(f"momentum={momentum} must be in [0, 1]")
    n_fft_, hop, w = _geometry(St, n_fft, hop_length, win_length, window)
    cdt = complex_dtype(St.dtype)
    with track("spectral.griffinlim", St.device, device):
        if isinstance(init, str) and init == "random":
            g = torch.Generator(device="cpu")
            if seed is not None:
                g.manual_seed(int(seed))
            ph = torch.rand(St.shape, generator=g, dtype=torch.float64).to(St.device, St.dtype) * (2 * math.pi)
            angles = torch.polar(torch.ones_like(St), ph)
        elif isinstance(init, str) and init == "pghi":
            ph = pghi(St, hop_length=hop, n_fft=n_fft_, win_length=win_length, window=window)
            angles = torch.polar(torch.ones_like(St), ph)
        elif init is None:
            angles = torch.ones(St.shape, dtype=cdt, device=St.device)
        else:
            it, _ = (init, None) if isinstance(init, torch.Tensor) else (torch.as_tensor(np.asarray(init)), None)
            it = it.to(St.device)
            if it.shape != St.shape:
                raise InvalidParameter(f"init has shape {list(it.shape)}; expected {list(St.shape)}")
            angles = (it / it.abs().clamp_min(1e-30)).to(cdt) if it.is_complex() else torch.polar(torch.ones_like(St), it.to(St.dtype))
        eps = torch.finfo(St.dtype).tiny
        rebuilt = torch.zeros((), dtype=cdt, device=St.device)
        n_frames = St.shape[-1]
        out_len = length if length is not None else (hop * (n_frames - 1) if center else n_fft_ + hop * (n_frames - 1))
        for _ in range(int(n_iter)):
            tprev = rebuilt
            inverse = istft(St * angles, n_fft_, hop, w, center=center, length=out_len)
            rebuilt = stft(inverse, n_fft_, hop, w, center=center)[..., :n_frames]
            angles = rebuilt - (momentum / (1 + momentum)) * tprev if momentum else rebuilt
            angles = angles / (angles.abs() + eps)
        y = istft(St * angles, n_fft_, hop, w, center=center, length=out_len)
    return finish(y, in_dev, was_np)


def fast_griffinlim(S: Any, **kw: Any) -> Any:
    """Fast Griffin-Lim: :func:`griffinlim` with ``momentum=0.99``."""
    kw.setdefault("momentum", 0.99)
    return griffinlim(S, **kw)


def pghi(S: Any, *, hop_length: int | None = None, n_fft: int | None = None, win_length: int | None = None,
         window: Any = "hann", tol: float = 1e-5, lam: float | None = None) -> Any:
    """Phase-gradient heap integration (Prusa, Balazs, Sondergaard 2017): phase (radians) for a magnitude.

    The phase derivatives follow from the log-magnitude through the Gaussian-window relations
    (``lam`` = window time-frequency ratio in samples^2; default ``0.25645 * win_length**2`` for
    Hann) and are integrated from the strongest bins outwards with a heap. Bins below ``tol`` times
    the maximum get zero phase. The heap walk is sequential, so it runs on the host (numpy) and the
    result is returned on ``S``'s device. Output phase matches torch.stft's framing (``center=True``).
    """
    St, in_dev, was_np, _ = prepare_input(S, "S", min_ndim=2)
    n_fft_, hop, _ = _geometry(St, n_fft, hop_length, win_length, window)
    wl = n_fft_ if win_length is None else int(win_length)
    if lam is None:
        if window not in ("hann", "hanning"):
            raise InvalidParameter(f"pghi: give lam (Gaussian time-frequency ratio) for window={window!r}; default known for 'hann'")
        lam = _HANN_LAMBDA * wl * wl
    mag = St.detach().cpu().double().numpy()
    lead = mag.shape[:-2]
    flat = mag.reshape(-1, mag.shape[-2], mag.shape[-1])
    out = np.stack([_pghi_one(m, hop, n_fft_, float(lam), tol) for m in flat]).reshape(mag.shape)
    ph = torch.from_numpy(out).to(device=St.device, dtype=St.dtype)
    return finish(ph, in_dev, was_np)


def _pghi_one(s: np.ndarray, a: int, M: int, lam: float, tol: float) -> np.ndarray:
    F, N = s.shape
    logs = np.log(s + 1e-300)
    smax = s.max()
    if smax <= 0:
        return np.zeros_like(s)
    # derivatives of log|V| per bin (axis 0) and per frame (axis 1), centred differences
    dm = np.gradient(logs, axis=0) if F > 1 else np.zeros_like(logs)
    dn = np.gradient(logs, axis=1) if N > 1 else np.zeros_like(logs)
    m = np.arange(F)[:, None]
    # continuous relations (omega in cycles/sample, Gaussian exp(-pi t^2 / lam)):
    #   dphi/dx = 2 pi omega + (1/lam) dlog/domega ;  dphi/domega = -lam dlog/dx
    # per hop (x step a) and per bin (omega step 1/M):
    tgrad = a * (2 * np.pi * m / M + (M / lam) * dm)
    fgrad = -(lam / (a * M)) * dn
    phase = np.zeros_like(s)
    done = s < tol * smax
    rand_mask = done.copy()
    heap: list[tuple[float, int, int]] = []
    order = np.argsort(-s, axis=None)
    oi = 0
    total_todo = int((~done).sum())
    processed = 0
    while processed < total_todo:
        while oi < order.size and done.flat[order[oi]]:
            oi += 1
        if oi >= order.size:
            break
        i0 = order[oi]
        f0, n0 = divmod(int(i0), N)
        phase[f0, n0] = 0.0
        done[f0, n0] = True
        processed += 1
        heapq.heappush(heap, (-s[f0, n0], f0, n0))
        while heap:
            _, f, n = heapq.heappop(heap)
            for df, dnn in ((0, 1), (0, -1), (1, 0), (-1, 0)):
                ff, nn = f + df, n + dnn
                if 0 <= ff < F and 0 <= nn < N and not done[ff, nn]:
                    if dnn:
                        phase[ff, nn] = phase[f, n] + dnn * 0.5 * (tgrad[f, n] + tgrad[ff, nn])
                    else:
                        phase[ff, nn] = phase[f, n] + df * 0.5 * (fgrad[f, n] + fgrad[ff, nn])
                    done[ff, nn] = True
                    processed += 1
                    heapq.heappush(heap, (-s[ff, nn], ff, nn))
    phase[rand_mask] = 0.0
    # torch.stft frames start half a window before their centre: phase offset -pi m (n_fft even)
    return phase - np.pi * m
