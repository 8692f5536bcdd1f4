"""Filtering with SOS cascades: functional :func:`sosfilt`, streaming :class:`SOSFilter`,
and :class:`SOSFilterBank` (series / parallel banks).

Backends (recorded in telemetry as ``iir.sosfilt`` plus a counter
``iir.sosfilt.backend.<name>``):

* ``"scipy"``: on the CPU, when nothing needs gradients, the well-kept C
  implementation :func:`scipy.signal.sosfilt` runs (float64 arithmetic; per-channel
  coefficients loop over channels).
* ``"triton"``: on CUDA for float32/float64 signals when nothing needs gradients
  and Triton is importable: the fused 3-pass kernels of
  :mod:`ironwave.dsp.iir._triton` (per-chunk recurrences with a float64 state;
  about 3 passes over the signal).
* ``"scan"``: everywhere else (autograd, other dtypes, no Triton, or
  ``backend="scan"``) the block-parallel state-space evaluation of
  :mod:`ironwave.dsp.iir._statespace`: a few batched matmuls per call, no
  per-sample loop.
"""
from __future__ import annotations

import math
import time
from typing import Any, Literal, Sequence

import numpy as np
import torch

from ironwave.dsp._optional import kernel_failed, loaded, optional_module
from ironwave.backend.device import DeviceLike, choose_device, resolve_device
from ironwave.backend.telemetry import telemetry
from ironwave.backend.validate import as_tensor, check_audio, check_finite
from ironwave.errors import BackendUnavailable, InvalidAudio, InvalidParameter

from . import _statespace as ssp
from .design import SOSLike, check_stable, normalize_sos

__all__ = ["sosfilt", "SOSFilter", "SOSFilterBank", "clear_plan_cache", "IDENTITY_SECTION"]

Backend = Literal["auto", "scipy", "scan", "triton"]
IDENTITY_SECTION = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)
_CACHE = ssp.PlanCache(32)


_TRITON_MOD = "ironwave.dsp.iir._triton"


def _triton_module() -> Any:
    """The Triton kernels module, or None when Triton cannot be imported (checked once)."""
    return optional_module(_TRITON_MOD)


def clear_plan_cache() -> None:
    """Forget cached chunk/scan matrices (they are rebuilt on demand)."""
    _CACHE.clear()
    mod = loaded(_TRITON_MOD)
    if mod is not None:
        mod.clear_cache()


# --------------------------------------------------------------------------- helpers
def _check_finite_fast(x: torch.Tensor, name: str) -> None:
    """Reject NaN/Inf with one reduction (numpy on the CPU: torch's elementwise
    kernels are slow on a loaded small CPU); the exact per-element check runs only
    when the sum is not finite (NaN/Inf, or an overflow of huge finite values)."""
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
        total = float(np.sum(x.detach().numpy()))
    else:
        total = float(x.detach().sum(dtype=torch.float64))
    if not math.isfinite(total):
        check_finite(x, name)


def _validate_sos(sos: SOSLike) -> tuple[np.ndarray, torch.Tensor | None]:
    """Normalised float64 numpy copy of *sos* (checked stable) and, when *sos* is a
    tensor that requires grad, its differentiable normalised float64 version."""
    arr = normalize_sos(sos)
    check_stable(arr)
    grad_t = None
    if isinstance(sos, torch.Tensor) and sos.requires_grad:
        s64 = sos.to(torch.float64)
        grad_t = s64 / s64[..., 3:4]
    return arr, grad_t


