"""IIR filters: RBJ biquads and classic designs as SOS, ``sosfilt`` (CPU via
scipy, GPU/autograd via a block-parallel state-space scan), streaming
:class:`SOSFilter`, filter banks and a parametric EQ helper.

Shapes: signals ``[..., time]``; SOS ``[n_sections, 6]`` (``b0 b1 b2 a0 a1 a2``)
or ``[..., n_sections, 6]`` for per-channel / per-band coefficients; state
``zi``/``zf`` ``[..., n_sections, 2]`` (scipy's transposed direct form II).
"""
from .design import (
    BIQUAD_KINDS,
    allpass,
    bandpass,
    biquad,
    butter,
    check_stable,
    cheby1,
    cheby2,
    ellip,
    eq,
    highpass,
    highshelf,
    lowpass,
    lowshelf,
    normalize_sos,
    notch,
    peaking,
    pole_radii,
)
from .filtering import IDENTITY_SECTION, SOSFilter, SOSFilterBank, clear_plan_cache, sosfilt

__all__ = [
    "BIQUAD_KINDS", "IDENTITY_SECTION", "SOSFilter", "SOSFilterBank", "allpass", "bandpass", "biquad", "butter",
    "check_stable", "cheby1", "cheby2", "clear_plan_cache", "ellip", "eq", "highpass", "highshelf", "lowpass",
    "lowshelf", "normalize_sos", "notch", "peaking", "pole_radii", "sosfilt",
]
