"""Hybrid Transformer Demucs (HTDemucs), ironwave's own implementation.

The network is the one of Rouard, Massa & Défossez (2023), "Hybrid Transformers
for Music Source Separation": a spectrogram U-Net and a waveform U-Net whose
innermost layers exchange information through a cross-domain transformer; the
two branch outputs are summed. Module and parameter names equal those of the
``demucs`` package (``demucs.htdemucs.HTDemucs``), so a demucs ``state_dict``
loads with ``strict=True``; demucs itself is never imported.

Shapes: the model maps ``[batch, audio_channels, time]`` (samples at
:attr:`HTDemucs.samplerate` Hz) to ``[batch, sources, audio_channels, time]``.
In eval mode inputs shorter than the training segment are zero-padded to it
(as demucs does); longer inputs must be split (see :mod:`ironwave.models.apply`).
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ironwave.errors import InvalidParameter
from ironwave.nn.attention import CrossTransformerLayer, TransformerLayer
from ironwave.nn.layers import Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d, GroupNorm, LayerNorm, LayerScale

__all__ = ["HTDemucs", "HTDEMUCS_KWARGS", "SOURCES_4", "SOURCES_6", "htdemucs_config"]

SOURCES_4 = ["drums", "bass", "other", "vocals"]
SOURCES_6 = ["drums", "bass", "other", "vocals", "guitar", "piano"]

#: The architecture kwargs of the released ``htdemucs`` / ``htdemucs_6s`` checkpoints
#: (demucs conf/config.yaml ``htdemucs`` section + the training segment of 7.8 s).
HTDEMUCS_KWARGS: dict[str, Any] = dict(
    audio_channels=2, samplerate=44100, segment=Fraction(39, 5), channels=48, channels_time=None, growth=2,
    nfft=4096, wiener_iters=0, end_iters=0, wiener_residual=False, cac=True, depth=4, rewrite=True,
    multi_freqs=[], multi_freqs_depth=3, freq_emb=0.2, emb_scale=10, emb_smooth=True, kernel_size=8, stride=4,
    time_stride=2, context=1, context_enc=0, norm_starts=4, norm_groups=4, dconv_mode=3, dconv_depth=2,
    dconv_comp=8, dconv_init=1e-3, bottom_channels=512, t_layers=5, t_emb="sin", t_hidden_scale=4.0, t_heads=8,
    t_dropout=0.0, t_max_positions=10000, t_norm_in=True, t_norm_in_group=False, t_group_norm=False,
    t_norm_first=True, t_norm_out=True, t_max_period=10000.0, t_weight_decay=0.0, t_lr=None, t_layer_scale=True,
    t_gelu=True, t_weight_pos_embed=1.0, t_sin_random_shift=0, t_cape_mean_normalize=True, t_cape_augment=True,
    t_cape_glob_loc_scale=[5000.0, 1.0, 1.4], t_sparse_self_attn=False, t_sparse_cross_attn=False,
    t_mask_type="diag", t_mask_random_seed=42, t_sparse_attn_window=400, t_global_window=100, t_sparsity=0.95,
    t_auto_sparsity=False, t_cross_first=False, rescale=0.1, use_train_segment=True,
)


def htdemucs_config(name: str) -> dict[str, Any]:
    """kwargs (sources included) of a released model: ``"htdemucs"`` or ``"htdemucs_6s"``."""
    if name == "htdemucs":
        return dict(HTDEMUCS_KWARGS, sources=list(SOURCES_4))
    if name == "htdemucs_6s":
        return dict(HTDEMUCS_KWARGS, sources=list(SOURCES_6))
    raise InvalidParameter(f"unknown model {name!r}; accepted: htdemucs, htdemucs_6s")


# --------------------------------------------------------------------------- building blocks
def pad1d(x: torch.Tensor, paddings: tuple[int, int], mode: str = "constant", value: float = 0.0) -> torch.Tensor:
    """F.pad that also reflect-pads inputs shorter than the padding (extra zeros first, as demucs)."""
    length = x.shape[-1]
    left, right = paddings
    if mode == "reflect":
        max_pad = max(left, right)
        if length <= max_pad:
            extra = max_pad - length + 1
            extra_right = min(right, extra)
            extra_left = extra - extra_right
            paddings = (left - extra_left, right - extra_right)
            x = F.pad(x, (extra_left, extra_right))
    return F.pad(x, paddings, mode, value)


class ScaledEmbedding(nn.Module):
    """Frequency embedding with a learning-rate boost ``scale`` (parameter ``embedding.weight``)."""

    def __init__(self, num_embeddings: int, embedding_dim: int, scale: float = 10.0, smooth: bool = False) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_embeddings, embedding_dim)
        if smooth:
            w = torch.cumsum(self.embedding.weight.data, dim=0)
            w = w / torch.arange(1, num_embeddings + 1).to(w).sqrt()[:, None]
            self.embedding.weight.data[:] = w
        self.embedding.weight.data /= scale
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedding(x) * self.scale


def _norm(use: bool, groups: int, ch: int) -> nn.Module:
    return GroupNorm(groups, ch) if use else nn.Identity()


class DConv(nn.Module):
    """Residual branch of dilated 1-D convolutions over time, ``[batch, channels, time]``.

    Each of ``depth`` layers: conv(k=3, dilation 2**d) -> GroupNorm(1) -> GELU ->
    1x1 conv (2x channels) -> GroupNorm(1) -> GLU -> LayerScale, added to the input.
    """

    def __init__(self, channels: int, compress: float = 4, depth: int = 2, init: float = 1e-4, norm: bool = True,
                 gelu: bool = True, kernel: int = 3, **unsupported: Any) -> None:
        super().__init__()
        if unsupported.get("attn") or unsupported.get("lstm"):
            raise InvalidParameter("DConv with LSTM/local attention (HDemucs) is not supported by HTDemucs")
        hidden = int(channels / compress)
        dilate = depth > 0
        self.layers = nn.ModuleList()
        for d in range(abs(depth)):
            dilation = 2 ** d if dilate else 1
            pad = dilation * (kernel // 2)
            self.layers.append(nn.Sequential(
                Conv1d(channels, hidden, kernel, dilation=dilation, padding=pad),
                GroupNorm(1, hidden) if norm else nn.Identity(),
                nn.GELU() if gelu else nn.ReLU(),
                Conv1d(hidden, 2 * channels, 1),
                GroupNorm(1, 2 * channels) if norm else nn.Identity(),
                nn.GLU(1),
                LayerScale(channels, init),
            ))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = x + layer(x)
        return x


class HEncLayer(nn.Module):
    """Encoder layer of either branch: strided conv (over freq for the spectral
    branch, over time for the waveform branch), GELU, DConv, 1x1 rewrite + GLU."""

    def __init__(self, chin: int, chout: int, kernel_size: int = 8, stride: int = 4, norm_groups: int = 1,
                 empty: bool = False, freq: bool = True, dconv: bool = True, norm: bool = True, context: int = 0,
                 dconv_kw: dict | None = None, pad: bool = True, rewrite: bool = True) -> None:
        super().__init__()
        padv = kernel_size // 4 if pad else 0
        self.freq, self.kernel_size, self.stride, self.empty, self.norm, self.pad = freq, kernel_size, stride, empty, norm, padv
        if freq:
            self.conv: nn.Module = Conv2d(chin, chout, [kernel_size, 1], [stride, 1], [padv, 0])
        else:
            self.conv = Conv1d(chin, chout, kernel_size, stride, padv)
        if empty:
            return
        self.norm1 = _norm(norm, norm_groups, chout)
        self.rewrite: nn.Module | None = None
        if rewrite:
            k = 1 + 2 * context
            self.rewrite = Conv2d(chout, 2 * chout, k, 1, context) if freq else Conv1d(chout, 2 * chout, k, 1, context)
            self.norm2 = _norm(norm, norm_groups, 2 * chout)
        self.dconv = DConv(chout, **(dconv_kw or {})) if dconv else None

    def forward(self, x: torch.Tensor, inject: torch.Tensor | None = None) -> torch.Tensor:
        if not self.freq and x.dim() == 4:
            b, c, fr, t = x.shape
            x = x.reshape(b, -1, t)
        if not self.freq:
            le = x.shape[-1]
            if le % self.stride:
                x = F.pad(x, (0, self.stride - le % self.stride))
        y = self.conv(x)
        if self.empty:
            return y
        if inject is not None:
            if inject.shape[-1] != y.shape[-1]:
                raise InvalidParameter(f"time/frequency branch lengths differ: {inject.shape} vs {y.shape}")
            if inject.dim() == 3 and y.dim() == 4:
                inject = inject[:, :, None]
            y = y + inject
        y = F.gelu(self.norm1(y))
        if self.dconv is not None:
            y = _dconv_apply(self.dconv, y, self.freq)
        if self.rewrite is not None:
            return F.glu(self.norm2(self.rewrite(y)), dim=1)
        return y


#: DConv inputs larger than this many elements are processed in chunks of independent rows
#: (``(batch, freq)`` rows in the spectral branch, batch items in the waveform branch). The rows
#: are independent (per-row convolutions and GroupNorm(1)), so the result is the same; only the
#: transient 2x-channel activations shrink, which bounds the forward's peak memory.
DCONV_CHUNK_ELEMENTS = 1 << 22


def _dconv_apply(dconv: DConv, y: torch.Tensor, freq: bool, max_elements: int | None = None) -> torch.Tensor:
    """Apply *dconv* over time to ``[b, c, t]`` or, per frequency row, to ``[b, c, fr, t]``; chunked when large.

    The default limit is :data:`DCONV_CHUNK_ELEMENTS` *per batch item*: a batch of n segments is split into
    as many chunks as one segment (each n times larger), so batched forwards keep large, efficient kernels
    (a fixed element limit serialised a batch of 8 into 8-16x more, smaller launches) while the memory of a
    batch-1 forward stays bounded. An explicit *max_elements* is an absolute limit (tests).
    """
    limit = DCONV_CHUNK_ELEMENTS * max(1, y.shape[0]) if max_elements is None else max_elements
    if not freq:
        b = y.shape[0]
        per = max(1, limit // max(1, y[0].numel()))
        if per >= b:
            return dconv(y)
        first = dconv(y[:per])
        out = torch.empty(y.shape, dtype=first.dtype, device=y.device)
        out[:per] = first
        del first
        for i in range(per, b, per):
            out[i:i + per] = dconv(y[i:i + per])
        return out
    b, c, fr, t = y.shape
    per = max(1, limit // max(1, b * c * t))  # frequency rows per chunk (all batch items at once)
    if per >= fr:
        z = dconv(y.permute(0, 2, 1, 3).reshape(-1, c, t))
        return z.view(b, fr, c, t).permute(0, 2, 1, 3)
    out: torch.Tensor | None = None
    for f0 in range(0, fr, per):
        f1 = min(fr, f0 + per)
        z = dconv(y[:, :, f0:f1].permute(0, 2, 1, 3).reshape(-1, c, t)).view(b, f1 - f0, c, t).permute(0, 2, 1, 3)
        if out is None:
            out = torch.empty(b, c, fr, t, dtype=z.dtype, device=y.device)
        out[:, :, f0:f1] = z
        del z
    assert out is not None
    return out


class HDecLayer(nn.Module):
    """Decoder layer: add skip, 1x1 rewrite + GLU, DConv, transposed strided conv."""

    def __init__(self, chin: int, chout: int, last: bool = False, kernel_size: int = 8, stride: int = 4,
                 norm_groups: int = 1, empty: bool = False, freq: bool = True, dconv: bool = True, norm: bool = True,
                 context: int = 1, dconv_kw: dict | None = None, pad: bool = True, context_freq: bool = True,
                 rewrite: bool = True) -> None:
        super().__init__()
        self.pad = kernel_size // 4 if pad else 0
        self.last, self.freq, self.chin, self.empty, self.stride = last, freq, chin, empty, stride
        self.kernel_size, self.norm, self.context_freq = kernel_size, norm, context_freq
        if freq:
            self.conv_tr: nn.Module = ConvTranspose2d(chin, chout, [kernel_size, 1], [stride, 1])
        else:
            self.conv_tr = ConvTranspose1d(chin, chout, kernel_size, stride)
        self.norm2 = _norm(norm, norm_groups, chout)
        if empty:
            return
        self.rewrite: nn.Module | None = None
        if rewrite:
            k = 1 + 2 * context
            if not freq:
                self.rewrite = Conv1d(chin, 2 * chin, k, 1, context)
            elif context_freq:
                self.rewrite = Conv2d(chin, 2 * chin, k, 1, context)
            else:
                self.rewrite = Conv2d(chin, 2 * chin, [1, k], 1, [0, context])
            self.norm1 = _norm(norm, norm_groups, 2 * chin)
        self.dconv = DConv(chin, **(dconv_kw or {})) if dconv else None

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.freq and x.dim() == 3:
            b, c, t = x.shape
            x = x.view(b, self.chin, -1, t)
        if not self.empty:
            x = x + skip
            y = F.glu(self.norm1(self.rewrite(x)), dim=1) if self.rewrite is not None else x
            if self.dconv is not None:
                y = _dconv_apply(self.dconv, y, self.freq)
        else:
            y = x
        z = self.norm2(self.conv_tr(y))
        if self.freq:
            if self.pad:
                z = z[..., self.pad:-self.pad, :]
        else:
            z = z[..., self.pad:self.pad + length]
        if not self.last:
            z = F.gelu(z)
        return z, y


# --------------------------------------------------------------------------- inverse STFT
def _is_capturing(device: torch.device) -> bool:
    return device.type == "cuda" and torch.cuda.is_current_stream_capturing()


def overlap_add(frames: torch.Tensor, hop: int) -> torch.Tensor:
    """Overlap-add ``frames [batch, n_frames, n]`` with hop *hop* (samples) -> ``[batch, n + hop*(n_frames-1)]``.

    ``F.fold`` (col2im): one gather kernel, no host synchronisation (CUDA-graph safe).
    """
    return _fold(frames.transpose(1, 2), hop)


def _fold(cols: torch.Tensor, hop: int) -> torch.Tensor:
    """Overlap-add of ``cols [batch, n, n_frames]`` (frame samples along dim 1) -> ``[batch, out_len]``."""
    b, n, nfr = cols.shape
    out_len = n + hop * (nfr - 1)
    y = F.fold(cols, output_size=(1, out_len), kernel_size=(1, n), stride=(1, hop))
    return y.view(b, out_len)


def istft(z: torch.Tensor, n_fft: int, hop_length: int, window: torch.Tensor, *, normalized: bool = False,
          center: bool = True, length: int | None = None,
          envelope_cache: dict[tuple, torch.Tensor] | None = None) -> torch.Tensor:
    """Inverse STFT equal to ``torch.istft`` (onesided input, ``win_length == n_fft``), CUDA-graph capturable.

    ``torch.istft`` checks the window envelope (NOLA) by reading a device value on
    the host, which is illegal while a CUDA graph is captured. Here the frames are
    ``irfft``-ed (``norm="ortho"`` when *normalized*, i.e. torch's scaling), windowed,
    overlap-added with :func:`overlap_add` and divided by the squared-window
    envelope. The envelope is computed once per ``(n_fft, hop, frames, slice,
    device, dtype)`` and kept in *envelope_cache*; the NOLA check runs then (on
    the first, eager call: the warm-up before a capture), never during a capture.

    Args:
        z: complex spectrogram ``[..., n_fft // 2 + 1, frames]``.
        n_fft: FFT size (samples); *window* has ``n_fft`` samples.
        hop_length: hop (samples).
        normalized: the forward STFT was ``normalized=True``.
        center: the forward STFT was centred (drops ``n_fft // 2`` samples each side).
        length: output length (samples); zero-padded if longer than the frames cover.
        envelope_cache: dict to keep envelopes in (None: no caching).

    Returns:
        ``[..., length]`` real signal, dtype of ``window``.
    """
    *other, freqs, nfr = z.shape
    if freqs != n_fft // 2 + 1:
        raise InvalidParameter(f"istft: {freqs} frequency bins do not match n_fft={n_fft} (expected {n_fft // 2 + 1})")
    if window.shape[-1] != n_fft:
        raise InvalidParameter(f"istft: window of {window.shape[-1]} samples, expected n_fft={n_fft}")
    # irfft along the frequency dim gives frames as [batch, n_fft, frames]: F.fold's own layout (no transposed
    # copy); the window is applied in place (the irfft output is a fresh tensor)
    frames = torch.fft.irfft(z.reshape(-1, freqs, nfr), n=n_fft, dim=1, norm="ortho" if normalized else "backward")
    frames.mul_(window[:, None])
    y = _fold(frames, hop_length)
    del frames
    expected = y.shape[-1]
    start = n_fft // 2 if center else 0
    if length is None:
        end = expected - n_fft // 2 if center else expected
    else:
        end = start + length
    stop = min(end, expected)
    key = (n_fft, hop_length, nfr, start, stop, window.device, window.dtype)
    env = envelope_cache.get(key) if envelope_cache is not None else None
    if env is None:
        w2 = (window * window).expand(1, nfr, n_fft)
        env = overlap_add(w2, hop_length)[0, start:stop]
        if not _is_capturing(window.device):
            # NOLA check (host read): only outside a capture; cached so later (captured) calls skip it
            if bool(env.abs().min() < 1e-11):
                raise InvalidParameter("istft: window overlap-add envelope has zeros (NOLA condition fails) "
                                       f"for n_fft={n_fft}, hop_length={hop_length}")
            if envelope_cache is not None:
                envelope_cache[key] = env
        # during a capture the envelope is recomputed inside the graph (correct on every replay) and not cached
    y = y[:, start:stop]
    y.div_(env)  # in place: y is a view of the fresh overlap-add output
    if end > expected:
        y = F.pad(y, (0, end - expected))
    return y.view(*other, y.shape[-1])


# --------------------------------------------------------------------------- transformer
def create_sin_embedding(length: int, dim: int, shift: int = 0, device: Any = "cpu", max_period: float = 10000) -> torch.Tensor:
    """1-D sinusoidal positions ``[length, 1, dim]`` (demucs' formula, computed on *device*)."""
    pos = shift + torch.arange(length, device=device).view(-1, 1, 1)
    half = dim // 2
    adim = torch.arange(dim // 2, device=device).view(1, 1, -1)
    phase = pos / (max_period ** (adim / (half - 1)))
    return torch.cat([torch.cos(phase), torch.sin(phase)], dim=-1)


def create_2d_sin_embedding(d_model: int, height: int, width: int, max_period: float = 10000) -> torch.Tensor:
    """2-D sinusoidal positions ``[1, d_model, height, width]`` (computed on the CPU, as demucs)."""
    if d_model % 4:
        raise InvalidParameter(f"2-D sin embedding needs a dimension divisible by 4, got {d_model}")
    pe = torch.zeros(d_model, height, width)
    d = d_model // 2
    div = torch.exp(torch.arange(0.0, d, 2) * -(math.log(max_period) / d))
    pw = torch.arange(0.0, width).unsqueeze(1)
    ph = torch.arange(0.0, height).unsqueeze(1)
    pe[0:d:2] = torch.sin(pw * div).transpose(0, 1).unsqueeze(1).repeat(1, height, 1)
    pe[1:d:2] = torch.cos(pw * div).transpose(0, 1).unsqueeze(1).repeat(1, height, 1)
    pe[d::2] = torch.sin(ph * div).transpose(0, 1).unsqueeze(2).repeat(1, 1, width)
    pe[d + 1::2] = torch.cos(ph * div).transpose(0, 1).unsqueeze(2).repeat(1, 1, width)
    return pe[None]


class CrossTransformerEncoder(nn.Module):
    """Alternating self-attention and cross-attention layers over both branches.

    ``forward(x [B, C, Fr, T1], xt [B, C, T2]) -> (x, xt)`` with the same shapes;
    layers with even index attend within each branch, odd ones across branches.
    """

    def __init__(self, dim: int, emb: str = "sin", hidden_scale: float = 4.0, num_heads: int = 8,
                 num_layers: int = 6, cross_first: bool = False, norm_in: bool = True, norm_first: bool = True,
                 norm_out: bool = True, max_period: float = 10000.0, layer_scale: bool = True, gelu: bool = True,
                 weight_pos_embed: float = 1.0) -> None:
        super().__init__()
        if emb != "sin":
            raise InvalidParameter(f"t_emb={emb!r} is not supported; only 'sin' (used by htdemucs) is")
        if not norm_first:
            raise InvalidParameter("t_norm_first=False is not supported (htdemucs uses pre-norm layers)")
        hidden = int(dim * hidden_scale)
        self.num_layers = num_layers
        self.classic_parity = 1 if cross_first else 0
        self.max_period = max_period
        self.weight_pos_embed = weight_pos_embed
        self.norm_in: nn.Module = LayerNorm(dim) if norm_in else nn.Identity()
        self.norm_in_t: nn.Module = LayerNorm(dim) if norm_in else nn.Identity()
        self.layers = nn.ModuleList()
        self.layers_t = nn.ModuleList()
        kw = dict(layer_scale=layer_scale, norm_out=norm_out, gelu=gelu)
        for idx in range(num_layers):
            klass = TransformerLayer if idx % 2 == self.classic_parity else CrossTransformerLayer
            self.layers.append(klass(dim, num_heads, hidden, **kw))
            self.layers_t.append(klass(dim, num_heads, hidden, **kw))
        self._emb_cache: dict[tuple, torch.Tensor] = {}

    def _pos2d(self, c: int, fr: int, t1: int, device: torch.device) -> torch.Tensor:
        key = ("2d", c, fr, t1, device)
        e = self._emb_cache.get(key)
        if e is None:
            if _is_capturing(device):
                raise RuntimeError("HTDemucs: positional embeddings are built on the host; run one eager forward "
                                   "with the same shapes before capturing a CUDA graph")
            e = create_2d_sin_embedding(c, fr, t1, self.max_period).to(device)
            e = e.permute(0, 3, 2, 1).reshape(1, t1 * fr, c)  # b c fr t1 -> b (t1 fr) c
            self._emb_cache[key] = e
        return e

    def _pos1d(self, t: int, c: int, device: torch.device) -> torch.Tensor:
        key = ("1d", t, c, device)
        e = self._emb_cache.get(key)
        if e is None:
            e = create_sin_embedding(t, c, 0, device, self.max_period).permute(1, 0, 2)  # t b c -> b t c
            if not _is_capturing(device):  # a tensor made inside a capture is only valid within that graph
                self._emb_cache[key] = e
        return e

    def forward(self, x: torch.Tensor, xt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, c, fr, t1 = x.shape
        pos2d = self._pos2d(c, fr, t1, x.device)
        x = x.permute(0, 3, 2, 1).reshape(b, t1 * fr, c)
        x = self.norm_in(x)
        x = x + self.weight_pos_embed * pos2d
        _, ct, t2 = xt.shape
        xt = xt.permute(0, 2, 1)
        pos1d = self._pos1d(t2, ct, x.device)
        xt = self.norm_in_t(xt)
        xt = xt + self.weight_pos_embed * pos1d
        for idx in range(self.num_layers):
            if idx % 2 == self.classic_parity:
                x = self.layers[idx](x)
                xt = self.layers_t[idx](xt)
            else:
                old_x = x
                x = self.layers[idx](x, xt)
                xt = self.layers_t[idx](xt, old_x)
        x = x.reshape(b, t1, fr, c).permute(0, 3, 2, 1)
        xt = xt.permute(0, 2, 1)
        return x, xt


# --------------------------------------------------------------------------- the model
_UNSUPPORTED = {
    "multi_freqs": "MultiWrap frequency bands", "t_sparse_self_attn": "sparse self attention (xformers)",
    "t_sparse_cross_attn": "sparse cross attention (xformers)", "t_norm_in_group": "group norm before the transformer",
    "t_group_norm": "group norm inside the transformer", "wiener_iters": "Wiener filtering",
}


class HTDemucs(nn.Module):
    """Hybrid Transformer Demucs: ``[batch, audio_channels, time] -> [batch, sources, audio_channels, time]``.

    Accepts the keyword arguments of ``demucs.htdemucs.HTDemucs`` (see
    :data:`HTDEMUCS_KWARGS` for the released models); options the released
    models do not use (MultiWrap, sparse attention, Wiener filtering, CAPE
    embeddings) raise :class:`~ironwave.errors.InvalidParameter`.

    Attributes:
        sources: source names, in output order.
        samplerate: Hz.
        segment: training segment in seconds (a Fraction for the released models).
        audio_channels: input/output channels.
    """

    def __init__(self, sources: Sequence[str], audio_channels: int = 2, channels: int = 48,
                 channels_time: int | None = None, growth: float = 2, nfft: int = 4096, wiener_iters: int = 0,
                 end_iters: int = 0, wiener_residual: bool = False, cac: bool = True, depth: int = 4,
                 rewrite: bool = True, multi_freqs: Sequence[float] | None = None, multi_freqs_depth: int = 3,
                 freq_emb: float = 0.2, emb_scale: float = 10, emb_smooth: bool = True, kernel_size: int = 8,
                 time_stride: int = 2, stride: int = 4, context: int = 1, context_enc: int = 0,
                 norm_starts: int = 4, norm_groups: int = 4, dconv_mode: int = 1, dconv_depth: int = 2,
                 dconv_comp: float = 8, dconv_init: float = 1e-3, bottom_channels: int = 0, t_layers: int = 5,
                 t_emb: str = "sin", t_hidden_scale: float = 4.0, t_heads: int = 8, t_dropout: float = 0.0,
                 t_norm_in: bool = True, t_norm_in_group: bool = False, t_group_norm: bool = False,
                 t_norm_first: bool = True, t_norm_out: bool = True, t_max_period: float = 10000.0,
                 t_layer_scale: bool = True, t_gelu: bool = True, t_weight_pos_embed: float = 1.0,
                 t_sin_random_shift: int = 0, t_sparse_self_attn: bool = False, t_sparse_cross_attn: bool = False,
                 t_cross_first: bool = False, rescale: float = 0.1, samplerate: int = 44100,
                 segment: float | Fraction = 10, use_train_segment: bool = True, **ignored: Any) -> None:
        super().__init__()
        opts = dict(multi_freqs=multi_freqs, t_sparse_self_attn=t_sparse_self_attn,
                    t_sparse_cross_attn=t_sparse_cross_attn, t_norm_in_group=t_norm_in_group and not t_norm_in,
                    t_group_norm=t_group_norm, wiener_iters=wiener_iters or end_iters or (not cac))
        for k, v in opts.items():
            if v:
                raise InvalidParameter(f"HTDemucs option {k}={v!r} ({_UNSUPPORTED[k]}) is not supported by ironwave; "
                                       "the released htdemucs/htdemucs_6s models do not use it")
        if t_sin_random_shift:
            raise InvalidParameter("t_sin_random_shift > 0 is a training augmentation and is not supported")
        self.cac = cac
        self.audio_channels = audio_channels
        self.sources = list(sources)
        self.kernel_size, self.context, self.stride, self.depth = kernel_size, context, stride, depth
        self.bottom_channels = bottom_channels
        self.channels = channels
        self.samplerate = samplerate
        self.segment = segment
        self.use_train_segment = use_train_segment
        self.nfft = nfft
        self.hop_length = nfft // 4
        self.freq_emb: ScaledEmbedding | None = None
        self.encoder, self.decoder = nn.ModuleList(), nn.ModuleList()
        self.tencoder, self.tdecoder = nn.ModuleList(), nn.ModuleList()

        chin = audio_channels
        chin_z = chin * 2 if cac else chin
        chout = channels_time or channels
        chout_z = channels
        freqs = nfft // 2
        for index in range(depth):
            norm = index >= norm_starts
            freq = freqs > 1
            stri, ker = stride, kernel_size
            if not freq:
                ker, stri = time_stride * 2, time_stride
            pad, last_freq = True, False
            if freq and freqs <= kernel_size:
                ker, pad, last_freq = freqs, False, True
            kw = dict(kernel_size=ker, stride=stri, freq=freq, pad=pad, norm=norm, rewrite=rewrite,
                      norm_groups=norm_groups,
                      dconv_kw=dict(depth=dconv_depth, compress=dconv_comp, init=dconv_init, gelu=True))
            kwt = dict(kw, freq=0, kernel_size=kernel_size, stride=stride, pad=True)
            if last_freq:
                chout_z = max(chout, chout_z)
                chout = chout_z
            enc = HEncLayer(chin_z, chout_z, dconv=bool(dconv_mode & 1), context=context_enc, **kw)
            if freq:
                self.tencoder.append(HEncLayer(chin, chout, dconv=bool(dconv_mode & 1), context=context_enc,
                                               empty=last_freq, **kwt))
            self.encoder.append(enc)
            if index == 0:
                chin = audio_channels * len(self.sources)
                chin_z = chin * 2 if cac else chin
            self.decoder.insert(0, HDecLayer(chout_z, chin_z, dconv=bool(dconv_mode & 2), last=index == 0,
                                             context=context, **kw))
            if freq:
                self.tdecoder.insert(0, HDecLayer(chout, chin, dconv=bool(dconv_mode & 2), empty=last_freq,
                                                  last=index == 0, context=context, **kwt))
            chin, chin_z = chout, chout_z
            chout, chout_z = int(growth * chout), int(growth * chout_z)
            if freq:
                freqs = 1 if freqs <= kernel_size else freqs // stride
            if index == 0 and freq_emb:
                self.freq_emb = ScaledEmbedding(freqs, chin_z, smooth=emb_smooth, scale=emb_scale)
                self.freq_emb_scale = freq_emb
        if rescale:
            _rescale_module(self, rescale)
        tch = int(channels * growth ** (depth - 1))
        if bottom_channels:
            self.channel_upsampler = Conv1d(tch, bottom_channels, 1)
            self.channel_downsampler = Conv1d(bottom_channels, tch, 1)
            self.channel_upsampler_t = Conv1d(tch, bottom_channels, 1)
            self.channel_downsampler_t = Conv1d(bottom_channels, tch, 1)
            tch = bottom_channels
        self.crosstransformer: CrossTransformerEncoder | None = None
        if t_layers > 0:
            self.crosstransformer = CrossTransformerEncoder(
                tch, emb=t_emb, hidden_scale=t_hidden_scale, num_heads=t_heads, num_layers=t_layers,
                cross_first=t_cross_first, norm_in=t_norm_in, norm_first=t_norm_first, norm_out=t_norm_out,
                max_period=t_max_period, layer_scale=t_layer_scale, gelu=t_gelu, weight_pos_embed=t_weight_pos_embed)
        self._window: dict[tuple, torch.Tensor] = {}
        self._envelope: dict[tuple, torch.Tensor] = {}
        self._freq_index: dict[tuple, torch.Tensor] = {}

    # ---------------------------------------------------------------- properties
    @property
    def training_length(self) -> int:
        """The training segment in samples (``int(segment * samplerate)``, as demucs)."""
        return int(self.segment * self.samplerate)

    def valid_length(self, length: int) -> int:
        """Input length the forward pass runs on (the training length in eval mode)."""
        if not self.use_train_segment:
            return length
        tl = self.training_length
        if tl < length:
            raise InvalidParameter(f"input of {length} samples is longer than the training segment of {tl} samples; "
                                   "use ironwave.models.apply_model to split it")
        return tl

    # ---------------------------------------------------------------- spectrogram
    def _hann(self, n: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        key = (n, device, dtype)
        w = self._window.get(key)
        if w is None:
            w = torch.hann_window(n, device=device, dtype=dtype)
            if not _is_capturing(device):  # cached by the eager warm-up; a capture-made tensor is not kept
                self._window[key] = w
        return w

    def _freq_positions(self, n: int, device: torch.device) -> torch.Tensor:
        key = (n, device)
        frs = self._freq_index.get(key)
        if frs is None:
            frs = torch.arange(n, device=device)
            if not _is_capturing(device):
                self._freq_index[key] = frs
        return frs

    def _spec(self, x: torch.Tensor) -> torch.Tensor:
        hl, nfft = self.hop_length, self.nfft
        le = int(math.ceil(x.shape[-1] / hl))
        pad = hl // 2 * 3
        x = pad1d(x, (pad, pad + le * hl - x.shape[-1]), mode="reflect")
        *other, length = x.shape
        z = torch.stft(x.reshape(-1, length), nfft, hl, window=self._hann(nfft, x.device, x.dtype), win_length=nfft,
                       normalized=True, center=True, return_complex=True, pad_mode="reflect")
        z = z.view(*other, z.shape[-2], z.shape[-1])[..., :-1, :]
        return z[..., 2:2 + le]

    def _ispec(self, z: torch.Tensor, length: int) -> torch.Tensor:
        hl = self.hop_length
        z = F.pad(z, (0, 0, 0, 1))
        z = F.pad(z, (2, 2))
        pad = hl // 2 * 3
        le = hl * int(math.ceil(length / hl)) + 2 * pad
        n_fft = 2 * z.shape[-2] - 2
        # capture-safe equivalent of torch.istft(..., normalized=True, center=True, length=le)
        x = istft(z, n_fft, hl, self._hann(n_fft, z.device, z.real.dtype), normalized=True, center=True, length=le,
                  envelope_cache=self._envelope)
        return x[..., pad:pad + length]

    def _ispec_real(self, x: torch.Tensor, std: torch.Tensor, mean: torch.Tensor, b: int, s: int, fq: int,
                    t_: int, length: int) -> torch.Tensor:
        """Decoder output ``x [b, s*c*2, fq, t]`` (real/imag planes) -> waveforms ``[b, s, c, length]``.

        Equals ``_ispec(view_as_complex(x * std + mean ...))`` but writes the de-normalised values straight
        into the zero-padded complex buffer the iSTFT needs (one buffer instead of a scaled copy, a
        contiguous permuted copy and two padded copies).
        """
        x = x.view(b, s, -1, 2, fq, t_)
        zpad = torch.zeros(b, s, x.shape[2], fq + 1, t_ + 4, dtype=torch.complex64, device=x.device)
        zr = torch.view_as_real(zpad)[..., :fq, 2:2 + t_, :]  # [b, s, c, fq, t, 2]
        # same float ops as demucs: (x * std) + mean, in float32
        zr.copy_(x.permute(0, 1, 2, 4, 5, 3))  # (casts a bf16/fp16 decoder output to float32)
        zr.mul_(std.float().view(b, 1, 1, 1, 1, 1))
        zr.add_(mean.float().view(b, 1, 1, 1, 1, 1))
        del x, zr
        hl = self.hop_length
        pad = hl // 2 * 3
        le = hl * int(math.ceil(length / hl)) + 2 * pad
        n_fft = 2 * zpad.shape[-2] - 2
        y = istft(zpad, n_fft, hl, self._hann(n_fft, zpad.device, torch.float32), normalized=True, center=True,
                  length=le, envelope_cache=self._envelope)
        return y[..., pad:pad + length]

    # ---------------------------------------------------------------- forward
    def forward(self, mix: torch.Tensor, time_only: bool = False) -> torch.Tensor:
        """Separate ``mix [batch, audio_channels, time]`` into ``[batch, sources, audio_channels, time]``.

        Args:
            mix: waveform at :attr:`samplerate` Hz, at most one training segment long.
            time_only: fast mode: skip the spectral decoder and the inverse STFT
                and return only the waveform branch (lower quality, see docs/models.md).
        """
        length = mix.shape[-1]
        length_pre_pad = None
        training_length = length
        if self.use_train_segment and not self.training:
            training_length = self.valid_length(length)
            if length < training_length:
                length_pre_pad = length
                mix = F.pad(mix, (0, training_length - length))
        out_len = mix.shape[-1]
        mix32 = mix.float()
        z = self._spec(mix32)
        b, c_, fq, t_ = z.shape
        x = torch.view_as_real(z).permute(0, 1, 4, 2, 3).reshape(b, c_ * 2, fq, t_)
        del z  # the (complex) input spectrogram is not needed any more (x is a copy)
        x = x.to(mix.dtype)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        std = x.std(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) / (1e-5 + std)
        xt = mix
        meant = xt.mean(dim=(1, 2), keepdim=True)
        stdt = xt.std(dim=(1, 2), keepdim=True)
        xt = (xt - meant) / (1e-5 + stdt)

        saved: list[torch.Tensor] = []
        saved_t: list[torch.Tensor] = []
        lengths: list[int] = []
        lengths_t: list[int] = []
        for idx, encode in enumerate(self.encoder):
            lengths.append(x.shape[-1])
            inject = None
            if idx < len(self.tencoder):
                lengths_t.append(xt.shape[-1])
                tenc = self.tencoder[idx]
                xt = tenc(xt)
                if not tenc.empty:
                    saved_t.append(xt)
                else:
                    inject = xt
            x = encode(x, inject)
            if idx == 0 and self.freq_emb is not None:
                frs = self._freq_positions(x.shape[-2], x.device)
                emb = self.freq_emb(frs).t()[None, :, :, None].expand_as(x)
                x = x + self.freq_emb_scale * emb
            saved.append(x)
        if self.crosstransformer is not None:
            if self.bottom_channels:
                bb, cc, f, t = x.shape
                x = self.channel_upsampler(x.reshape(bb, cc, f * t)).view(bb, -1, f, t)
                xt = self.channel_upsampler_t(xt)
            x, xt = self.crosstransformer(x, xt)
            if self.bottom_channels:
                bb, cc, f, t = x.shape
                x = self.channel_downsampler(x.reshape(bb, cc, f * t)).view(bb, -1, f, t)
                xt = self.channel_downsampler_t(xt)

        offset = self.depth - len(self.tdecoder)
        for idx, decode in enumerate(self.decoder):
            skip = saved.pop(-1)
            if time_only and idx >= offset and not self.tdecoder[idx - offset].empty:
                # the spectral branch is no longer needed once the branches have split
                lengths.pop(-1)
                pre = None
            else:
                x, pre = decode(x, skip, lengths.pop(-1))
            del skip  # free each skip as soon as it is consumed (it would otherwise live one more layer)
            if idx >= offset:
                tdec = self.tdecoder[idx - offset]
                length_t = lengths_t.pop(-1)
                if tdec.empty:
                    xt, _ = tdec(pre[:, :, 0], None, length_t)
                else:
                    xt, _ = tdec(xt, saved_t.pop(-1), length_t)
            del pre

        s = len(self.sources)
        xt = xt.view(b, s, -1, out_len) * stdt[:, None] + meant[:, None]
        if time_only:
            out = xt
        else:
            xs = self._ispec_real(x, std, mean, b, s, fq, t_, out_len)
            del x
            xs += xt.float()  # == xt + xs of demucs (addition commutes exactly); in place on a fresh tensor
            out = xs.to(mix.dtype) if mix.dtype != torch.float32 else xs
        if length_pre_pad:
            out = out[..., :length_pre_pad]
        return out


def _rescale_module(module: nn.Module, reference: float) -> None:
    """demucs' initial weight rescaling of every (transposed) convolution."""
    for sub in module.modules():
        if isinstance(sub, (nn.Conv1d, nn.ConvTranspose1d, nn.Conv2d, nn.ConvTranspose2d)):
            std = sub.weight.std().detach()
            scale = (std / reference) ** 0.5
            sub.weight.data /= scale
            if sub.bias is not None:
                sub.bias.data /= scale