def _groups(n_sections: int) -> list[slice]:
    return [slice(i, min(i + ssp.MAX_FOLD, n_sections)) for i in range(0, n_sections, ssp.MAX_FOLD)]


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def _plans(sos64: np.ndarray, grad_sos: torch.Tensor | None, T: int, L: int | None, dtype: torch.dtype,
           device: torch.device) -> list[tuple[slice, ssp.ChunkMats, list[ssp.ScanLevel], torch.Tensor, torch.Tensor]]:
    """Per fold group: (sections, chunk mats, scan levels, Rt, Rit) in dtype/device (Rt/Rit float64)."""
    out = []
    for g in _groups(sos64.shape[-2]):
        n = g.stop - g.start
        Lg = L or ssp.default_chunk(2 * n)
        K = -(-T // Lg)
        if grad_sos is not None:
            sg = grad_sos[..., g, :].to(device)
            mats, Rt, Rit = ssp.chunk_mats(sg, Lg)
            levels = ssp.scan_levels(mats.Mpow[..., Lg, :, :], K)
            out.append((g, mats.to(dtype, device), [lv.to(dtype, device) for lv in levels], Rt, Rit))
            continue
        sub = np.ascontiguousarray(sos64[..., g, :])
        key = (sub.tobytes(), sub.shape, Lg, K, dtype, str(device))
        hit = _CACHE.get(key)
        if hit is None:
            mats, Rt, Rit = ssp.chunk_mats(torch.from_numpy(sub), Lg)
            levels = ssp.scan_levels(mats.Mpow[..., Lg, :, :], K)
            hit = (mats.to(dtype, device), [lv.to(dtype, device) for lv in levels],
                   Rt.to(device), Rit.to(device))
            _CACHE.put(key, hit)
        out.append((g, *hit))
    return out


def _batch_shape(x_batch: tuple[int, ...], cb: tuple[int, ...], what: str = "sos") -> tuple[int, ...]:
    try:
        return tuple(torch.broadcast_shapes(x_batch, cb))
    except RuntimeError:
        raise InvalidParameter(
            f"{what} batch shape {list(cb)} (sos shaped [..., n_sections, 6]) does not broadcast against the "
            f"signal's leading shape {list(x_batch)} (x shaped [..., time]); per-channel coefficients are "
            "[channels, n_sections, 6] for x [..., channels, time]"
        ) from None


def _prep_zi(zi: Any, bshape: tuple[int, ...], S: int, device: torch.device) -> torch.Tensor:
    z, _ = as_tensor(zi, "zi")
    if z.is_complex() or not z.is_floating_point():
        z = z.to(torch.float64)
    want = (*bshape, S, 2)
    try:
        torch.broadcast_shapes(z.shape, want)
        if len(z.shape) > len(want) or torch.broadcast_shapes(z.shape, want) != torch.Size(want):
            raise RuntimeError
    except RuntimeError:
        raise InvalidParameter(
            f"zi has shape {list(z.shape)}; expected (broadcastable to) {list(want)} = [..., n_sections, 2] "
            "(scipy's zi[s, ..., :] is ironwave's zi[..., s, :])"
        ) from None
    check_finite(z, "zi")
    return z.to(device=device, dtype=torch.float64).expand(want)


# --------------------------------------------------------------------------- backends
def _run_scipy(sos64: np.ndarray, x: torch.Tensor, zi: torch.Tensor | None, bshape: tuple[int, ...]
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
    import scipy.signal as ss

    xn = x.detach().to(_compute_dtype(x.dtype)).numpy()
    cb = sos64.shape[:-2]
    S = sos64.shape[-2]
    T = xn.shape[-1]
    zin = None if zi is None else zi.cpu().numpy()
    if not cb:
        xb = np.broadcast_to(xn, (*bshape, T)) if xn.shape[:-1] != bshape else xn
        if zin is None:
            y = ss.sosfilt(sos64, xb, axis=-1)
            zf = None
        else:
            y, zf = ss.sosfilt(sos64, xb, axis=-1, zi=np.moveaxis(zin, -2, 0))
            zf = np.moveaxis(zf, 0, -2)
    else:
        y = np.empty((*bshape, T), dtype=np.float64)
        zf = None if zin is None else np.empty((*bshape, S, 2), dtype=np.float64)
        cbf = (1,) * (len(bshape) - len(cb)) + tuple(cb)
        sosf = sos64.reshape(*cbf, S, 6)
        xb = np.broadcast_to(xn, (*bshape, T))
        for idx in np.ndindex(*cbf):
            sel = tuple(slice(None) if c == 1 else i for c, i in zip(cbf, idx))
            if zin is None:
                y[sel] = ss.sosfilt(sosf[idx], xb[sel], axis=-1)
            else:
                yy, zz = ss.sosfilt(sosf[idx], xb[sel], axis=-1, zi=np.moveaxis(zin[sel], -2, 0))
                y[sel] = yy
                zf[sel] = np.moveaxis(zz, 0, -2)
    if x.dtype in (torch.float32, torch.float64):
        yt = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32 if x.dtype == torch.float32 else np.float64))
    else:
        yt = torch.from_numpy(np.ascontiguousarray(y)).to(x.dtype)
    return yt, (None if zf is None else torch.from_numpy(np.ascontiguousarray(zf)))


