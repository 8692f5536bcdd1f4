"""DSP library: FFT, STFT/iSTFT, convolution, IIR filters, resampling.

Import from the submodules (``ironwave.dsp.stft``, ``ironwave.dsp.iir``, ...);
the most used names are re-exported here.
"""
