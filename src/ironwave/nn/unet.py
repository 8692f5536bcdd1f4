"""U-Net encoder/decoder blocks with explicit skip storage, ``[batch, channels, time]``."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ironwave.errors import InvalidParameter
from ironwave.nn.layers import Conv1d, ConvTranspose1d, GroupNorm

__all__ = ["SkipStore", "EncoderBlock", "DecoderBlock", "UNet1d"]


class SkipStore:
    """LIFO store of skip tensors (and the lengths needed to undo padding)."""

    def __init__(self) -> None:
        self._skips: list[torch.Tensor] = []
        self._lengths: list[int] = []

    def push(self, skip: torch.Tensor, length: int) -> None:
        self._skips.append(skip)
        self._lengths.append(length)

    def pop(self) -> tuple[torch.Tensor, int]:
        if not self._skips:
            raise InvalidParameter("skip store is empty: more decoder than encoder blocks")
        return self._skips.pop(), self._lengths.pop()

    def __len__(self) -> int:
        return len(self._skips)

    def clear(self) -> None:
        self._skips.clear()
        self._lengths.clear()


class EncoderBlock(nn.Module):
    """Strided conv (kernel ``2*stride``) -> GroupNorm -> GELU; stores its output as skip."""

    def __init__(self, chin: int, chout: int, stride: int = 4, groups: int = 1) -> None:
        super().__init__()
        self.stride = stride
        self.conv = Conv1d(chin, chout, 2 * stride, stride, stride // 2)
        self.norm = GroupNorm(groups, chout)

    def forward(self, x: torch.Tensor, skips: SkipStore | None = None) -> torch.Tensor:
        length = x.shape[-1]
        if length % self.stride:
            x = F.pad(x, (0, self.stride - length % self.stride))
        y = F.gelu(self.norm(self.conv(x)))
        if skips is not None:
            skips.push(y, length)
        return y


class DecoderBlock(nn.Module):
    """Add the skip, transposed strided conv -> GroupNorm -> GELU (no activation if ``last``)."""

    def __init__(self, chin: int, chout: int, stride: int = 4, groups: int = 1, last: bool = False) -> None:
        super().__init__()
        self.stride = stride
        self.last = last
        self.conv_tr = ConvTranspose1d(chin, chout, 2 * stride, stride)
        self.norm = GroupNorm(groups, chout) if not last else nn.Identity()

    def forward(self, x: torch.Tensor, skips: SkipStore) -> torch.Tensor:
        skip, length = skips.pop()
        y = self.conv_tr(x + skip)
        pad = self.stride // 2
        y = self.norm(y[..., pad:pad + length])
        return y if self.last else F.gelu(y)


class UNet1d(nn.Module):
    """A waveform U-Net: ``[batch, chin, time] -> [batch, chout, time]``."""

    def __init__(self, chin: int = 2, chout: int = 2, channels: int = 16, depth: int = 3, stride: int = 4) -> None:
        super().__init__()
        self.encoder = nn.ModuleList()
        self.decoder = nn.ModuleList()
        c_in = chin
        for i in range(depth):
            c = channels * 2 ** i
            self.encoder.append(EncoderBlock(c_in, c, stride))
            self.decoder.insert(0, DecoderBlock(c, chout if i == 0 else c_in, stride, last=i == 0))
            c_in = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = SkipStore()
        for enc in self.encoder:
            x = enc(x, skips)
        # the innermost skip is the output itself: the first decoder adds it back
        x = torch.zeros_like(x)
        for dec in self.decoder:
            x = dec(x, skips)
        return x