def _run_scan(sos64: np.ndarray, grad_sos: torch.Tensor | None, x: torch.Tensor, zi: torch.Tensor | None,
              bshape: tuple[int, ...], chunk: int | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    cdt = _compute_dtype(x.dtype)
    xc = x.to(cdt)
    T = x.shape[-1]
    zfs = []
    y = xc
    for g, mats, levels, Rt, Rit in _plans(sos64, grad_sos, T, chunk, cdt, x.device):
        s0 = None
        if zi is not None:
            zg = zi[..., g, :].reshape(*bshape, -1)
            s0 = (zg.unsqueeze(-2) @ Rt).squeeze(-2).to(cdt)
        y, zf = ssp.apply(y, mats, levels, s0)
        zfs.append(((zf.to(torch.float64).unsqueeze(-2) @ Rit).squeeze(-2)).reshape(*zf.shape[:-1], -1, 2))
    if y.shape[:-1] != bshape:
        y = y.expand(*bshape, T)
    zf_all = torch.cat([z.expand(*bshape, *z.shape[-2:]) for z in zfs], -2) if zi is not None else None
    return y.to(x.dtype), zf_all


# --------------------------------------------------------------------------- functional
def sosfilt(sos: SOSLike, x: Any, zi: Any = None, axis: int = -1, *, device: DeviceLike = None,
            backend: Backend = "auto", chunk: int | None = None) -> Any:
    """Filter *x* with a cascade of second-order sections (like :func:`scipy.signal.sosfilt`).

    Args:
        sos: ``[n_sections, 6]`` (rows ``b0 b1 b2 a0 a1 a2``; rows are divided by
            ``a0``), or ``[..., n_sections, 6]`` for per-channel / per-band
            coefficients whose leading dims broadcast against ``x``'s leading dims
            (e.g. ``[channels, n_sections, 6]`` with ``x`` ``[..., channels, time]``).
            Any pole on or outside the unit circle is rejected.
        x: signal, tensor or numpy, float, time along *axis*.
        zi: optional initial state ``[..., n_sections, 2]`` in scipy's
            transposed-direct-form-II convention (``...`` = x's shape without
            *axis*; scipy's ``zi[s, ..., :]`` is ``zi[..., s, :]`` here). When
            given, the final state ``zf`` of the same shape is returned too.
        axis: time axis of *x*.
        device: ``None`` (default: where *x* lives), ``"auto"`` (calibrated
            CPU/GPU crossover), ``"cpu"``, ``"cuda"``, ``"cuda:N"``. The result
            comes back on *x*'s device.
        backend: ``"auto"`` (scipy's C code on the CPU unless gradients are
            needed; on CUDA the fused Triton kernels for float32/float64 without
            gradients when Triton is installed; the parallel scan otherwise),
            ``"scipy"`` (CPU only, no autograd), ``"scan"``, or ``"triton"``
            (CUDA float32/float64, no autograd, Triton installed).
        chunk: chunk length in samples for the scan (default 32, 64 above 4 sections);
            the Triton path picks its own (64..1024).

    Returns:
        ``y`` shaped like ``x`` broadcast with the coefficient batch dims, same
        dtype/device (numpy in -> numpy out), or ``(y, zf)`` when *zi* is given.
        The scan path is differentiable in ``x``, ``sos`` and ``zi``.
    """
    t0 = time.perf_counter()
    if backend not in ("auto", "scipy", "scan", "triton"):
        raise InvalidParameter(f"backend={backend!r}; accepted: 'auto', 'scipy', 'scan', 'triton'")
    if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int) or not 1 <= chunk <= 1024):
        raise InvalidParameter(f"chunk must be an integer in [1, 1024] samples, got {chunk!r}")
    xt, was_numpy = as_tensor(x, "x")
    xt = check_audio(xt, "x", finite=False)
    if not -xt.ndim <= axis < xt.ndim:
        raise InvalidParameter(f"axis={axis} is out of range for x with {xt.ndim} dims")
    home = xt.device
    xt = xt.movedim(axis, -1)
    sos64, grad_sos = _validate_sos(sos)
    S = sos64.shape[-2]
    bshape = _batch_shape(tuple(xt.shape[:-1]), tuple(sos64.shape[:-2]))
    T = xt.shape[-1]
    if device is None:
        run_dev = home
    else:
        run_dev = choose_device("iir", T, int(np.prod(bshape)) if bshape else 1, device)
    zt = None if zi is None else _prep_zi(zi, bshape, S, run_dev)
    needs_grad = (grad_sos is not None) or xt.requires_grad or (isinstance(zi, torch.Tensor) and zi.requires_grad)
    if backend == "scipy" and (run_dev.type != "cpu" or needs_grad):
        raise InvalidParameter("backend='scipy' runs on the CPU without autograd; use backend='scan' or 'auto'")
    if backend == "triton":
        if run_dev.type != "cuda" or needs_grad or xt.dtype not in (torch.float32, torch.float64):
            raise InvalidParameter(
                f"backend='triton' runs on CUDA for float32/float64 without autograd (got device {run_dev}, "
                f"dtype {xt.dtype}, gradients {'needed' if needs_grad else 'not needed'}); use 'auto' or 'scan'")
        if _triton_module() is None:
            raise BackendUnavailable("backend='triton' needs the 'triton' package (pip install triton)")
    use_scipy = backend == "scipy" or (backend == "auto" and run_dev.type == "cpu" and not needs_grad)
    use_triton = backend == "triton" or (
        backend == "auto" and run_dev.type == "cuda" and not needs_grad
        and xt.dtype in (torch.float32, torch.float64) and _triton_module() is not None)
    if not use_triton:
        _check_finite_fast(xt, "x")  # the Triton path checks the chunk states of its first pass instead
    xr = xt.to(run_dev)
    y = zf = None
    name = "scan"
    if use_scipy:
        y, zf = _run_scipy(sos64, xr, zt, bshape)
        name = "scipy"
    elif use_triton:
        try:
            y, zf = _triton_module().sosfilt_triton(sos64, xr, zt, bshape,
                                                    on_nonfinite=lambda: check_finite(xr, "x"))
            name = "triton"
        except (InvalidAudio, InvalidParameter):
            raise
        except Exception as e:  # a kernel that does not compile on this GPU/Triton: say so, use the scan
            if backend == "triton":
                raise
            kernel_failed(_TRITON_MOD, "ironwave.dsp.iir.sosfilt", e, "the matmul scan",
                          counter="iir.sosfilt.backend.triton_failed", stacklevel=2)
            _check_finite_fast(xt, "x")
    if y is None:
        y, zf = _run_scan(sos64, grad_sos, xr, zt, bshape, chunk)
    y = y.to(home).movedim(-1, axis)
    telemetry.record("iir.sosfilt", run_dev, time.perf_counter() - t0, requested=device)
    telemetry.count(f"iir.sosfilt.backend.{name}")
    if zi is None:
        return y.detach().cpu().numpy() if was_numpy else y
    zf_out = zf.to(device=home, dtype=_compute_dtype(xt.dtype))
    if was_numpy:
        return y.detach().cpu().numpy(), zf_out.detach().cpu().numpy()
    return y, zf_out


