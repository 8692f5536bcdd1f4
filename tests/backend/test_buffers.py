import threading

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from ironwave.backend import CommandRing, PoolExhausted, SPSCRing, StaleHandle, TensorPool


def test_pool_acquire_release_and_exhaustion():
    pool = TensorPool((2, 64), capacity=3)
    hs = [pool.acquire() for _ in range(3)]
    assert pool.available == 0
    assert len({h.index for h in hs}) == 3
    with pytest.raises(PoolExhausted) as e:
        pool.acquire()
    assert "3 buffers" in str(e.value)
    t = pool.tensor(hs[0])
    assert t.shape == (2, 64) and t.data_ptr() == pool.storage[hs[0].index].data_ptr()
    pool.release(hs[1])
    h = pool.acquire()
    assert h.index == hs[1].index and h.generation == hs[1].generation + 1


def test_pool_double_and_stale_release():
    pool = TensorPool((8,), capacity=2)
    h = pool.acquire()
    pool.release(h)
    with pytest.raises(StaleHandle):
        pool.release(h)  # double release
    h2 = pool.acquire()  # same slot, new generation
    assert h2.index == h.index
    with pytest.raises(StaleHandle):
        pool.tensor(h)  # stale use
    with pytest.raises(StaleHandle):
        pool.release(h)
    pool.release(h2)
    assert pool.available == 2


def test_pool_does_not_allocate_tensors_after_construction():
    pool = TensorPool((4, 16), capacity=4)
    ptr = pool.storage.data_ptr()
    for _ in range(100):
        h = pool.acquire()
        pool.tensor(h).fill_(1.0)
        pool.release(h)
    assert pool.storage.data_ptr() == ptr


def test_ring_wraps_and_reports_counts():
    r = SPSCRing(8, channels=2)
    assert r.capacity == 8
    a = np.arange(20, dtype=np.float32).reshape(10, 2)
    assert r.write(a) == 8 and r.readable() == 8 and r.writable() == 0
    out = np.zeros((5, 2), np.float32)
    assert r.read(out) == 5
    np.testing.assert_array_equal(out, a[:5])
    assert r.write(a[8:]) == 2
    out2 = np.zeros((10, 2), np.float32)
    assert r.read(out2) == 5
    np.testing.assert_array_equal(out2[:3], a[5:8])
    np.testing.assert_array_equal(out2[3:5], a[8:10])
    assert r.read(out2) == 0


def test_ring_accepts_cpu_tensors():
    r = SPSCRing(16, channels=1)
    r.write(torch.ones(4, 1))
    out = torch.zeros(4, 1)
    assert r.read(out) == 4 and bool((out == 1).all())


@settings(max_examples=25, deadline=None)
@given(cap=st.integers(2, 64), writes=st.lists(st.integers(1, 50), min_size=1, max_size=30),
       read_size=st.integers(1, 40), channels=st.integers(1, 3))
def test_ring_threads_preserve_order(cap, writes, read_size, channels):
    """A producer and a consumer thread: every frame arrives once, in order."""
    total = sum(writes)
    data = np.arange(total * channels, dtype=np.float64).reshape(total, channels)
    r = SPSCRing(cap, channels=channels, dtype=np.float64)
    got = np.full_like(data, -1)

    def producer():
        pos = 0
        for n in writes:
            chunk = data[pos:pos + n]
            k = 0
            while k < len(chunk):
                k += r.write(chunk[k:])
            pos += n

    def consumer():
        pos = 0
        buf = np.zeros((read_size, channels))
        while pos < total:
            k = r.read(buf[: min(read_size, total - pos)])
            got[pos:pos + k] = buf[:k]
            pos += k

    tp, tc = threading.Thread(target=producer), threading.Thread(target=consumer)
    tp.start(); tc.start()
    tp.join(10); tc.join(10)
    assert not tp.is_alive() and not tc.is_alive()
    np.testing.assert_array_equal(got, data)


@settings(max_examples=20, deadline=None)
@given(items=st.lists(st.integers(), min_size=0, max_size=300), cap=st.integers(1, 32))
def test_command_ring_threads(items, cap):
    ring: CommandRing[int] = CommandRing(cap)
    out: list[int] = []

    def producer():
        for it in items:
            while not ring.push(it):
                pass

    def consumer():
        while len(out) < len(items):
            v = ring.pop()
            if v is not None:
                out.append(v)

    tp, tc = threading.Thread(target=producer), threading.Thread(target=consumer)
    tp.start(); tc.start()
    tp.join(10); tc.join(10)
    assert out == items


def test_command_ring_full_and_empty():
    r: CommandRing[str] = CommandRing(2)
    assert r.pop() is None
    assert r.push("a") and r.push("b") and not r.push("c")
    assert len(r) == 2 and r.pop() == "a" and r.pop() == "b" and r.pop() is None
