"""DSP library: FFT, STFT/iSTFT, convolution, IIR filters, resampling.

Every processor has three faces: a batched functional form over ``[..., time]``,
a streaming class whose block-by-block output equals the functional output, and
an engine-ready ``prepare()``/``process()`` that allocates nothing after prepare.

The functions ``fft``, ``stft`` and ``resample`` share their names with their
submodules, so they are not re-exported here (``import ironwave.dsp.stft as m``
must keep returning the module): use ``from ironwave.dsp.stft import stft``.
"""
from ironwave.dsp.convolution import PartitionedConvolver, convolve, fftconvolve
from ironwave.dsp.fft import irfft, ifft, rfft
from ironwave.dsp.iir import (
    SOSFilter,
    SOSFilterBank,
    allpass,
    bandpass,
    biquad,
    butter,
    cheby1,
    cheby2,
    ellip,
    eq,
    highpass,
    highshelf,
    lowpass,
    lowshelf,
    notch,
    peaking,
    sosfilt,
)
from ironwave.dsp.resample import Resampler
from ironwave.dsp.stft import ISTFTStream, STFTStream, check_cola, istft

__all__ = [
    "PartitionedConvolver", "convolve", "fftconvolve", "rfft", "irfft", "ifft",
    "SOSFilter", "SOSFilterBank", "allpass", "bandpass", "biquad", "butter", "cheby1", "cheby2", "ellip",
    "eq", "highpass", "highshelf", "lowpass", "lowshelf", "notch", "peaking", "sosfilt",
    "Resampler", "ISTFTStream", "STFTStream", "check_cola", "istft",
]
