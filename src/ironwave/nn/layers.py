"""Neural layers: convolutions (with streaming state), recurrent layers with
streaming state, normalisation (GroupNorm with three reduction algorithms,
LayerNorm), feed-forward, LayerScale and a few ``out=``-capable layers.

Shapes follow torch: convolutions take ``[batch, channels, time]`` (1-D) or
``[batch, channels, freq, time]`` (2-D); recurrent layers take
``[batch, time, features]`` (``batch_first=True``) or ``[time, batch, features]``.
Parameter names equal torch's, so ``load_state_dict`` from the torch layer works.
"""
from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ironwave.errors import InvalidParameter

GroupNormAlgorithm = Literal["standard", "kahan", "welford"]
_GN_ALGOS = ("standard", "kahan", "welford")

__all__ = [
    "Conv1d", "Conv2d", "ConvTranspose1d", "ConvTranspose2d", "LSTM", "GRU", "GroupNorm", "LayerNorm",
    "FeedForward", "LayerScale", "Linear", "Activation", "group_stats",
]


# --------------------------------------------------------------------------- convolutions
class Conv1d(nn.Conv1d):
    """``torch.nn.Conv1d`` plus a causal streaming face.

    :meth:`stream` consumes ``[batch, channels, block]`` blocks of any size and
    returns the samples of the *causal* convolution (input left-padded with
    ``dilation * (kernel_size - 1)`` zeros) that are complete; concatenated over
    the stream they equal ``causal_forward(whole_signal)``. Streaming needs
    ``stride == 1`` and ``padding == 0`` (the causal padding replaces it).
    """

    def _history(self) -> int:
        return self.dilation[0] * (self.kernel_size[0] - 1)

    def causal_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Offline causal convolution ``[batch, in, time] -> [batch, out, time]``."""
        if self.stride[0] != 1:
            raise InvalidParameter(f"causal streaming convolution needs stride 1, got {self.stride[0]}")
        return F.conv1d(F.pad(x, (self._history(), 0)), self.weight, self.bias, 1, 0, self.dilation, self.groups)

    def reset_state(self) -> None:
        """Forget the streamed history (start of a new signal)."""
        self._state: torch.Tensor | None = None

    def stream(self, block: torch.Tensor) -> torch.Tensor:
        """Process one block ``[batch, in, n]`` -> ``[batch, out, n]`` (any n >= 1)."""
        if self.stride[0] != 1:
            raise InvalidParameter(f"causal streaming convolution needs stride 1, got {self.stride[0]}")
        hist = self._history()
        state = getattr(self, "_state", None)
        if state is None or state.shape[:2] != block.shape[:2]:
            state = block.new_zeros(block.shape[0], block.shape[1], hist)
        x = torch.cat([state, block], dim=-1)
        self._state = x[..., x.shape[-1] - hist:] if hist else x[..., :0]
        return F.conv1d(x, self.weight, self.bias, 1, 0, self.dilation, self.groups)


class Conv2d(nn.Conv2d):
    """``torch.nn.Conv2d`` (``[batch, channels, freq, time]``), parameter-compatible."""


class ConvTranspose1d(nn.ConvTranspose1d):
    """``torch.nn.ConvTranspose1d``, parameter-compatible."""


class ConvTranspose2d(nn.ConvTranspose2d):
    """``torch.nn.ConvTranspose2d``, parameter-compatible."""


# --------------------------------------------------------------------------- recurrent
class _StreamingRNN:
    """Mixin: keeps the recurrent state between :meth:`stream` calls."""

    def reset_state(self) -> None:
        """Forget the carried state (start of a new signal)."""
        self._state = None

    def stream(self, block: torch.Tensor) -> torch.Tensor:
        """Process one block (``[batch, n, features]`` if batch_first) carrying the state.

        Concatenated outputs equal ``module(whole_signal)[0]`` for any block sizes
        (unidirectional layers only).
        """
        if getattr(self, "bidirectional", False):
            raise InvalidParameter("a bidirectional recurrent layer cannot stream (it needs the future)")
        out, state = self.forward(block, getattr(self, "_state", None))  # type: ignore[attr-defined]
        self._state = state
        return out


class LSTM(_StreamingRNN, nn.LSTM):
    """``torch.nn.LSTM`` with streaming state (:meth:`stream`, :meth:`reset_state`)."""


class GRU(_StreamingRNN, nn.GRU):
    """``torch.nn.GRU`` with streaming state (:meth:`stream`, :meth:`reset_state`)."""


# --------------------------------------------------------------------------- normalisation
def _pad_pow2(x: torch.Tensor, value: float) -> torch.Tensor:
    n = x.shape[-1]
    p = 1 << max(0, (n - 1).bit_length())
    return F.pad(x, (0, p - n), value=value) if p != n else x


def _compensated_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum over the last axis with a compensated (Kahan/TwoSum) pairwise tree.

    Every level adds pairs and keeps the exact rounding error of each addition
    (Knuth's TwoSum) in a compensation term that is added back at the end, so
    the result is close to the correctly rounded sum in the working dtype.
    """
    s = _pad_pow2(x, 0.0)
    c = torch.zeros_like(s)
    while s.shape[-1] > 1:
        a, b = s[..., 0::2], s[..., 1::2]
        t = a + b
        bp = t - a
        err = (a - (t - bp)) + (b - bp)
        c = c[..., 0::2] + c[..., 1::2] + err
        s = t
    return (s + c)[..., 0]


