"""PingPongSequential buffer reuse, StreamingInference (zero allocation per call), HybridPipeline."""
from __future__ import annotations

import tracemalloc

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

import ironwave.nn as inn
from ironwave.backend import telemetry


def _chain() -> inn.PingPongSequential:
    torch.manual_seed(0)
    return inn.PingPongSequential(inn.Linear(64, 64), inn.Activation("tanh"), inn.Linear(64, 64),
                                  inn.Activation("gelu"), inn.Linear(64, 64), inn.Activation("relu"),
                                  inn.Linear(64, 32), inn.Activation("sigmoid"))


def _cpu_allocs(fn) -> int:
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return sum(1 for e in prof.events() if e.cpu_memory_usage > 0)


def test_pingpong_equals_sequential_and_saves_buffers():
    seq = _chain()
    x = torch.randn(4, 64)
    with torch.no_grad():
        ref = x
        for layer in seq.layers:
            ref = layer(ref)
        seq.prepare(x)
        got = seq(x).clone()
    torch.testing.assert_close(got, ref)
    # 6 layers of shape [4, 64] share 2 buffers, 2 layers of [4, 32] share 2
    assert seq.buffers_allocated == 4
    assert seq.buffers_saved == 4
    ptrs = seq.buffer_pointers()
    assert len(set(ptrs[:6])) == 2 and ptrs[0] != ptrs[1] and ptrs[0] == ptrs[2]
    assert seq.fallback_layers == []


def test_pingpong_fallback_layer_is_reported():
    seq = inn.PingPongSequential(inn.Linear(8, 8), torch.nn.LayerNorm(8), inn.Activation("tanh"))
    x = torch.randn(2, 8)
    with torch.no_grad():
        seq.prepare(x)
        want = torch.tanh(seq.layers[1](seq.layers[0](x)))
        torch.testing.assert_close(seq(x), want)
    assert seq.fallback_layers == [1]


def test_streaming_inference_cpu_zero_allocation_per_call():
    seq = _chain()
    block = torch.randn(4, 64)
    runner = inn.StreamingInference(seq, block, device="cpu")
    assert not runner.captured  # eager on the CPU
    out = torch.empty(4, 32)
    out_ptr = runner.output.data_ptr()
    blocks = [torch.randn(4, 64) for _ in range(5)]
    with torch.no_grad():
        want = [seq.layers[7](seq.layers[6](seq.layers[5](seq.layers[4](seq.layers[3](seq.layers[2](
            seq.layers[1](seq.layers[0](b)))))))) for b in blocks]
    runner.process(blocks[0], out=out)  # warm
    n = _cpu_allocs(lambda: [runner.process(b, out=out) for b in blocks])
    assert n == 0, f"{n} CPU allocations during process()"
    tracemalloc.start()
    snap0 = tracemalloc.take_snapshot()
    for b in blocks:
        runner.process(b, out=out)
    snap1 = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in snap1.compare_to(snap0, "filename") if s.size_diff > 0 and "ironwave" in str(s.traceback))
    assert grown < 2048
    assert runner.output.data_ptr() == out_ptr
    for b, w in zip(blocks, want):
        torch.testing.assert_close(runner.process(b), w)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_streaming_inference_cuda_graph_zero_allocation():
    seq = _chain()
    block = torch.randn(4, 64)
    with torch.no_grad():
        seq_cpu = _chain()
        want = seq_cpu(block).clone()
    runner = inn.StreamingInference(seq, block, device="cuda")
    assert runner.captured
    out = torch.empty(4, 32, device="cuda")
    block_cuda = block.cuda()  # the device copy is made once, outside the measured loop
    out_host = torch.empty(4, 32)

    def count() -> int:
        torch.cuda.synchronize()
        return torch.cuda.memory_stats()["allocation.all.allocated"]

    # the counter really moves on an allocating call (so the assertions below can fail)
    before = count()
    block.cuda()
    assert count() > before
    runner.process(block_cuda, out=out)
    runner.process(block, out=out_host)
    before = count()
    for _ in range(10):
        runner.process(block_cuda, out=out)  # CUDA block -> CUDA out
    assert count() == before, "process() allocated on the GPU (CUDA input)"
    torch.testing.assert_close(out.cpu(), want, atol=1e-5, rtol=1e-5)
    for _ in range(10):
        runner.process(block, out=out_host)  # host block copied into the static input, result copied out
    assert count() == before, "process() allocated on the GPU (host input/output)"
    torch.testing.assert_close(out_host, want, atol=1e-5, rtol=1e-5)
    assert runner.output.data_ptr() == runner.program.outputs[0].data_ptr()


def test_hybrid_pipeline_places_and_records(monkeypatch):
    telemetry.reset() if hasattr(telemetry, "reset") else None
    conv = inn.Conv1d(2, 2, 3, padding=1)
    stages = [inn.Stage("gain", lambda x: x * 0.5, op="default"), inn.Stage("conv", conv, op="conv"),
              inn.Stage("tanh", torch.tanh, op="default", device="cpu")]
    pipe = inn.HybridPipeline(stages)
    x = torch.randn(1, 2, 256)
    y = pipe(x)
    with torch.no_grad():
        torch.testing.assert_close(y, torch.tanh(conv(x * 0.5)))
    assert [d for _, d in pipe.placement] == ["cpu", "cpu", "cpu"]  # no GPU here; auto -> CPU
    if torch.cuda.is_available():  # pragma: no cover
        return
    with pytest.raises(Exception, match="CUDA"):
        inn.HybridPipeline([inn.Stage("x", torch.tanh, device="cuda")])(x)
