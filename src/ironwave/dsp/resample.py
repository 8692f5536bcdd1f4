"""Rational-ratio resampling by polyphase filtering with a Kaiser-windowed sinc.

``resample(x, orig_sr, new_sr)`` converts ``[..., time]`` audio between any two
integer rates: the ratio is reduced to ``L / M`` (48000 -> 44100 is 147 / 160).
Output sample ``m`` sits at input time ``m * M / L`` samples (sample 0 stays
aligned, zero-phase, like ``scipy.signal.resample_poly`` and ``julius``); the
output has ``ceil(n * L / M)`` samples; the signal is zero-extended at both ends.

Filter: ``h(tau) = c * sinc(c * tau) * kaiser(tau / (zeros / c), beta)`` with
cutoff ``c = rolloff * min(1, L / M)`` (fraction of the input Nyquist rate) and
``zeros`` zero crossings on each side, i.e. ``2 * ceil(zeros / c) + 2`` taps per
output sample.

Efficient form: output phase ``r`` (``m = q * L + r``) reads input samples
``q * M + base_r + j``, ``base_r = floor(r * M / L)``. The phases are split into
``G`` contiguous groups; each group is ONE matrix product of an ``as_strided``
view of the (once padded) input, rows ``q`` with stride ``M``, by a
``[taps + span_g, phases_g]`` weight matrix, written straight into its columns
of the ``[.., q, L]`` output (which *is* the time-major output layout, no
transpose). ``G = 1`` is the classic single-call form (weight ``[M + taps, L]``);
``G`` is chosen by a cost model (more groups on the CPU, where FLOPs are dear;
fewer on CUDA, where the strided-copy traffic is). No Python loop over samples.
On CUDA, float32 without autograd runs a Triton kernel of the same product instead
(:mod:`ironwave.dsp._resample_triton`; ``backend=`` selects).

Streaming: :class:`Resampler` gives block-by-block output equal to the offline
output for any block sizes, with :attr:`Resampler.latency` samples of delay.
Engine face: :meth:`Resampler.prepare` / :meth:`Resampler.process` (fixed input
block, a variable number of whole ``L``-sample output groups written into a
preallocated buffer; the count is returned; no tensor allocated per call).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F

from ironwave.dsp._optional import kernel_failed, optional_module
from ironwave.backend.device import BackendUnavailable, DeviceLike
from ironwave.backend.telemetry import telemetry
from ironwave.backend.validate import as_tensor, check_audio, check_finite, restore_type
from ironwave.dsp.stft import _pos_int, _rt_input, _rt_setup, _RTCounter, record_ran, run_device
from ironwave.dsp.windows import finite_fast
from ironwave.errors import InvalidAudio, InvalidParameter

MAX_PHASES = 4096
DEFAULT_ZEROS = 64
DEFAULT_ROLLOFF = 0.93
DEFAULT_BETA = 13.0


def _rate(v: Any, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        raise InvalidParameter(f"{name} must be a positive integer rate in Hz, got {v!r}")
    if float(v) <= 0:
        raise InvalidParameter(f"{name} must be positive (Hz), got {v!r}")
    if float(v) != int(v):
        raise InvalidParameter(f"{name} must be a whole number of Hz for rational resampling, got {v!r}")
    return int(v)


def ratio(orig_sr: int, new_sr: int) -> tuple[int, int]:
    """Reduced ``(L, M)`` with ``new_sr / orig_sr = L / M``."""
    a, b = _rate(orig_sr, "orig_sr"), _rate(new_sr, "new_sr")
    g = math.gcd(a, b)
    return b // g, a // g


@dataclass
class PolyphasePlan:
    """A designed polyphase resampler for one ratio ``L / M`` (see module docs).

    Attributes:
        up / down: ``L`` and ``M``.
        taps: nonzero-capable taps per phase (``2 * half``).
        half: ``ceil(zeros / cutoff) + 1``; the input is left-padded by ``half - 1``.
        cutoff: lowpass cutoff as a fraction of the input Nyquist rate.
        h: ``[L, taps]`` float64 polyphase coefficients (row r = phase r).
        base: ``[L]`` integer offsets ``floor(r * M / L)``.
        groups: ``(r0, r1, b0, width)`` per phase group.
        reach: padded input samples that frame ``q = 0`` reads (max over groups of ``b0 + width``).
    """

    up: int
    down: int
    zeros: float
    rolloff: float
    beta: float
    taps: int
    half: int
    cutoff: float
    h: torch.Tensor
    base: list[int]
    groups: list[tuple[int, int, int, int]]
    reach: int
    _weights: dict[tuple[str, str], list[torch.Tensor]] = field(default_factory=dict, repr=False)

    @property
    def left_pad(self) -> int:
        return self.half - 1

    def weights(self, dtype: torch.dtype, device: torch.device) -> list[torch.Tensor]:
        """Group weight matrices ``[width_g, r1 - r0]`` on ``device`` (cached)."""
        key = (str(dtype), str(device))
        w = self._weights.get(key)
        if w is None:
            w = []
            for r0, r1, b0, width in self.groups:
                m = torch.zeros(width, r1 - r0, dtype=torch.float64)
                for r in range(r0, r1):
                    o = self.base[r] - b0
                    m[o:o + self.taps, r - r0] = self.h[r]
                w.append(m.to(device=device, dtype=dtype))
            self._weights[key] = w
        return w

    def out_length(self, n: int) -> int:
        """Output samples for ``n`` input samples: ``ceil(n * L / M)``."""
        return -(-n * self.up // self.down)


def _kaiser_sinc(tau: torch.Tensor, cutoff: float, zeros: float, beta: float) -> torch.Tensor:
    hw = zeros / cutoff
    x = tau / hw
    inside = x.abs() < 1.0
    win = torch.special.i0(beta * torch.sqrt(torch.clamp(1.0 - x * x, min=0.0))) / torch.special.i0(torch.tensor(beta, dtype=torch.float64))
    h = cutoff * torch.sinc(cutoff * tau) * win
    return torch.where(inside, h, torch.zeros_like(h))


def _auto_groups(L: int, M: int, taps: int, device_type: str) -> int:
    # cost per output block q: MACs  L * (taps + M / G)  +  c * copied floats  (G * taps + M)
    c = 80.0 if device_type == "cuda" else 4.0
    g = math.sqrt(L * M / (c * taps)) if taps else 1.0
    return int(max(1, min(L, round(g))))


_PLANS: dict[tuple, PolyphasePlan] = {}


def design(orig_sr: int, new_sr: int, *, zeros: float = DEFAULT_ZEROS, rolloff: float = DEFAULT_ROLLOFF,
           beta: float = DEFAULT_BETA, groups: Optional[int] = None, device_type: str = "cpu") -> PolyphasePlan:
    """Design (or fetch from cache) the polyphase plan for ``orig_sr -> new_sr``.

    Args:
        orig_sr / new_sr: rates in Hz (positive integers).
        zeros: zero crossings of the sinc on each side (>= 1); more = sharper.
        rolloff: cutoff as a fraction of the lower Nyquist rate, ``0 < rolloff <= 1``.
        beta: Kaiser window shape (>= 0); larger = lower sidelobes, wider transition.
        groups: number of phase groups (``None``: cost model for ``device_type``).
    """
    L, M = ratio(orig_sr, new_sr)
    if L > MAX_PHASES:
        raise InvalidParameter(f"{orig_sr} Hz -> {new_sr} Hz reduces to {L}/{M}: {L} phases exceed the limit of {MAX_PHASES}; "
                               "resample through an intermediate rate with a simpler ratio")
    if isinstance(zeros, bool) or not isinstance(zeros, (int, float)) or not math.isfinite(zeros) or zeros < 1:
        raise InvalidParameter(f"zeros must be a number >= 1 (zero crossings per side), got {zeros!r}")
    if isinstance(rolloff, bool) or not isinstance(rolloff, (int, float)) or not (0 < rolloff <= 1):
        raise InvalidParameter(f"rolloff must be in (0, 1] (fraction of the lower Nyquist rate), got {rolloff!r}")
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not math.isfinite(beta) or beta < 0:
        raise InvalidParameter(f"beta must be a finite number >= 0 (Kaiser shape), got {beta!r}")
    if groups is not None and (isinstance(groups, bool) or not isinstance(groups, int) or groups < 1):
        raise InvalidParameter(f"groups must be a positive integer or None, got {groups!r}")
    key = (L, M, float(zeros), float(rolloff), float(beta), groups, device_type)
    plan = _PLANS.get(key)
    if plan is not None:
        return plan
    cutoff = float(rolloff) * min(1.0, L / M)
    half = int(math.ceil(zeros / cutoff)) + 1
    taps = 2 * half
    r = torch.arange(L, dtype=torch.int64)
    base = ((r * M) // L).tolist()
    frac = ((r * M) % L).to(torch.float64) / L
    j = torch.arange(taps, dtype=torch.float64)
    tau = frac[:, None] + (half - 1) - j[None, :]
    h = _kaiser_sinc(tau, cutoff, float(zeros), float(beta))
    G = groups if groups is not None else _auto_groups(L, M, taps, device_type)
    G = min(G, L)
    bounds = [round(i * L / G) for i in range(G + 1)]
    grp = []
    for i in range(G):
        r0, r1 = bounds[i], bounds[i + 1]
        if r1 <= r0:
            continue
        b0 = base[r0]
        width = base[r1 - 1] - b0 + taps
        grp.append((r0, r1, b0, width))
    reach = max(b0 + w for _, _, b0, w in grp)
    plan = PolyphasePlan(L, M, float(zeros), float(rolloff), float(beta), taps, half, cutoff, h, base, grp, reach)
    if len(_PLANS) > 64:
        _PLANS.clear()
    _PLANS[key] = plan
    return plan


def _apply(xp: torch.Tensor, plan: PolyphasePlan, Q: int) -> torch.Tensor:
    """Core: ``xp [R, n]`` already left-padded; compute ``Q`` output blocks -> ``[R, Q * L]``.

    ``xp`` must hold at least ``(Q - 1) * M + reach`` samples per row (zero-extend first).
    """
    R = xp.shape[0]
    L, M = plan.up, plan.down
    if Q <= 0:
        return xp.new_zeros(R, 0)
    # row-uniform buffer: each signal gets `rows` frames of stride M; frames q >= Q are junk
    rows = Q + -(-plan.reach // M)
    S = rows * M
    need = (Q - 1) * M + plan.reach
    seg = xp[:, :need]
    buf = F.pad(seg, (0, S - seg.shape[1]))
    flat = buf.reshape(-1)
    nrows = (R - 1) * rows + Q
    ws = plan.weights(xp.dtype, xp.device)
    grad = torch.is_grad_enabled() and xp.requires_grad
    if grad:
        parts = [flat.as_strided((nrows, width), (M, 1), b0) @ w for (r0, r1, b0, width), w in zip(plan.groups, ws)]
        out = torch.cat(parts, dim=1)
    else:
        out = torch.empty(nrows, L, dtype=xp.dtype, device=xp.device)
        for (r0, r1, b0, width), w in zip(plan.groups, ws):
            a = flat.as_strided((nrows, width), (M, 1), b0)
            torch.mm(a, w, out=out[:, r0:r1])
    # signal r's block q is row r * rows + q
    y = out.as_strided((R, Q * L), (rows * L, 1))
    return y


_TRITON_MOD = "ironwave.dsp._resample_triton"


def _triton_module() -> Any:
    """:mod:`ironwave.dsp._resample_triton`, or None when Triton cannot be imported or its
    kernel failed once (checked once per process)."""
    return optional_module(_TRITON_MOD)


def _run_triton(x2: torch.Tensor, plan: PolyphasePlan, backend: str,
                flag: Optional[torch.Tensor] = None) -> Optional[torch.Tensor]:
    """The Triton kernel's output, or None (then the torch path runs): ``backend="auto"``
    falls back when the kernel is unavailable or fails (warning once), ``"triton"`` raises."""
    mod = _triton_module()
    if mod is None:
        if backend == "triton":
            raise BackendUnavailable("backend='triton' needs the 'triton' package (pip install triton) and a "
                                     "kernel that compiles on this GPU")
        return None
    try:
        y = mod.resample_triton(x2, plan, flag=flag)
    except mod.Unsupported:
        if backend == "triton":
            raise
        return None
    except Exception as e:  # a kernel that does not compile on this GPU/Triton: say so, use torch
        if backend == "triton":
            raise
        kernel_failed(_TRITON_MOD, "ironwave.dsp.resample", e, "the torch path",
                      counter="dsp.resample.backend.triton_failed", stacklevel=3)
        return None
    telemetry.count("dsp.resample.backend.triton")
    telemetry.count(f"dsp.resample.triton.{mod.default_precision()}")
    return y


def resample(x: Any, orig_sr: int, new_sr: int, *, zeros: float = DEFAULT_ZEROS, rolloff: float = DEFAULT_ROLLOFF,
             beta: float = DEFAULT_BETA, groups: Optional[int] = None, device: DeviceLike = "auto",
             backend: str = "auto") -> Any:
    """Resample ``[..., time]`` audio from ``orig_sr`` Hz to ``new_sr`` Hz.

    Args:
        x: real audio ``[..., time]`` (tensor or numpy).
        orig_sr / new_sr: rates in Hz (positive integers, any rational ratio with
            at most 4096 phases after reduction).
        zeros / rolloff / beta / groups: filter design, see :func:`design`.
        device: ``"auto"`` (calibrated crossover), ``"cpu"``, ``"cuda[:N]"``;
            the result comes back on the input's device.
        backend: ``"auto"``: on CUDA, float32 (also float16/bfloat16, computed in
            float32) without autograd and with Triton importable, the Triton kernel of
            :mod:`ironwave.dsp._resample_triton` (3xTF32 tensor-core products, ~float32
            accuracy; one TF32 product, ~1e-3, when torch's float32 matmul precision is
            ``"high"``/``"medium"``; a kernel failure warns once and falls back); the torch
            ``as_strided`` + ``mm`` path otherwise. ``"torch"``: always the torch path.
            ``"triton"``: the kernel or an error (``BackendUnavailable``). ``groups``
            only affects the torch path.

    Returns:
        ``[..., ceil(time * new_sr / orig_sr)]``, same dtype (float16/bfloat16 are
        computed in float32), numpy if numpy came in. Differentiable.
    """
    L, M = ratio(orig_sr, new_sr)
    if backend not in ("auto", "torch", "triton"):
        raise InvalidParameter(f"backend={backend!r}; accepted: 'auto', 'torch', 'triton'")
    t, was_numpy = as_tensor(x, "x")
    t = check_audio(t, "x", finite=False)
    batch_shape, n = t.shape[:-1], t.shape[-1]
    R = max(int(math.prod(batch_shape)), 1)
    home, dtype = t.device, t.dtype
    dev = run_device("resample", n, R, device, home)
    plan = design(orig_sr, new_sr, zeros=zeros, rolloff=rolloff, beta=beta, groups=groups, device_type=dev.type)
    work = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    t0 = time.perf_counter()
    if L == M:
        finite_fast(t, "x")
        y = t.to(dev).clone()
        record_ran("dsp.resample", y, t0, device)
        y = y.to(home)
    else:
        x2 = t.reshape(R, n).to(device=dev, dtype=work)
        n_out = plan.out_length(n)
        Q = -(-n_out // L)
        grad = torch.is_grad_enabled() and x2.requires_grad
        y = None
        if backend == "triton" and (dev.type != "cuda" or work != torch.float32 or grad):
            raise BackendUnavailable(f"backend='triton' runs on CUDA for float32 without autograd (got device {dev}, "
                                     f"dtype {dtype}, requires_grad={grad})")
        if backend != "torch" and dev.type == "cuda" and work == torch.float32 and not grad:
            # the kernel screens its output tiles for NaN/Inf (no separate pass over the input)
            flag = torch.zeros(1, dtype=torch.int32, device=dev)
            y = _run_triton(x2, plan, backend, flag)
            if y is not None and int(flag.item()):
                check_finite(t, "x")  # raises, naming the first bad sample (no-op on mere overflow)
        if y is None:
            finite_fast(t, "x")
            need = (Q - 1) * M + plan.reach
            xp = F.pad(x2, (plan.left_pad, max(need - n - plan.left_pad, 0)))
            y = _apply(xp, plan, Q)[:, :n_out]
            telemetry.count("dsp.resample.backend.torch")
        record_ran("dsp.resample", y, t0, device)
        y = y.reshape(*batch_shape, n_out).to(device=home, dtype=dtype)
    return restore_type(y, was_numpy)


class _ResampleRT:
    """Preallocated state of :meth:`Resampler.prepare` (see there)."""

    def __init__(self, plan: PolyphasePlan, block: int, channels: int, batch: int, dev: torch.device,
                 dtype: torch.dtype) -> None:
        L, M = plan.up, plan.down
        self.plan, self.B, self.C, self.N = plan, block, channels, batch
        self.device, self.dtype = dev, dtype
        R = batch * channels
        self.R = R
        self.identity = L == M
        self.q_max = (block - 1) // M + 1 if not self.identity else 0
        self.max_out = self.q_max * L if not self.identity else block
        kw = dict(dtype=dtype, device=dev)
        self.in_shape = (batch, channels, block)
        self.out = torch.zeros(batch, channels, self.max_out, **kw)
        self.out_np = self.out.numpy() if dev.type == "cpu" else None
        if self.identity:
            return
        self.cap = 2 * (plan.reach + block + M)
        self.hist = torch.zeros(R, self.cap, **kw)
        self.tmp = torch.zeros(R, plan.reach + M, **kw)
        self.ws = plan.weights(dtype, dev)
        wmax = max(width for _, _, _, width in plan.groups)
        self.scr = torch.zeros(R * self.q_max * wmax, **kw)
        self.yb = torch.zeros(R * self.q_max * L, **kw)
        self.reset()

    def reset(self) -> None:
        if self.identity:
            return
        self.hist.zero_()
        self.start, self.end = 0, self.plan.left_pad

    def step(self, x: torch.Tensor) -> int:
        """Consume one block; write the finished output samples to ``out[..., :n]``; return ``n``."""
        if self.identity:
            self.out.copy_(x)
            return self.B
        plan, B, R = self.plan, self.B, self.R
        L, M = plan.up, plan.down
        if self.end + B > self.cap:  # compact: move the (< reach) live samples to the front
            n = self.end - self.start
            self.tmp[:, :n].copy_(self.hist[:, self.start:self.end])
            self.hist[:, :n].copy_(self.tmp[:, :n])
            self.start, self.end = 0, n
        self.hist[:, self.end:self.end + B].view(self.N, self.C, B).copy_(x)
        self.end += B
        have = self.end - self.start
        Q = (have - plan.reach) // M + 1 if have >= plan.reach else 0
        if Q <= 0:
            return 0
        RQ = R * Q
        ybv = self.yb[: RQ * L].view(RQ, L)
        for (r0, r1, b0, width), w in zip(plan.groups, self.ws):
            src = self.hist.as_strided((R, Q, width), (self.cap, M, 1), self.start + b0)
            a = self.scr[: RQ * width].view(R, Q, width)
            a.copy_(src)  # overlapping frames -> dense rows (BLAS cannot read overlapping rows)
            torch.mm(a.view(RQ, width), w, out=ybv[:, r0:r1])
        self.out[..., : Q * L].copy_(self.yb[: RQ * L].view(self.N, self.C, Q * L))
        self.start += Q * M
        return Q * L


class Resampler(_RTCounter):
    """Streaming resampler: block-by-block output equals :func:`resample` of the whole signal.

    Push blocks of any size (including 0); each call returns the output samples
    that are final. :meth:`flush` zero-extends the end and returns the rest, so
    the concatenation has exactly ``ceil(n * L / M)`` samples.

    Args:
        orig_sr / new_sr / zeros / rolloff / beta / groups: as in :func:`resample`.
        device: where to compute (default: where the blocks are).

    Attributes:
        latency: worst-case delay in input samples between a sample arriving and
            the output at its time instant being returned (``reach - half + 1``).
        latency_out: the same in output samples.
    """

    def __init__(self, orig_sr: int, new_sr: int, *, zeros: float = DEFAULT_ZEROS, rolloff: float = DEFAULT_ROLLOFF,
                 beta: float = DEFAULT_BETA, groups: Optional[int] = None, device: DeviceLike = None) -> None:
        self.orig_sr, self.new_sr = _rate(orig_sr, "orig_sr"), _rate(new_sr, "new_sr")
        self.L, self.M = ratio(orig_sr, new_sr)
        self.device = device
        self._kw = dict(zeros=zeros, rolloff=rolloff, beta=beta, groups=groups)
        self.plan = design(orig_sr, new_sr, zeros=zeros, rolloff=rolloff, beta=beta, groups=groups)
        self._rt: Optional[_ResampleRT] = None
        self.reset()

    # -- engine face -----------------------------------------------------------
    def prepare(self, block_size: int, channels: int, batch: int = 1, device: DeviceLike = None, *,
                dtype: torch.dtype = torch.float32) -> None:
        """Preallocate everything :meth:`process` needs for input blocks ``[batch, channels, block_size]``.

        Any ``block_size >= 1`` works. Each call produces a whole number ``Q`` of
        ``L``-sample output groups, ``Q`` in ``{0 .. ceil(block_size / M)}``; on average
        ``block_size * L / M`` samples. :attr:`max_output` is the largest count.

        Args:
            block_size: input samples per call.
            channels / batch: the block's leading dims.
            device: where to run (default: the constructor's ``device``, else the CPU).
            dtype: ``torch.float32`` or ``torch.float64``.
        """
        B = _pos_int(block_size, "block_size", "samples")
        C = _pos_int(channels, "channels", "count")
        N = _pos_int(batch, "batch", "count")
        dev, _ = _rt_setup(device, self.device, dtype, "torch")
        kw = dict(self._kw)
        if kw["groups"] is None:  # per-call overhead (ops, launches) dominates small blocks: few groups
            q_max = (B - 1) // self.M + 1
            kw["groups"] = 1 if N * C * q_max <= 32 else 2
        plan = design(self.orig_sr, self.new_sr, device_type=dev.type, **kw)  # type: ignore[arg-type]
        self._rt = _ResampleRT(plan, B, C, N, dev, dtype)
        self._rt_reset(device if device is not None else self.device)
        telemetry.record("dsp.resample_stream.prepare", dev, 0.0, requested=self._rt_requested)

    @property
    def max_output(self) -> int:
        """Largest number of output samples one :meth:`process` call writes: ``ceil(block_size / M) * L``."""
        if self._rt is None:
            raise InvalidParameter("max_output is defined after prepare()")
        return self._rt.max_out

    @property
    def output_buffer(self) -> torch.Tensor:
        """The internal ``[batch, channels, max_output]`` buffer :meth:`process` writes into."""
        if self._rt is None:
            raise InvalidParameter("output_buffer is defined after prepare()")
        return self._rt.out

    def process(self, block: Any, out: Any = None) -> int:
        """Resample one block ``[batch, channels, block_size]``; return the number ``n`` of output samples.

        The samples are written to ``out[..., :n]`` when *out* is given (a tensor or
        array ``[batch, channels, >= max_output]`` on the prepared device), else to
        :attr:`output_buffer` ``[..., :n]``. ``n`` varies from call to call
        (rational ratio); the concatenation of the valid parts equals
        :func:`resample` of everything fed so far, minus its last samples (those
        wait for input that has not arrived: at most :attr:`latency_out` + ``L``).
        Allocates no tensor. NaN/Inf are not scanned for here.
        """
        rt = self._rt
        if rt is None:
            raise InvalidParameter("Resampler.process before prepare(block_size, channels, batch)")
        t0 = time.perf_counter()
        x, _ = _rt_input(block, rt.in_shape, rt.device, "block", "[batch, channels, block_size]", "Resampler")
        n = rt.step(x)
        if out is not None:
            if out.shape[:-1] != rt.in_shape[:-1] or out.shape[-1] < rt.max_out:
                raise InvalidAudio(f"Resampler.process: out has shape {list(out.shape)}; need "
                                   f"[{rt.N}, {rt.C}, >= {rt.max_out}] ([batch, channels, max_output])")
            if isinstance(out, np.ndarray):
                assert rt.out_np is not None
                np.copyto(out[..., :n], rt.out_np[..., :n])
            else:
                out[..., :n].copy_(rt.out[..., :n])
        self._rt_tick("dsp.resample_stream.process", rt.device, t0)
        return n

    @property
    def latency(self) -> int:
        return self.plan.reach - self.plan.left_pad if self.L != self.M else 0

    @property
    def latency_out(self) -> int:
        return -(-self.latency * self.L // self.M)

    def reset(self) -> None:
        """Forget all input (the next push starts a new signal)."""
        self._buf: Optional[torch.Tensor] = None
        self._n_in = 0
        self._n_out = 0
        self._finished = False
        if self._rt is not None:
            self._rt.reset()

    def _emit(self, final: bool) -> torch.Tensor:
        assert self._buf is not None
        plan = self.plan
        L, M = plan.up, plan.down
        batch = self._buf.shape[:-1]
        R = max(int(math.prod(batch)), 1)
        if final:
            total = plan.out_length(self._n_in)
            Q = -(-(total - self._n_out) // L) if total > self._n_out else 0
            need = (Q - 1) * M + plan.reach if Q > 0 else 0
            if self._buf.shape[-1] < need:
                self._buf = F.pad(self._buf, (0, need - self._buf.shape[-1]))
        else:
            have = self._buf.shape[-1]
            Q = (have - plan.reach) // M + 1 if have >= plan.reach else 0
            total = None
        if Q <= 0:
            return self._buf.new_zeros((*batch, 0))
        dev = self._buf.device if self.device is None else run_device("resample", self._buf.shape[-1], R, self.device, self._buf.device)
        p = plan if dev.type == "cpu" else design(self.orig_sr, self.new_sr, device_type=dev.type, **self._kw)  # type: ignore[arg-type]
        t0 = time.perf_counter()
        y = _apply(self._buf.reshape(R, -1).to(dev), p, Q)
        record_ran("dsp.resample_stream", y, t0, self.device)
        y = y.to(self._buf.device)
        self._buf = self._buf[..., Q * M:]
        if total is not None:
            y = y[:, : total - self._n_out]
        self._n_out += y.shape[-1]
        return y.reshape(*batch, -1)

    def push(self, block: Any) -> Any:
        """Add input ``[..., n]`` (any ``n >= 0``); return the output samples that are final."""
        t, was_numpy = as_tensor(block, "block")
        t = check_audio(t, "block", min_length=0, finite=False)
        finite_fast(t, "block")
        if self._finished:
            raise InvalidParameter("Resampler.push after flush(); call reset() to start a new signal")
        if t.dtype in (torch.float16, torch.bfloat16):
            t = t.to(torch.float32)
        if self._buf is None:
            self._buf = t.new_zeros((*t.shape[:-1], self.plan.left_pad))
        if t.shape[:-1] != self._buf.shape[:-1]:
            raise InvalidAudio(f"block has batch shape {list(t.shape[:-1])} but the stream started with {list(self._buf.shape[:-1])}")
        self._n_in += t.shape[-1]
        if self.L == self.M:
            self._n_out += t.shape[-1]
            return restore_type(t.clone(), was_numpy)
        self._buf = torch.cat([self._buf, t.to(self._buf.dtype)], dim=-1)
        return restore_type(self._emit(final=False), was_numpy)

    def flush(self) -> torch.Tensor:
        """End of signal: zero-extend and return the remaining output samples."""
        if self._buf is None:
            raise InvalidParameter("Resampler.flush before any push: no signal")
        if self._finished or self.L == self.M:
            self._finished = True
            return self._buf[..., :0]
        self._finished = True
        return self._emit(final=True)


__all__ = ["resample", "Resampler", "design", "ratio", "PolyphasePlan"]
