"""Triton paths of :func:`ironwave.dsp.stft.stft` / :func:`~ironwave.dsp.stft.istft` on CUDA.

Forward: padding, framing and windowing in one pass (:func:`stft_frames`). Inverse: the
weighted overlap-add, envelope division and centre trim in one gather pass over the
irFFT's frames (:func:`istft_ola`), no window-multiply pass, no shifted adds.


``torch.stft`` pads the signal (one pass), multiplies the overlapping frames view by
the window (a strided read that runs at about a third of the memory bandwidth on an
H200) and hands the windowed frames to cuFFT. This kernel reads the *unpadded*
signal ``x [rows, L]`` and writes the windowed frames ``[rows * T, n_fft]``
contiguously in one pass, applying the centre padding (``constant``, ``reflect``,
``replicate``, ``circular``) by index arithmetic: no padded copy exists. cuFFT's
batched R2C then runs on contiguous frames (at the memory roofline).

Frame ``f = r * T + t`` of row ``r`` holds ``x[r, src(t * hop - pad + j)] * w[j]``
for ``j < n_fft``, where ``src`` maps an index outside ``[0, L)`` as the pad mode
says (``constant``: the sample is 0).

Only long-stable Triton language features are used; the kernel also runs under the
Triton interpreter (``TRITON_INTERPRET=1``, CPU tensors), which the tests use.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

#: pad mode -> kernel constant
MODES = {"constant": 0, "reflect": 1, "replicate": 2, "circular": 3}
# Launch defaults from the H200 sweep in benchmarks/bench_stft.py (64 x 60 s, n_fft 2048, framing +
# cuFFT): block_f=2 block_n=2048 8 warps 2.41 ms; 1/2048/4w 2.47; 4/1024/4w 2.60; 8/512/4w 2.95.
BLOCK_F = None  # frames per program; None: 4096 // block_n (at least 1)
BLOCK_N = 2048  # samples per program along the frame (capped at n_fft rounded up to a power of 2)
NUM_WARPS = 8


@triton.jit
def _frames_kernel(x_ptr, w_ptr, out_ptr, flag_ptr, L, T, n_total, hop, pad, row_stride, n_fft,
                   MODE: tl.constexpr, BLOCK_F: tl.constexpr, BLOCK_N: tl.constexpr):
    pid_f = tl.program_id(0)
    pid_n = tl.program_id(1)
    f = pid_f * BLOCK_F + tl.arange(0, BLOCK_F)
    j = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    fmask = f < n_total
    jmask = j < n_fft
    r = f // T
    t = f - r * T
    idx = (t * hop - pad)[:, None] + j[None, :]
    m = fmask[:, None] & jmask[None, :]
    if MODE == 0:
        src = idx
        lm = m & (idx >= 0) & (idx < L)
    elif MODE == 1:
        src = tl.where(idx < 0, -idx, idx)
        src = tl.where(src >= L, 2 * (L - 1) - src, src)
        lm = m
    elif MODE == 2:
        src = tl.minimum(tl.maximum(idx, 0), L - 1)
        lm = m
    else:
        src = idx % L
        src = tl.where(src < 0, src + L, src)
        lm = m
    xv = tl.load(x_ptr + r[:, None].to(tl.int64) * row_stride + src, mask=lm, other=0.0)
    # NaN/Inf screen of the input on the fly (every sample is loaded by some frame): a
    # program that saw one bumps the flag; the caller raises (no separate pass over x)
    bad = tl.sum(((xv != xv) | (xv == float("inf")) | (xv == float("-inf"))).to(tl.int32))
    tl.atomic_add(flag_ptr, bad, mask=bad > 0)
    wv = tl.load(w_ptr + j, mask=jmask, other=0.0)
    tl.store(out_ptr + f[:, None].to(tl.int64) * n_fft + j[None, :], xv * wv[None, :], mask=m)


def stft_frames(x: torch.Tensor, window: torch.Tensor, hop: int, pad: int, pad_mode: str, n_frames: int, *,
                flag: torch.Tensor | None = None, block_f: int | None = BLOCK_F, block_n: int = BLOCK_N,
                num_warps: int = NUM_WARPS) -> torch.Tensor:
    """Windowed frames ``[rows * n_frames, n_fft]`` of ``x [rows, L]`` (padded by ``pad`` samples each side).

    Args:
        x: ``[rows, L]`` float32/float64 on the device (last dim contiguous).
        window: ``[n_fft]`` in ``x``'s dtype (already zero-padded to ``n_fft`` and scaled).
        hop: hop in samples; pad: samples of padding on the left (0 for ``center=False``).
        pad_mode: ``constant``, ``reflect``, ``replicate`` or ``circular``.
        n_frames: frames per row.
        flag: optional int32 ``[1]`` zeroed tensor: the count of non-finite input samples seen is
            added to it (samples read by several frames count several times; 0 means all finite).
    """
    if x.stride(-1) != 1:
        x = x.contiguous()
    rows, L = x.shape
    n_fft = window.shape[0]
    out = torch.empty(rows * n_frames, n_fft, dtype=x.dtype, device=x.device)
    n_total = rows * n_frames
    if n_total == 0:
        return out
    if flag is None:
        flag = torch.zeros(1, dtype=torch.int32, device=x.device)
    bn = min(block_n, triton.next_power_of_2(n_fft))
    if block_f is None:
        block_f = max(1, 4096 // bn)
    grid = (triton.cdiv(n_total, block_f), triton.cdiv(n_fft, bn))
    _frames_kernel[grid](x, window.contiguous(), out, flag, L, n_frames, n_total, hop, pad, x.stride(0), n_fft,
                         MODE=MODES[pad_mode], BLOCK_F=block_f, BLOCK_N=bn, num_warps=num_warps)
    return out


def stft_triton(x: torch.Tensor, window: torch.Tensor, hop: int, pad: int, pad_mode: str, n_frames: int,
                flag: torch.Tensor | None = None, **launch: int) -> torch.Tensor:
    """Complex STFT ``[rows, n_fft // 2 + 1, n_frames]`` (a transposed view of cuFFT's ``[rows, T, F]``);
    ``flag`` as in :func:`stft_frames`."""
    frames = stft_frames(x, window, hop, pad, pad_mode, n_frames, flag=flag, **launch)
    Y = torch.fft.rfft(frames, dim=-1)
    return Y.view(x.shape[0], n_frames, -1).transpose(1, 2)


@triton.jit
def _ola_kernel(f_ptr, w_ptr, env_ptr, y_ptr, flag_ptr, T, n_fft, hop, pad, total, out_len,
                C: tl.constexpr, BLOCK: tl.constexpr):
    """``y[r, s] = sum_t frames[r, t, s + pad - t hop] w[.] / env[s + pad]`` (gather form: no atomics)."""
    r = tl.program_id(0)
    s = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    sp = s + pad
    inside = (s < out_len) & (sp < total)
    t_hi = sp // hop
    acc = tl.zeros([BLOCK], dtype=f_ptr.dtype.element_ty)
    bad = tl.zeros([BLOCK], dtype=tl.int32)
    for j in range(C):
        t = t_hi - j
        off = sp - t * hop
        m = inside & (t >= 0) & (t < T) & (off < n_fft)
        v = tl.load(f_ptr + (r.to(tl.int64) * T + t) * n_fft + off, mask=m, other=0.0)
        bad += ((v != v) | (v == float("inf")) | (v == float("-inf"))).to(tl.int32)
        acc += v * tl.load(w_ptr + off, mask=m, other=0.0)
    e = tl.load(env_ptr + sp, mask=inside, other=1.0)
    tl.store(y_ptr + r.to(tl.int64) * out_len + s, tl.where(inside, acc / e, 0.0), mask=s < out_len)
    nb = tl.sum(bad)
    tl.atomic_add(flag_ptr, nb, mask=nb > 0)


def istft_ola(frames: torch.Tensor, window: torch.Tensor, env: torch.Tensor, hop: int, pad: int, out_len: int,
              flag: torch.Tensor | None = None, block: int = 1024, num_warps: int = 4) -> torch.Tensor:
    """Weighted overlap-add of ``frames [rows, T, n_fft]`` (contiguous) -> ``[rows, out_len]``.

    Output sample ``s`` is padded sample ``s + pad`` of the OLA, divided by ``env`` (the
    ``sum_t w^2`` envelope, ``[n_fft + hop (T - 1)]``, checked for NOLA by the caller); samples
    beyond the OLA are 0. ``window`` multiplies the frames (normalisation folded in). The count
    of non-finite frame samples read is added to ``flag`` (int32 ``[1]``).
    """
    rows, T, n_fft = frames.shape
    frames = frames.contiguous()
    y = torch.empty(rows, out_len, dtype=frames.dtype, device=frames.device)
    if flag is None:
        flag = torch.zeros(1, dtype=torch.int32, device=frames.device)
    if rows == 0 or out_len == 0:
        return y
    total = env.shape[0]
    grid = (rows, triton.cdiv(out_len, block))
    _ola_kernel[grid](frames, window.contiguous(), env.contiguous(), y, flag, T, n_fft, hop, pad, total, out_len,
                      C=triton.cdiv(n_fft, hop), BLOCK=block, num_warps=num_warps)
    return y
