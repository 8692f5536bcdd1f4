"""Spectral transforms: Mel, CQT/VQT (+ inverse), NSGT/sliCQ (+ inverse), phase reconstruction.

All transforms take audio ``[..., time]`` (torch or numpy), run with plain torch ops on the CPU or
CUDA, keep the input's dtype and device, and return numpy when given numpy.
"""
from ironwave.spectral.mel import (MelSpectrogram, hz_to_mel, mel_filterbank, mel_frequencies, mel_to_audio, mel_to_hz,
                                   mel_to_stft, melspectrogram, nnls)
from ironwave.spectral.nsgt import (NSGT, BarkScale, CQNSGT, LinScale, LogScale, MelScale, OctScale, Scale, SliCQ,
                                    SliCQInverseStream, SliCQStream, insgt, nsgt)
from ironwave.spectral.cqt import CQT, CQTStream, cqt, cqt_frequencies, decimate2, icqt, resample_fft, vqt
from ironwave.spectral.phase import fast_griffinlim, griffinlim, pghi, spectral_convergence

__all__ = [
    "CQT", "CQTStream", "cqt", "cqt_frequencies", "decimate2", "icqt", "resample_fft", "vqt",
    "fast_griffinlim", "griffinlim", "pghi", "spectral_convergence",
    "MelSpectrogram", "hz_to_mel", "mel_filterbank", "mel_frequencies", "mel_to_audio", "mel_to_hz", "mel_to_stft",
    "melspectrogram", "nnls",
    "NSGT", "BarkScale", "CQNSGT", "LinScale", "LogScale", "MelScale", "OctScale", "Scale", "SliCQ",
    "SliCQInverseStream", "SliCQStream", "insgt", "nsgt",
]