def _welford_tree(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and biased variance over the last axis by Welford/Chan pairwise merging."""
    n_real = x.shape[-1]
    mean = _pad_pow2(x, 0.0)
    cnt = _pad_pow2(torch.ones_like(x), 0.0)
    m2 = torch.zeros_like(mean)
    while mean.shape[-1] > 1:
        na, nb = cnt[..., 0::2], cnt[..., 1::2]
        ma, mb = mean[..., 0::2], mean[..., 1::2]
        n = na + nb
        delta = mb - ma
        frac = nb / n.clamp_min(1.0)
        mean = ma + delta * frac
        m2 = m2[..., 0::2] + m2[..., 1::2] + delta * delta * na * frac
        cnt = n
    return mean[..., 0], m2[..., 0] / n_real


def group_stats(x: torch.Tensor, groups: int, algorithm: GroupNormAlgorithm = "standard") -> tuple[torch.Tensor, torch.Tensor]:
    """Per-(batch, group) mean and biased variance of ``x [batch, channels, ...]``.

    Args:
        x: input ``[batch, channels, *]``; channels must divide into *groups*.
        groups: number of channel groups.
        algorithm: ``"standard"`` (two-pass in the working dtype, torch's
            reductions), ``"kahan"`` (compensated pairwise sums, two passes) or
            ``"welford"`` (one pass, Chan's parallel Welford merge).

    Returns:
        ``(mean, var)``, each ``[batch, groups]``.
    """
    if algorithm not in _GN_ALGOS:
        raise InvalidParameter(f"unknown GroupNorm algorithm {algorithm!r}; accepted: {', '.join(_GN_ALGOS)}")
    b = x.shape[0]
    xg = x.reshape(b, groups, -1)
    if algorithm == "standard":
        mean = xg.mean(-1)
        var = (xg - mean[..., None]).square().mean(-1)
    elif algorithm == "kahan":
        n = xg.shape[-1]
        mean = _compensated_sum(xg) / n
        var = _compensated_sum((xg - mean[..., None]).square()) / n
    else:
        mean, var = _welford_tree(xg)
    return mean, var


#: Row count (batch x groups) under which the CUDA ``"standard"`` GroupNorm computes its statistics
#: with a split reduction (:func:`_group_norm_split`) instead of ``F.group_norm``; torch's CUDA kernel
#: reduces each (batch, group) row in one thread block, so GroupNorm(1, C) over ``[1, C, 86000]``
#: runs on one multiprocessor (measured on an H200: a third of the HTDemucs forward).
SPLIT_MAX_ROWS = 128
#: Minimum elements per row for the split path (short rows are cheap for torch's kernel).
SPLIT_MIN_ROW = 16384


def _use_split(x: torch.Tensor, rows: int) -> bool:
    return x.is_cuda and rows <= SPLIT_MAX_ROWS and x.numel() // max(rows, 1) >= SPLIT_MIN_ROW


def _group_norm_split(x: torch.Tensor, groups: int, weight: torch.Tensor | None, bias: torch.Tensor | None,
                      eps: float, channel_last: bool = False) -> torch.Tensor:
    """GroupNorm with statistics from ``torch.var_mean`` (a grid-wide reduction over each row).

    ``x`` is ``[batch, channels, *]`` or, with ``channel_last``, ``[batch, *, channels]``. Computes
    ``(x - mean) * (rstd * weight) + bias`` in float32 (as ``F.group_norm`` does under autocast) and
    returns float32 under autocast, else ``x.dtype``.
    """
    if torch.is_autocast_enabled(x.device.type) and x.dtype != torch.float32:
        x = x.float()
    b = x.shape[0]
    c = x.shape[-1] if channel_last else x.shape[1]
    if channel_last:
        xg = x.reshape(b, -1, groups, c // groups)
        dims: tuple[int, ...] = (1, 3)
    else:
        xg = x.reshape(b, groups, -1)
        dims = (2,)
    var, mean = torch.var_mean(xg, dim=dims, keepdim=True, correction=0)
    rstd = torch.rsqrt(var + eps)
    if weight is None:
        return ((xg - mean) * rstd).reshape(x.shape)
    w = weight.to(x.dtype)
    bb = bias.to(x.dtype) if bias is not None else torch.zeros_like(w)
    if channel_last:  # [b, 1, groups, 1] stats, [groups, c/groups] params
        scale = rstd * w.reshape(groups, c // groups)
        return torch.addcmul(bb.reshape(groups, c // groups), xg - mean, scale).reshape(x.shape)
    # [b, groups, 1] stats -> per-channel [b, c, 1...]
    rest = (1,) * (x.ndim - 2)
    scale = (rstd.expand(b, groups, c // groups).reshape(b, c, *rest) * w.reshape(c, *rest))
    meanc = mean.expand(b, groups, c // groups).reshape(b, c, *rest)
    return torch.addcmul(bb.reshape(c, *rest), x - meanc, scale)


class GroupNorm(nn.GroupNorm):
    """GroupNorm over ``[batch, channels, *]`` with a choice of reduction algorithm.

    Parameter-compatible with ``torch.nn.GroupNorm`` (``weight``, ``bias``).

    Args:
        num_groups / num_channels / eps / affine: as torch.
        algorithm: ``"standard"`` runs ``torch.nn.functional.group_norm`` (the
            fastest; torch's kernel, except on CUDA when few (batch x group) rows
            are long: then a split reduction, :data:`SPLIT_MAX_ROWS`); ``"kahan"`` and ``"welford"``
            compute the statistics with compensated or Welford reductions (see
            :func:`group_stats`), which keep float32/bfloat16 statistics accurate
            on signals with a large DC offset or very many elements. Their
            measured errors against float64 are in docs/models.md.
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True,
                 algorithm: GroupNormAlgorithm = "standard", device=None, dtype=None) -> None:
        if algorithm not in _GN_ALGOS:
            raise InvalidParameter(f"unknown GroupNorm algorithm {algorithm!r}; accepted: {', '.join(_GN_ALGOS)}")
        if num_channels % num_groups:
            raise InvalidParameter(f"num_channels={num_channels} is not divisible by num_groups={num_groups}")
        super().__init__(num_groups, num_channels, eps, affine, device=device, dtype=dtype)
        self.algorithm: str = algorithm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.algorithm == "standard":
            if _use_split(x, x.shape[0] * self.num_groups):
                return _group_norm_split(x, self.num_groups, self.weight, self.bias, self.eps)
            return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)
        mean, var = group_stats(x, self.num_groups, self.algorithm)  # type: ignore[arg-type]
        b, c = x.shape[:2]
        shape = (b, self.num_groups, -1)
        y = (x.reshape(shape) - mean[..., None]) * torch.rsqrt(var[..., None] + self.eps)
        y = y.reshape(x.shape)
        if self.affine:
            bshape = (1, c) + (1,) * (x.ndim - 2)
            y = y * self.weight.reshape(bshape) + self.bias.reshape(bshape)
        return y

    def extra_repr(self) -> str:
        return super().extra_repr() + f", algorithm={self.algorithm}"


