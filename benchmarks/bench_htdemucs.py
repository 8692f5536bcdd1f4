"""HTDemucs: ironwave vs the reference demucs 4.1.0, identical random weights, same device, same run.

Bars (issue #6): on a GPU, a 3-minute stereo track in float32 >= 2x faster than
``demucs.apply.apply_model`` (same output), >= 4x with bf16 (stems' SDR against
the float32 output >= 40 dB), peak GPU memory no higher than the reference's;
on the CPU (10 s of audio) no slower than the reference. Random weights are
fine for speed; SDR numbers compare ironwave's own modes with its float32 output.

TF32: torch enables TF32 for cuDNN convolutions by default, so "float32" on CUDA differs from the
CPU result by ~1e-4 on both sides (with different cuDNN algorithms). ironwave's apply_model turns TF32
off for float32 (``tf32=None``); the equivalence check and the float32 bar time demucs with TF32 off
too (apples to apples). The demucs run with torch's default flags (TF32 on) is recorded as well.
"""
from __future__ import annotations

import gc

import torch

from benchmarks._demucs_ref import stub_optional_deps
from benchmarks.harness import Harness
from ironwave.models import HTDEMUCS_KWARGS, SOURCES_4, HTDemucs, apply_model
from ironwave.models.apply import tf32_mode


def _reference():
    stub_optional_deps()
    from demucs.apply import apply_model as ref_apply
    from demucs.htdemucs import HTDemucs as Ref

    return Ref, ref_apply


def _sdr(ref: torch.Tensor, est: torch.Tensor) -> float:
    """Mean over stems of 10 log10(|ref|^2 / |ref - est|^2), dB."""
    num = ref.double().pow(2).sum(dim=(-1, -2))
    den = (ref.double() - est.double()).pow(2).sum(dim=(-1, -2)).clamp_min(1e-30)
    return float((10 * torch.log10(num / den)).mean())


def _peak(dev: torch.device, fn) -> float | None:
    if dev.type != "cuda":
        return None
    gc.collect()  # garbage of earlier calls (a captured graph's pool) must not be freed inside the measured call
    torch.cuda.synchronize(dev)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(dev)
    base = torch.cuda.memory_allocated(dev)
    fn()
    torch.cuda.synchronize(dev)
    return (torch.cuda.max_memory_allocated(dev) - base) / 2**20


