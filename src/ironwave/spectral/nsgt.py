"""Non-stationary Gabor transforms (NSGT) with perfect reconstruction, on torch.

* Frequency scales: :class:`OctScale` / :class:`LogScale` (constant-Q), :class:`MelScale`,
  :class:`BarkScale`, :class:`LinScale`. They are drop-in compatible with the ``nsgt`` package
  (``scale()`` returns ``(frequencies_hz, q_factors)``).
* :class:`NSGT`: the full-signal transform of a signal of ``Ls`` samples (painless frame,
  canonical dual windows, exact inverse). :class:`CQNSGT` is the constant-Q special case.
* :class:`SliCQ`: the sliced transform (sliCQ) for long signals: slices of ``sl_len`` samples with
  ``tr_area`` samples of Tukey transition, every ``sl_len / 2`` samples; all slices are transformed
  in one batched call. :class:`SliCQStream` and :class:`SliCQInverseStream` are its streaming faces.

Coefficients equal those of ``nsgt.NSGT`` / ``nsgt.NSGT_sliced`` (Grill et al.) for the same scale
and length. Shapes: audio ``[..., time]``; ragged coefficients are a list (one per band) of complex
tensors ``[..., M_k]`` (full) or ``[..., n_slices, M_k]`` (sliced); matrix form is one tensor
``[..., n_bands, M]`` / ``[..., n_slices, n_bands, M]``.

Design: window placement, dual windows, index maps and weights are computed once in float64
(numpy) per instance and cached per (device, dtype). Bands are grouped into ~10 *length classes*
(:func:`_build_classes`): bands sharing a length run one direct batched FFT; bands of different
lengths share one chirp-z (Bluestein) convolution of a common smooth size, which evaluates each
band's exact-length DFT. Each transform is one ``rfft``, one gather x weights + scatter, one
batched fft/ifft pair per class (the inverse mirrors it with one ``index_add_`` and one ``irfft``),
so it runs unchanged on CPU and CUDA with a handful of kernel launches and batches over leading
dimensions and sliCQ slices (slice rotations are phase factors inside the weights).
``length_rounding`` optionally rounds coefficient counts up to FFT-friendly sizes (exact inverse,
coefficients no longer nsgt's).
"""
from __future__ import annotations

import functools
import math
import warnings
from typing import Any, Sequence

import numpy as np
import torch

from ironwave.backend.device import DeviceLike, resolve_device
from ironwave.backend.telemetry import telemetry
from ironwave.spectral._common import (InvalidAudio, InvalidParameter, complex_dtype, finish, positive, prepare_input,
                                       real_dtype, track)

__all__ = ["Scale", "OctScale", "LogScale", "LinScale", "MelScale", "BarkScale", "NSGT", "CQNSGT", "SliCQ",
           "SliCQStream", "SliCQInverseStream", "nsgt", "insgt"]


# ---------------------------------------------------------------------------------------------- scales
class Scale:
    """A frequency scale of ``bnds`` bands: ``F(b)`` centre frequency (Hz), ``Q(b)`` quality factor."""

    dbnd = 1.0e-8

    def __init__(self, bnds: int) -> None:
        self.bnds = int(bnds)

    def __len__(self) -> int:
        return self.bnds

    def F(self, bnd: Any = None) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def Q(self, bnd: Any = None) -> Any:
        """Q factor by numerical differentiation of F (as the nsgt package does)."""
        if bnd is None:
            bnd = np.arange(self.bnds)
        return self.F(bnd) * self.dbnd / (self.F(bnd + self.dbnd) - self.F(bnd - self.dbnd))

    def __call__(self) -> tuple[np.ndarray, np.ndarray]:
        f = np.array([self.F(b) for b in range(self.bnds)], dtype=float)
        q = np.array([self.Q(b) for b in range(self.bnds)], dtype=float)
        return f, q


def _check_fminmax(fmin: float, fmax: float, bnds: int, name: str, min_bnds: int = 2) -> None:
    if not (math.isfinite(fmin) and fmin > 0):
        raise InvalidParameter(f"{name}: fmin={fmin} Hz must be > 0")
    if not (math.isfinite(fmax) and fmax > fmin):
        raise InvalidParameter(f"{name}: fmax={fmax} Hz must be > fmin={fmin} Hz")
    if int(bnds) != bnds or bnds < min_bnds:
        raise InvalidParameter(f"{name}: number of bands {bnds} must be an integer >= {min_bnds}")


class OctScale(Scale):
    """Constant-Q scale with ``bpo`` bands per octave from *fmin* to *fmax* (Hz)."""

    def __init__(self, fmin: float, fmax: float, bpo: int, beyond: int = 0) -> None:
        _check_fminmax(fmin, fmax, bpo, "OctScale", 1)
        lfmin, lfmax = np.log2(fmin), np.log2(fmax)
        bnds = int(np.ceil((lfmax - lfmin) * bpo)) + 1
        Scale.__init__(self, bnds + beyond * 2)
        odiv = (lfmax - lfmin) / (bnds - 1)
        self.fmin = 2 ** (lfmin - odiv * beyond)
        self.fmax = 2 ** (lfmax + odiv * beyond)
        self.pow2n = 2 ** odiv
        self.q = np.sqrt(self.pow2n) / (self.pow2n - 1.0) / 2.0

    def F(self, bnd: Any = None) -> Any:
        return self.fmin * self.pow2n ** (bnd if bnd is not None else np.arange(self.bnds))

    def Q(self, bnd: Any = None) -> Any:
        return self.q


class LogScale(OctScale):
    """Constant-Q scale of ``bnds`` log-spaced bands from *fmin* to *fmax* (Hz)."""

    def __init__(self, fmin: float, fmax: float, bnds: int, beyond: int = 0) -> None:
        _check_fminmax(fmin, fmax, bnds, "LogScale")
        Scale.__init__(self, bnds + beyond * 2)
        lfmin, lfmax = np.log2(fmin), np.log2(fmax)
        odiv = (lfmax - lfmin) / (bnds - 1)
        self.fmin = 2 ** (lfmin - odiv * beyond)
        self.fmax = 2 ** (lfmax + odiv * beyond)
        self.pow2n = 2 ** odiv
        self.q = np.sqrt(self.pow2n) / (self.pow2n - 1.0) / 2.0


class LinScale(Scale):
    """``bnds`` linearly spaced bands from *fmin* to *fmax* (Hz), constant bandwidth."""

    def __init__(self, fmin: float, fmax: float, bnds: int, beyond: int = 0) -> None:
        _check_fminmax(fmin, fmax, bnds, "LinScale")
        self.df = float(fmax - fmin) / (bnds - 1)
        Scale.__init__(self, bnds + beyond * 2)
        self.fmin = float(fmin) - self.df * beyond
        if self.fmin <= 0:
            raise InvalidParameter("LinScale: frequencies must be > 0 (reduce 'beyond')")
        self.fmax = float(fmax) + self.df * beyond

    def F(self, bnd: Any = None) -> Any:
        return (bnd if bnd is not None else np.arange(self.bnds)) * self.df + self.fmin

    def Q(self, bnd: Any = None) -> Any:
        return self.F(bnd) / (self.df * 2)


