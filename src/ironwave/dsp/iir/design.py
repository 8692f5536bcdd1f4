"""IIR filter designs as second-order sections (SOS).

Every design returns a float64 tensor shaped ``[n_sections, 6]`` in scipy's
layout ``b0 b1 b2 a0 a1 a2`` with ``a0 == 1``. Such a tensor can be handed to
:func:`ironwave.dsp.iir.sosfilt`, :class:`ironwave.dsp.iir.SOSFilter` or, after
``.numpy()``, to :func:`scipy.signal.sosfilt`.

* RBJ "Audio EQ Cookbook" biquads (Robert Bristow-Johnson): :func:`biquad`
  and the named shortcuts (:func:`lowpass`, :func:`highpass`, :func:`bandpass`,
  :func:`notch`, :func:`allpass`, :func:`peaking`, :func:`lowshelf`,
  :func:`highshelf`).
* Classic prototypes through :mod:`scipy.signal`: :func:`butter`,
  :func:`cheby1`, :func:`cheby2`, :func:`ellip`.
* :func:`eq`: a parametric EQ (a cascade of biquads) from a list of bands.

All frequencies are in Hz, ``sample_rate`` in Hz. A frequency at or above
Nyquist (``sample_rate / 2``) or at/below 0 Hz is rejected, and so is any
design with a pole on or outside the unit circle (:func:`check_stable`).
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence, Union

import numpy as np
import torch

from ironwave.errors import InvalidParameter

__all__ = [
    "BIQUAD_KINDS",
    "biquad",
    "lowpass",
    "highpass",
    "bandpass",
    "notch",
    "allpass",
    "peaking",
    "lowshelf",
    "highshelf",
    "butter",
    "cheby1",
    "cheby2",
    "ellip",
    "eq",
    "check_stable",
    "pole_radii",
    "normalize_sos",
]

BIQUAD_KINDS = (
    "lowpass",
    "highpass",
    "bandpass",  # constant skirt gain (peak gain = Q)
    "bandpass_peak",  # constant 0 dB peak gain
    "notch",
    "allpass",
    "peaking",
    "lowshelf",
    "highshelf",
)
_ALIASES = {
    "lpf": "lowpass", "hpf": "highpass", "bpf": "bandpass", "bandpass_skirt": "bandpass",
    "bandpass_q": "bandpass", "bandpass_0db": "bandpass_peak", "bandpass_constant_peak": "bandpass_peak",
    "bandstop": "notch", "apf": "allpass", "peak": "peaking", "bell": "peaking", "peakingeq": "peaking",
    "low_shelf": "lowshelf", "high_shelf": "highshelf",
}

SOSLike = Union[torch.Tensor, np.ndarray, Sequence[Sequence[float]]]


# --------------------------------------------------------------------------- checks
def _check_rate(sample_rate: float) -> float:
    try:
        fs = float(sample_rate)
    except (TypeError, ValueError):
        raise InvalidParameter(f"sample_rate must be a number in Hz, got {sample_rate!r}") from None
    if not math.isfinite(fs) or fs <= 0:
        raise InvalidParameter(f"sample_rate must be a positive finite number of Hz, got {sample_rate!r}")
    return fs


def _check_freq(freq: float, fs: float, name: str = "freq") -> float:
    try:
        f = float(freq)
    except (TypeError, ValueError):
        raise InvalidParameter(f"{name} must be a number in Hz, got {freq!r}") from None
    nyq = fs / 2
    if not math.isfinite(f) or f <= 0 or f >= nyq:
        raise InvalidParameter(
            f"{name}={freq!r} Hz is outside (0, {nyq:g}) Hz: it must be above 0 and below Nyquist "
            f"(sample_rate/2 = {nyq:g} Hz at sample_rate={fs:g} Hz)"
        )
    return f


def _as_sos_array(sos: SOSLike, name: str = "sos") -> np.ndarray:
    if isinstance(sos, torch.Tensor):
        arr = sos.detach().to("cpu", torch.float64).numpy()
    else:
        try:
            arr = np.asarray(sos, dtype=np.float64)
        except (TypeError, ValueError):
            raise InvalidParameter(f"{name} must be an array shaped [..., n_sections, 6], got {type(sos).__name__}") from None
    if arr.ndim < 2 or arr.shape[-1] != 6 or arr.shape[-2] < 1:
        raise InvalidParameter(
            f"{name} has shape {list(arr.shape)}; expected [..., n_sections, 6] (rows b0 b1 b2 a0 a1 a2, n_sections >= 1)"
        )
    if not np.isfinite(arr).all():
        raise InvalidParameter(f"{name} contains NaN or Inf coefficients")
    return arr


def normalize_sos(sos: SOSLike, name: str = "sos") -> np.ndarray:
    """Return a float64 numpy copy of *sos* with every row divided by its ``a0``.

    Raises:
        InvalidParameter: wrong shape, non-finite values or ``a0 == 0``.
    """
    arr = _as_sos_array(sos, name).copy()
    a0 = arr[..., 3]
    if (a0 == 0).any():
        idx = tuple(int(i) for i in np.argwhere(a0 == 0)[0])
        raise InvalidParameter(f"{name} section {list(idx)} has a0 == 0; a0 must be non-zero (it is normalised to 1)")
    return arr / a0[..., None]


def pole_radii(sos: SOSLike) -> np.ndarray:
    """Largest pole magnitude of every section, shaped ``[..., n_sections]``.

    The poles of a section are the roots of ``a0 z^2 + a1 z + a2``.
    """
    arr = normalize_sos(sos)
    a1, a2 = arr[..., 4], arr[..., 5]
    disc = a1 * a1 - 4 * a2
    sq = np.sqrt(np.abs(disc))
    real_r = np.maximum(np.abs(-a1 + sq), np.abs(-a1 - sq)) / 2
    cplx_r = np.sqrt(np.abs(a2))
    return np.where(disc >= 0, real_r, cplx_r)


def check_stable(sos: SOSLike, name: str = "sos") -> None:
    """Raise :class:`InvalidParameter` if any pole lies on or outside the unit circle.

    The message names the first offending section (its index in ``[..., n_sections]``)
    and its pole radius.
    """
    r = pole_radii(sos)
    bad = r >= 1.0
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InvalidParameter(
            f"{name} is unstable: section {idx[-1] if len(idx) == 1 else list(idx)} has a pole of radius "
            f"{r[idx]:.9g} (|p| >= 1); every pole must lie strictly inside the unit circle"
        )


def _finish(sos: np.ndarray, what: str) -> torch.Tensor:
    sos = normalize_sos(sos)
    check_stable(sos, what)
    return torch.from_numpy(np.ascontiguousarray(sos))


# --------------------------------------------------------------------------- RBJ
def biquad(kind: str, freq: float, sample_rate: float, *, q: float | None = None, bandwidth: float | None = None,
           slope: float | None = None, gain_db: float = 0.0) -> torch.Tensor:
    """One RBJ Audio-EQ-Cookbook biquad as SOS ``[1, 6]`` (float64, ``a0 = 1``).

    Args:
        kind: one of :data:`BIQUAD_KINDS`: ``"lowpass"``, ``"highpass"``,
            ``"bandpass"`` (constant skirt gain, peak gain = Q),
            ``"bandpass_peak"`` (constant 0 dB peak gain), ``"notch"``,
            ``"allpass"``, ``"peaking"``, ``"lowshelf"``, ``"highshelf"``.
        freq: centre / corner / shelf mid-point frequency in Hz, ``0 < freq < sample_rate/2``.
        sample_rate: in Hz.
        q: quality factor (> 0). Default ``1/sqrt(2)`` when no other width is given.
        bandwidth: width in octaves (> 0), instead of ``q`` (band-pass, notch,
            all-pass, peaking; between -3 dB points / midpoint-gain points as in the cookbook).
        slope: shelf slope S (> 0, 1 = steepest monotonic), instead of ``q``; shelves only.
        gain_db: gain in dB for ``peaking``, ``lowshelf``, ``highshelf`` (ignored by the others).

    Returns:
        float64 tensor ``[1, 6]``.
    """
    k = str(kind).strip().lower()
    k = _ALIASES.get(k, k)
    if k not in BIQUAD_KINDS:
        raise InvalidParameter(f"unknown biquad kind {kind!r}; accepted: {', '.join(BIQUAD_KINDS)}")
    fs = _check_rate(sample_rate)
    f0 = _check_freq(freq, fs)
    given = [n for n, v in (("q", q), ("bandwidth", bandwidth), ("slope", slope)) if v is not None]
    if len(given) > 1:
        raise InvalidParameter(f"give only one of q, bandwidth, slope; got {', '.join(given)}")
    try:
        g = float(gain_db)
    except (TypeError, ValueError):
        raise InvalidParameter(f"gain_db must be a number of dB, got {gain_db!r}") from None
    if not math.isfinite(g) or abs(g) > 120:
        raise InvalidParameter(f"gain_db={gain_db!r} is outside [-120, 120] dB")
    w0 = 2 * math.pi * f0 / fs
    cw, sw = math.cos(w0), math.sin(w0)
    A = 10 ** (g / 40)
    if slope is not None:
        if k not in ("lowshelf", "highshelf"):
            raise InvalidParameter(f"slope applies to lowshelf/highshelf only, not {k!r}; use q or bandwidth")
        S = float(slope)
        if not math.isfinite(S) or S <= 0:
            raise InvalidParameter(f"slope must be > 0, got {slope!r}")
        inner = (A + 1 / A) * (1 / S - 1) + 2
        if inner <= 0:
            raise InvalidParameter(f"slope={slope!r} is too steep for gain_db={g:g} (the cookbook's alpha becomes imaginary)")
        alpha = sw / 2 * math.sqrt(inner)
    elif bandwidth is not None:
        bw = float(bandwidth)
        if not math.isfinite(bw) or bw <= 0 or bw > 10:
            raise InvalidParameter(f"bandwidth must be in (0, 10] octaves, got {bandwidth!r}")
        alpha = sw * math.sinh(math.log(2) / 2 * bw * w0 / sw)
    else:
        qq = 1 / math.sqrt(2) if q is None else float(q)
        if not math.isfinite(qq) or qq <= 0:
            raise InvalidParameter(f"q must be a positive number, got {q!r}")
        alpha = sw / (2 * qq)

    if k == "lowpass":
        b = [(1 - cw) / 2, 1 - cw, (1 - cw) / 2]
        a = [1 + alpha, -2 * cw, 1 - alpha]
    elif k == "highpass":
        b = [(1 + cw) / 2, -(1 + cw), (1 + cw) / 2]
        a = [1 + alpha, -2 * cw, 1 - alpha]
    elif k == "bandpass":
        b = [sw / 2, 0.0, -sw / 2]
        a = [1 + alpha, -2 * cw, 1 - alpha]
    elif k == "bandpass_peak":
        b = [alpha, 0.0, -alpha]
        a = [1 + alpha, -2 * cw, 1 - alpha]
    elif k == "notch":
        b = [1.0, -2 * cw, 1.0]
        a = [1 + alpha, -2 * cw, 1 - alpha]
    elif k == "allpass":
        b = [1 - alpha, -2 * cw, 1 + alpha]
        a = [1 + alpha, -2 * cw, 1 - alpha]
    elif k == "peaking":
        b = [1 + alpha * A, -2 * cw, 1 - alpha * A]
        a = [1 + alpha / A, -2 * cw, 1 - alpha / A]
    elif k == "lowshelf":
        sa = 2 * math.sqrt(A) * alpha
        b = [A * ((A + 1) - (A - 1) * cw + sa), 2 * A * ((A - 1) - (A + 1) * cw), A * ((A + 1) - (A - 1) * cw - sa)]
        a = [(A + 1) + (A - 1) * cw + sa, -2 * ((A - 1) + (A + 1) * cw), (A + 1) + (A - 1) * cw - sa]
    else:  # highshelf
        sa = 2 * math.sqrt(A) * alpha
        b = [A * ((A + 1) + (A - 1) * cw + sa), -2 * A * ((A - 1) + (A + 1) * cw), A * ((A + 1) + (A - 1) * cw - sa)]
        a = [(A + 1) - (A - 1) * cw + sa, 2 * ((A - 1) - (A + 1) * cw), (A + 1) - (A - 1) * cw - sa]
    return _finish(np.array([b + a], dtype=np.float64), f"{k} biquad at {f0:g} Hz")


def lowpass(freq: float, sample_rate: float, q: float = 1 / math.sqrt(2)) -> torch.Tensor:
    """RBJ low-pass biquad (12 dB/octave), corner *freq* Hz. Returns SOS ``[1, 6]``."""
    return biquad("lowpass", freq, sample_rate, q=q)


def highpass(freq: float, sample_rate: float, q: float = 1 / math.sqrt(2)) -> torch.Tensor:
    """RBJ high-pass biquad (12 dB/octave), corner *freq* Hz. Returns SOS ``[1, 6]``."""
    return biquad("highpass", freq, sample_rate, q=q)


def bandpass(freq: float, sample_rate: float, q: float | None = None, *, bandwidth: float | None = None,
             constant_peak: bool = False) -> torch.Tensor:
    """RBJ band-pass biquad centred on *freq* Hz.

    ``constant_peak=False`` (default): constant skirt gain, peak gain = Q.
    ``constant_peak=True``: constant 0 dB peak gain. Returns SOS ``[1, 6]``.
    """
    return biquad("bandpass_peak" if constant_peak else "bandpass", freq, sample_rate, q=q, bandwidth=bandwidth)


def notch(freq: float, sample_rate: float, q: float | None = None, *, bandwidth: float | None = None) -> torch.Tensor:
    """RBJ notch (band-stop) biquad at *freq* Hz. Returns SOS ``[1, 6]``."""
    return biquad("notch", freq, sample_rate, q=q, bandwidth=bandwidth)


def allpass(freq: float, sample_rate: float, q: float | None = None, *, bandwidth: float | None = None) -> torch.Tensor:
    """RBJ all-pass biquad (phase 180 degrees at *freq* Hz). Returns SOS ``[1, 6]``."""
    return biquad("allpass", freq, sample_rate, q=q, bandwidth=bandwidth)


def peaking(freq: float, sample_rate: float, gain_db: float, q: float | None = None, *,
            bandwidth: float | None = None) -> torch.Tensor:
    """RBJ peaking EQ (bell) at *freq* Hz with *gain_db* dB at the centre. Returns SOS ``[1, 6]``."""
    return biquad("peaking", freq, sample_rate, q=q, bandwidth=bandwidth, gain_db=gain_db)


def lowshelf(freq: float, sample_rate: float, gain_db: float, q: float | None = None, *,
             slope: float | None = None) -> torch.Tensor:
    """RBJ low shelf: *gain_db* dB below *freq* Hz (mid-point of the transition). Returns SOS ``[1, 6]``."""
    return biquad("lowshelf", freq, sample_rate, q=q, slope=slope, gain_db=gain_db)


def highshelf(freq: float, sample_rate: float, gain_db: float, q: float | None = None, *,
              slope: float | None = None) -> torch.Tensor:
    """RBJ high shelf: *gain_db* dB above *freq* Hz (mid-point of the transition). Returns SOS ``[1, 6]``."""
    return biquad("highshelf", freq, sample_rate, q=q, slope=slope, gain_db=gain_db)


# --------------------------------------------------------------------------- prototypes
_BTYPES = {"lowpass": "lowpass", "low": "lowpass", "highpass": "highpass", "high": "highpass",
           "bandpass": "bandpass", "band": "bandpass", "bandstop": "bandstop", "stop": "bandstop"}


def _proto_args(order: int, freq: Any, btype: str, sample_rate: float) -> tuple[int, Any, str, float]:
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or not 1 <= int(order) <= 64:
        raise InvalidParameter(f"order must be an integer in [1, 64], got {order!r}")
    bt = _BTYPES.get(str(btype).strip().lower())
    if bt is None:
        raise InvalidParameter(f"unknown btype {btype!r}; accepted: lowpass, highpass, bandpass, bandstop")
    fs = _check_rate(sample_rate)
    if bt in ("bandpass", "bandstop"):
        if np.ndim(freq) != 1 or len(freq) != 2:
            raise InvalidParameter(f"{bt} needs freq=(low, high) in Hz, got {freq!r}")
        lo, hi = _check_freq(freq[0], fs, "freq[0]"), _check_freq(freq[1], fs, "freq[1]")
        if not lo < hi:
            raise InvalidParameter(f"{bt} needs freq[0] < freq[1], got {freq!r}")
        wn: Any = (lo, hi)
    else:
        if np.ndim(freq) != 0:
            raise InvalidParameter(f"{bt} needs one cutoff frequency in Hz, got {freq!r}")
        wn = _check_freq(freq, fs)
    return int(order), wn, bt, fs


def _db(value: float, name: str) -> float:
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise InvalidParameter(f"{name} must be a positive number of dB, got {value!r}")
    return v


def butter(order: int, freq: float | Sequence[float], btype: str = "lowpass", sample_rate: float = 48000.0) -> torch.Tensor:
    """Butterworth filter (via :func:`scipy.signal.butter`) as SOS ``[n_sections, 6]``.

    Args:
        order: filter order (band filters get ``order`` sections).
        freq: cutoff in Hz, or ``(low, high)`` Hz for band-pass / band-stop.
        btype: ``"lowpass" | "highpass" | "bandpass" | "bandstop"``.
        sample_rate: in Hz.
    """
    import scipy.signal as ss

    o, wn, bt, fs = _proto_args(order, freq, btype, sample_rate)
    return _finish(ss.butter(o, wn, btype=bt, fs=fs, output="sos"), f"butter({o}, {freq}, {bt!r})")


def cheby1(order: int, ripple_db: float, freq: float | Sequence[float], btype: str = "lowpass",
           sample_rate: float = 48000.0) -> torch.Tensor:
    """Chebyshev type I (pass-band ripple *ripple_db* dB) as SOS ``[n_sections, 6]``."""
    import scipy.signal as ss

    o, wn, bt, fs = _proto_args(order, freq, btype, sample_rate)
    rp = _db(ripple_db, "ripple_db")
    return _finish(ss.cheby1(o, rp, wn, btype=bt, fs=fs, output="sos"), f"cheby1({o}, {freq}, {bt!r})")


def cheby2(order: int, stopband_db: float, freq: float | Sequence[float], btype: str = "lowpass",
           sample_rate: float = 48000.0) -> torch.Tensor:
    """Chebyshev type II (stop band *stopband_db* dB down; *freq* is the stop-band edge) as SOS."""
    import scipy.signal as ss

    o, wn, bt, fs = _proto_args(order, freq, btype, sample_rate)
    rs = _db(stopband_db, "stopband_db")
    return _finish(ss.cheby2(o, rs, wn, btype=bt, fs=fs, output="sos"), f"cheby2({o}, {freq}, {bt!r})")


def ellip(order: int, ripple_db: float, stopband_db: float, freq: float | Sequence[float], btype: str = "lowpass",
          sample_rate: float = 48000.0) -> torch.Tensor:
    """Elliptic (Cauer) filter: *ripple_db* dB pass-band ripple, *stopband_db* dB attenuation, as SOS."""
    import scipy.signal as ss

    o, wn, bt, fs = _proto_args(order, freq, btype, sample_rate)
    rp, rs = _db(ripple_db, "ripple_db"), _db(stopband_db, "stopband_db")
    return _finish(ss.ellip(o, rp, rs, wn, btype=bt, fs=fs, output="sos"), f"ellip({o}, {freq}, {bt!r})")


# --------------------------------------------------------------------------- EQ
BandSpec = Union[Sequence[Any], Mapping[str, Any]]


def eq(bands: Iterable[BandSpec], sample_rate: float) -> torch.Tensor:
    """A parametric EQ: one RBJ biquad per band, cascaded, as SOS ``[n_bands, 6]``.

    Each band is a tuple ``(kind, freq_hz, q[, gain_db])`` or a dict with keys
    ``kind``, ``freq`` and optionally ``q`` / ``bandwidth`` / ``slope`` / ``gain_db``.

    Example::

        sos = eq([("lowshelf", 100, 0.7, +3), ("peaking", 1000, 1.0, -4),
                  ("highshelf", 8000, 0.7, +2), ("highpass", 30, 0.707)], 48000)
    """
    rows = []
    for i, band in enumerate(bands):
        if isinstance(band, Mapping):
            kw = dict(band)
            try:
                kind, freq = kw.pop("kind"), kw.pop("freq")
            except KeyError:
                raise InvalidParameter(f"eq band {i} ({band!r}) needs keys 'kind' and 'freq'") from None
            unknown = set(kw) - {"q", "bandwidth", "slope", "gain_db"}
            if unknown:
                raise InvalidParameter(f"eq band {i} has unknown keys {sorted(unknown)}; accepted: kind, freq, q, bandwidth, slope, gain_db")
        elif isinstance(band, (tuple, list)) and 2 <= len(band) <= 4:
            kind, freq = band[0], band[1]
            kw = {}
            if len(band) > 2 and band[2] is not None:
                kw["q"] = band[2]
            if len(band) > 3:
                kw["gain_db"] = band[3]
        else:
            raise InvalidParameter(f"eq band {i} must be (kind, freq_hz, q[, gain_db]) or a dict, got {band!r}")
        try:
            rows.append(biquad(kind, freq, sample_rate, **kw))
        except InvalidParameter as e:
            raise InvalidParameter(f"eq band {i}: {e}") from None
    if not rows:
        raise InvalidParameter("eq needs at least one band")
    return torch.cat(rows, dim=0)
