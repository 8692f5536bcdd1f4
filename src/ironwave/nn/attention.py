"""Multi-head self and cross attention with PyTorch's weight layout.

Parameters are named exactly like ``torch.nn.MultiheadAttention``
(``in_proj_weight [3*dim, dim]``, ``in_proj_bias [3*dim]``, ``out_proj.weight``,
``out_proj.bias``), so ``load_state_dict`` of a torch MultiheadAttention (or of a
model containing one, such as a demucs checkpoint) works unchanged. The kernel is
``torch.nn.functional.scaled_dot_product_attention`` (flash / memory-efficient
kernels on CUDA).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ironwave.errors import InvalidParameter

__all__ = ["MultiheadAttention", "CrossAttention", "TransformerLayer", "CrossTransformerLayer"]


class MultiheadAttention(nn.Module):
    """Multi-head attention ``softmax(q k^T / sqrt(d)) v`` over ``num_heads`` heads.

    Args:
        embed_dim: model dimension (features).
        num_heads: number of heads; must divide ``embed_dim``.
        bias: learn input/output projection biases.
        batch_first: inputs ``[batch, seq, dim]`` (True) or ``[seq, batch, dim]``.

    Call ``attn(query, key, value, attn_mask=None)``; returns ``(output, None)``
    like torch (attention weights are not materialised).
    """

    def __init__(self, embed_dim: int, num_heads: int, bias: bool = True, batch_first: bool = False,
                 device=None, dtype=None) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise InvalidParameter(f"embed_dim={embed_dim} must be divisible by num_heads={num_heads}")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.batch_first = batch_first
        fk = {"device": device, "dtype": dtype}
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim, **fk))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * embed_dim, **fk)) if bias else None
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias, **fk)
        self._reset()

    def _reset(self) -> None:
        nn.init.xavier_uniform_(self.in_proj_weight)
        if self.in_proj_bias is not None:
            nn.init.zeros_(self.in_proj_bias)
            nn.init.zeros_(self.out_proj.bias)

    def _split(self, x: torch.Tensor) -> torch.Tensor:  # [B, L, E] -> [B, H, L, D]
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, query: torch.Tensor, key: torch.Tensor | None = None, value: torch.Tensor | None = None,
                attn_mask: torch.Tensor | None = None, need_weights: bool = False) -> tuple[torch.Tensor, None]:
        """Attend *query* ``[batch, Lq, dim]`` to *key*/*value* ``[batch, Lk, dim]``.

        ``key``/``value`` default to ``query`` (self attention). ``attn_mask``
        follows SDPA (bool: True = attend; float: added to the scores).
        """
        if need_weights:
            raise InvalidParameter("need_weights=True is not supported (weights are never materialised)")
        key = query if key is None else key
        value = key if value is None else value
        if not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        e = self.embed_dim
        w, bias = self.in_proj_weight, self.in_proj_bias
        if key is query and value is query:
            q, k, v = F.linear(query, w, bias).chunk(3, dim=-1)
        else:
            bq, bk, bv = (None, None, None) if bias is None else bias.split(e)
            wq, wk, wv = w.split(e)
            q = F.linear(query, wq, bq)
            if value is key:
                k, v = F.linear(key, torch.cat([wk, wv]), None if bias is None else torch.cat([bk, bv])).chunk(2, -1)
            else:
                k, v = F.linear(key, wk, bk), F.linear(value, wv, bv)
        o = F.scaled_dot_product_attention(self._split(q), self._split(k), self._split(v), attn_mask=attn_mask)
        b, _, lq, _ = o.shape
        o = self.out_proj(o.transpose(1, 2).reshape(b, lq, e))
        if not self.batch_first:
            o = o.transpose(0, 1)
        return o, None


class CrossAttention(MultiheadAttention):
    """Cross attention: ``forward(x, context)`` attends x ``[batch, Lq, dim]`` to context ``[batch, Lk, dim]``."""

    def forward(self, query: torch.Tensor, key: torch.Tensor | None = None, value: torch.Tensor | None = None,  # type: ignore[override]
                attn_mask: torch.Tensor | None = None, need_weights: bool = False) -> tuple[torch.Tensor, None]:
        if key is None:
            raise InvalidParameter("CrossAttention needs a context (key) tensor")
        return super().forward(query, key, key if value is None else value, attn_mask, need_weights)


class _PreNormFF(nn.Module):
    """What the self- and cross-attention layers share: the feed-forward
    (``linear1``/``linear2``), the LayerScales ``gamma_1``/``gamma_2`` and ``norm_out``
    (demucs' parameter names)."""

    def _init_shared(self, dim: int, hidden: int, layer_scale: bool, norm_out: bool, gelu: bool) -> None:
        from ironwave.nn.layers import ChannelGroupNorm, LayerScale

        self.linear1 = nn.Linear(dim, hidden)
        self.linear2 = nn.Linear(hidden, dim)
        self.norm_out = ChannelGroupNorm(1, dim) if norm_out else None
        self.gamma_1 = LayerScale(dim, 1e-4, True) if layer_scale else nn.Identity()
        self.gamma_2 = LayerScale(dim, 1e-4, True) if layer_scale else nn.Identity()
        self.gelu = gelu

    def _ff(self, x: torch.Tensor) -> torch.Tensor:
        h = self.linear1(x)
        return self.linear2(F.gelu(h) if self.gelu else F.relu(h))


class TransformerLayer(_PreNormFF):
    """Pre-norm transformer encoder layer with LayerScale and an optional output GroupNorm.

    ``x = x + gamma_1 * attn(norm1(x)); x = x + gamma_2 * ff(norm2(x)); x = norm_out(x)``
    over ``[batch, seq, dim]``. Parameter names match demucs' MyTransformerEncoderLayer
    (``self_attn``, ``linear1``, ``linear2``, ``norm1``, ``norm2``, ``norm_out``,
    ``gamma_1.scale``, ``gamma_2.scale``).
    """

    def __init__(self, dim: int, heads: int, hidden: int, *, layer_scale: bool = True, norm_out: bool = True,
                 gelu: bool = True, eps: float = 1e-5) -> None:
        super().__init__()
        from ironwave.nn.layers import LayerNorm

        self.self_attn = MultiheadAttention(dim, heads, batch_first=True)
        self.norm1 = LayerNorm(dim, eps=eps)
        self.norm2 = LayerNorm(dim, eps=eps)
        self._init_shared(dim, hidden, layer_scale, norm_out, gelu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.gamma_1(self.self_attn(self.norm1(x))[0])
        x = x + self.gamma_2(self._ff(self.norm2(x)))
        if self.norm_out is not None:
            x = self.norm_out(x)
        return x


class CrossTransformerLayer(_PreNormFF):
    """Pre-norm cross-attention layer: queries from x, keys/values from a context.

    ``x = q + gamma_1 * cross_attn(norm1(q), norm2(k)); x = x + gamma_2 * ff(norm3(x)); norm_out``.
    Parameter names match demucs' CrossTransformerEncoderLayer.
    """

    def __init__(self, dim: int, heads: int, hidden: int, *, layer_scale: bool = True, norm_out: bool = True,
                 gelu: bool = True, eps: float = 1e-5) -> None:
        super().__init__()
        from ironwave.nn.layers import LayerNorm

        self.cross_attn = CrossAttention(dim, heads, batch_first=True)
        self.norm1 = LayerNorm(dim, eps=eps)
        self.norm2 = LayerNorm(dim, eps=eps)
        self.norm3 = LayerNorm(dim, eps=eps)
        self._init_shared(dim, hidden, layer_scale, norm_out, gelu)

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        x = q + self.gamma_1(self.cross_attn(self.norm1(q), self.norm2(k))[0])
        x = x + self.gamma_2(self._ff(self.norm3(x)))
        if self.norm_out is not None:
            x = self.norm_out(x)
        return x
