"""A Sequential that reuses two ping-pong buffers between layers.

Layers that can write into a given buffer (``forward_into(x, out)``, e.g.
:class:`ironwave.nn.Linear`, :class:`ironwave.nn.Activation`) run with no
allocation: layer *i* reads buffer ``i % 2`` and writes buffer ``(i + 1) % 2``
of its output shape. Layers of the same output shape share the same pair, so a
chain of N same-shaped layers needs 2 buffers instead of N; layers without
``forward_into`` run normally and their result is copied into the buffer.
:attr:`PingPongSequential.buffers_saved` reports how many intermediate buffers the sharing saved.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ironwave.errors import InvalidParameter

__all__ = ["PingPongSequential"]


class PingPongSequential(nn.Module):
    """Run layers in order through two reusable buffers per output shape.

    Call :meth:`prepare` with an example input (shape, dtype, device) first;
    :meth:`forward` then accepts inputs of exactly that shape and returns a view
    of an internal buffer (overwritten by the next call; clone to keep it).

    Attributes:
        buffers_allocated: number of intermediate buffers held after prepare().
        buffers_saved: ``len(layers) - buffers_allocated`` (0 for 1-2 layers).
        fallback_layers: indices of layers without ``forward_into`` (they allocate).
    """

    def __init__(self, *layers: nn.Module) -> None:
        super().__init__()
        if not layers:
            raise InvalidParameter("PingPongSequential needs at least one layer")
        self.layers = nn.ModuleList(layers)
        self._plan: list[torch.Tensor] | None = None
        self._in_shape: tuple[int, ...] | None = None
        self.buffers_allocated = 0
        self.buffers_saved = 0
        self.fallback_layers: list[int] = []

    def prepare(self, example: torch.Tensor) -> "PingPongSequential":
        """Trace output shapes with *example* and allocate the ping-pong buffers."""
        pools: dict[tuple, list[torch.Tensor]] = {}
        plan: list[torch.Tensor] = []
        use: dict[tuple, int] = {}
        x = example
        self.fallback_layers = []
        with torch.no_grad():
            for i, layer in enumerate(self.layers):
                y = layer(x)
                key = (tuple(y.shape), y.dtype, y.device)
                pool = pools.setdefault(key, [])
                k = use.get(key, 0)
                slot = k % 2
                if len(pool) <= slot:
                    pool.append(torch.empty_like(y))
                buf = pool[slot]
                # never write into the buffer that holds this layer's input
                if plan and buf.data_ptr() == plan[-1].data_ptr():
                    slot = 1 - slot
                    if len(pool) <= slot:
                        pool.append(torch.empty_like(y))
                    buf = pool[slot]
                use[key] = slot + 1
                plan.append(buf)
                if not hasattr(layer, "forward_into"):
                    self.fallback_layers.append(i)
                x = y
        self._plan = plan
        self._in_shape = tuple(example.shape)
        self.buffers_allocated = sum(len(p) for p in pools.values())
        self.buffers_saved = len(self.layers) - self.buffers_allocated
        return self

    @property
    def prepared(self) -> bool:
        return self._plan is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._plan is None:
            self.prepare(x)
        assert self._plan is not None
        if tuple(x.shape) != self._in_shape:
            raise InvalidParameter(f"input shaped {list(x.shape)} does not match the prepared shape {list(self._in_shape or ())}")
        for layer, buf in zip(self.layers, self._plan):
            fi = getattr(layer, "forward_into", None)
            if fi is not None:
                fi(x, buf)
            else:
                buf.copy_(layer(x))
            x = buf
        return x

    def buffer_pointers(self) -> Sequence[int]:
        """data_ptr of each layer's output buffer (for tests/diagnostics)."""
        return [b.data_ptr() for b in (self._plan or [])]
