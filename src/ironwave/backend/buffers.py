"""Preallocated buffers: a tensor pool with generation-checked handles, and
lock-free single-producer/single-consumer rings.

Everything here is allocated up front; the operations used on an audio thread
(``acquire``/``release``, ``write``/``read``, ``push``/``pop``) allocate no
tensors and take no lock.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, Sequence, TypeVar

import numpy as np
import torch

from ironwave.errors import InvalidParameter, PoolExhausted, StaleHandle

T = TypeVar("T")


@dataclass(frozen=True)
class PoolHandle:
    """Handle of one pooled buffer: slot index plus the slot's generation."""

    index: int
    generation: int


class TensorPool:
    """A fixed set of same-shaped tensors on one device.

    ``acquire`` and ``release`` are O(1) (a free-list stack). Each slot carries a
    generation number that is bumped on release, so a stale handle (released
    twice, or used after release) is detected and raises :class:`StaleHandle`.

    Args:
        shape: shape of every buffer, e.g. ``(channels, frames)``.
        capacity: number of buffers.
        dtype / device: of the buffers.
    """

    def __init__(self, shape: Sequence[int], capacity: int, *, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu") -> None:
        if capacity < 1:
            raise InvalidParameter(f"pool capacity must be >= 1, got {capacity}")
        self.shape = tuple(int(s) for s in shape)
        self.capacity = int(capacity)
        self.storage = torch.zeros((self.capacity, *self.shape), dtype=dtype, device=device)
        self._views = [self.storage[i] for i in range(self.capacity)]
        self._gen = [0] * self.capacity
        self._in_use = [False] * self.capacity
        self._free = list(range(self.capacity - 1, -1, -1))
        self._top = self.capacity  # number of valid entries in _free (stack, preallocated)

    @property
    def available(self) -> int:
        """Number of free buffers."""
        return self._top

    def acquire(self) -> PoolHandle:
        """Take a free buffer. Raises :class:`PoolExhausted` when none is left."""
        if self._top == 0:
            raise PoolExhausted(f"tensor pool of {self.capacity} buffers shaped {list(self.shape)} is exhausted; release buffers or create a larger pool")
        self._top -= 1
        i = self._free[self._top]
        self._in_use[i] = True
        return PoolHandle(i, self._gen[i])

    def _check(self, h: PoolHandle, what: str) -> None:
        if not isinstance(h, PoolHandle) or not 0 <= h.index < self.capacity:
            raise StaleHandle(f"{what}: {h!r} is not a handle of this pool")
        if h.generation != self._gen[h.index] or not self._in_use[h.index]:
            raise StaleHandle(f"{what}: handle {h.index}/gen {h.generation} is stale (slot is at generation {self._gen[h.index]}); was it released already?")

    def tensor(self, h: PoolHandle) -> torch.Tensor:
        """The buffer of a live handle."""
        self._check(h, "tensor")
        return self._views[h.index]

    def release(self, h: PoolHandle) -> None:
        """Return a buffer. A double or stale release raises :class:`StaleHandle`."""
        self._check(h, "release")
        self._in_use[h.index] = False
        self._gen[h.index] += 1
        self._free[self._top] = h.index
        self._top += 1


def _pow2(n: int) -> int:
    return 1 << (max(1, int(n)) - 1).bit_length()


class SPSCRing:
    """Lock-free single-producer/single-consumer ring of audio frames.

    Storage is a preallocated ``[capacity, channels]`` float array (capacity
    rounded up to a power of two). The producer only writes ``_head`` and the
    consumer only writes ``_tail``; each index is a monotonically increasing
    integer, so under CPython's atomic attribute stores no lock is needed.

    ``write(frames)`` takes ``[n, channels]`` (numpy or CPU tensor) and returns
    how many frames fit; ``read(out)`` fills ``[n, channels]`` and returns how
    many were available.
    """

    def __init__(self, capacity: int, channels: int = 1, dtype: Any = np.float32) -> None:
        self.capacity = _pow2(capacity)
        self.channels = int(channels)
        self._buf = np.zeros((self.capacity, self.channels), dtype=dtype)
        self._mask = self.capacity - 1
        self._head = 0  # written by producer
        self._tail = 0  # written by consumer

    def readable(self) -> int:
        return self._head - self._tail

    def writable(self) -> int:
        return self.capacity - (self._head - self._tail)

    def write(self, frames: Any) -> int:
        """Append up to ``len(frames)`` frames; returns the number written."""
        data = frames.numpy() if isinstance(frames, torch.Tensor) else frames
        n = min(len(data), self.writable())
        if n <= 0:
            return 0
        start = self._head & self._mask
        first = min(n, self.capacity - start)
        self._buf[start:start + first] = data[:first]
        if n > first:
            self._buf[:n - first] = data[first:n]
        self._head += n  # publish after the copy
        return n

    def read(self, out: Any) -> int:
        """Fill up to ``len(out)`` frames of *out*; returns the number read."""
        dst = out.numpy() if isinstance(out, torch.Tensor) else out
        n = min(len(dst), self.readable())
        if n <= 0:
            return 0
        start = self._tail & self._mask
        first = min(n, self.capacity - start)
        dst[:first] = self._buf[start:start + first]
        if n > first:
            dst[first:n] = self._buf[:n - first]
        self._tail += n  # release after the copy
        return n


class CommandRing(Generic[T]):
    """Lock-free SPSC ring of Python objects (control commands).

    ``push`` returns False when full (the control thread may retry); ``pop``
    returns None when empty. Slots are preallocated; nothing is resized.
    """

    def __init__(self, capacity: int = 1024) -> None:
        self.capacity = _pow2(capacity)
        self._slots: list[Any] = [None] * self.capacity
        self._mask = self.capacity - 1
        self._head = 0
        self._tail = 0

    def __len__(self) -> int:
        return self._head - self._tail

    def push(self, item: T) -> bool:
        if self._head - self._tail >= self.capacity:
            return False
        self._slots[self._head & self._mask] = item
        self._head += 1
        return True

    def pop(self) -> T | None:
        if self._head == self._tail:
            return None
        i = self._tail & self._mask
        item = self._slots[i]
        self._slots[i] = None
        self._tail += 1
        return item