def _kernel_table(fn, n: int = 8) -> str:
    """Top CUDA kernels of one call of *fn* (torch.profiler): 'name: ms x count; ...'."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    rows = []
    for e in prof.key_averages():
        t = getattr(e, "device_time_total", None) or getattr(e, "cuda_time_total", 0)
        if t:
            rows.append((t, e.key, e.count))
    rows.sort(reverse=True)
    total = sum(r[0] for r in rows)
    return f"total {total / 1e3:.1f} ms; " + "; ".join(f"{k[:60]}: {t / 1e3:.1f} ms x{c}" for t, k, c in rows[:n])


def run(h: Harness) -> None:
    dev = h.device
    cuda = dev.type == "cuda"
    Ref, ref_apply = _reference()
    torch.manual_seed(0)
    ref = Ref(list(SOURCES_4), **HTDEMUCS_KWARGS).eval().to(dev)
    ours = HTDemucs(list(SOURCES_4), **HTDEMUCS_KWARGS).eval()
    ours.load_state_dict(ref.state_dict())
    ours.to(dev)
    sr = 44100
    seconds = 180 if cuda else 10
    if h.quick:
        seconds = 30 if cuda else 8
    g = torch.Generator().manual_seed(1)
    mix = (torch.randn(2, seconds * sr, generator=g) * 0.1).cumsum(-1) * 0.01  # brown-ish noise, host memory
    mix = mix - mix.mean(-1, keepdim=True)
    repeat = 3  # CPU too: one 10 s run is noisy on a shared 2-core machine (+-10%)
    warm = 1

    def ref_run(tf32: bool | None = False) -> torch.Tensor:
        # tf32=False: TF32 off (apples to apples with ironwave's float32); None: torch's default flags
        with torch.no_grad(), tf32_mode(tf32 if cuda else None):
            return ref_apply(ref, mix[None], shifts=0, overlap=0.25, device=dev)[0]

    def ours_run(**kw) -> torch.Tensor:
        # defaults of apply_model: batch_size=None (float32: 1 segment), graph=None (CUDA graph at batch 1),
        # tf32=None (off for float32)
        return apply_model(ours, mix, device=dev, **kw)

    want = ref_run()
    got = ours_run()
    diff = float((got - want).abs().max())
    h.record("float32 max |ours - demucs| (same weights, TF32 off both)", diff, "abs",
             target="<= 1e-4 (same output)", met=diff <= 1e-4,
             params={"seconds": seconds, "tf32": "off (both)" if cuda else "n/a (CPU)"})
    p = {"seconds": seconds, "batch_size": "default (1)", "graph": "default (CUDA: on)", "sources": 4,
         "tf32": "off (both)"}
    if cuda:
        want_tf = ref_run(None)
        h.record("float32 max |ours - demucs with torch default TF32|", float((got - want_tf).abs().max()), "abs",
                 params=dict(p, tf32="ours off, demucs torch default (on)"),
                 note="TF32 rounding of the reference's cuDNN convolutions, not a model difference")
        del want_tf
        h.compare(f"apply {seconds} s stereo, float32, defaults (batch 1, CUDA graph), TF32 off both",
                  lambda: ours_run(), ref_run, peer_name="demucs apply_model (TF32 off)", warmup=warm,
                  repeat=repeat, target=">= 2x", target_ratio=2.0, params=p)
        h.compare(f"apply {seconds} s, float32 defaults vs demucs with torch default flags (TF32 on)",
                  lambda: ours_run(), lambda: ref_run(None), peer_name="demucs apply_model (TF32 on)",
                  warmup=warm, repeat=repeat, params=dict(p, tf32="ours off, demucs on"))
        h.compare(f"apply {seconds} s, float32, batch 8 eager (more memory), TF32 off both",
                  lambda: ours_run(batch_size=8, graph=False), ref_run, peer_name="demucs apply_model (TF32 off)",
                  warmup=warm, repeat=repeat, params=dict(p, batch_size=8, graph=False))
        h.compare(f"apply {seconds} s, float32, batch 4, CUDA graph (more memory), TF32 off both",
                  lambda: ours_run(batch_size=4, graph=True), ref_run, peer_name="demucs apply_model (TF32 off)",
                  warmup=warm, repeat=repeat, params=dict(p, batch_size=4, graph=True))
        pb = dict(p, batch_size="default (bf16: 8)", graph="default (off at batch > 1)",
                  tf32="ours: bf16; demucs: torch default (on)")
        h.compare(f"apply {seconds} s, bf16 defaults vs demucs float32 (torch default flags)",
                  lambda: ours_run(precision="bf16"), lambda: ref_run(None), peer_name="demucs fp32 (TF32 on)",
                  warmup=warm, repeat=repeat, target=">= 4x", target_ratio=4.0, params=pb)
        h.compare(f"apply {seconds} s, bf16 batch 16 vs demucs float32 (torch default flags)",
                  lambda: ours_run(precision="bf16", batch_size=16), lambda: ref_run(None),
                  peer_name="demucs fp32 (TF32 on)", warmup=warm, repeat=repeat,
                  params=dict(pb, batch_size=16))
        bf = ours_run(precision="bf16")
        sdr = _sdr(got, bf)
        h.record("bf16 (defaults) stems SDR vs float32 output", sdr, "dB", target=">= 40 dB", met=sdr >= 40,
                 params=pb)
        bf1 = ours_run(precision="bf16", batch_size=1)
        h.record("bf16 batch 1 (CUDA graph) stems SDR vs float32 output", _sdr(got, bf1), "dB",
                 params=dict(pb, batch_size=1))
        del bf, bf1
        fp16 = ours_run(precision="fp16")
        h.record("fp16 (defaults) stems SDR vs float32 output", _sdr(got, fp16), "dB", params=pb)
        del fp16
        # peak GPU memory above what is allocated before the call (both models' weights)
        ref_mb = _peak(dev, ref_run) or 0.0
        h.record("peak GPU memory: demucs apply_model (reference, TF32 off)", ref_mb, "MiB", params=p)
        h.record("peak GPU memory: demucs apply_model (torch default flags)", _peak(dev, lambda: ref_run(None)) or 0.0,
                 "MiB", params=p)
        for label, kw, bar in [("ironwave defaults (batch 1, CUDA graph), float32", {}, True),
                               ("ironwave batch 1 eager, float32", {"graph": False}, False),
                               ("ironwave bf16 defaults (batch 8)", {"precision": "bf16"}, False),
                               ("ironwave bf16 batch 1 (CUDA graph)", {"precision": "bf16", "batch_size": 1}, False),
                               ("ironwave batch 4 CUDA graph, float32", {"batch_size": 4, "graph": True}, False),
                               ("ironwave batch 8 eager, float32", {"batch_size": 8, "graph": False}, False)]:
            mb = _peak(dev, lambda kw=kw: ours_run(**kw)) or 0.0
            if bar:
                h.record(f"peak GPU memory: {label}", mb, "MiB", target="<= reference", met=mb <= ref_mb,
                         params=dict(p, reference_mib=ref_mb))
            else:
                h.record(f"peak GPU memory: {label}", mb, "MiB", params=dict(p, reference_mib=ref_mb, **kw),
                         note="trade-off setting: faster per segment, activations grow with the batch")
        seg = torch.randn(1, 2, ours.training_length, device=dev)
        seg8 = torch.randn(8, 2, ours.training_length, device=dev)
        with torch.no_grad(), tf32_mode(False):
            h.compare("forward, one 7.8 s segment (TF32 off both)", lambda: ours(seg), lambda: ref(seg),
                      peer_name="demucs forward", repeat=10)
            r8 = h.compare("forward, batch of 8 segments (TF32 off both)", lambda: ours(seg8), lambda: ref(seg8),
                           peer_name="demucs forward", repeat=5)
            # where the batched forward's GPU time goes, ours vs demucs (to explain any gap)
            try:
                r8["note"] = ("ironwave kernels: " + _kernel_table(lambda: ours(seg8)) + " | demucs kernels: "
                              + _kernel_table(lambda: ref(seg8)))
            except Exception as e:  # noqa: BLE001 - diagnostics only
                r8["note"] = f"kernel profile failed: {type(e).__name__}: {e}"
            print("  " + r8["note"], flush=True)

        def ours_bf16() -> torch.Tensor:
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
                return ours(seg8)

        def ref_fp32() -> torch.Tensor:
            with torch.no_grad(), tf32_mode(False):
                return ref(seg8)

        h.compare("forward, batch of 8 segments, ours bf16 autocast vs demucs float32 (TF32 off)", ours_bf16,
                  ref_fp32, peer_name="demucs forward", repeat=5)
    else:
        h.compare(f"apply {seconds} s stereo, float32 (CPU)", lambda: ours_run(), ref_run,
                  peer_name="demucs apply_model", warmup=warm, repeat=repeat, target=">= 1x (no slower)",
                  target_ratio=1.0, params=p)
        bf = ours_run(precision="bf16")
        h.record("bf16 autocast (CPU) stems SDR vs float32", _sdr(got, bf), "dB", params=p)
    fast = ours_run(time_only=True)
    h.record("time-only fast mode: SDR vs full output (random weights)", _sdr(got, fast), "dB", params=p,
             note="random weights: shows how much the spectral branch contributes, not trained quality")
    h.compare(f"time-only fast mode, {seconds} s", lambda: ours_run(time_only=True), lambda: ours_run(),
              peer_name="ironwave full", warmup=warm, repeat=repeat, params=p)