def hz2mel(f: Any) -> Any:
    """HTK mel formula used by the nsgt package."""
    return np.log10(f / 700.0 + 1.0) * 2595.0


def mel2hz(m: Any) -> Any:
    return (np.power(10.0, m / 2595.0) - 1.0) * 700.0


class _WarpedScale(Scale):
    """``bnds`` bands evenly spaced on a warped frequency axis (``warp``: Hz -> warped unit,
    ``unwarp``: back) from *fmin* to *fmax* (Hz); ``beyond`` extra bands on each side."""

    warp: Any = staticmethod(lambda f: f)
    unwarp: Any = staticmethod(lambda w: w)

    def __init__(self, fmin: float, fmax: float, bnds: int, beyond: int = 0) -> None:
        _check_fminmax(fmin, fmax, bnds, type(self).__name__)
        wmin, wmax = self.warp(fmin), self.warp(fmax)
        Scale.__init__(self, bnds + beyond * 2)
        self.fmin, self.fmax = float(fmin), float(fmax)
        self.step = (wmax - wmin) / (bnds - 1)  # band spacing in warped units
        self.wmin = wmin - self.step * beyond
        self.wmax = wmax + self.step * beyond

    def F(self, bnd: Any = None) -> Any:
        if bnd is None:
            bnd = np.arange(self.bnds)
        return self.unwarp(bnd * self.step + self.wmin)


class MelScale(_WarpedScale):
    """``bnds`` bands evenly spaced on the (HTK) mel scale from *fmin* to *fmax* (Hz)."""

    warp = staticmethod(lambda f: hz2mel(f))
    unwarp = staticmethod(lambda m: mel2hz(m))


def hz2bark(f: Any) -> Any:
    """Hz -> Bark (Traunmüller-style ``6 asinh(f / 600)``)."""
    return 6.0 * np.arcsinh(f / 600.0)


def bark2hz(b: Any) -> Any:
    return 600.0 * np.sinh(b / 6.0)


class BarkScale(_WarpedScale):
    """``bnds`` bands evenly spaced on the Bark scale from *fmin* to *fmax* (Hz)."""

    warp = staticmethod(lambda f: hz2bark(f))
    unwarp = staticmethod(lambda b: bark2hz(b))


# ------------------------------------------------------------------------------------- window design
def _hannwin(n: int) -> np.ndarray:
    r = np.arange(n, dtype=float) * (np.pi * 2.0 / n)
    return (np.cos(r) + 1.0) * 0.5


