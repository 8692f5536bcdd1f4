"""IIR benchmarks: ironwave.dsp.iir.sosfilt / SOSFilter against scipy.signal.sosfilt and
torchaudio.functional.lfilter (when installed: the GPU machine has it), side by side.

Bars (issue #3): GPU, 1024 channels x 10 s at 48 kHz, one biquad and a 4-section SOS:
>= 100x torchaudio.lfilter (305 ms for the biquad on an H200); one channel of 10 s on the
GPU faster than scipy.signal.sosfilt on the CPU (3.4 ms). CPU: within 1.5x of scipy.

On CUDA the default path is the fused Triton kernels (``backend="triton"``; the scan when
Triton is missing); each GPU case is also timed against the matmul scan, and a sweep of
Triton launch variants (1024 channels) records which configuration is fastest.
"""
from __future__ import annotations

import numpy as np
import scipy.signal as ss
import torch

from benchmarks.harness import Harness
from ironwave.dsp import iir

FS = 48000
SECONDS = 10


def _torchaudio():
    try:
        import torchaudio.functional as taf  # noqa: PLC0415

        return taf
    except Exception:
        return None


def _scipy_case(sos: np.ndarray, x: np.ndarray):
    return lambda: ss.sosfilt(sos, x, axis=-1)


def run(h: Harness) -> None:
    dev = h.device
    T = SECONDS * FS
    biquad = iir.lowpass(1000, FS, q=0.7071)
    sos4 = iir.butter(8, 1000, "lowpass", FS)  # 4 sections
    cases = {"biquad": biquad, "4-section SOS": sos4}
    rng = np.random.default_rng(0)
    taf = _torchaudio()

    if dev.type == "cpu":
        for channels in (1, 64):
            x = rng.standard_normal((channels, T)).astype(np.float32)
            xt = torch.from_numpy(x)
            for cname, sos in cases.items():
                s = sos.numpy()
                h.compare(f"sosfilt {cname}, {channels} ch x {SECONDS} s (auto: scipy C)", lambda: iir.sosfilt(sos, xt),
                          _scipy_case(s, x), peer_name="scipy.sosfilt", repeat=5 if channels > 1 else 20,
                          target="CPU within 1.5x of scipy.signal.sosfilt", target_ratio=1 / 1.5,
                          params={"channels": channels, "samples": T, "sections": sos.shape[0]})
            sos = sos4
            h.compare(f"sosfilt 4-section SOS, {channels} ch x {SECONDS} s (torch scan on CPU)",
                      lambda: iir.sosfilt(sos, xt, backend="scan"), _scipy_case(sos.numpy(), x), peer_name="scipy.sosfilt",
                      repeat=3, params={"channels": channels, "samples": T, "backend": "scan"},
                      note="information: the scan is the GPU/autograd path; the CPU default is scipy")
        # per-channel coefficients: scipy loop vs scipy per channel
        x = rng.standard_normal((64, T // 10)).astype(np.float32)
        sos_pc = torch.stack([iir.peaking(100 * (i + 1), FS, 3.0, 1.0)[0] for i in range(64)])[:, None]
        h.compare("sosfilt per-channel biquads, 64 ch x 1 s", lambda: iir.sosfilt(sos_pc, torch.from_numpy(x)),
                  lambda: [ss.sosfilt(sos_pc[i].numpy(), x[i]) for i in range(64)], peer_name="scipy loop",
                  repeat=5, target_ratio=1 / 1.5, target="CPU within 1.5x of scipy")
    else:
        from ironwave.dsp.iir import filtering  # noqa: PLC0415

        tri = filtering._triton_module()
        have_triton = tri is not None and dev.type == "cuda"
        backend = "triton" if have_triton else "scan"
        for channels in (1, 1024):
            x = torch.randn(channels, T, device=dev)
            for cname, sos in cases.items():
                f = lambda sos=sos, x=x: iir.sosfilt(sos, x, backend=backend)  # noqa: E731
                fs = lambda sos=sos, x=x: iir.sosfilt(sos, x, backend="scan")  # noqa: E731
                params = {"channels": channels, "samples": T, "sections": sos.shape[0], "backend": backend}
                if taf is not None:
                    a_list = [sos[i, 3:].to(dev, torch.float32) for i in range(sos.shape[0])]
                    b_list = [sos[i, :3].to(dev, torch.float32) for i in range(sos.shape[0])]

                    def peer(x=x, a_list=a_list, b_list=b_list):
                        y = x
                        for a, b in zip(a_list, b_list):
                            y = taf.lfilter(y, a, b, clamp=False)
                        return y

                    h.compare(f"sosfilt {cname}, {channels} ch x {SECONDS} s, GPU ({backend})", f, peer,
                              peer_name="torchaudio.lfilter", repeat=10 if channels > 1 else 20, warmup=2,
                              target=">= 100x torchaudio.functional.lfilter", target_ratio=100.0, params=params)
                if have_triton:
                    # the matmul scan (the path before the Triton kernels; still the autograd path) as the peer
                    h.compare(f"sosfilt {cname}, {channels} ch x {SECONDS} s, GPU triton vs scan", f, fs,
                              peer_name="ironwave scan", repeat=10 if channels > 1 else 20, warmup=2,
                              params={**params, "peer_backend": "scan"},
                              note="information: ratio = scan time / triton time")
                xc = x.cpu().numpy()
                h.compare(f"sosfilt {cname}, {channels} ch x {SECONDS} s, GPU ({backend}) vs scipy CPU", f,
                          _scipy_case(sos.numpy(), xc), peer_name="scipy.sosfilt (CPU)", peer_device=torch.device("cpu"),
                          repeat=3 if channels > 1 else 20, warmup=1,
                          target="1 ch: faster than scipy on the CPU" if channels == 1 else None,
                          target_ratio=1.0 if channels == 1 else None, params=params)
        if have_triton:
            # launch variants of the Triton kernels (information, to pick the defaults):
            # (in-thread 16-byte halves | coalesced tile + shared-memory transpose, lanes/program, warps)
            from ironwave.dsp.iir.design import normalize_sos  # noqa: PLC0415

            x = torch.randn(1024, T, device=dev)
            for cname, sos in cases.items():
                s64 = normalize_sos(sos)
                base = lambda s64=s64, x=x: tri.sosfilt_triton(s64, x, None, (1024,))  # noqa: E731
                for halves, block, warps in ((True, 128, 4), (False, 128, 4), (False, 256, 8), (False, 16, 1),
                                             (False, 32, 1), (False, 64, 2)):
                    for chunk in (None, 256):
                        v = lambda s64=s64, x=x, hv=halves, b=block, w=warps, c=chunk: tri.sosfilt_triton(  # noqa: E731
                            s64, x, None, (1024,), chunk=c, halves=hv, block=b, num_warps=w)
                        h.compare(f"triton variant {cname} 1024 ch: halves={halves} block={block} warps={warps} "
                                  f"chunk={chunk or tri.pick_chunk(1024, T)}", v, base,
                                  peer_name="triton default", repeat=10, warmup=2,
                                  params={"halves": halves, "block": block, "num_warps": warps, "chunk": chunk,
                                          "sections": sos.shape[0]},
                                  note="information: ratio > 1 means this variant beats the default")
        # accuracy on the GPU vs scipy float64 (high-Q low-frequency case)
        hq = iir.lowpass(40, FS, q=5.0)
        xg = torch.randn(4, T, device=dev)
        ref = ss.sosfilt(hq.numpy(), xg.cpu().double().numpy())
        for bk in ((backend, "scan") if have_triton else ("scan",)):
            err = float(np.abs(iir.sosfilt(hq, xg, backend=bk).cpu().numpy() - ref).max())
            h.record(f"max |err| vs scipy float64, lowpass 40 Hz Q5, 4 ch x 10 s, float32 GPU ({bk})", err, "abs",
                     target="<= 1e-4", met=err <= 1e-4)

    # streaming: 256-sample blocks, 2 channels, 1 s (engine face), vs scipy with carried zi
    block, channels, nblocks = 256, 2, FS // 256
    sos = iir.eq([("lowshelf", 100, 0.7, 3), ("peaking", 1000, 1.0, -4), ("highshelf", 8000, 0.7, 2)], FS)
    flt = iir.SOSFilter(sos, device=dev).prepare(block, channels=channels)
    xb = torch.randn(nblocks, 1, channels, block, device=dev)
    out = torch.empty(1, channels, block, device=dev)
    xbn = xb.cpu().numpy()
    zi0 = np.zeros((sos.shape[0], 1, channels, 2))

    def ours_stream():
        for i in range(nblocks):
            flt.process(xb[i], out=out)

    def scipy_stream():
        zi = zi0
        for i in range(nblocks):
            _, zi = ss.sosfilt(sos.numpy(), xbn[i], axis=-1, zi=zi)

    h.compare(f"SOSFilter.process 3-band EQ, {channels} ch, {nblocks} blocks of {block}", ours_stream, scipy_stream,
              peer_name="scipy.sosfilt+zi", repeat=5, warmup=1, peer_device=torch.device("cpu"),
              params={"block": block, "channels": channels, "blocks": nblocks},
              note="per-block cost incl. the allocation-free NaN check")