class LayerNorm(nn.LayerNorm):
    """``torch.nn.LayerNorm`` over the trailing ``normalized_shape`` dims (parameter-compatible)."""


class ChannelGroupNorm(GroupNorm):
    """GroupNorm for channels-last input ``[batch, time, channels]`` (normalises over time and channel groups)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.algorithm == "standard" and x.ndim == 3 and _use_split(x, x.shape[0] * self.num_groups):
            # reduce in place over the channels-last layout (no transposed copy)
            return _group_norm_split(x, self.num_groups, self.weight, self.bias, self.eps, channel_last=True)
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class LayerScale(nn.Module):
    """Per-channel learned scale (parameter ``scale``).

    Args:
        channels: number of channels.
        init: initial value.
        channel_last: scale the last dim (``[..., channels]``) instead of dim 1
            (``[batch, channels, time]``).
    """

    def __init__(self, channels: int, init: float = 0.0, channel_last: bool = False) -> None:
        super().__init__()
        self.channel_last = channel_last
        self.scale = nn.Parameter(torch.full((channels,), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channel_last:
            return self.scale * x
        return self.scale[:, None] * x


class FeedForward(nn.Module):
    """Position-wise feed-forward ``linear2(act(linear1(x)))`` over ``[..., dim]``.

    Parameter names (``linear1``, ``linear2``) match ``torch.nn.TransformerEncoderLayer``.
    """

    def __init__(self, dim: int, hidden: int, activation: str = "gelu", bias: bool = True) -> None:
        super().__init__()
        if activation not in ("gelu", "relu"):
            raise InvalidParameter(f"activation must be 'gelu' or 'relu', got {activation!r}")
        self.linear1 = nn.Linear(dim, hidden, bias=bias)
        self.linear2 = nn.Linear(hidden, dim, bias=bias)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.linear1(x)
        h = F.gelu(h) if self.activation == "gelu" else F.relu(h)
        return self.linear2(h)


# --------------------------------------------------------------------------- out= capable layers
class Linear(nn.Linear):
    """``torch.nn.Linear`` that can also write into a preallocated buffer (:meth:`forward_into`)."""

    def forward_into(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """``out[...] = x @ W^T + b`` without allocating (x ``[rows, in]``, out ``[rows, out]``)."""
        x2 = x.reshape(-1, self.in_features)
        o2 = out.view(-1, self.out_features)
        if self.bias is not None:
            torch.addmm(self.bias, x2, self.weight.t(), out=o2)
        else:
            torch.mm(x2, self.weight.t(), out=o2)
        return out


class Activation(nn.Module):
    """Elementwise activation (``tanh``, ``relu``, ``sigmoid``, ``gelu``, ``identity``) with :meth:`forward_into`."""

    _OPS = ("tanh", "relu", "sigmoid", "gelu", "identity")

    def __init__(self, kind: str = "tanh") -> None:
        super().__init__()
        if kind not in self._OPS:
            raise InvalidParameter(f"unknown activation {kind!r}; accepted: {', '.join(self._OPS)}")
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kind
        if k == "tanh":
            return torch.tanh(x)
        if k == "relu":
            return F.relu(x)
        if k == "sigmoid":
            return torch.sigmoid(x)
        if k == "gelu":
            return F.gelu(x)
        return x

    def forward_into(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        k = self.kind
        if k == "tanh":
            torch.tanh(x, out=out)
        elif k == "relu":
            torch.clamp_min(x, 0.0, out=out)
        elif k == "sigmoid":
            torch.sigmoid(x, out=out)
        elif k == "gelu":
            torch._C._nn.gelu(x, out=out)
        else:
            out.copy_(x)
        return out

    def extra_repr(self) -> str:
        return self.kind


def gelu(x: torch.Tensor) -> torch.Tensor:
    """Exact (erf) GELU."""
    return F.gelu(x)


def _check_pos(name: str, v: int) -> None:
    if v < 1 or not math.isfinite(v):
        raise InvalidParameter(f"{name} must be >= 1, got {v}")