def _blackharr(n: int) -> np.ndarray:
    nn = (n // 2) * 2
    k = np.arange(n)
    bh = 0.35872 - 0.48832 * np.cos(k * (2 * np.pi / nn)) + 0.14128 * np.cos(k * (4 * np.pi / nn)) - 0.01168 * np.cos(k * (6 * np.pi / nn))
    return np.hstack((bh[-n // 2:], bh[:-n // 2]))


def _nsgfwin(f: np.ndarray, q: np.ndarray, sr: float, Ls: int, sliced: bool, min_win: int = 4,
             Qvar: float = 1.0) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Windows ``g`` (frequency domain, centred at index 0), centre bins and lengths ``M``."""
    nf = sr / 2.0
    f = np.asarray(f, dtype=float)
    q = np.asarray(q, dtype=float) * np.ones_like(f)
    if np.any(f <= 0):
        raise InvalidParameter(f"scale frequencies must be > 0 Hz, got min {f.min():.6g}")
    if np.any(f >= nf):
        raise InvalidParameter(f"scale reaches {f.max():.6g} Hz, at or beyond the Nyquist frequency {nf:.6g} Hz of fs={sr}; "
                               "lower fmax below fs/2")
    if len(f) > 1 and np.any(np.diff(f) <= 0):
        raise InvalidParameter("scale frequencies must be strictly increasing")
    if np.any(q <= 0):
        raise InvalidParameter("scale Q factors must be > 0")
    qneeded = f * (Ls / (8.0 * sr))
    if np.any(q >= qneeded):
        bad = f[q >= qneeded]
        need = int(np.ceil(np.max(8.0 * sr * q / f))) + 1
        what = "slice length sl_len" if sliced else "signal length Ls"
        warnings.warn(f"{what}={Ls} samples is short for the lowest band(s) ({', '.join(f'{b:.2f}' for b in bad[:4])} Hz): "
                      f"their windows span fewer than 8 frequency bins; {need} samples at fs={sr} avoid that "
                      "(the transform stays invertible)", stacklevel=3)
    lbas = len(f)
    frqs = np.concatenate(((0.0,), f, (nf,)))
    fbas = np.concatenate((frqs, sr - frqs[-2:0:-1])) * (float(Ls) / sr)
    if sliced:
        M = np.zeros(fbas.shape, dtype=float)
        M[0] = 2 * fbas[1]
        M[1] = fbas[1] / q[0]
        for k in list(range(2, lbas)) + [lbas + 1]:
            M[k] = fbas[k + 1] - fbas[k - 1]
        M[lbas] = fbas[lbas] / q[lbas - 1]
        M[lbas + 2: 2 * (lbas + 1)] = M[lbas:0:-1]
        M *= Qvar / 4.0
        M = np.round(M).astype(int) * 4
    else:
        M = np.zeros(fbas.shape, dtype=int)
        M[0] = np.round(2 * fbas[1])
        for k in range(1, 2 * lbas + 1):
            M[k] = np.round(fbas[k + 1] - fbas[k - 1])
        M[-1] = np.round(Ls - fbas[-2])
    M = np.clip(M, min_win, None).astype(int)
    if sliced:
        g = [_blackharr(int(m)) for m in M]
        for kk in (1, lbas + 2):
            if M[kk - 1] > M[kk]:
                g[kk - 1] = np.ones(M[kk - 1])
                g[kk - 1][M[kk - 1] // 2 - M[kk] // 2: M[kk - 1] // 2 + int(math.ceil(M[kk] / 2.0))] = _hannwin(int(M[kk]))
        rfbas = np.round(fbas / 2.0).astype(int) * 2
    else:
        g = [_hannwin(int(m)) for m in M]
        fbas[lbas] = (fbas[lbas - 1] + fbas[lbas + 1]) / 2
        fbas[lbas + 2] = Ls - fbas[lbas]
        rfbas = np.round(fbas).astype(int)
    return g, rfbas, M


def _fastlen(n: int) -> int:
    """Smallest 5-smooth integer >= n (an FFT size that MKL, pocketfft and cuFFT all handle fast)."""
    n = max(1, int(n))
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p3 = p5
        while p3 < best:
            p2 = p3
            while p2 < n:
                p2 *= 2
            best = min(best, p2)
            p3 *= 3
        p5 *= 5
    return int(best)


@functools.lru_cache(maxsize=None)  # cleared after every plan build
def _chirp_table(M: int) -> np.ndarray:
    k = np.arange(2 * M, dtype=np.int64)
    return np.exp(1j * np.pi * ((k * k) % (2 * M)) / M)


def _chirp(M: int, n: np.ndarray) -> np.ndarray:
    """``exp(i pi n^2 / M)`` for integer (signed) n, exact argument (the chirp has period 2M in n)."""
    return _chirp_table(int(M))[np.asarray(n, dtype=np.int64) % (2 * int(M))]


class _Geom:
    """Per-band coefficient geometry: length ``M``, forward support ``[dmin, dmin + Lf)`` (signed
    frequency offsets feeding the inverse DFT) and the range ``[jmin, jmin + LJ)`` of DFT bins the
    inverse transform reads."""

    def __init__(self, M: int, dmin: int, Lf: int, jmin: int, LJ: int) -> None:
        self.M, self.dmin, self.Lf, self.jmin, self.LJ = int(M), int(dmin), int(Lf), int(jmin), int(LJ)

    @property
    def need(self) -> int:
        """Smallest circular-convolution length for an exact chirp-z (Bluestein) evaluation."""
        return self.M + max(self.Lf, self.LJ) - 1


class _LengthClass:
    """Bands whose coefficient FFTs run as one batched call.

    ``direct``: every member has the same length ``N == M``: one batched ifft / fft.
    Otherwise (chirp-z / Bluestein): member b's exact length-``M_b`` DFT, restricted to its window
    support, is a linear convolution with a chirp, evaluated by one length-``N`` circular
    convolution (``N >= M_b + support - 1``), so bands of any lengths share one fft + one ifft.
    Forward: ``a[d - dmin] = Y_d w_d``, ``c[n] = w_n / M * (a * B)[n + Lf - 1]``.
    Inverse: ``a[n] = c_n conj(w_n)``, ``FC[j] = conj(w_j) * (a * B2)[j - jmin + M - 1]``, with
    ``w_n = exp(i pi n^2 / M)``.
    """

    def __init__(self, members: list[int], geoms: list[_Geom], direct: bool, woff: int, foff: int) -> None:
        self.members, self.direct = members, direct
        self.lengths = [gm.M for gm in geoms]
        self.geoms = geoms
        self.nb = len(members)
        self.N = self.lengths[0] if direct else _fastlen(max(gm.need for gm in geoms))
        self.woff, self.foff = int(woff), int(foff)  # offsets in the work buffer / flat coefficients
        self.wsize = self.nb * self.N
        self.fsize = int(sum(self.lengths))

    def tables(self) -> tuple[np.ndarray, ...]:
        """Chirps B, B2 [nb, N] (time domain), output/input positions and post/pre chirps (flat order)."""
        N = self.N
        B = np.zeros((self.nb, N), dtype=complex)
        B2 = np.zeros((self.nb, N), dtype=complex)
        fidx, bidx, post, pre = [], [], [], []
        for i, gm in enumerate(self.geoms):
            M = gm.M
            t = np.arange(M + gm.Lf - 1)
            B[i, : len(t)] = np.conj(_chirp(M, t - (gm.Lf - 1) - gm.dmin))
            t = np.arange(M + gm.LJ - 1)
            B2[i, : len(t)] = _chirp(M, t - (M - 1) + gm.jmin)
            n = np.arange(M)
            fidx.append(i * N + n + gm.Lf - 1)
            bidx.append(i * N + n)
            wn = _chirp(M, n)
            post.append(wn / M)
            pre.append(np.conj(wn))
        return B, B2, np.concatenate(fidx), np.concatenate(bidx), np.concatenate(post), np.concatenate(pre)


def _build_classes(geoms: list[_Geom], min_direct: int = 8, max_direct_groups: int = 8,
                   class_cost: float = 0.03) -> list[_LengthClass]:
    """Group bands into FFT length classes (few classes -> few batched FFT calls).

    Lengths shared by at least *min_direct* bands (or all lengths, when there are at most
    *max_direct_groups* distinct ones, e.g. matrix form) run as direct batched FFTs (measured on
    CPU: one direct FFT of a non-smooth length such as 4 * 1523 beats two smooth chirp-z FFTs plus
    their extra memory passes). The other bands are split into
    chirp-z classes of one FFT size each, by a dynamic programme over bands sorted by the needed
    convolution length that minimises ``sum(n_bands * N * (log2 N + 4)) * (1 + class_cost * n_classes)``
    approximately (padding waste against per-call overhead: each class costs *class_cost* of the
    unpadded work, which keeps the class count near 10 for any signal length).
    """
    by_len: dict[int, list[int]] = {}
    for b, gm in enumerate(geoms):
        by_len.setdefault(gm.M, []).append(b)
    all_direct = len(by_len) <= max_direct_groups
    direct = {m: bs for m, bs in by_len.items() if all_direct or len(bs) >= min_direct}
    rest = sorted((b for m, bs in by_len.items() if m not in direct for b in bs), key=lambda b: (geoms[b].need, b))
    classes: list[_LengthClass] = []
    woff = foff = 0

    def add(members: list[int], is_direct: bool) -> None:
        nonlocal woff, foff
        cl = _LengthClass(members, [geoms[b] for b in members], is_direct, woff, foff)
        classes.append(cl)
        woff += cl.wsize
        foff += cl.fsize

    for m in sorted(direct):
        add(direct[m], True)
    n = len(rest)
    if n:
        Ns = [_fastlen(geoms[b].need) for b in rest]
        per_class = class_cost * sum(geoms[b].need * (math.log2(geoms[b].need) + 4.0) for b in rest)
        best = [0.0] + [math.inf] * n
        cut = [0] * (n + 1)
        for j in range(1, n + 1):  # classes rest[i:j] use N = Ns[j - 1] (the largest need)
            N = Ns[j - 1]
            unit = N * (math.log2(N) + 4.0)
            for i in range(j):
                c = best[i] + (j - i) * unit + per_class
                if c < best[j]:
                    best[j], cut[j] = c, i
        bounds = []
        j = n
        while j > 0:
            bounds.append((cut[j], j))
            j = cut[j]
        for i, j in reversed(bounds):  # a lone band runs its exact-length FFT directly (cheaper than chirp-z)
            add(sorted(rest[i:j]), j - i == 1)
    return classes


class _Plan:
    """Index maps and weights of one NSGT geometry on one device/dtype.

    Forward: ``vals = X[f_src]`` (the first ``nfc`` entries conjugated), ``vals *= f_w[parity]``,
    scattered to the work buffer at ``f_dst``; per class one batched (i)FFT (chirp-z classes: fft,
    product with the chirp spectrum, ifft, gather + post-chirp). Inverse: per class one batched FFT
    (chirp-z: pre-chirp scatter, fft, product, ifft) into the work buffer, ``vals = work[i_src]``
    (first ``nic`` conjugated) ``* i_w[parity]``, one ``index_add_`` into the half spectrum at
    ``i_dst``, one ``irfft``. ``parity`` selects the sliCQ slice rotations (folded into the weights
    as phase factors; a single entry for the full-signal NSGT).
    """

    def __init__(self, owner: "_NSGTCore", device: torch.device, dtype: torch.dtype) -> None:
        o = owner
        cdt = complex_dtype(dtype)
        nn = o.nn
        half = nn // 2
        self.nfreq = half + 1
        self.cdt = cdt
        rot = getattr(o, "_rot", None)  # sliCQ quarter-slice shift h (samples), else None
        nP = 1 if rot is None else 2
        loc = {}
        for cl in o.classes:
            for i, b in enumerate(cl.members):
                loc[b] = (cl, i)

        def tphase(k: np.ndarray, s: int) -> np.ndarray:  # exp(2 pi i k s / nn)
            return np.exp(2j * np.pi * ((k.astype(np.int64) * s) % nn) / nn)

        def cphase(j: np.ndarray, s: int, M: int) -> np.ndarray:  # exp(2 pi i j s / M)
            return np.exp(2j * np.pi * ((j.astype(np.int64) * s) % M) / M)

        # forward: Y_b[d] = X[(tp + d) mod nn] * g[d mod Lg] (conjugate-mirrored above Nyquist)
        src, conj, w, dst = [], [], [], []
        for b, k in enumerate(o.bands):
            cl, i = loc[b]
            gm = o.geoms[b]
            M = gm.M
            g = o.g[k]
            Lg = len(g)
            d = np.arange(-(Lg // 2), Lg - Lg // 2)
            j = (o.tp[k] + d) % nn
            cj = j > half
            s = np.where(cj, nn - j, j)
            ww = np.tile(g[d % Lg].astype(complex), (nP, 1))
            if cl.direct:
                pos = cl.woff + i * cl.N + d % M
            else:
                ww = ww * _chirp(M, d)
                pos = cl.woff + i * cl.N + (d - gm.dmin)
            if rot is not None:  # parity 0: slice rolled by -h, coefficients by -3M/4; parity 1: +h, -M/4
                for P, (ts, cs) in enumerate(((rot, (3 * M) // 4), (-rot, M // 4))):
                    th = tphase(s, ts)
                    ww[P] *= np.where(cj, np.conj(th), th) * cphase(d, cs, M)
            src.append(s)
            conj.append(cj)
            w.append(ww)
            dst.append(pos)
        self.f_src, self.f_w, self.f_dst, self.nfc = self._pack(src, conj, w, dst, device, cdt)
        # inverse: fr[(tp + d) mod nn] += M * gd[d mod Lg] * FC[j] (j = d, or conj(FC[-d]) for mirrors)
        src, conj, w, dst = [], [], [], []
        lbas = o.lbas
        pairs = [(k, b, False) for b, k in enumerate(o.bands)]
        pairs += [(2 * lbas + 2 - k, b, True) for b, k in enumerate(o.bands) if 1 <= k <= lbas]
        for kw, b, mirror in pairs:
            cl, i = loc[b]
            gm = o.geoms[b]
            M = gm.M
            gd = o.gd[kw]
            Lg = len(gd)
            d = np.arange(-(Lg // 2), Lg - Lg // 2)
            jj = (o.tp[kw] + d) % nn
            keep = jj <= half
            j = (-d if mirror else d)[keep]
            jj, gdv = jj[keep], (M * gd[d % Lg])[keep]
            ww = np.tile(gdv.astype(complex), (nP, 1))
            if cl.direct:
                pos = cl.woff + i * cl.N + j % M
            else:
                if gm.jmin == 0 and gm.LJ == M:
                    j = j % M
                ch = _chirp(M, j)  # FC[j] = conj(w_j) r[...]; conj(FC[j]) = w_j conj(r[...])
                ww = ww * (ch if mirror else np.conj(ch))
                pos = cl.woff + i * cl.N + (j - gm.jmin + M - 1)
            if rot is not None:  # parity 0: coefficients rolled by -M/4, slice by +h; parity 1: -3M/4, -h
                for P, (ts, cs) in enumerate(((-rot, M // 4), (rot, (3 * M) // 4))):
                    ph = cphase(j, cs, M)
                    ww[P] *= tphase(jj, ts) * (np.conj(ph) if mirror else ph)
            src.append(pos)
            conj.append(np.full(len(pos), mirror))
            w.append(ww)
            dst.append(jj)
        self.i_src, self.i_w, self.i_dst, self.nic = self._pack(src, conj, w, dst, device, cdt)
        # per chirp-z class: chirp spectra, positions and post/pre chirps
        self.cls: list[tuple[torch.Tensor, ...] | None] = []
        for cl in o.classes:
            if cl.direct:
                self.cls.append(None)
                continue
            B, B2, fidx, bidx, post, pre = cl.tables()
            spec = [torch.fft.fft(torch.as_tensor(b, device=device), dim=-1).to(cdt) for b in (B, B2)]  # float64 FFT
            self.cls.append((spec[0], spec[1],
                             torch.as_tensor(fidx, device=device), torch.as_tensor(bidx, device=device),
                             torch.as_tensor(post, dtype=cdt, device=device), torch.as_tensor(pre, dtype=cdt, device=device)))
        _chirp_table.cache_clear()

    @staticmethod
    def _pack(src: list, conj: list, w: list, dst: list, device: torch.device,
              cdt: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        s, c, ww, d = np.concatenate(src), np.concatenate(conj), np.concatenate(w, axis=-1), np.concatenate(dst)
        order = np.concatenate((np.flatnonzero(c), np.flatnonzero(~c)))  # conjugated entries first: one in-place conj
        return (torch.as_tensor(s[order], device=device), torch.as_tensor(ww[:, order], dtype=cdt, device=device),
                torch.as_tensor(d[order], device=device), int(c.sum()))

    @staticmethod
    def weigh(vals: torch.Tensor, w: torch.Tensor, parity0: int | None) -> None:
        """In place: ``vals *= w[0]`` (full NSGT) or per-slice parity weights (slice axis -2)."""
        if parity0 is None or w.shape[0] == 1:
            vals.mul_(w[0])
        else:
            vals[..., parity0 % 2::2, :].mul_(w[0])
            vals[..., 1 - parity0 % 2::2, :].mul_(w[1])


def _geometry(o: "_NSGTCore") -> list[_Geom]:
    """Supports of every band's forward DFT input and of the DFT bins its inverse reads."""
    out = []
    lbas = o.lbas
    for b, k in enumerate(o.bands):
        M = int(o.Mb[b])
        Lg = len(o.g[k])
        dmin = -(Lg // 2)
        js = [np.arange(-(Lg // 2), Lg - Lg // 2)]
        if 1 <= k <= lbas:
            Lm = len(o.gd[2 * lbas + 2 - k])
            js.append(-np.arange(-(Lm // 2), Lm - Lm // 2))
        lo = int(min(a.min() for a in js))
        hi = int(max(a.max() for a in js))
        if hi - lo + 1 > M:
            lo, hi = 0, M - 1
        out.append(_Geom(M, dmin, Lg, lo, hi - lo + 1))
    return out


class _NSGTCore:
    """Shared machinery of NSGT and SliCQ (one transform of ``nn`` samples)."""

    def _setup(self, g: list[np.ndarray], rfbas: np.ndarray, M: np.ndarray, nn: int, lbas: int, reducedform: int,
               matrixform: bool, length_rounding: str | None = None, multiple: int = 1) -> None:
        if reducedform not in (0, 1, 2):
            raise InvalidParameter(f"reducedform={reducedform}; accepted: 0, 1, 2")
        if length_rounding not in (None, "smooth", "pow2"):
            raise InvalidParameter(f"length_rounding={length_rounding!r}; accepted: None (exact nsgt lengths), 'smooth', 'pow2'")
        self.g, self.nn, self.lbas, self.reducedform = g, int(nn), lbas, reducedform
        self.length_rounding = length_rounding
        self.tp = rfbas.astype(int)  # centre bins: timepos == rfbas for these geometries
        M = np.asarray(M).copy()
        if matrixform:  # like nsgt: every band (incl. mirrors) gets the largest used length
            used = M[reducedform: len(M) // 2 + 1 - reducedform] if reducedform else M
            M[:] = used.max()
        if length_rounding is not None:  # more coefficients per band (finer hop): the frame stays painless
            rnd = _fastlen if length_rounding == "smooth" else (lambda n: 1 << (int(n) - 1).bit_length())
            M = np.array([multiple * rnd(-(-int(m) // multiple)) for m in M], dtype=int)
        # canonical dual windows (painless case): gd = g / sum_k M_k |g_k|^2 placed on the bins
        diag = np.zeros(self.nn)
        for k, gk in enumerate(g):
            Lg = len(gk)
            d = np.arange(-(Lg // 2), Lg - Lg // 2)
            np.add.at(diag, (self.tp[k] + d) % self.nn, gk[d % Lg] ** 2 * M[k])
        self.gd = []
        for k, gk in enumerate(g):
            Lg = len(gk)
            d = np.arange(-(Lg // 2), Lg - Lg // 2)
            gd = np.empty(Lg)
            gd[d % Lg] = gk[d % Lg] / diag[(self.tp[k] + d) % self.nn]
            self.gd.append(gd)
        self.bands = list(range(reducedform, lbas + 2 - reducedform))
        Mb = np.array([int(M[k]) for k in self.bands])
        if matrixform:
            Mb[:] = Mb.max()
        for b, k in enumerate(self.bands):
            if len(g[k]) > Mb[b]:
                raise InvalidParameter(f"band {k}: window of {len(g[k])} bins exceeds its {Mb[b]} coefficients (undersampled)")
        self.Mb = Mb
        self.matrixform = bool(matrixform)
        # flat layout: bands grouped into FFT length classes (see _build_classes); offsets[b] locates band b
        self.geoms = _geometry(self)
        self.classes = _build_classes(self.geoms)
        self.offsets = np.zeros(len(self.bands), dtype=np.int64)
        for cl in self.classes:
            off = cl.foff
            for b, m in zip(cl.members, cl.lengths):
                self.offsets[b] = off
                off += m
        if matrixform:  # _unflatten reshapes: bands must sit in order
            assert np.array_equal(self.offsets, np.arange(len(self.bands)) * int(Mb[0]))
        self.total = int(sum(cl.fsize for cl in self.classes))
        self.wtotal = int(sum(cl.wsize for cl in self.classes))
        self._plans: dict[tuple[torch.device, torch.dtype], _Plan] = {}

    def _plan(self, device: torch.device, dtype: torch.dtype) -> _Plan:
        key = (device, real_dtype(dtype))
        p = self._plans.get(key)
        if p is None:
            p = self._plans[key] = _Plan(self, device, dtype)
        return p

    # -- raw transforms on [..., nn] ------------------------------------------------------------
    def _fwd_flat(self, x: torch.Tensor, parity0: int | None = None) -> torch.Tensor:
        """[..., n<=nn] real -> flat coefficient buffer [..., total] complex (class layout).

        With *parity0* (sliCQ), ``x`` is ``[..., S, nn]`` un-rotated windowed slices; the half-slice
        rotations of slice ``s`` (parity ``(s + parity0) % 2``) are applied as phase factors.
        """
        p = self._plan(x.device, x.dtype)
        X = torch.fft.rfft(x, n=self.nn, dim=-1)
        vals = X[..., p.f_src]
        del X
        if p.nfc:
            vals[..., : p.nfc].conj_physical_()
        p.weigh(vals, p.f_w, parity0)
        lead = x.shape[:-1]
        work = torch.zeros(*lead, self.wtotal, dtype=vals.dtype, device=x.device)
        work[..., p.f_dst] = vals
        del vals
        if len(self.classes) == 1 and self.classes[0].direct:  # e.g. matrix form of smooth length: one ifft
            cl = self.classes[0]
            return torch.fft.ifft(work.view(*lead, cl.nb, cl.N), dim=-1).view(*lead, self.total)
        out = torch.empty(*lead, self.total, dtype=work.dtype, device=x.device)
        for cl, extra in zip(self.classes, p.cls):
            seg = work[..., cl.woff: cl.woff + cl.wsize].view(*lead, cl.nb, cl.N)
            if extra is None:
                out[..., cl.foff: cl.foff + cl.fsize] = torch.fft.ifft(seg, dim=-1).reshape(*lead, cl.fsize)
            else:
                B, _, fidx, _, post, _ = extra
                conv = torch.fft.fft(seg, dim=-1)
                conv.mul_(B)
                conv = torch.fft.ifft(conv, dim=-1).view(*lead, cl.wsize)
                out[..., cl.foff: cl.foff + cl.fsize] = conv[..., fidx].mul_(post)
        return out

    def _bwd_flat(self, c: torch.Tensor, parity0: int | None = None) -> torch.Tensor:
        """flat coefficients [..., total] -> real signal [..., nn] (slice rotations undone with *parity0*)."""
        p = self._plan(c.device, real_dtype(c.dtype))
        lead = c.shape[:-1]
        if len(self.classes) == 1 and self.classes[0].direct:
            cl = self.classes[0]
            work = torch.fft.fft(c.reshape(*lead, cl.nb, cl.N), dim=-1).view(*lead, self.wtotal)
        else:
            work = torch.empty(*lead, self.wtotal, dtype=c.dtype, device=c.device)
            for cl, extra in zip(self.classes, p.cls):
                seg = c[..., cl.foff: cl.foff + cl.fsize]
                dst = work[..., cl.woff: cl.woff + cl.wsize]
                if extra is None:
                    dst.copy_(torch.fft.fft(seg.reshape(*lead, cl.nb, cl.N), dim=-1).view(*lead, cl.wsize))
                else:
                    _, B2, _, bidx, _, pre = extra
                    a = torch.zeros(*lead, cl.wsize, dtype=c.dtype, device=c.device)
                    a[..., bidx] = seg * pre
                    conv = torch.fft.fft(a.view(*lead, cl.nb, cl.N), dim=-1)
                    del a
                    conv.mul_(B2)
                    dst.copy_(torch.fft.ifft(conv, dim=-1).view(*lead, cl.wsize))
        vals = work[..., p.i_src]
        del work
        if p.nic:
            vals[..., : p.nic].conj_physical_()
        p.weigh(vals, p.i_w, parity0)
        fr = torch.zeros(*lead, p.nfreq, dtype=c.dtype, device=c.device)
        fr.index_add_(-1, p.i_dst, vals)
        return torch.fft.irfft(fr, n=self.nn, dim=-1)

    def _unflatten(self, buf: torch.Tensor) -> list[torch.Tensor] | torch.Tensor:
        if self.matrixform:
            m = int(self.Mb[0])
            # groups: single group when all lengths are equal; band order == flat order
            return buf.reshape(*buf.shape[:-1], len(self.bands), m)
        return [buf[..., int(self.offsets[b]): int(self.offsets[b]) + int(self.Mb[b])] for b in range(len(self.bands))]

    def _flatten(self, c: Any, lead: int = 0) -> torch.Tensor:
        if isinstance(c, torch.Tensor):
            if not self.matrixform:
                raise InvalidAudio("got a coefficient tensor but this transform is ragged (matrixform=False); pass the list of bands")
            if c.shape[-2:] != (len(self.bands), int(self.Mb[0])):
                raise InvalidAudio(f"coefficients have shape {list(c.shape)}; expected [..., {len(self.bands)}, {int(self.Mb[0])}]")
            return c.reshape(*c.shape[:-2], self.total)
        if not isinstance(c, (list, tuple)) or len(c) != len(self.bands):
            raise InvalidAudio(f"expected a list of {len(self.bands)} coefficient tensors (one per band)")
        for b, cb in enumerate(c):
            if cb.shape[-1] != int(self.Mb[b]):
                raise InvalidAudio(f"band {b} has {cb.shape[-1]} coefficients; expected {int(self.Mb[b])}")
        buf = torch.empty(*c[0].shape[:-1], self.total, dtype=c[0].dtype, device=c[0].device)
        for b, cb in enumerate(c):
            buf[..., int(self.offsets[b]): int(self.offsets[b]) + int(self.Mb[b])] = cb
        return buf

    @property
    def n_bands(self) -> int:
        """Number of coefficient bands (incl. the DC and Nyquist bands unless ``reducedform``)."""
        return len(self.bands)

    @property
    def coef_lengths(self) -> list[int]:
        """Coefficients per band (per slice for SliCQ)."""
        return [int(m) for m in self.Mb]


def _coef_in(c: Any, device: DeviceLike) -> tuple[Any, torch.device, bool]:
    """Validate coefficients (tensor, numpy or list of them); returns them on the compute device."""
    def one(t: Any, name: str) -> tuple[torch.Tensor, torch.device, bool]:
        tt, in_dev, was_np, _ = prepare_input(t, name, device=device, allow_complex=True)
        if not tt.is_complex():
            raise InvalidAudio(f"{name} must be complex coefficients, got {tt.dtype}")
        return tt, in_dev, was_np

    if isinstance(c, (list, tuple)):
        res = [one(t, f"coefficients[{i}]") for i, t in enumerate(c)]
        return [r[0] for r in res], res[0][1], res[0][2]
    t, d, w = one(c, "coefficients")
    return t, d, w


class NSGT(_NSGTCore):
    """Full-signal non-stationary Gabor transform of real signals of ``Ls`` samples.

    Args:
        scale: a :class:`Scale` (or anything whose call returns ``(freqs_hz, q)``).
        fs: sample rate (Hz). Ls: signal length (samples); shorter inputs are zero-padded.
        matrixform: all bands get the same number of coefficients -> one tensor ``[..., n_bands, M]``.
        reducedform: 0 keeps the DC and Nyquist bands, 1 drops them, 2 also drops the outermost bands.
        length_rounding: ``None`` (default) keeps the nsgt package's coefficient counts (exact parity);
            ``"smooth"`` rounds every band's count up to a 2·3·5-smooth number, ``"pow2"`` up to a
            power of two (a handful of distinct lengths -> a handful of direct batched FFTs). Rounded
            bands are sampled on a finer time grid (different coefficients, same windows) and the
            inverse stays exact (dual frame recomputed for the new counts).
        device: compute device (``None`` = where the input is).

    ``forward(x)`` maps ``[..., Ls]`` to a list of ``n_bands`` tensors ``[..., M_k]`` (or one tensor);
    ``backward(c)`` inverts it exactly (canonical dual frame).
    """

    def __init__(self, scale: Any, fs: float, Ls: int, *, real: bool = True, matrixform: bool = False,
                 reducedform: int = 0, length_rounding: str | None = None, device: DeviceLike = None) -> None:
        positive("fs", fs)
        positive("Ls", Ls, integer=True)
        if not real:
            raise InvalidParameter("only real signals are supported (real=True)")
        self.scale, self.fs, self.Ls = scale, float(fs), int(Ls)
        self.frqs, self.q = scale()
        g, rfbas, M = _nsgfwin(self.frqs, self.q, self.fs, self.Ls, sliced=False)
        self.M = M
        self.device = None if device is None else resolve_device(device)
        self._setup(g, rfbas, M, self.Ls, len(self.frqs), reducedform, matrixform, length_rounding)

    @property
    def frequencies(self) -> np.ndarray:
        """Centre frequency (Hz) of each returned band (0 and fs/2 for the DC/Nyquist bands)."""
        f = np.concatenate(([0.0], self.frqs, [self.fs / 2]))
        return f[self.bands]

    def forward(self, x: Any) -> Any:
        """``[..., time<=Ls]`` -> coefficients (ragged list of ``[..., M_k]`` or ``[..., n_bands, M]``)."""
        xt, in_dev, was_np, _ = prepare_input(x, "x", device=self.device)
        if xt.shape[-1] > self.Ls:
            raise InvalidAudio(f"x has {xt.shape[-1]} samples but this NSGT was built for Ls={self.Ls}; build one for the signal length or use SliCQ")
        with track("spectral.nsgt", xt.device, self.device):
            out = self._unflatten(self._fwd_flat(xt))
        if isinstance(out, list):
            return [finish(o, in_dev, was_np) for o in out]
        return finish(out, in_dev, was_np)

    def backward(self, c: Any, length: int | None = None) -> Any:
        """Coefficients -> signal ``[..., Ls]`` (or ``[..., length]``)."""
        ct, in_dev, was_np = _coef_in(c, self.device)
        with track("spectral.insgt", (ct[0] if isinstance(ct, list) else ct).device, self.device):
            y = self._bwd_flat(self._flatten(ct))[..., : (self.Ls if length is None else int(length))]
        return finish(y, in_dev, was_np)

    __call__ = forward
    inverse = backward


class CQNSGT(NSGT):
    """Constant-Q NSGT: ``bins`` bands per octave from *fmin* to *fmax* (Hz) (nsgt's ``CQ_NSGT``)."""

    def __init__(self, fmin: float, fmax: float, bins: int, fs: float, Ls: int, **kw: Any) -> None:
        self.fmin, self.fmax, self.bins = fmin, fmax, bins
        if fmax >= fs / 2:
            raise InvalidParameter(f"fmax={fmax} Hz must be below the Nyquist frequency {fs / 2} Hz")
        super().__init__(OctScale(fmin, fmax, bins), fs, Ls, **kw)


def nsgt(x: Any, scale: Any, fs: float, *, matrixform: bool = False, device: DeviceLike = None) -> Any:
    """Functional NSGT of ``[..., time]`` (builds an :class:`NSGT` for ``time`` samples)."""
    n = int(np.shape(x)[-1]) if not isinstance(x, torch.Tensor) else x.shape[-1]
    return NSGT(scale, fs, n, matrixform=matrixform, device=device).forward(x)


def insgt(c: Any, scale: Any, fs: float, length: int, *, matrixform: bool = False, device: DeviceLike = None) -> Any:
    """Inverse of :func:`nsgt` for a signal of *length* samples."""
    return NSGT(scale, fs, length, matrixform=matrixform, device=device).backward(c)


# ------------------------------------------------------------------------------------- sliced (sliCQ)
def _slice_window(sl_len: int, tr_area: int) -> np.ndarray:
    hhop, htr = sl_len // 4, tr_area // 2
    w = _hannwin(2 * tr_area)
    tw = np.empty(sl_len)
    tw[: hhop - htr] = 0
    tw[hhop - htr: hhop + htr] = w[tr_area:]
    tw[hhop + htr: 3 * hhop - htr] = 1
    tw[3 * hhop - htr: 3 * hhop + htr] = w[:tr_area]
    tw[3 * hhop + htr:] = 0
    return tw


class SliCQ(_NSGTCore):
    """Sliced constant-Q / NSGT transform (sliCQ) for signals of any length, and its exact inverse.

    Slices of ``sl_len`` samples start every ``sl_len // 2`` samples (the signal is preceded by
    ``sl_len // 2`` zeros, like the nsgt package); each is windowed by a Tukey window with
    ``tr_area``-sample transitions and transformed by an NSGT of length ``sl_len``.

    Args:
        scale: frequency scale. sl_len: slice length (samples, multiple of 4).
        tr_area: transition length (samples, even, ``< sl_len / 2``). fs: sample rate (Hz).
        min_win: minimum window length (bins). Qvar: bandwidth factor.
        matrixform: ``[..., n_slices, n_bands, M]`` instead of a ragged list of ``[..., n_slices, M_k]``.
        length_rounding: as for :class:`NSGT` (``"smooth"`` / ``"pow2"``; counts stay multiples of 4).
    """

    def __init__(self, scale: Any, sl_len: int, tr_area: int, fs: float, *, min_win: int = 16, Qvar: float = 1.0,
                 real: bool = True, recwnd: bool = False, matrixform: bool = False, reducedform: int = 0,
                 length_rounding: str | None = None, device: DeviceLike = None) -> None:
        positive("fs", fs)
        positive("sl_len", sl_len, integer=True)
        positive("tr_area", tr_area, integer=True, allow_zero=True)
        if sl_len % 4:
            raise InvalidParameter(f"sl_len={sl_len} must be a multiple of 4")
        if tr_area % 2:
            raise InvalidParameter(f"tr_area={tr_area} must be even")
        if not sl_len > 2 * tr_area:
            raise InvalidParameter(f"tr_area={tr_area} must be below sl_len / 2 = {sl_len // 2}")
        if not real:
            raise InvalidParameter("only real signals are supported (real=True)")
        if recwnd:
            raise InvalidParameter("recwnd=True is not supported (it does not give perfect reconstruction)")
        self.scale, self.sl_len, self.tr_area, self.fs = scale, int(sl_len), int(tr_area), float(fs)
        self.frqs, self.q = scale()
        g, rfbas, M = _nsgfwin(self.frqs, self.q, self.fs, self.sl_len, sliced=True, min_win=min_win, Qvar=Qvar)
        self.M = M
        self.device = None if device is None else resolve_device(device)
        self._setup(g, rfbas, M, self.sl_len, len(self.frqs), reducedform, matrixform, length_rounding, multiple=4)
        self.hhop = self.sl_len // 4
        self._rot = self.hhop  # plan weights include the per-parity slice rotations
        self.tw = _slice_window(self.sl_len, self.tr_area)
        self._tw_cache: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    @property
    def frequencies(self) -> np.ndarray:
        f = np.concatenate(([0.0], self.frqs, [self.fs / 2]))
        return f[self.bands]

    @property
    def hop(self) -> int:
        """Samples between slice starts (``sl_len // 2``)."""
        return 2 * self.hhop

    def n_slices(self, length: int) -> int:
        """Number of slices for a signal of *length* samples."""
        nblk = -(-int(length) // self.hhop)
        return (nblk + 1) // 2 + 1

    def _tw(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        k = (device, dtype)
        if k not in self._tw_cache:
            self._tw_cache[k] = torch.as_tensor(self.tw, dtype=dtype, device=device)
        return self._tw_cache[k]

    # slices of the padded signal: slice j covers padded[j*hop : j*hop + sl_len]; padded = [hop zeros, x, zeros]
    # The nsgt package rotates every slice by a quarter (time) and its coefficients by M/4 or 3M/4
    # depending on the slice parity; both rotations are phase factors folded into the plan weights.
    def _fwd_slices(self, frames: torch.Tensor, parity0: int = 0) -> torch.Tensor:
        """frames [..., S, sl_len] (unwindowed) -> flat coefficients [..., S, total] (arranged)."""
        fw = frames * self._tw(frames.device, frames.dtype)
        return self._fwd_flat(fw, parity0)

    def _bwd_slices(self, c: torch.Tensor, parity0: int = 0) -> torch.Tensor:
        """flat coefficients [..., S, total] -> reconstructed slices [..., S, sl_len] (un-rotated)."""
        return self._bwd_flat(c, parity0)

    def _unflat_sl(self, buf: torch.Tensor) -> Any:
        return self._unflatten(buf)

    def forward(self, x: Any) -> Any:
        """``[..., time]`` -> ragged list of ``[..., n_slices, M_k]`` (or ``[..., n_slices, n_bands, M]``)."""
        xt, in_dev, was_np, _ = prepare_input(x, "x", device=self.device)
        L = xt.shape[-1]
        S = self.n_slices(L)
        hop = self.hop
        with track("spectral.slicq", xt.device, self.device):
            total = (S - 1) * hop + self.sl_len
            padded = torch.nn.functional.pad(xt, (hop, total - hop - L))
            frames = padded.unfold(-1, self.sl_len, hop)
            out = self._unflatten(self._fwd_slices(frames))
        if isinstance(out, list):
            return [finish(o, in_dev, was_np) for o in out]
        return finish(out, in_dev, was_np)

    def backward(self, c: Any, length: int) -> Any:
        """Coefficients of :meth:`forward` -> signal ``[..., length]``."""
        ct, in_dev, was_np = _coef_in(c, self.device)
        flat = self._flatten(ct)
        with track("spectral.islicq", flat.device, self.device):
            rec = self._bwd_slices(flat)
            y = _overlap_add_halves(rec)
            y = y[..., self.hop: self.hop + int(length)]
            if y.shape[-1] < length:
                raise InvalidAudio(f"coefficients of {rec.shape[-2]} slices cover fewer than length={length} samples")
        return finish(y, in_dev, was_np)

    __call__ = forward
    inverse = backward

    def stream(self, device: DeviceLike = "cpu", dtype: torch.dtype = torch.float32) -> "SliCQStream":
        """A streaming forward transform (see :class:`SliCQStream`)."""
        return SliCQStream(self, device=device, dtype=dtype)

    def inverse_stream(self, device: DeviceLike = "cpu", dtype: torch.dtype = torch.float32) -> "SliCQInverseStream":
        """A streaming inverse transform (see :class:`SliCQInverseStream`)."""
        return SliCQInverseStream(self, device=device, dtype=dtype)


def _overlap_add_halves(rec: torch.Tensor) -> torch.Tensor:
    """[..., S, L] with hop L/2 -> [..., (S+1) * L/2]."""
    S, L = rec.shape[-2], rec.shape[-1]
    hh = L // 2
    out = torch.zeros(*rec.shape[:-2], (S + 1) * hh, dtype=rec.dtype, device=rec.device)
    out[..., : S * hh] += rec[..., :hh].reshape(*rec.shape[:-2], S * hh)
    out[..., hh:] += rec[..., hh:].reshape(*rec.shape[:-2], S * hh)
    return out


class SliCQStream:
    """Streaming sliCQ analysis: push audio blocks ``[..., n]`` of any size, get the coefficients of
    every slice that became complete (``[..., k, ...]``, k >= 0 slices). :meth:`flush` zero-pads the
    tail exactly like :meth:`SliCQ.forward`; concatenating all outputs along the slice axis equals
    the offline transform of the whole signal.
    """

    def __init__(self, slicq: SliCQ, *, device: DeviceLike = "cpu", dtype: torch.dtype = torch.float32) -> None:
        self.t = slicq
        self.device = resolve_device(device)
        self.dtype = dtype
        self.reset()

    def reset(self) -> None:
        """Start a new signal."""
        self._buf: torch.Tensor | None = None  # padded-signal samples not yet consumed
        self._n_in = 0
        self._emitted = 0

    def _emit(self, buf: torch.Tensor, k: int) -> Any:
        t = self.t
        frames = buf[..., : (k - 1) * t.hop + t.sl_len].unfold(-1, t.sl_len, t.hop)
        flat = t._fwd_slices(frames, parity0=self._emitted % 2)
        self._emitted += k
        return t._unflatten(flat)

    def _empty(self, lead: tuple[int, ...]) -> Any:
        t = self.t
        flat = torch.zeros(*lead, 0, t.total, dtype=complex_dtype(self.dtype), device=self.device)
        return t._unflatten(flat)

    def process(self, block: Any) -> Any:
        """Push ``[..., n]`` samples; returns coefficients of the slices completed by them."""
        xt, in_dev, was_np, _ = prepare_input(block, "block", device=self.device)
        xt = xt.to(self.dtype)
        t = self.t
        if self._buf is None:
            self._buf = torch.zeros(*xt.shape[:-1], t.hop, dtype=self.dtype, device=self.device)
        buf = torch.cat([self._buf, xt], dim=-1)
        self._n_in += xt.shape[-1]
        k = 0 if buf.shape[-1] < t.sl_len else (buf.shape[-1] - t.sl_len) // t.hop + 1
        telemetry.record("spectral.SliCQStream.process", self.device)
        if k == 0:
            self._buf = buf
            return _finish_coefs(self._empty(tuple(xt.shape[:-1])), in_dev, was_np)
        out = self._emit(buf, k)
        self._buf = buf[..., k * t.hop:]
        return _finish_coefs(out, in_dev, was_np)

    def flush(self) -> Any:
        """Zero-pad the tail and return the remaining slices (like the offline transform)."""
        t = self.t
        if self._buf is None:
            raise InvalidAudio("flush() before any process() call: no signal")
        total_slices = t.n_slices(self._n_in)
        k = total_slices - self._emitted
        lead = tuple(self._buf.shape[:-1])
        if k <= 0:
            return self._empty(lead)
        need = (k - 1) * t.hop + t.sl_len
        buf = torch.nn.functional.pad(self._buf, (0, max(0, need - self._buf.shape[-1])))
        out = self._emit(buf, k)
        self._buf = buf[..., k * t.hop:]
        return out


def _finish_coefs(c: Any, in_dev: torch.device, was_np: bool) -> Any:
    if isinstance(c, list):
        return [finish(o, in_dev, was_np) for o in c]
    return finish(c, in_dev, was_np)


class SliCQInverseStream:
    """Streaming sliCQ synthesis: push the coefficients of k slices (``[..., k, ...]`` as produced by
    :class:`SliCQStream`), get ``k * hop`` finished samples back (the first call's output starts
    at signal sample 0). Concatenated outputs equal :meth:`SliCQ.backward` (then cut to length).
    """

    def __init__(self, slicq: SliCQ, *, device: DeviceLike = "cpu", dtype: torch.dtype = torch.float32) -> None:
        self.t = slicq
        self.device = resolve_device(device)
        self.dtype = dtype
        self.reset()

    def reset(self) -> None:
        self._tail: torch.Tensor | None = None
        self._count = 0  # slices consumed
        self._skip = self.t.hop  # leading padding still to drop

    def process(self, c: Any) -> torch.Tensor:
        """Coefficients of the next slices -> finished samples ``[..., n]``."""
        t = self.t
        ct, _, _ = _coef_in(c, self.device)
        flat = t._flatten(ct)
        k = flat.shape[-2]
        if k == 0:
            lead = flat.shape[:-2]
            return torch.zeros(*lead, 0, dtype=real_dtype(flat.dtype), device=self.device)
        rec = t._bwd_slices(flat, parity0=self._count % 2)
        self._count += k
        y = _overlap_add_halves(rec)
        if self._tail is not None:
            y[..., : t.hop] += self._tail
        self._tail = y[..., -t.hop:].clone()
        out = y[..., : k * t.hop]
        if self._skip:
            d = min(self._skip, out.shape[-1])
            out = out[..., d:]
            self._skip -= d
        telemetry.record("spectral.SliCQInverseStream.process", self.device)
        return out
