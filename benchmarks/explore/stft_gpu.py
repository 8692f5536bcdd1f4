"""Exploration (GPU): where torch.stft's time goes at 64 x 60 s, n_fft 2048, hop 512, and
whether an L2-resident chunked window+rfft beats it. Prints one line per variant."""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cuda_time import bench  # noqa: E402
from ironwave.dsp.stft import _frames_view, make_params  # noqa: E402


def main():
    dev = torch.device("cuda")
    B, L, nfft, hop = 64, 60 * 48000, 2048, 512
    x = torch.randn(B, L, device=dev)
    w = torch.hann_window(nfft, device=dev)
    ref = torch.stft(x, nfft, hop, window=w, return_complex=True)
    print("torch.stft", bench(lambda: torch.stft(x, nfft, hop, window=w, return_complex=True)), "ms", flush=True)
    p = make_params(nfft, hop, window="hann")
    frames, rows, T = _frames_view(x, p)
    print("pad/frames_view", bench(lambda: _frames_view(x, p)), "ms rows", frames.shape, flush=True)
    fc = frames * w
    print("window mul (materialise)", bench(lambda: frames * w), "ms", flush=True)
    print("rfft contiguous frames", bench(lambda: torch.fft.rfft(fc)), "ms", flush=True)
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    print("rfft strided view", bench(lambda: torch.fft.rfft(frames), n=3), "ms; extra peak MiB",
          (torch.cuda.max_memory_allocated() - base) / 2**20, flush=True)
    nrows, nf = frames.shape[0], nfft // 2 + 1
    Y = torch.empty(nrows, nf, dtype=torch.complex64, device=dev)
    print("rfft contiguous out=", bench(lambda: torch.fft.rfft(fc, out=Y)), "ms", flush=True)
    del fc
    torch.cuda.empty_cache()
    for chunk in (1024, 2048, 4096, 8192):
        scratch = torch.empty(chunk, nfft, device=dev)

        def run(chunk=chunk, scratch=scratch):
            for r0 in range(0, nrows, chunk):
                r1 = min(nrows, r0 + chunk)
                s = scratch[: r1 - r0]
                torch.mul(frames[r0:r1], w, out=s)
                torch.fft.rfft(s, out=Y[r0:r1])

        t = bench(run)
        out = Y.as_strided((B, T, nf), (rows * nf, nf, 1)).transpose(1, 2)
        err = float((out - ref).abs().max() / ref.abs().max())
        print(f"chunked eager chunk={chunk}: {t:.3f} ms err {err:.2e}", flush=True)
        try:
            g = torch.cuda.CUDAGraph()
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                run()
                torch.cuda.synchronize()
                with torch.cuda.graph(g, stream=s):
                    run()
            torch.cuda.current_stream().wait_stream(s)
            print(f"chunked graph chunk={chunk}: {bench(g.replay):.3f} ms", flush=True)
        except Exception as e:  # noqa: BLE001
            print("graph failed", type(e).__name__, e, flush=True)
    # torch.stft under a graph (for comparison of launch effects)
    print("done", flush=True)


if __name__ == "__main__":
    main()
