"""Convolution: offline (direct / FFT) and streaming (partitioned overlap-save).

Three faces:

* :func:`convolve` / :func:`fftconvolve` -- batched true convolution (not
  correlation) over ``[..., time]`` with broadcasting of the leading dims of
  ``x`` and ``h``. ``mode`` = ``"full" | "same" | "valid"`` exactly as
  :func:`scipy.signal.convolve`. Differentiable (autograd) on every device.
* :class:`PartitionedConvolver` -- a streaming convolver for long impulse
  responses: uniformly partitioned overlap-save with a frequency-domain delay
  line (FDL), optionally non-uniformly partitioned (short head partitions,
  long tail partitions). Streaming output equals ``fftconvolve(x, h)[..., :n]``
  sample for sample: **zero samples of algorithmic latency** beyond the block
  itself (the block handed to :meth:`~PartitionedConvolver.process` comes back
  convolved in the same call).
* The same class is the engine node: ``prepare(block_size, channels, batch)``
  allocates everything; ``process(block, out=None)`` on ``[batch, channels,
  block]`` allocates nothing (the FFT libraries use transient scratch only).

Shapes of impulse responses for the streaming convolver:

* ``[L]`` or ``[1, L]``: one IR shared by all channels.
* ``[C, L]``: one IR per channel (input must have ``C`` channels).
* ``[C_out, C_in, L]``: a true-stereo / MIMO matrix, output ``o`` is
  ``sum_i conv(x[i], ir[o, i])``.

Backends: on the CPU the streaming convolver runs on numpy + ``numpy.fft``
(pocketfft, about 1-5 us per call) on preallocated arrays, because torch's
per-op overhead (5-10 us) dominates at 64-256 frame blocks. On CUDA it runs
the same algorithm in torch; with uniform partitioning the per-block work uses
device-side ring indices only (no host read of device data, static shapes,
in-place updates), so it can be captured once as a CUDA graph with
:class:`ironwave.backend.program.CapturedProgram`.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Literal, Sequence, Union

import numpy as np
import torch

from ironwave.backend.device import DeviceLike, choose_device, resolve_device
from ironwave.backend.telemetry import telemetry
from ironwave.backend.validate import as_tensor, check_audio, check_finite, restore_type
from ironwave.errors import InvalidAudio, InvalidParameter

__all__ = [
    "convolve",
    "fftconvolve",
    "next_fast_len",
    "plan_partitions",
    "Partition",
    "PartitionedConvolver",
]

Mode = Literal["full", "same", "valid"]
Method = Literal["auto", "direct", "fft"]
ArrayLike = Union[torch.Tensor, np.ndarray]

_MODES = ("full", "same", "valid")
_METHODS = ("auto", "direct", "fft")
# Below this many taps (of the shorter operand) direct convolution wins on CPU and GPU.
_DIRECT_MAX_TAPS = 48


def next_fast_len(n: int) -> int:
    """Smallest ``m >= n`` whose prime factors are 2, 3 and 5 (fast FFT size)."""
    if n <= 6:
        return max(1, n)
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


# ---------------------------------------------------------------------------------------------
# Offline convolution
# ---------------------------------------------------------------------------------------------

def _compute_dtype(dt: torch.dtype) -> torch.dtype:
    return dt if dt in (torch.float32, torch.float64) else torch.float32


def _full_fft(x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    n_out = x.shape[-1] + h.shape[-1] - 1
    if x.device.type == "cpu" and not (x.requires_grad or h.requires_grad):
        # CPU without autograd: scipy's pocketfft is 3-8x faster than torch's CPU FFT here
        import scipy.fft as sfft

        n = sfft.next_fast_len(n_out, real=True)
        xn, hn = x.detach().numpy(), h.detach().numpy()
        Y = sfft.rfft(xn, n=n, axis=-1)
        Y = Y * sfft.rfft(hn, n=n, axis=-1)
        return torch.from_numpy(sfft.irfft(Y, n=n, axis=-1)[..., :n_out])
    n = next_fast_len(n_out)
    X = torch.fft.rfft(x, n=n)
    H = torch.fft.rfft(h, n=n)
    return torch.fft.irfft(X * H, n=n)[..., :n_out]


def _full_direct(x: torch.Tensor, h: torch.Tensor, lead: tuple[int, ...]) -> torch.Tensor:
    T, L = x.shape[-1], h.shape[-1]
    if L > T:  # convolution is symmetric: put the shorter operand in the kernel
        x, h, T, L = h, x, L, T
    n = math.prod(lead) if lead else 1
    w = torch.flip(h, dims=(-1,))
    if all(s == 1 for s in h.shape[:-1]):
        xin = x.expand(*lead, T).reshape(n, 1, T)
        y = torch.nn.functional.conv1d(xin, w.reshape(1, 1, L), padding=L - 1)
    else:
        xin = x.expand(*lead, T).reshape(1, n, T)
        wk = w.expand(*lead, L).reshape(n, 1, L)
        y = torch.nn.functional.conv1d(xin, wk, padding=L - 1, groups=n)
    return y.reshape(*lead, T + L - 1)


def _check_finite_fast(t: torch.Tensor, name: str) -> None:
    """NaN/Inf check via one float64 sum (a float32 sum in float64 cannot overflow);
    torch.isfinite is ~50x slower on some CPUs. The exact check runs only on failure."""
    td = t.detach()
    if td.device.type == "cpu" and td.dtype in (torch.float32, torch.float64):
        total = float(np.sum(td.numpy(), dtype=np.float64))
    else:
        total = float(torch.sum(td, dtype=torch.float64))
    if not math.isfinite(total):
        check_finite(t, name)


def convolve(x: ArrayLike, h: ArrayLike, mode: Mode = "full", method: Method = "auto", *,
             device: DeviceLike = None) -> ArrayLike:
    """True (flipped-kernel) convolution of ``x`` with ``h`` along the last axis.

    Matches :func:`scipy.signal.convolve` applied along the last axis.

    Args:
        x: signal shaped ``[..., T]`` (samples along the last axis).
        h: kernel / impulse response shaped ``[..., L]``; leading dims broadcast
            against those of ``x`` (e.g. ``x [batch, channels, T]`` with ``h [L]``,
            ``[channels, L]`` or ``[batch, channels, L]``).
        mode: ``"full"`` (``T + L - 1`` samples), ``"same"`` (``T`` samples,
            centred like scipy), or ``"valid"`` (``max(T, L) - min(T, L) + 1``
            samples, only where the operands fully overlap).
        method: ``"direct"`` (time-domain, ``torch.conv1d``), ``"fft"``
            (``rfft`` of size ``next_fast_len(T + L - 1)``), or ``"auto"`` (direct
            when the shorter operand has at most 48 taps, else FFT).
        device: where to compute: ``None`` (default) = where ``x`` lives;
            ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``. The result is returned
            on the device of ``x`` in the promoted dtype of ``x`` and ``h``.

    Returns:
        The convolution shaped ``[*broadcast(x.shape[:-1], h.shape[:-1]), n]``;
        numpy if ``x`` was numpy.

    Raises:
        InvalidAudio: non-finite, empty, integer or complex input.
        InvalidParameter: unknown ``mode`` / ``method`` or leading dims that do
            not broadcast.
    """
    t0 = time.perf_counter()
    if mode not in _MODES:
        raise InvalidParameter(f"mode={mode!r} is not supported; accepted: {', '.join(_MODES)}")
    if method not in _METHODS:
        raise InvalidParameter(f"method={method!r} is not supported; accepted: {', '.join(_METHODS)}")
    xt, was_np = as_tensor(x, "x")
    ht, _ = as_tensor(h, "h")
    xt = check_audio(xt, "x", finite=False)
    ht = check_audio(ht, "h", finite=False)
    _check_finite_fast(xt, "x")
    _check_finite_fast(ht, "h")
    try:
        lead = tuple(torch.broadcast_shapes(xt.shape[:-1], ht.shape[:-1]))
    except RuntimeError:
        raise InvalidParameter(
            f"leading dims of x {list(xt.shape[:-1])} and h {list(ht.shape[:-1])} do not broadcast; "
            "h must be shaped [L] or [..., L] with leading dims broadcastable to those of x [..., T]") from None
    out_dtype = torch.promote_types(xt.dtype, ht.dtype)
    home = xt.device
    if device is None:
        dev = home
    else:
        dev = choose_device("conv", xt.shape[-1] + ht.shape[-1], max(1, math.prod(lead) if lead else 1), device, home=xt.device)
    cdt = _compute_dtype(out_dtype)
    xc = xt.to(device=dev, dtype=cdt)
    hc = ht.to(device=dev, dtype=cdt)
    T, L = xc.shape[-1], hc.shape[-1]
    use_direct = method == "direct" or (method == "auto" and min(T, L) <= _DIRECT_MAX_TAPS)
    if use_direct:
        y = _full_direct(xc, hc, lead)
    else:
        y = _full_fft(xc, hc)
        if tuple(y.shape[:-1]) != lead:
            y = y.expand(*lead, y.shape[-1])
    if mode == "same":
        start = (L - 1) // 2
        y = y[..., start:start + T]
    elif mode == "valid":
        lo, hi = min(T, L), max(T, L)
        y = y[..., lo - 1:hi]
    y = y.to(device=home, dtype=out_dtype)
    telemetry.record("dsp.convolve", dev, time.perf_counter() - t0, requested=device)
    return restore_type(y, was_np)


def fftconvolve(x: ArrayLike, h: ArrayLike, mode: Mode = "full", *, device: DeviceLike = None) -> ArrayLike:
    """FFT convolution, like :func:`scipy.signal.fftconvolve` along the last axis.

    Same arguments as :func:`convolve` with ``method="fft"``.
    """
    return convolve(x, h, mode=mode, method="fft", device=device)


# ---------------------------------------------------------------------------------------------
# Partition planning
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Partition:
    """One uniformly partitioned segment of an impulse response.

    Attributes:
        size: partition size ``P`` in samples (FFT size ``2 P``); a multiple of the block size.
        count: number of partitions ``K`` in this segment.
        offset: first IR sample (tap) covered by the segment.
    """

    size: int
    count: int
    offset: int

    @property
    def end(self) -> int:
        return self.offset + self.size * self.count


def plan_partitions(ir_length: int, block_size: int, scheme: str = "nonuniform", *, growth: int = 4,
                    per_level: int = 4, max_partition: int = 4096) -> list[Partition]:
    """Split an IR of ``ir_length`` taps into segments for a block size (samples).

    ``"uniform"``: one segment of ``ceil(L / B)`` partitions of ``B`` samples.

    ``"nonuniform"`` (Garcia-style): ``per_level`` partitions of ``B``, then
    ``per_level`` of ``growth * B``, ... up to ``max_partition``; the last level
    takes the remainder. A segment of partition size ``P`` must start at an IR
    offset ``>= P - B`` so that its result (computed when its ``P``-sample input
    chunk completes) is ready before it is due; the plan respects that, so the
    whole convolver keeps zero latency.
    """
    B, L = int(block_size), int(ir_length)
    if B < 1 or L < 1:
        raise InvalidParameter(f"block_size and ir_length must be >= 1, got {B} and {L}")
    if scheme == "uniform":
        return [Partition(B, max(1, -(-L // B)), 0)]
    if scheme != "nonuniform":
        raise InvalidParameter(f"partition scheme {scheme!r} is not supported; accepted: 'uniform', 'nonuniform'")
    if growth < 2 or per_level < 1:
        raise InvalidParameter(f"growth must be >= 2 and per_level >= 1, got {growth} and {per_level}")
    segs: list[Partition] = []
    off, P = 0, B
    while off < L:
        remaining = L - off
        nxt = P * growth
        can_grow = nxt <= max(max_partition, B) and off + per_level * P >= nxt - B
        if not can_grow or remaining <= per_level * P:
            segs.append(Partition(P, -(-remaining // P), off))
            break
        segs.append(Partition(P, per_level, off))
        off += per_level * P
        P = nxt
    return segs


def _check_plan(plan: Sequence[Partition], B: int, L: int) -> list[Partition]:
    plan = list(plan)
    if not plan or plan[0].size != B or plan[0].offset != 0:
        raise InvalidParameter(f"a partition plan must start with partitions of the block size {B} at offset 0, got {plan}")
    off = 0
    for p in plan:
        if p.size % B or p.count < 1 or p.offset != off or p.offset < p.size - B:
            raise InvalidParameter(
                f"bad partition {p}: sizes must be multiples of the block size {B}, segments contiguous, "
                "and a segment of size P must start at offset >= P - block_size")
        off = p.end
    if off < L:
        raise InvalidParameter(f"the partition plan covers {off} taps but the IR has {L}")
    return plan


# ---------------------------------------------------------------------------------------------
# Streaming engines
# ---------------------------------------------------------------------------------------------

@dataclass
class _Geom:
    batch: int
    cin: int
    cout: int
    G: int       # groups with their own IR (per-channel layout)
    crow: int    # channels sharing one IR (shared layout)
    I: int       # inputs mixed per output (matrix layout)
    O: int       # outputs per group (matrix layout)

    @property
    def R(self) -> int:
        return self.batch * self.crow


def _pick_axis(shape5: Sequence[int]) -> int:
    """Among axes 1..3 of a ``[batch, G, Crow, X, time]`` view, the one that is the channel axis."""
    for a in (1, 2, 3):
        if shape5[a] != 1:
            return a
    return 1


def _chan_view(v: Any, axis: int) -> Any:
    """Select index 0 of the two trivial axes among 1..3 of a 5-D view -> ``[batch, C, time]``."""
    idx: list[Any] = [slice(None)] * 5
    for a in (1, 2, 3):
        if a != axis:
            idx[a] = 0
    return v[tuple(idx)]


def _ir_groups(ir: torch.Tensor, layout: str) -> torch.Tensor:
    """IR -> ``[G, I, O, L]``."""
    if layout == "shared":
        return ir.reshape(1, 1, 1, ir.shape[-1])
    if layout == "per_channel":
        return ir.reshape(ir.shape[0], 1, 1, ir.shape[-1])
    return ir.permute(1, 0, 2).unsqueeze(0)  # [Cout, Cin, L] -> [1, Cin, Cout, L]


def _segment_spectra(irg: torch.Tensor, seg: Partition) -> torch.Tensor:
    """Doubled, reversed partition spectra ``Hd [F, G, 2K-1, I, O]`` (complex128) of one segment."""
    P, K = seg.size, seg.count
    G, I, O, L = irg.shape
    part = torch.zeros(G, I, O, K * P, dtype=torch.float64)
    lo, hi = seg.offset, min(L, seg.end)
    if hi > lo:
        part[..., :hi - lo] = irg[..., lo:hi].to(torch.float64)
    H = torch.fft.rfft(part.reshape(G, I, O, K, P), n=2 * P)       # [G, I, O, K, F]
    H = H.permute(4, 0, 3, 1, 2)                                      # [F, G, K, I, O]
    j = torch.arange(2 * K - 1)
    src = (K - 1 - j) % K
    return H[:, :, src].contiguous()


class _Engine:
    """Common bookkeeping of the streaming engines (schedule, rings, crossfade)."""

    def __init__(self, plan: list[Partition], geom: _Geom, B: int) -> None:
        self.plan = plan
        self.g = geom
        self.B = B
        self.n_blocks = 0
        self.tails = len(plan) > 1
        Pmax = max(p.size for p in plan)
        self.N = 2 * Pmax                      # input history ring (stored twice for contiguous windows)
        omax = max(p.offset for p in plan)
        self.Nacc = -(-(omax + Pmax + B) // B) * B
        self.period = [p.size // B for p in plan]


# ---- numpy ---------------------------------------------------------------------------------

try:  # numpy >= 2: call the pocketfft gufuncs directly (skips ~3 us of Python per call)
    from numpy.fft import _pocketfft_umath as _pfu

    _PFU_OK = all(hasattr(_pfu, n) for n in ("rfft_n_even", "irfft"))
except Exception:  # pragma: no cover - other numpy builds
    _pfu, _PFU_OK = None, False


def _np_rfft(a: np.ndarray, out: np.ndarray) -> None:
    """Real FFT of even length along the last axis into *out*."""
    if _PFU_OK:
        _pfu.rfft_n_even(a, 1.0, axes=[(-1,), (), (-1,)], out=out)
    else:  # pragma: no cover
        np.fft.rfft(a, axis=-1, out=out)


def _np_irfft0(a: np.ndarray, n: int, out: np.ndarray) -> None:
    """Inverse real FFT of length *n* along axis 0 into *out*."""
    if _PFU_OK:
        _pfu.irfft(a, 1.0 / n, axes=[(0,), (), (0,)], out=out)
    else:  # pragma: no cover
        np.fft.irfft(a, n=n, axis=0, out=out)


class _NumpyEngine(_Engine):
    """CPU engine on numpy arrays; host ring indices and strided views, no gathers."""

    def __init__(self, plan: list[Partition], geom: _Geom, B: int, dtype: np.dtype) -> None:
        super().__init__(plan, geom, B)
        g = geom
        self.rdt = np.dtype(dtype)
        self.cdt = np.dtype(np.complex64 if self.rdt == np.float32 else np.complex128)
        self.hist = np.zeros((g.batch, g.cin, 2 * self.N), self.rdt)
        self.w = 0
        self.X: list[np.ndarray] = []
        self.Xmm: list[np.ndarray] = []
        self.pos = [0] * len(plan)
        self.slot_views: list[list[np.ndarray]] = []
        for p in plan:
            F = p.size + 1
            X = np.zeros((F, g.G, g.batch, g.crow, p.count, g.I), self.cdt)
            self.X.append(X)
            self.Xmm.append(X.reshape(F, g.G, g.R, p.count * g.I))
            views = []
            for k in range(p.count):
                v = X[:, :, :, :, k, :].transpose(2, 1, 3, 4, 0)       # [batch, G, crow, I, F]
                cv = _chan_view(v, _pick_axis(v.shape))
                assert np.shares_memory(cv, X)
                views.append(cv)
            self.slot_views.append(views)
        self.sides = [_NumpySide(self, i) for i in range(2)]

    def reset(self) -> None:
        self.hist.fill(0)
        self.w = 0
        self.n_blocks = 0
        for X in self.X:
            X.fill(0)
        self.pos = [0] * len(self.plan)
        for s in self.sides:
            s.acc.fill(0)

    def step_input(self, block: np.ndarray) -> None:
        B, N, w = self.B, self.N, self.w
        self.hist[..., w:w + B] = block
        self.hist[..., w + N:w + N + B] = block

    def fft_segment(self, s: int) -> None:
        p = self.plan[s]
        end = self.w + self.B + self.N
        _np_rfft(self.hist[..., end - 2 * p.size:end], self.slot_views[s][self.pos[s]])

    def advance(self, done: list[int]) -> None:
        for s in done:
            self.pos[s] = (self.pos[s] + 1) % self.plan[s].count
        self.w = (self.w + self.B) % self.N
        self.n_blocks += 1


class _NumpySide:
    """IR-dependent state: partition spectra, output accumulator ring."""

    def __init__(self, eng: _NumpyEngine, index: int) -> None:
        g = eng.g
        self.eng = eng
        self.Hd: list[np.ndarray] = []
        self.Y: list[np.ndarray] = []
        self.yt: list[np.ndarray] = []
        self.ytv: list[np.ndarray] = []
        for p in eng.plan:
            F = p.size + 1
            self.Hd.append(np.zeros((F, g.G, 2 * p.count - 1, g.I, g.O), eng.cdt))
            self.Y.append(np.zeros((F, g.G, g.R, g.O), eng.cdt))
            yt = np.zeros((2 * p.size, g.G, g.R, g.O), eng.rdt)
            self.yt.append(yt)
            v = yt[p.size:].reshape(p.size, g.G, g.batch, g.crow, g.O).transpose(2, 1, 3, 4, 0)
            self.ytv.append(_chan_view(v, _pick_axis(v.shape)))
        self.acc = np.zeros((g.batch, g.cout, eng.Nacc), eng.rdt)

    def load(self, irg: torch.Tensor) -> None:
        for s, p in enumerate(self.eng.plan):
            self.Hd[s][...] = _segment_spectra(irg, p).numpy()
        self.acc.fill(0)

    def compute(self, s: int, out: np.ndarray) -> None:
        """MAC + inverse FFT of segment *s*; head -> *out*, tails -> accumulator ring."""
        eng = self.eng
        p = eng.plan[s]
        K, g = p.count, eng.g
        off = (K - 1 - eng.pos[s]) % K
        Hw = self.Hd[s][:, :, off:off + K].reshape(p.size + 1, g.G, K * g.I, g.O)
        np.matmul(eng.Xmm[s], Hw, out=self.Y[s])
        _np_irfft0(self.Y[s], 2 * p.size, self.yt[s])
        if s == 0:
            np.copyto(out, self.ytv[0])
            return
        # the chunk covers absolute times [t - P + o, t + o), t = end of the current block
        t = (eng.n_blocks + 1) * eng.B
        a = (t - p.size + p.offset) % eng.Nacc
        n1 = min(p.size, eng.Nacc - a)
        acc, y = self.acc, self.ytv[s]
        acc[..., a:a + n1] += y[..., :n1]
        if n1 < p.size:
            acc[..., :p.size - n1] += y[..., n1:]

    def emit(self, out: np.ndarray) -> None:
        eng = self.eng
        a = (eng.n_blocks * eng.B) % eng.Nacc
        seg = self.acc[..., a:a + eng.B]
        out += seg
        seg.fill(0)


# ---- torch ---------------------------------------------------------------------------------

class _TorchEngine(_Engine):
    """Torch engine (CPU or CUDA). The head segment keeps its ring position in device
    tensors and updates them in place, so a uniform plan is CUDA-graph capturable."""

    def __init__(self, plan: list[Partition], geom: _Geom, B: int, dtype: torch.dtype, device: torch.device) -> None:
        super().__init__(plan, geom, B)
        g = geom
        self.rdt = dtype
        self.cdt = torch.complex64 if dtype == torch.float32 else torch.complex128
        self.device = device
        kw = dict(device=device)
        if self.tails:
            self.hist = torch.zeros(g.batch, g.cin, 2 * self.N, dtype=dtype, **kw)
        else:
            self.xin = torch.zeros(g.batch, g.cin, 2 * B, dtype=dtype, **kw)
        self.w = 0
        self.X: list[torch.Tensor] = []
        self.Xmm: list[torch.Tensor] = []
        self.S: list[torch.Tensor] = []
        self.Sv: list[torch.Tensor] = []
        self.pos_t: list[torch.Tensor] = []   # device ring position (write slot)
        self.idx_t: list[torch.Tensor] = []   # device gather index into Hd for the current position
        self.off_t: list[torch.Tensor] = []
        self.base: list[torch.Tensor] = []
        for p in plan:
            F = p.size + 1
            X = torch.zeros(F, g.G, g.batch, g.crow, p.count, g.I, dtype=self.cdt, **kw)
            self.X.append(X)
            self.Xmm.append(X.view(F, g.G, g.R, p.count * g.I))
            S = torch.zeros(g.batch, g.cin, F, dtype=self.cdt, **kw)
            self.S.append(S)
            # [batch, cin, F] -> [F, G, batch, crow, 1, I]
            self.Sv.append(S.view(g.batch, g.G, g.crow, g.I, F).permute(4, 1, 0, 2, 3).unsqueeze(4))
            self.pos_t.append(torch.zeros(1, dtype=torch.long, **kw))
            base = torch.arange(p.count, dtype=torch.long, **kw)
            self.base.append(base)
            self.off_t.append(torch.full((1,), p.count - 1, dtype=torch.long, **kw))
            self.idx_t.append(base + (p.count - 1))
        self.sides = [_TorchSide(self, i) for i in range(2)]

    def reset(self) -> None:
        if self.tails:
            self.hist.zero_()
        else:
            self.xin.zero_()
        self.w = 0
        self.n_blocks = 0
        for s, p in enumerate(self.plan):
            self.X[s].zero_()
            self.pos_t[s].zero_()
            self.off_t[s].fill_(p.count - 1)
            torch.add(self.base[s], self.off_t[s], out=self.idx_t[s])
        for sd in self.sides:
            sd.acc.zero_()

    def step_input(self, block: torch.Tensor) -> None:
        B = self.B
        if self.tails:
            N, w = self.N, self.w
            self.hist[..., w:w + B].copy_(block)
            self.hist[..., w + N:w + N + B].copy_(block)
        else:
            self.xin[..., :B].copy_(self.xin[..., B:])
            self.xin[..., B:].copy_(block)

    def fft_segment(self, s: int) -> None:
        p = self.plan[s]
        if self.tails:
            end = self.w + self.B + self.N
            win = self.hist[..., end - 2 * p.size:end]
        else:
            win = self.xin
        torch.fft.rfft(win, dim=-1, out=self.S[s])
        self.X[s].index_copy_(4, self.pos_t[s], self.Sv[s])

    def advance(self, done: list[int]) -> None:
        for s in done:
            K = self.plan[s].count
            self.pos_t[s].add_(1).remainder_(K)
            self.off_t[s].sub_(1).remainder_(K)
            torch.add(self.base[s], self.off_t[s], out=self.idx_t[s])
        self.w = (self.w + self.B) % self.N
        self.n_blocks += 1


class _TorchSide:
    def __init__(self, eng: _TorchEngine, index: int) -> None:
        g = eng.g
        self.eng = eng
        kw = dict(device=eng.device)
        self.Hd: list[torch.Tensor] = []
        self.Hw: list[torch.Tensor] = []
        self.Y: list[torch.Tensor] = []
        self.yt: list[torch.Tensor] = []
        self.ytv: list[torch.Tensor] = []
        for p in eng.plan:
            F = p.size + 1
            self.Hd.append(torch.zeros(F, g.G, 2 * p.count - 1, g.I, g.O, dtype=eng.cdt, **kw))
            self.Hw.append(torch.zeros(F, g.G, p.count, g.I, g.O, dtype=eng.cdt, **kw))
            self.Y.append(torch.zeros(F, g.G, g.R, g.O, dtype=eng.cdt, **kw))
            yt = torch.zeros(2 * p.size, g.G, g.R, g.O, dtype=eng.rdt, **kw)
            self.yt.append(yt)
            v = yt[p.size:].reshape(p.size, g.G, g.batch, g.crow, g.O).permute(2, 1, 3, 4, 0)
            self.ytv.append(_chan_view(v, _pick_axis(v.shape)))
        self.acc = torch.zeros(g.batch, g.cout, eng.Nacc if eng.tails else 1, dtype=eng.rdt, **kw)

    def load(self, irg: torch.Tensor) -> None:
        for s, p in enumerate(self.eng.plan):
            self.Hd[s].copy_(_segment_spectra(irg, p).to(self.eng.cdt))
        self.acc.zero_()

    def compute(self, s: int, out: torch.Tensor) -> None:
        eng = self.eng
        p = eng.plan[s]
        g = eng.g
        torch.index_select(self.Hd[s], 2, eng.idx_t[s], out=self.Hw[s])
        torch.matmul(eng.Xmm[s], self.Hw[s].view(p.size + 1, g.G, p.count * g.I, g.O), out=self.Y[s])
        torch.fft.irfft(self.Y[s], n=2 * p.size, dim=0, out=self.yt[s])
        if s == 0:
            out.copy_(self.ytv[0])
            return
        t = (eng.n_blocks + 1) * eng.B
        a = (t - p.size + p.offset) % eng.Nacc
        n1 = min(p.size, eng.Nacc - a)
        y = self.ytv[s]
        self.acc[..., a:a + n1].add_(y[..., :n1])
        if n1 < p.size:
            self.acc[..., :p.size - n1].add_(y[..., n1:])

    def emit(self, out: torch.Tensor) -> None:
        eng = self.eng
        a = (eng.n_blocks * eng.B) % eng.Nacc
        seg = self.acc[..., a:a + eng.B]
        out.add_(seg)
        seg.zero_()


# ---------------------------------------------------------------------------------------------
# Public streaming class
# ---------------------------------------------------------------------------------------------

class PartitionedConvolver:
    """Streaming convolution with a long impulse response, block by block.

    Output equals ``fftconvolve(x, ir)[..., :n]`` for the concatenated input:
    **zero added latency** (each block is returned convolved in the same call);
    the only delay is the block buffering of the caller.

    Args:
        ir: impulse response: ``[L]`` / ``[1, L]`` shared by all channels,
            ``[C, L]`` one per channel, or ``[C_out, C_in, L]`` MIMO matrix
            (true stereo is ``[2, 2, L]``). Taps in samples.
        partition: ``"auto"`` (non-uniform on the CPU, uniform on CUDA),
            ``"uniform"`` (one FDL of block-sized partitions), ``"nonuniform"``
            (block-sized head partitions, growing tail partitions; see
            :func:`plan_partitions`), or an explicit list of :class:`Partition`.
        device: ``"auto" | "cpu" | "cuda" | "cuda:N"``; ``None`` = device of ``ir``.
        backend: ``"auto"`` (numpy on the CPU, torch on CUDA), ``"numpy"`` or ``"torch"``.
        max_ir_length: capacity in taps for later :meth:`set_ir` calls (default: ``L``).
        check_finite: scan each block for NaN/Inf in :meth:`process` (one reduction;
            default True on the numpy backend, False on torch where it would force
            a host sync). A non-finite sample otherwise poisons the state until :meth:`reset`.
        max_partition: largest partition of the non-uniform plan (samples).

    Usage::

        conv = PartitionedConvolver(ir)                 # ir [96000]
        conv.prepare(block_size=128, channels=2, batch=1)
        y = conv.process(block)                         # block [1, 2, 128] -> [1, 2, 128]
    """

    def __init__(self, ir: ArrayLike, *, partition: str | Sequence[Partition] = "auto", device: DeviceLike = None,
                 backend: str = "auto", max_ir_length: int | None = None, check_finite: bool | None = None,
                 max_partition: int = 4096) -> None:
        irt = check_audio(ir, "ir", max_ndim=3)
        if irt.ndim == 2 and irt.shape[0] == 1:
            irt = irt[0]
        self.layout = {1: "shared", 2: "per_channel", 3: "matrix"}[irt.ndim]
        self.device = irt.device if device is None else resolve_device(device)
        self._requested = device
        if backend not in ("auto", "numpy", "torch"):
            raise InvalidParameter(f"backend={backend!r} is not supported; accepted: 'auto', 'numpy', 'torch'")
        if backend == "numpy" and self.device.type != "cpu":
            raise InvalidParameter(f"backend='numpy' runs on the CPU only, but device is {self.device}")
        self.backend = ("numpy" if self.device.type == "cpu" else "torch") if backend == "auto" else backend
        if self.backend == "numpy" and np.lib.NumpyVersion(np.__version__) < "2.0.0":
            self.backend = "torch"  # numpy.fft gained out= in numpy 2.0
        dt = irt.dtype if irt.dtype in (torch.float32, torch.float64) else torch.float32
        self.dtype = dt
        self.ir = irt.detach().to(device="cpu", dtype=torch.float64).clone()
        self.ir_length = int(irt.shape[-1])
        self.capacity = int(max_ir_length or self.ir_length)
        if self.capacity < self.ir_length:
            raise InvalidParameter(f"max_ir_length={max_ir_length} is shorter than the IR ({self.ir_length} taps)")
        self.partition = partition
        self.max_partition = int(max_partition)
        self.check_finite = (self.backend == "numpy") if check_finite is None else bool(check_finite)
        self.block_size: int | None = None
        self.latency = 0
        """Algorithmic latency in samples beyond the block (always 0)."""
        self._eng: _NumpyEngine | _TorchEngine | None = None

    # -- set-up ---------------------------------------------------------------------------
    @property
    def plan(self) -> list[Partition]:
        """The partition plan in use (after :meth:`prepare`)."""
        if self._eng is None:
            raise InvalidParameter("call prepare() first")
        return self._eng.plan

    def prepare(self, block_size: int, channels: int | None = None, batch: int = 1) -> None:
        """Allocate all buffers for blocks of ``block_size`` samples shaped ``[batch, channels, block_size]``.

        Args:
            block_size: frames per :meth:`process` call (fixed from now on).
            channels: input channels. Shared IR: any (default 1); per-channel IR:
                must equal ``C`` (default); matrix IR: must equal ``C_in`` (default).
            batch: independent streams processed together.
        """
        B = int(block_size)
        if B < 1:
            raise InvalidParameter(f"block_size must be >= 1, got {block_size}")
        if batch < 1:
            raise InvalidParameter(f"batch must be >= 1, got {batch}")
        ir = self.ir
        if self.layout == "shared":
            c = 1 if channels is None else int(channels)
            geom = _Geom(batch, c, c, 1, c, 1, 1)
        elif self.layout == "per_channel":
            c = ir.shape[0] if channels is None else int(channels)
            if c != ir.shape[0]:
                raise InvalidParameter(f"the IR has {ir.shape[0]} channels ([C, L] = one IR per channel) but channels={channels}")
            geom = _Geom(batch, c, c, c, 1, 1, 1)
        else:
            co, ci = ir.shape[0], ir.shape[1]
            c = ci if channels is None else int(channels)
            if c != ci:
                raise InvalidParameter(f"the IR matrix is [C_out={co}, C_in={ci}, L] but channels={channels}")
            geom = _Geom(batch, ci, co, 1, 1, ci, co)
        if c < 1:
            raise InvalidParameter(f"channels must be >= 1, got {channels}")
        if isinstance(self.partition, str):
            scheme = self.partition
            if scheme == "auto":
                scheme = "nonuniform" if self.backend == "numpy" else "uniform"
            plan = plan_partitions(self.capacity, B, scheme, max_partition=max(self.max_partition, B))
        else:
            plan = _check_plan(self.partition, B, self.capacity)
        if self.backend == "numpy":
            eng: Any = _NumpyEngine(plan, geom, B, np.float32 if self.dtype == torch.float32 else np.float64)
            self._out = torch.zeros(batch, geom.cout, B, dtype=self.dtype)
            self._outn = self._out.numpy()
            self._tmp = np.zeros((batch, geom.cout, B), eng.rdt)
            self._tmp2 = np.zeros((batch, geom.cout, B), eng.rdt)
        else:
            eng = _TorchEngine(plan, geom, B, self.dtype, self.device)
            self._out = torch.zeros(batch, geom.cout, B, dtype=self.dtype, device=self.device)
            self._outn = None
            self._tmp = torch.zeros(batch, geom.cout, B, dtype=self.dtype, device=self.device)
            self._tmp2 = torch.zeros(batch, geom.cout, B, dtype=self.dtype, device=self.device)
        self._eng = eng
        self._calls = 0
        telemetry.record("dsp.PartitionedConvolver.prepare", self.device, 0.0, requested=self._requested)
        self.block_size = B
        self.geom = geom
        self._irg = _ir_groups(self._padded(self.ir), self.layout)
        eng.sides[0].load(self._irg)
        self._active = 0
        self._xf_pending: tuple[np.ndarray | torch.Tensor, int] | None = None
        self._xf: list[Any] | None = None   # [ramp, warm_blocks_left, ramp_pos]
        self._views2 = (self._out[0], self._outn[0] if self._outn is not None else None)
        self._views1 = (self._out[0, 0], self._outn[0, 0] if self._outn is not None else None)

    def _padded(self, ir: torch.Tensor) -> torch.Tensor:
        if ir.shape[-1] == self.capacity:
            return ir
        pad = torch.zeros(*ir.shape[:-1], self.capacity, dtype=ir.dtype)
        pad[..., :ir.shape[-1]] = ir
        return pad

    def reset(self) -> None:
        """Clear the signal history (keeps the IR and buffers)."""
        if self._eng is None:
            raise InvalidParameter("call prepare() first")
        self._eng.reset()
        self._xf = None
        self._xf_pending = None

    @property
    def warmup_blocks(self) -> int:
        """Blocks a new IR runs in parallel before its crossfade starts (0 for uniform plans)."""
        eng = self._eng
        if eng is None or not eng.tails:
            return 0
        return -(-max(p.offset for p in eng.plan[1:]) // eng.B)

    def set_ir(self, new_ir: ArrayLike, crossfade: int = 0) -> None:
        """Replace the impulse response without a click.

        The new IR runs in parallel with the old one (they share the input
        spectra, so its output is the new IR convolved with the *whole* past
        input); after :attr:`warmup_blocks` blocks (0 with a uniform plan) the
        output crosses linearly from old to new over ``crossfade`` samples:
        ``y = (1 - g) y_old + g y_new`` with ``g[k] = (k + 1) / (crossfade + 1)``;
        then the old IR stops. Call it from a control thread; heavy work (IR
        FFTs) happens here, the audio thread only flips state.

        Args:
            new_ir: same layout and channel counts as the current IR, at most
                ``max_ir_length`` taps.
            crossfade: length of the crossfade in samples (0: switch at once).
        """
        if self._eng is None:
            raise InvalidParameter("call prepare() first")
        if self._xf is not None or self._xf_pending is not None:
            raise InvalidParameter("an IR change is still in progress; wait for it to finish (see crossfading)")
        if crossfade < 0:
            raise InvalidParameter(f"crossfade must be >= 0 samples, got {crossfade}")
        t = check_audio(new_ir, "new_ir", max_ndim=3)
        if t.ndim == 2 and t.shape[0] == 1 and self.layout == "shared":
            t = t[0]
        if t.ndim != self.ir.ndim or t.shape[:-1] != self.ir.shape[:-1]:
            raise InvalidParameter(f"new_ir shaped {list(t.shape)} does not match the current IR layout {list(self.ir.shape[:-1])} + [L]")
        if t.shape[-1] > self.capacity:
            raise InvalidParameter(f"new_ir has {t.shape[-1]} taps but the convolver was built for at most {self.capacity} (max_ir_length)")
        new = t.detach().to(device="cpu", dtype=torch.float64).clone()
        B = self._eng.B
        nb = -(-crossfade // B) if crossfade > 0 else 0
        g = np.ones(max(1, nb) * B, np.float64)
        if crossfade > 0:
            g[:crossfade] = (np.arange(crossfade) + 1.0) / (crossfade + 1.0)
        if self.backend == "numpy":
            ramp: Any = g.astype(self._eng.rdt)
        else:
            ramp = torch.from_numpy(g).to(device=self.device, dtype=self.dtype)
        standby = self._eng.sides[1 - self._active]
        standby.load(_ir_groups(self._padded(new), self.layout))
        self.ir = new
        self.ir_length = int(new.shape[-1])
        self._xf_pending = (ramp, nb)   # published last: the audio thread picks it up

    @property
    def crossfading(self) -> bool:
        """True while an IR change (warm-up or crossfade) is in progress."""
        return self._xf is not None or self._xf_pending is not None

    # -- processing -----------------------------------------------------------------------
    def process(self, block: ArrayLike, out: ArrayLike | None = None) -> ArrayLike:
        """Convolve one block; returns the output block (same shape and type as *block*).

        Args:
            block: ``[batch, channels, block_size]`` (or ``[channels, block_size]``
                / ``[block_size]`` when batch is 1 / batch and channels are 1),
                numpy or a tensor on the convolver's device.
            out: optional destination of the output shape; else an internal
                buffer is returned that the next call overwrites.
        """
        eng = self._eng
        if eng is None:
            raise InvalidParameter("call prepare() first")
        t0 = time.perf_counter()
        g = self.geom
        nd = block.ndim
        ok = (nd == 3 and block.shape == (g.batch, g.cin, eng.B)) or (nd == 2 and g.batch == 1 and block.shape == (g.cin, eng.B)) \
            or (nd == 1 and g.batch == 1 and g.cin == 1 and block.shape[0] == eng.B)
        if not ok:
            raise InvalidAudio(f"block has shape {list(block.shape)}; this convolver was prepared for "
                               f"[{g.batch}, {g.cin}, {eng.B}] ([batch, channels, block_size])")
        if self.backend == "numpy":
            xb = block if isinstance(block, np.ndarray) else block.detach().numpy()
            if self.check_finite and not math.isfinite(float(np.add.reduce(xb, axis=None))):
                raise InvalidAudio("block contains NaN or Inf samples; audio must be finite")
            dst = self._outn
            self._run(xb, dst)
            if out is not None:
                o = out if isinstance(out, np.ndarray) else out.detach().numpy()
                np.copyto(o, dst if nd == 3 else (self._views2[1] if nd == 2 else self._views1[1]))
                res = out
            elif isinstance(block, np.ndarray):
                res = dst if nd == 3 else (self._views2[1] if nd == 2 else self._views1[1])
            else:
                res = self._out if nd == 3 else (self._views2[0] if nd == 2 else self._views1[0])
        else:
            xt = block if isinstance(block, torch.Tensor) else torch.from_numpy(block)
            if xt.device != self.device or xt.dtype != self.dtype:
                raise InvalidAudio(f"block is {xt.dtype} on {xt.device}; this convolver runs {self.dtype} on {self.device}")
            if self.check_finite:
                check_finite(xt, "block")
            self._run(xt, self._out)
            view = self._out if nd == 3 else (self._views2[0] if nd == 2 else self._views1[0])
            if out is not None:
                (out if isinstance(out, torch.Tensor) else torch.from_numpy(out)).copy_(view)
                res = out
            else:
                res = view if isinstance(block, torch.Tensor) else view.numpy()
        self._calls += 1
        if self._calls & 1023 == 1:  # the first call and every 1024th: keeps the lock off most blocks
            telemetry.record("dsp.PartitionedConvolver.process", self.device, time.perf_counter() - t0, requested=self._requested)
        return res

    def _run(self, block: Any, dst: Any) -> None:
        eng = self._eng
        assert eng is not None
        if self._xf_pending is not None:
            ramp, nb = self._xf_pending
            self._xf = [ramp, self.warmup_blocks, 0]
            self._xf_pending = None
        eng.step_input(block.reshape(eng.g.batch, eng.g.cin, eng.B) if block.ndim != 3 else block)
        nb1 = eng.n_blocks + 1
        done = [s for s, m in enumerate(eng.period) if nb1 % m == 0]
        for s in done:
            eng.fft_segment(s)
        act = eng.sides[self._active]
        self._side_out(act, done, dst)
        xf = self._xf
        if xf is not None:
            new = eng.sides[1 - self._active]
            tmp = self._tmp
            self._side_out(new, done, tmp)
            if xf[1] > 0:
                xf[1] -= 1
            else:
                ramp, _, rp = xf
                gb = ramp[rp:rp + eng.B]
                if self.backend == "numpy":
                    np.subtract(tmp, dst, out=tmp)
                    np.multiply(tmp, gb, out=tmp)
                    np.add(dst, tmp, out=dst)
                else:
                    tmp.sub_(dst).mul_(gb)
                    dst.add_(tmp)
                xf[2] = rp + eng.B
                if xf[2] >= ramp.shape[0]:
                    self._active = 1 - self._active
                    self._xf = None
        eng.advance(done)

    @staticmethod
    def _side_out(side: Any, done: list[int], dst: Any) -> None:
        # tails first (they may fall due inside the current block), then the head
        for s in done[1:] if done and done[0] == 0 else done:
            side.compute(s, dst)
        side.compute(0, dst)
        if side.eng.tails:
            side.emit(dst)

    def __repr__(self) -> str:
        plan = "unprepared" if self._eng is None else ", ".join(f"{p.count}x{p.size}" for p in self._eng.plan)
        return (f"PartitionedConvolver(layout={self.layout}, ir_length={self.ir_length}, backend={self.backend}, "
                f"device={self.device}, plan=[{plan}])")
