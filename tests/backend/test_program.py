import time

import pytest
import torch

from ironwave.backend import AsyncRunner, CapturedProgram


def _cpu_allocs(fn, n=20):
    from ironwave.backend.alloccheck import count_cpu_tensor_allocations

    return count_cpu_tensor_allocations(fn, n)


def test_replay_equals_plain_call_functional():
    w = torch.randn(2, 1)

    def fn(x):
        return torch.tanh(x * w) + 0.5 * x

    x0 = torch.randn(2, 128)
    prog = CapturedProgram(fn, [x0], device="cpu")
    for _ in range(3):
        x = torch.randn(2, 128)
        (y,) = prog(x)
        torch.testing.assert_close(y, fn(x), rtol=0, atol=0)


def test_replay_with_out_style_fn_allocates_nothing_on_cpu():
    g = torch.full((2, 1), 0.7)
    out = torch.empty(2, 128)
    tmp = torch.empty(2, 128)

    def fn(x):
        torch.mul(x, g, out=tmp)
        torch.tanh(tmp, out=out)
        out.add_(x, alpha=0.25)
        return out

    prog = CapturedProgram(fn, [torch.randn(2, 128)], device="cpu")
    x = torch.randn(2, 128)
    prog.inputs[0].copy_(x)
    (y,) = prog.replay()
    torch.testing.assert_close(y, torch.tanh(x * g) + 0.25 * x)
    ptr = y.data_ptr()
    # counter works: a plain functional call does allocate
    assert _cpu_allocs(lambda: torch.tanh(prog.inputs[0] * g)) > 0
    assert _cpu_allocs(prog.replay) == 0
    from ironwave.backend.alloccheck import python_growth_bytes

    # counters hold a few int objects (~32 B each); a per-call leak would be >= 2000 B here
    assert python_growth_bytes(prog.replay, n=2000) < 256
    assert prog.outputs[0].data_ptr() == ptr


def test_shape_mismatch_is_clear():
    prog = CapturedProgram(lambda x: x * 2, [torch.zeros(1, 64)], device="cpu")
    with pytest.raises(ValueError, match=r"\[1, 32\].*\[1, 64\]"):
        prog(torch.zeros(1, 32))
    with pytest.raises(ValueError, match="expected 1 input"):
        prog(torch.zeros(1, 64), torch.zeros(1, 64))


def test_bad_return_type_rejected():
    with pytest.raises(ValueError, match="must return a tensor"):
        CapturedProgram(lambda x: 3, [torch.zeros(4)], device="cpu")


def _drain(runner, n, timeout=5.0):
    got = []
    t0 = time.time()
    while len(got) < n and time.time() - t0 < timeout:
        r = runner.poll()
        if r is None:
            time.sleep(0.0005)
            continue
        got.append(r[0].clone())
    return got


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_async_runner_triple_buffer(device):
    prog = CapturedProgram(lambda x: x * 3.0, [torch.zeros(2, 64, device=device)], device=device)
    with AsyncRunner(prog, slots=3) as runner:
        blocks = [torch.full((2, 64), float(i)) for i in range(3)]
        assert all(runner.try_submit(b) for b in blocks)
        t0 = time.perf_counter()
        assert runner.try_submit(torch.zeros(2, 64)) is False  # all slots busy -> immediate False
        assert time.perf_counter() - t0 < 0.05
        assert runner.rejected == 1
        got = _drain(runner, 3)
        assert len(got) == 3
        for i, g in enumerate(got):
            assert torch.equal(g, torch.full((2, 64), 3.0 * i))
        assert runner.poll() is None
        assert runner.try_submit(torch.ones(2, 64))
        assert torch.equal(_drain(runner, 1)[0], torch.full((2, 64), 3.0))


@pytest.mark.gpu
def test_cuda_graph_replay_matches_eager_and_allocates_nothing():
    dev = torch.device("cuda")
    w = torch.randn(2, 1, device=dev)

    def fn(x):
        for _ in range(16):
            x = torch.tanh(x * w)
        return x

    prog = CapturedProgram(fn, [torch.randn(2, 128, device=dev)], device=dev)
    assert prog.captured
    x = torch.randn(2, 128, device=dev)
    (y,) = prog(x)
    torch.testing.assert_close(y, fn(x))
    from ironwave.backend.alloccheck import count_cuda_allocations

    assert count_cuda_allocations(lambda: torch.tanh(x * w), 5) > 0  # the counter works
    assert count_cuda_allocations(prog.replay, 100) == 0
    from ironwave.backend import telemetry

    assert telemetry.backends("program").get("cuda", 0) >= 100


def test_replay_takes_no_lock_and_counts_are_pulled(monkeypatch):
    from ironwave.backend import telemetry

    out = torch.empty(4)
    prog = CapturedProgram(lambda x: torch.mul(x, 2.0, out=out), [torch.ones(4)], device="cpu", name="unit.nolock")

    class NoLock:
        def __enter__(self):
            raise AssertionError("telemetry lock taken on the audio path")

        def __exit__(self, *a):
            return False

    monkeypatch.setattr(telemetry, "_lock", NoLock())
    for _ in range(10):
        prog.replay()
    monkeypatch.undo()
    assert telemetry.backends("unit.nolock") == {"cpu": 10}  # pulled from the program when read
    prog.replay()
    assert telemetry.backends("unit.nolock") == {"cpu": 11}