# --------------------------------------------------------------------------- streaming
class SOSFilter:
    """Streaming SOS cascade with carried state (real-time face).

    ``prepare(block_size, channels, batch)`` allocates everything (state, chunk
    matrices, work buffers); ``process(block, out=...)`` then allocates nothing
    for blocks of ``block_size`` samples (other lengths allocate their work
    buffers once, on first use). Any sequence of block lengths gives the same
    output as :func:`sosfilt` over the whole signal (to float rounding).

    The block is evaluated in chunks of ``min(block_size, 256)`` samples with the
    same exact state-space matrices as the functional scan (a few small matmuls
    per chunk; no per-sample loop), on the CPU or CUDA.

    Args:
        sos: ``[n_sections, 6]`` shared by all channels, or ``[channels, n_sections, 6]``.
        device: ``"cpu"`` (default), ``"auto"``, ``"cuda"``, ``"cuda:N"``.
        dtype: float32 (default) or float64.
        validate: reject NaN/Inf blocks (an allocation-free sum check; on CUDA it
            costs one device sync per block, so an engine may turn it off and
            check its inputs at the graph edge instead).

    Example::

        f = SOSFilter(lowpass(1000, 48000), device="cpu")
        f.prepare(block_size=256, channels=2)
        out = torch.empty(1, 2, 256)
        for block in blocks:            # each [1, 2, 256]
            f.process(block, out=out)
    """

    def __init__(self, sos: SOSLike, *, device: DeviceLike = "cpu", dtype: torch.dtype = torch.float32,
                 validate: bool = True) -> None:
        if dtype not in (torch.float32, torch.float64):
            raise InvalidParameter(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        self.sos = _validate_sos(sos)[0]
        if self.sos.ndim > 3:
            raise InvalidParameter(f"sos has shape {list(self.sos.shape)}; SOSFilter accepts [n_sections, 6] or [channels, n_sections, 6]")
        self.n_sections = self.sos.shape[-2]
        self.requested = device
        self.device = resolve_device(device)
        self.dtype = dtype
        self.validate = bool(validate)
        self.block_size = 0
        self.channels = 0
        self.batch = 0
        self._groups: list[dict[str, Any]] = []

    # -- set-up -----------------------------------------------------------
    def prepare(self, block_size: int, channels: int = 1, batch: int = 1) -> "SOSFilter":
        """Allocate state and buffers for blocks ``[batch, channels, block_size]``; zero the state."""
        for name, v in (("block_size", block_size), ("channels", channels), ("batch", batch)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise InvalidParameter(f"{name} must be a positive integer, got {v!r}")
        per_channel = self.sos.ndim == 3
        if per_channel and self.sos.shape[0] not in (1, channels):
            raise InvalidParameter(f"sos has coefficients for {self.sos.shape[0]} channels but prepare() got channels={channels}")
        self.block_size, self.channels, self.batch = int(block_size), int(channels), int(batch)
        self.L = min(self.block_size, 256)
        G = channels if per_channel and self.sos.shape[0] > 1 else 1
        R = batch if G > 1 else batch * channels
        self._G, self._R = G, R
        self._groups = []
        for g in _groups(self.n_sections):
            sub = np.ascontiguousarray(self.sos[..., g, :])
            if sub.ndim == 2:
                sub = sub[None]
            mats, Rt, Rit = ssp.chunk_mats(torch.from_numpy(sub), self.L)
            N = mats.N
            st = {
                "sections": g, "N": N, "mats": mats.to(self.dtype, self.device),
                "Rt": Rt.to(self.device), "Rit": Rit.to(self.device),
                "state": [torch.zeros(G if G > 1 else 1, R, N, dtype=self.dtype, device=self.device) for _ in range(2)],
                "cur": 0, "by_len": {},
            }
            self._groups.append(st)
        self._bufs: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._finite_buf = torch.zeros((), dtype=self.dtype, device=self.device)
        self._pingpong = [torch.zeros(batch, channels, self.block_size, dtype=self.dtype, device=self.device)
                          for _ in range(2 if len(self._groups) > 1 else 0)]
        for r in {self.L, self.block_size % self.L} - {0}:
            self._len_buffers(r)
        return self

    def _len_buffers(self, r: int) -> tuple[torch.Tensor, torch.Tensor]:
        bufs = self._bufs.get(r)
        if bufs is None:
            Gb = self._G
            bufs = (torch.zeros(Gb, self._R, r, dtype=self.dtype, device=self.device),
                    torch.zeros(Gb, self._R, r, dtype=self.dtype, device=self.device))
            self._bufs[r] = bufs
            L = self.L
            for st in self._groups:
                m: ssp.ChunkMats = st["mats"]
                st["by_len"][r] = (
                    m.W[..., :r, :r].contiguous(),  # T_r
                    m.H[..., :, :r].contiguous(),  # H_r
                    m.W[..., L - r:, L:].contiguous(),  # G_r
                    m.Mpow[..., r, :, :].contiguous(),  # (A^r)^T
                )
        return bufs

    def reset(self) -> None:
        """Zero the carried state."""
        for st in self._groups:
            for s in st["state"]:
                s.zero_()

    @property
    def state(self) -> torch.Tensor:
        """Carried state as scipy-convention ``zi`` ``[batch, channels, n_sections, 2]`` (float64)."""
        self._need_prepared()
        parts = []
        for st in self._groups:
            s = st["state"][st["cur"]].to(torch.float64)  # [G, R, N]
            z = (s @ st["Rit"])  # back to TDF-II
            parts.append(self._from_gr(z).reshape(self.batch, self.channels, -1, 2))
        return torch.cat(parts, -2)

    @state.setter
    def state(self, zi: Any) -> None:
        self._need_prepared()
        z = _prep_zi(zi, (self.batch, self.channels), self.n_sections, self.device)
        for st in self._groups:
            zg = z[..., st["sections"], :].reshape(self.batch, self.channels, -1)
            s = self._to_gr(zg) @ st["Rt"]
            st["state"][st["cur"]].copy_(s)

    def _to_gr(self, v: torch.Tensor) -> torch.Tensor:  # [B, C, N] -> [G, R, N]
        if self._G > 1:
            return v.permute(1, 0, 2)
        return v.reshape(1, self.batch * self.channels, -1)

    def _from_gr(self, v: torch.Tensor) -> torch.Tensor:  # [G, R, N] -> [B, C, N]
        if self._G > 1:
            return v.permute(1, 0, 2)
        return v.reshape(self.batch, self.channels, -1)

    def _need_prepared(self) -> None:
        if not self._groups:
            raise InvalidParameter("SOSFilter.prepare(block_size, channels, batch) must be called first")

    # -- processing -------------------------------------------------------
    def process(self, block: Any, out: torch.Tensor | None = None) -> Any:
        """Filter one block, carrying the state to the next call.

        Args:
            block: ``[batch, channels, n]``, or ``[channels, n]`` when batch is 1,
                or ``[n]`` when batch and channels are 1 (tensor or numpy), any ``n >= 1``.
                If :meth:`prepare` was not called, the first block prepares the filter.
            out: optional preallocated output shaped like *block* (tensor, contiguous
                in time); it is filled and returned.

        Returns:
            The filtered block, shaped like *block* (numpy in -> numpy out).
        """
        t0 = time.perf_counter()
        x, was_numpy = as_tensor(block, "block")
        if not self._groups:
            shp = tuple(x.shape)
            if len(shp) == 0:
                raise InvalidAudio("block must have a time axis")
            b, c = ((1, 1) if len(shp) == 1 else (1, shp[0]) if len(shp) == 2 else shp[:2])
            self.prepare(max(shp[-1], 1), channels=c, batch=b)
        n = x.shape[-1]
        if x.shape[:-1] not in ((self.batch, self.channels),) + (((self.channels,),) if self.batch == 1 else ()) + (((),) if self.batch == 1 and self.channels == 1 else ()):
            raise InvalidAudio(
                f"block has shape {list(x.shape)}; expected [batch={self.batch}, channels={self.channels}, n]"
                " (as prepared)"
            )
        if x.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
            raise InvalidAudio(f"block has dtype {x.dtype}; accepted: float16, bfloat16, float32, float64")
        if n < 1:
            raise InvalidAudio("block has 0 samples; at least 1 needed")
        x3 = x.reshape(self.batch, self.channels, n)
        if self.validate:
            # allocation-free NaN/Inf check: any NaN/Inf makes the sum non-finite
            torch.sum(x3 if x3.dtype == self.dtype else x3.to(self.dtype), dim=(0, 1, 2), out=self._finite_buf)
            if not math.isfinite(self._finite_buf.item()):
                check_finite(x, "block")
                raise InvalidAudio("block contains NaN or Inf values (or values so large that they overflow)")
        if x3.device != self.device or x3.dtype != self.dtype:
            x3 = x3.to(self.device, self.dtype)
        if out is not None:
            if not isinstance(out, torch.Tensor) or out.shape != x.shape or out.dtype != self.dtype or out.device != self.device:
                raise InvalidParameter(f"out must be a {self.dtype} tensor on {self.device} shaped {list(x.shape)}")
            y3 = out.view(self.batch, self.channels, n)
        else:
            y3 = torch.empty(self.batch, self.channels, n, dtype=self.dtype, device=self.device)
        src = x3
        ng = len(self._groups)
        for gi, st in enumerate(self._groups):
            if gi == ng - 1:
                dst = y3
            else:
                pp = self._pingpong[gi % 2]
                dst = pp[..., :n] if n <= self.block_size else torch.empty_like(y3)
            self._run_group(st, src, dst, n)
            src = dst
        telemetry.record("iir.SOSFilter.process", self.device, time.perf_counter() - t0, requested=self.requested)
        if was_numpy:
            return y3.reshape(x.shape).cpu().numpy()
        if out is not None:
            return out
        y = y3.reshape(x.shape)
        return y if x.dtype == self.dtype else y.to(x.dtype)

    def _run_group(self, st: dict[str, Any], src: torch.Tensor, dst: torch.Tensor, n: int) -> None:
        L = self.L
        per = self._G > 1
        a = 0
        while a < n:
            r = min(L, n - a)
            tx, ty = self._len_buffers(r)
            T_r, H_r, G_r, M_r = st["by_len"][r]
            s_cur = st["state"][st["cur"]]
            s_nxt = st["state"][1 - st["cur"]]
            xs = src[..., a:a + r]
            ys = dst[..., a:a + r]
            if per:
                tx.permute(1, 0, 2).copy_(xs)
            else:
                tx.view(self.batch, self.channels, r).copy_(xs)
            torch.bmm(s_cur, H_r, out=ty)
            ty.baddbmm_(tx, T_r)
            torch.bmm(s_cur, M_r, out=s_nxt)
            s_nxt.baddbmm_(tx, G_r)
            st["cur"] = 1 - st["cur"]
            if per:
                ys.copy_(ty.permute(1, 0, 2))
            else:
                ys.copy_(ty.view(self.batch, self.channels, r))
            a += r


# --------------------------------------------------------------------------- banks
class SOSFilterBank:
    """A bank of SOS filters, in series (one cascade) or in parallel (one output per band).

    Args:
        filters: SOS arrays ``[n_sections_i, 6]`` (e.g. from :func:`~ironwave.dsp.iir.butter`).
        mode: ``"series"``: the filters are cascaded (their sections concatenated);
            ``"parallel"``: every filter sees the input.
        combine: for ``"parallel"``: ``"stack"`` (default) gives ``[..., bands, time]``,
            ``"sum"`` gives ``[..., time]`` (the sum of the band outputs).

    Parallel bands with fewer sections are padded with identity sections, and
    the bank runs as ONE call with per-band coefficients ``[bands, S, 6]``
    (on the GPU: one batched scan for all bands).
    """

    def __init__(self, filters: Sequence[SOSLike], mode: Literal["series", "parallel"] = "parallel",
                 combine: Literal["stack", "sum"] = "stack") -> None:
        if mode not in ("series", "parallel"):
            raise InvalidParameter(f"mode={mode!r}; accepted: 'series', 'parallel'")
        if combine not in ("stack", "sum"):
            raise InvalidParameter(f"combine={combine!r}; accepted: 'stack', 'sum'")
        if len(filters) == 0:
            raise InvalidParameter("SOSFilterBank needs at least one filter")
        arrs = []
        for i, f in enumerate(filters):
            try:
                a, _ = _validate_sos(f)
            except InvalidParameter as e:
                raise InvalidParameter(f"filter {i}: {e}") from None
            if a.ndim != 2:
                raise InvalidParameter(f"filter {i} has shape {list(a.shape)}; expected [n_sections, 6]")
            arrs.append(a)
        self.mode, self.combine = mode, combine
        self.bands = len(arrs)
        if mode == "series":
            self.sos = torch.from_numpy(np.concatenate(arrs, 0))
        else:
            S = max(a.shape[0] for a in arrs)
            ident = np.asarray(IDENTITY_SECTION)[None]
            self.sos = torch.from_numpy(np.stack([np.concatenate([a] + [ident] * (S - a.shape[0]), 0) for a in arrs], 0))

    def __call__(self, x: Any, *, device: DeviceLike = None, backend: Backend = "auto") -> Any:
        """Filter *x* ``[..., time]``: series -> ``[..., time]``; parallel -> ``[..., bands, time]`` or summed."""
        if self.mode == "series":
            return sosfilt(self.sos, x, device=device, backend=backend)
        xt, was_numpy = as_tensor(x, "x")
        y = sosfilt(self.sos, xt.unsqueeze(-2), device=device, backend=backend)
        if self.combine == "sum":
            y = y.sum(-2)
        return y.detach().cpu().numpy() if was_numpy else y

    def stream(self, *, device: DeviceLike = "cpu", dtype: torch.dtype = torch.float32) -> SOSFilter:
        """A streaming :class:`SOSFilter` of a series bank (the cascade)."""
        if self.mode != "series":
            raise InvalidParameter("stream() is available for mode='series'; for parallel bands use one SOSFilter "
                                   "with per-channel coefficients (bank.sos is [bands, S, 6])")
        return SOSFilter(self.sos, device=device, dtype=dtype)
