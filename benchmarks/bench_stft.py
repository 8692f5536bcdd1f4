"""STFT/iSTFT: ironwave vs torch.stft (GPU and CPU) and librosa.stft (CPU), side by side.

GPU bar (issue #3): 64 signals x 60 s at 48 kHz, n_fft 2048, hop 512: >= 1.5x torch.stft.
CPU bar: 10 s mono, n_fft 2048, hop 512: no slower than librosa.stft.
Both ironwave methods ("freqwin": frequency-domain windowing on an as_strided frame view;
"torch": torch.stft with the window tensor) are timed so the faster one can be made default.
"""
from __future__ import annotations

import torch

from benchmarks.harness import Harness
from ironwave.dsp.stft import istft, stft

N_FFT, HOP, SR = 2048, 512, 48000


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def run(h: Harness) -> None:
    dev = h.device
    h.record("torch intra-op threads", torch.get_num_threads(), "threads")
    win = torch.hann_window(N_FFT, device=dev)

    def torch_stft(x: torch.Tensor) -> torch.Tensor:
        return torch.stft(x, N_FFT, HOP, window=win, pad_mode="constant", return_complex=True)

    if dev.type == "cuda":
        batch, secs = (8, 10) if h.quick else (64, 60)
        x = torch.randn(batch, SR * secs, device=dev)
        for method in ("auto", "triton", "freqwin", "torch"):
            h.compare(f"stft {batch} x {secs} s, n_fft 2048 hop 512 [{method}] (GPU)",
                      lambda m=method: stft(x, N_FFT, HOP, method=m, device=dev), lambda: torch_stft(x),
                      peer_name="torch.stft", target=">= 1.5x torch.stft", target_ratio=1.5, repeat=10,
                      params={"batch": batch, "seconds": secs, "method": method})
        try:  # tile sweep of the Triton framing kernel (+ cuFFT), to pick the launch defaults
            from ironwave.dsp import _stft_triton as tri

            for bf, bn, nw in [(4, 1024, 4), (8, 512, 4), (16, 256, 4), (2, 2048, 8), (8, 1024, 8), (1, 2048, 4)]:
                h.compare(f"stft triton sweep block_f={bf} block_n={bn} warps={nw}",
                          lambda bf=bf, bn=bn, nw=nw: tri.stft_triton(x, win, HOP, N_FFT // 2, "constant",
                                                                      1 + x.shape[-1] // HOP, block_f=bf, block_n=bn,
                                                                      num_warps=nw),
                          lambda: torch_stft(x), peer_name="torch.stft", repeat=10,
                          params={"block_f": bf, "block_n": bn, "num_warps": nw})
            fr = lambda: tri.stft_frames(x, win, HOP, N_FFT // 2, "constant", 1 + x.shape[-1] // HOP)  # noqa: E731
            frames = fr()
            h.compare("stft triton framing kernel alone vs cuFFT rfft of the frames alone", fr,
                      lambda: torch.fft.rfft(frames), peer_name="torch.fft.rfft (contiguous frames)", repeat=10,
                      params={"bytes_written": frames.numel() * 4})
            del frames
        except ImportError as e:
            print("no triton:", e)
        S = torch_stft(x)
        h.compare(f"istft {batch} x {secs} s (GPU)", lambda: istft(S, HOP, length=x.shape[-1], device=dev),
                  lambda: torch.istft(S, N_FFT, HOP, window=win, length=x.shape[-1]), peer_name="torch.istft", repeat=10)
        # parity on the device
        xs = x[:4, : SR * 5]
        ref = torch_stft(xs)
        for method in ("triton", "freqwin", "torch"):
            err = _rel(stft(xs, N_FFT, HOP, method=method, device=dev), ref)
            h.record(f"GPU parity vs torch.stft [{method}]", err, "max rel", target="<= 1e-5", met=err <= 1e-5)
        return

    import librosa

    secs = 2 if h.quick else 10
    x = torch.randn(SR * secs)
    xn = x.numpy()
    for method in ("freqwin", "torch"):
        h.compare(f"stft {secs} s mono [{method}] (CPU)", lambda m=method: stft(x, N_FFT, HOP, method=m, device="cpu"),
                  lambda: librosa.stft(xn, n_fft=N_FFT, hop_length=HOP), peer_name="librosa.stft",
                  target="no slower than librosa.stft", target_ratio=1.0, params={"seconds": secs, "method": method})
        h.compare(f"stft {secs} s mono [{method}] (CPU)", lambda m=method: stft(x, N_FFT, HOP, method=m, device="cpu"),
                  lambda: torch_stft(x), peer_name="torch.stft", params={"seconds": secs, "method": method})
    xs = torch.randn(2, SR * secs)
    h.compare(f"stft {secs} s stereo [auto] (CPU)", lambda: stft(xs, N_FFT, HOP, device="cpu"),
              lambda: librosa.stft(xs.numpy(), n_fft=N_FFT, hop_length=HOP), peer_name="librosa.stft")
    S = stft(x, N_FFT, HOP)
    h.compare(f"istft {secs} s mono (CPU)", lambda: istft(S, HOP, length=x.shape[-1], device="cpu"),
              lambda: librosa.istft(S.numpy(), hop_length=HOP, length=x.shape[-1]), peer_name="librosa.istft")
    h.compare(f"istft {secs} s mono (CPU)", lambda: istft(S, HOP, length=x.shape[-1], device="cpu"),
              lambda: torch.istft(S, N_FFT, HOP, window=win, length=x.shape[-1]), peer_name="torch.istft")
    ref = librosa.stft(xn, n_fft=N_FFT, hop_length=HOP)
    for method in ("freqwin", "torch"):
        y = stft(x, N_FFT, HOP, method=method).numpy()
        err = float(abs(y - ref).max() / abs(ref).max())
        h.record(f"CPU parity vs librosa.stft [{method}]", err, "max rel", target="<= 1e-5", met=err <= 1e-5)
