"""Tests of the Triton path of ``ironwave.dsp.resample.resample`` (``_resample_triton.py``).

Part (a) runs the real kernel under the Triton interpreter (``TRITON_INTERPRET=1``,
CPU tensors) and compares it with the torch path of ``resample`` in float64 (the
exact polyphase sum, itself tested against a direct float64 sum in
test_resample.py): 48k->44.1k, 44.1k->48k, 2:1, 1:3, 16k->48k, 48k->8k, 5:7, on
random and real audio, lengths that are not multiples of M, short signals,
strided rows, several tile shapes, a hypothesis property over lengths. An
offline compile for sm_90 (no GPU needed) checks that the kernel compiles for a
real target with each precision. These tests are SKIPPED when ``triton`` is not
importable (CI installs no Triton; the dev venv has it).

Part (b) needs no Triton: backend argument checks and the dispatcher's fallback
logic (warn once, ``Unsupported`` silently) with a stub kernel module.

Part (c) (``@pytest.mark.gpu``, skipped without CUDA) compares the compiled CUDA
kernel (both precisions) with the float64 torch path and checks the dispatch
(telemetry counter ``dsp.resample.backend.triton``; autograd / float64 -> torch).
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ironwave.backend.device import BackendUnavailable
from ironwave.backend.telemetry import telemetry
from ironwave.dsp import resample as rsmod
from ironwave.dsp.resample import design, resample
from ironwave.errors import InvalidParameter

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _triton_interp import HAVE_TRITON, load_interpreted  # type: ignore  # noqa: E402

SRC = Path(rsmod.__file__).resolve().parent / "_resample_triton.py"
RATIOS = [(48000, 44100), (44100, 48000), (2, 1), (1, 3), (16000, 48000)]
TOL = 1e-6  # max |y - ref| / max |ref| against the float64 torch path


@pytest.fixture(scope="module")
def tri():
    """A private copy of ``_resample_triton.py`` whose kernel runs under the Triton interpreter."""
    return load_interpreted(SRC, "ironwave.dsp._resample_triton_interpreted",
                            "the compiled kernel is tested by the gpu tests of this file")


def ref(x: torch.Tensor, orig: int, new: int, **kw) -> torch.Tensor:
    """The torch path in float64 (exact polyphase sum)."""
    return resample(x.double(), orig, new, device="cpu", backend="torch", **kw)


def rel_err(y: torch.Tensor, r: torch.Tensor) -> float:
    return float((y.double() - r).abs().max() / r.abs().max().clamp_min(1e-30))


# --------------------------------------------------------------------------- (a) interpreter
@pytest.mark.parametrize("orig,new", RATIOS + [(48000, 8000), (5, 7)])
def test_matches_torch_path(tri, orig, new):
    x = torch.randn(3, 1601, generator=torch.Generator().manual_seed(0))  # 1601: not a multiple of M
    plan = design(orig, new)
    y = tri.resample_triton(x, plan, block_q=16)
    r = ref(x, orig, new)
    assert y.dtype == torch.float32 and y.shape == r.shape == (3, -(-1601 * plan.up // plan.down))
    assert rel_err(y, r) < TOL
    # and the float32 torch path (what "auto" used on CUDA before)
    assert rel_err(y, resample(x, orig, new, device="cpu", backend="torch")) < 2 * TOL


@pytest.mark.parametrize("precision", ["tf32x3", "ieee"])
def test_precisions_run(tri, precision):
    x = torch.randn(2, 700)
    y = tri.resample_triton(x, design(48000, 44100), precision=precision, block_q=16)
    assert rel_err(y, ref(x, 48000, 44100)) < TOL  # (the interpreter computes dots in float32 either way)


@pytest.mark.parametrize("orig,new", [(48000, 44100), (44100, 48000)])
def test_real_audio(tri, real_audio, orig, new):
    x, _ = real_audio
    x = x[:, 20000:20000 + 3001]
    y = tri.resample_triton(x.contiguous(), design(orig, new), block_q=32)
    assert rel_err(y, ref(x, orig, new)) < TOL


@pytest.mark.parametrize("n", [1, 7, 75, 160, 320, 479])
@pytest.mark.parametrize("orig,new", [(48000, 44100), (1, 3), (2, 1)])
def test_short_and_exact_lengths(tri, n, orig, new):
    """Shorter than the left padding / the filter, exactly k*M, one sample: same length and values."""
    x = torch.randn(2, n, generator=torch.Generator().manual_seed(n))
    y = tri.resample_triton(x, design(orig, new), block_q=16)
    r = ref(x, orig, new)
    assert y.shape == r.shape
    assert rel_err(y, r) < TOL


@pytest.mark.parametrize("bq,bn,bk", [(16, 16, 16), (32, 64, 64), (64, 32, 128)])
def test_tile_shapes(tri, bq, bn, bk):
    x = torch.randn(2, 1300)
    for orig, new in [(48000, 44100), (16000, 48000)]:
        y = tri.resample_triton(x, design(orig, new), block_q=bq, block_n=bn, block_k=bk)
        assert rel_err(y, ref(x, orig, new)) < TOL


@pytest.mark.parametrize("orig,new", [(48000, 44100), (44100, 48000), (1, 3)])
def test_interior_tiles_unmasked(tri, orig, new, monkeypatch):
    """A signal long enough for unmasked interior tiles gives the same result as all-masked loads
    (and the unmasked path is really taken: a kernel that loads garbage there would fail)."""
    n = 40001  # not a multiple of 4: pointer loads (TMA needs 16-byte row strides; its own test covers it)
    x = torch.randn(2, n, generator=torch.Generator().manual_seed(5))
    plan = design(orig, new)
    bank = tri.bank_for(plan, torch.device("cpu"), 32, 32)
    tiles = -(-(-(-plan.out_length(n) // bank.LP)) // 16)
    inside = [t for t in range(tiles)
              if t * 16 * bank.MP + bank.b_min >= 0 and (t * 16 + 15) * bank.MP + bank.b_max + bank.KP <= n]
    assert len(inside) >= 2  # the test covers the unmasked path
    r = ref(x, orig, new)
    y = tri.resample_triton(x, plan, block_q=16)
    y0 = tri.resample_triton(x, plan, block_q=16, interior=False)
    assert rel_err(y, r) < TOL and rel_err(y0, r) < TOL
    torch.testing.assert_close(y, y0, atol=0, rtol=0)


@pytest.mark.parametrize("orig,new", [(48000, 44100), (2, 1), (16000, 48000)])
def test_tma_descriptor_path(tri, orig, new, monkeypatch):
    """Interior tiles loaded through the TMA tensor descriptor (overlapping window rows: strides
    [row, MP, 1]) give the same result as the pointer loads, and the descriptor is really built."""
    x = torch.randn(3, 9600, generator=torch.Generator().manual_seed(11))  # 16-byte aligned rows
    plan = design(orig, new)
    bank = tri.bank_for(plan, torch.device("cpu"), 32, 32)
    assert tri.tma_usable(x, bank, 16, 32)
    made = []
    bank.w_desc = None  # built once per bank: make this call build it
    real = tri._tensor_descriptor()
    monkeypatch.setattr(tri, "_tensor_descriptor", lambda: (lambda *a, **k: made.append(a[1:]) or real(*a, **k)))
    y = tri.resample_triton(x, plan, block_q=16, tma=True)
    # window rows: strides [row, MP, 1] (rows overlap by KP - MP); weights [G * KP, BN]
    assert len(made) == 2 and made[0][1] == [x.stride(0), bank.MP, 1] and made[1][0] == [bank.G * bank.KP, 32]
    t_first, count = tri.interior_tiles(bank, 9600, -(-(-(-plan.out_length(9600) // bank.LP)) // 16), 16)
    assert t_first >= 0 and count >= 2  # interior tiles through TMA, the rest through the pointer kernel
    tri.resample_triton(x, plan, block_q=16, tma=True)
    assert len(made) == 3  # the weights' descriptor is reused
    y0 = tri.resample_triton(x, plan, block_q=16, tma=False)
    assert len(made) == 3
    assert rel_err(y, ref(x, orig, new)) < TOL
    torch.testing.assert_close(y, y0, atol=0, rtol=0)
    # a NaN inside an interior (descriptor-loaded) tile is still flagged
    flag = torch.zeros(1, dtype=torch.int32)
    x[1, 4800] = float("nan")
    tri.resample_triton(x, plan, block_q=16, tma=True, flag=flag)
    assert int(flag) > 0


def test_tma_not_usable_cases(tri):
    """Unaligned super-hops (44.1k -> 48k built with align=1: MP = 147), unaligned row strides or
    row starts take the pointer loads (tma=None) or raise Unsupported (tma=True)."""
    x = torch.randn(2, 9600)
    odd = design(44100, 48000)
    assert not tri.tma_usable(x, tri.bank_for(odd, torch.device("cpu"), 32, 32, 1), 16, 32)
    with pytest.raises(tri.Unsupported, match="tma"):
        tri.resample_triton(x, odd, block_q=16, tma=True, align=1)
    plan = design(48000, 44100)
    bank = tri.bank_for(plan, torch.device("cpu"), 32, 32)
    assert not tri.tma_usable(torch.randn(2, 9601), bank, 16, 32)  # row stride 9601 floats
    assert not tri.tma_usable(torch.randn(2, 9601)[:, 1:], bank, 16, 32)  # row start off by 4 bytes
    xs = torch.randn(2, 9601)
    assert rel_err(tri.resample_triton(xs, plan, block_q=16), ref(xs, 48000, 44100)) < TOL


def test_odd_hop_lengths_take_aligned_super_hops(tri):
    """44.1k -> 48k (M = 147, odd): 4 hops per super-hop make MP = 588, so window starts align to
    16 bytes (vector loads, TMA) with the same dense work per output; results unchanged."""
    assert tri.super_hop(160, 32, 147, 4) == 4 and tri.super_hop(160, 32, 147, 1) == 1
    assert tri.super_hop(147, 32, 160, 4) == 1 and tri.super_hop(160, 32, 150, 4) == 2
    odd = design(44100, 48000)
    b4, b1 = (tri.bank_for(odd, torch.device("cpu"), 32, 32, a) for a in (4, 1))
    assert (b4.U, b4.MP, b4.G, b4.A) == (4, 588, 20, 4) and (b1.U, b1.A) == (1, 1)
    assert b4.G * b4.KP / b4.LP == b1.G * b1.KP / b1.LP  # MACs per output
    x = torch.randn(2, 9600, generator=torch.Generator().manual_seed(2))
    assert tri.tma_usable(x, b4, 16, 32)
    r = ref(x, 44100, 48000)
    y4 = tri.resample_triton(x, odd, block_q=16, tma=True)
    y1 = tri.resample_triton(x, odd, block_q=16, align=1)
    assert rel_err(y4, r) < TOL and rel_err(y1, r) < TOL


def test_big_super_hops_same_result(tri):
    """8 hops per super-hop (what big batches use: 37 phase groups per tile at 48k -> 44.1k) give
    the same result as one hop, interior (TMA) and edge tiles; bad values are rejected."""
    x = torch.randn(2, 100000, generator=torch.Generator().manual_seed(8))
    plan = design(48000, 44100)
    b8 = tri.bank_for(plan, torch.device("cpu"), 32, 32, 4, 8)
    assert (b8.U, b8.LP, b8.MP, b8.G) == (8, 1176, 1280, 37)
    assert tri.interior_tiles(b8, 100000, -(-(-(-plan.out_length(100000) // b8.LP)) // 16), 16)[1] >= 2
    r = ref(x, 48000, 44100)
    y8 = tri.resample_triton(x, plan, block_q=16, hops=8)
    assert rel_err(y8, r) < TOL
    assert tri.big_hops(plan, x, 128, 32, 4) is None  # CPU tensors (interpreter): never automatic
    with pytest.raises(ValueError, match="hops"):
        tri.resample_triton(x, plan, hops=0)
    with pytest.raises(ValueError, match="hops"):
        tri.resample_triton(x, plan, hops=100)  # 14700 phases


def test_default_precision_follows_torch_matmul_setting(tri):
    """float32 matmul precision "highest" (torch's default) -> 3xTF32; "high"/"medium" -> one TF32
    product, as torch's own float32 matmuls do under those settings."""
    old = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("highest")
        assert tri.default_precision() == "tf32x3"
        for p in ("high", "medium"):
            torch.set_float32_matmul_precision(p)
            assert tri.default_precision() == "tf32"
    finally:
        torch.set_float32_matmul_precision(old)


def test_strided_rows_and_nondefault_filter(tri):
    big = torch.randn(4, 2000)
    x = big[::2, 100:1100]  # row stride 4000, not contiguous
    plan = design(44100, 48000, zeros=16, rolloff=0.9, beta=8.0)
    y = tri.resample_triton(x, plan, block_q=16)
    assert rel_err(y, ref(x, 44100, 48000, zeros=16, rolloff=0.9, beta=8.0)) < TOL


def test_zero_rows(tri):
    y = tri.resample_triton(torch.zeros(0, 100), design(48000, 44100))
    assert y.shape == (0, 92)


@settings(max_examples=10, deadline=None)
@given(n=st.integers(1, 900), k=st.integers(0, len(RATIOS) - 1), seed=st.integers(0, 2**16))
def test_property_matches_torch_path(tri, n, k, seed):
    orig, new = RATIOS[k]
    x = torch.randn(1, n, generator=torch.Generator().manual_seed(seed))
    y = tri.resample_triton(x, design(orig, new), block_q=16)
    r = ref(x, orig, new)
    assert y.shape == r.shape and rel_err(y, r) < TOL


@pytest.mark.parametrize("align", [1, 4, 32])
def test_bank_layout(tri, align):
    """Every phase's taps appear once, at the right row of its group; super-hops for small L;
    window starts are multiples of the alignment (the kernel's load-vectorization hint)."""
    plan = design(48000, 44100)
    bank = tri.build_bank(plan.h, plan.base, plan.up, plan.down, plan.left_pad, 32, 32, "cpu", align)
    assert (bank.U, bank.LP, bank.MP, bank.G) == (1, 147, 160, 5) and bank.KP % 32 == 0
    assert bank.A == align and all(int(b) % align == 0 for b in bank.b0)
    w = bank.w.double()
    for r in (0, 31, 32, 100, 146):
        g, c = divmod(r, 32)
        col = w[g, :, c]
        nz = col.nonzero().flatten()
        start = int(bank.b0[g]) + int(nz[0])  # window position of the first nonzero tap (unpadded input)
        t0 = int((plan.h[r] != 0).nonzero()[0])
        assert start == plan.base[r] + t0 - plan.left_pad
        torch.testing.assert_close(col[nz[0]: nz[-1] + 1], plan.h[r, t0: t0 + len(col[nz[0]: nz[-1] + 1])].float().double())
    assert tri.super_hop(147, 32) == 1 and tri.super_hop(3, 32) == 32 and tri.super_hop(1, 16) == 16
    assert tri.super_hop(5, 32) * 5 % 32 == 0
    # the hint is capped by what holds: powers of two dividing MP (147: odd) and BK
    assert tri.effective_align(147, 32, 32) == 1 and tri.effective_align(160, 16, 32) == 16
    assert tri.effective_align(160, 64, 64) == 32 and tri.effective_align(160, 32, 4) == 4


@pytest.mark.parametrize("align", [1, 2, 8, 32])
def test_alignments_match(tri, align):
    """Aligned window starts (leading zero weight rows) give the same result, ratios with odd and
    even super-hop lengths, masked edge tiles and interior ones."""
    x = torch.randn(2, 2900, generator=torch.Generator().manual_seed(3))
    for orig, new in [(48000, 44100), (44100, 48000), (16000, 48000)]:
        y = tri.resample_triton(x, design(orig, new), block_q=16, align=align)
        assert rel_err(y, ref(x, orig, new)) < TOL


def test_limits_and_argument_errors(tri):
    big = design(48000, 1000)  # L=1, M=48: ~6.6k taps -> windows wider than MAX_KP
    assert not tri.supported(big, torch.device("cpu"))
    with pytest.raises(tri.Unsupported):
        tri.resample_triton(torch.randn(1, 100), big)
    assert tri.supported(design(48000, 44100), torch.device("cpu"))
    with pytest.raises(ValueError, match="precision"):
        tri.resample_triton(torch.randn(1, 100), design(2, 1), precision="fp16")
    with pytest.raises(ValueError, match="align"):
        tri.resample_triton(torch.randn(1, 100), design(2, 1), align=3)
    with pytest.raises(ValueError, match="block_q"):
        tri.resample_triton(torch.randn(1, 100), design(2, 1), block_q=24)
    with pytest.raises(ValueError, match="float32"):
        tri.resample_triton(torch.randn(1, 100, dtype=torch.float64), design(2, 1))


@pytest.mark.skipif(not HAVE_TRITON, reason="triton is not installed")
def test_compiles_for_sm90_offline():
    """The kernel compiles to a cubin for sm_90 (H100/H200) with each precision, without a GPU
    (a separate process: this one imported Triton in interpreter mode)."""
    code = textwrap.dedent(f"""
        import importlib.util, sys
        import triton
        from triton.backends.compiler import GPUTarget
        from triton.compiler import ASTSource
        spec = importlib.util.spec_from_file_location("rt", {str(SRC)!r})
        rt = importlib.util.module_from_spec(spec); sys.modules["rt"] = rt; spec.loader.exec_module(rt)
        def compile_(fn, sig, div, cexpr):
            sig = dict(sig, **{{k: "constexpr" for k in cexpr}})
            names = list(sig)
            # what the launcher specializes for 16-divisible pointers / lengths / strides (as in the benchmark)
            attrs = {{(names.index(a),): [["tt.divisibility", 16]] for a in div}}
            return triton.compile(ASTSource(fn=fn, signature=sig, attrs=attrs, constexprs=cexpr),
                                  target=GPUTarget("cuda", 90, 32), options=dict(num_warps=4, num_stages=3))
        ptr_sig = dict(x_ptr="*fp32", w_ptr="*fp32", b0_ptr="*i32", y_ptr="*fp32", flag_ptr="*i32", n="i32",
                       n_out="i32", tiles="i32", x_stride="i32", y_stride="i32", b_min="i32", b_max="i32")
        for prec, align in (("tf32x3", 4), ("ieee", 4), ("tf32x3", 1)):
            k = compile_(rt._resample_kernel, ptr_sig, ("x_ptr", "w_ptr", "b0_ptr", "y_ptr", "n", "x_stride", "y_stride"),
                         dict(LP=147, MP=160, G=5, KP=192, BQ=64, BN=32, BK=32, PREC=prec, INTERIOR=True, ALIGN=align))
            assert len(k.asm["cubin"]) > 1000
            ptx = k.asm["ptx"]
            assert "cp.async.bulk.tensor" not in ptx
            # window loads: 16-byte vectors when aligned (cp.async ... 0x10 or ld.global.v4), 4-byte when not
            lines = [ln for ln in ptx.splitlines() if "cp.async.c" in ln or "ld.global" in ln]
            narrow = sum(1 for ln in lines if "], 0x4," in ln or ("ld.global" in ln and ".v" not in ln)) - 1  # - b0
            print("ptr", prec, align, "wgmma" in ptx or "mma.sync" in ptx, "narrow" if narrow > 8 else "vector")
        tma_sig = dict(x_desc="tensordesc<fp32[1, 64, 32]>", w_desc="tensordesc<fp32[32, 32]>", x_ptr="*fp32",
                       w_ptr="*fp32", b0_ptr="*i32", y_ptr="*fp32", flag_ptr="*i32", n="i32", n_out="i32",
                       tiles_in="i32", t_first="i32", n_edge="i32", edge_programs="i32", x_stride="i32",
                       y_stride="i32", b_min="i32", b_max="i32", C="i32")
        for prec in ("tf32x3", "tf32"):
            k = compile_(rt._resample_tma_kernel, tma_sig, ("x_ptr", "w_ptr", "b0_ptr", "y_ptr", "n", "x_stride", "y_stride"),
                         dict(LP=147, MP=160, G=5, KP=192, BQ=64, BN=32, BK=32, PREC=prec, ALIGN=4))
            ptx = k.asm["ptx"]
            # the interior kernel loads windows and weights with the copy engine (bulk tensor copies)
            print("tma", prec, "cp.async.bulk.tensor" in ptx, "wgmma" in ptx)
    """)
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_DEFAULT_FP_FUSION"] = "1"
    try:
        from triton.backends.compiler import GPUTarget  # noqa: F401
    except Exception:
        pytest.skip("this Triton has no GPUTarget (offline compile API)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    # tensor cores for 3xTF32, FMA for ieee; aligned window loads vectorized, unaligned ones not
    assert "ptr tf32x3 4 True vector" in p.stdout and "ptr ieee 4 False" in p.stdout, p.stdout
    assert "ptr tf32x3 1 True narrow" in p.stdout, p.stdout
    assert "tma tf32x3 True True" in p.stdout and "tma tf32 True True" in p.stdout, p.stdout


# --------------------------------------------------------------------------- (b) dispatch logic (no Triton needed)
def test_backend_argument():
    with pytest.raises(InvalidParameter, match="backend"):
        resample(torch.randn(100), 2, 1, backend="cuda")
    with pytest.raises(BackendUnavailable, match="triton"):
        resample(torch.randn(100), 2, 1, device="cpu", backend="triton")
    telemetry.reset()
    resample(torch.randn(100), 2, 1, device="cpu")
    assert telemetry.counters().get("dsp.resample.backend.torch") == 1


class _Stub:
    class Unsupported(ValueError):
        pass

    def __init__(self, action):
        self.action, self.calls = action, 0

    @staticmethod
    def default_precision():
        return "tf32x3"

    def resample_triton(self, x, plan, flag=None):
        self.calls += 1
        if self.action == "fail":
            raise RuntimeError("PTX too new")
        if self.action == "unsupported":
            raise self.Unsupported("too long")
        return torch.full((x.shape[0], plan.out_length(x.shape[-1])), 7.0)


from ironwave.dsp import _optional  # noqa: E402  (the shared cache of optional kernel modules)


def test_fallback_warns_once(monkeypatch):
    plan = design(48000, 44100)
    x = torch.randn(1, 500)
    stub = _Stub("fail")
    monkeypatch.setitem(_optional._MODULES, rsmod._TRITON_MOD, stub)
    telemetry.reset()
    with pytest.warns(RuntimeWarning, match="Triton kernel failed.*PTX too new"):
        assert rsmod._run_triton(x, plan, "auto") is None
    assert _optional._MODULES[rsmod._TRITON_MOD] is None and telemetry.counters().get("dsp.resample.backend.triton_failed") == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert rsmod._run_triton(x, plan, "auto") is None  # disabled now: no second warning
    assert stub.calls == 1
    with pytest.raises(BackendUnavailable):
        rsmod._run_triton(x, plan, "triton")
    monkeypatch.setitem(_optional._MODULES, rsmod._TRITON_MOD, _Stub("fail"))
    with pytest.raises(RuntimeError, match="PTX"):
        rsmod._run_triton(x, plan, "triton")  # explicit request: the error itself


def test_unsupported_falls_back_silently_and_success_counts(monkeypatch):
    plan = design(48000, 44100)
    x = torch.randn(2, 500)
    monkeypatch.setitem(_optional._MODULES, rsmod._TRITON_MOD, _Stub("unsupported"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert rsmod._run_triton(x, plan, "auto") is None
    assert _optional._MODULES[rsmod._TRITON_MOD] is not None  # still enabled
    ok = _Stub("ok")
    monkeypatch.setitem(_optional._MODULES, rsmod._TRITON_MOD, ok)
    telemetry.reset()
    y = rsmod._run_triton(x, plan, "auto")
    assert y.shape == (2, plan.out_length(500)) and float(y[0, 0]) == 7.0
    assert telemetry.counters().get("dsp.resample.backend.triton") == 1


# --------------------------------------------------------------------------- (c) GPU


@pytest.mark.parametrize("precision", ["tf32x3", "ieee"])
@pytest.mark.parametrize("orig,new", RATIOS)
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_kernel_matches_float64(orig, new, precision):
    if rsmod._triton_module() is None:
        pytest.skip("triton not importable")
    from ironwave.dsp import _resample_triton as rt

    x = torch.randn(3, 48000 * 2 + 13, generator=torch.Generator().manual_seed(orig * 7 + new))
    y = rt.resample_triton(x.cuda(), design(orig, new), precision=precision).cpu()
    # "ieee" is plain float32 FMA accumulation in sequence over up to 320 dense taps (2:1 has 278):
    # measured 1.02e-6 on the H200 (3xTF32 and the float32 torch path, which sums in blocks: <= 7e-7)
    assert rel_err(y, ref(x, orig, new)) < (TOL if precision != "ieee" else 2 * TOL)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_tma_path_and_tf32_precision():
    """On Hopper and later the interior tiles load through TMA descriptors: same result as the
    pointer loads; the plain-TF32 precision (torch's "high" matmul setting) stays within TF32 error."""
    if rsmod._triton_module() is None:
        pytest.skip("triton not importable")
    from ironwave.dsp import _resample_triton as rt

    x = torch.randn(4, 48000 * 3, device="cuda")
    plan = design(48000, 44100)
    r = ref(x.cpu(), 48000, 44100)
    y_ptr = rt.resample_triton(x, plan, tma=False)
    assert rel_err(y_ptr.cpu(), r) < TOL
    if torch.cuda.get_device_capability()[0] >= 9:
        assert rt.tma_usable(x, rt.bank_for(plan, x.device), rt.BLOCK_Q, rt.BLOCK_K)
        y_tma = rt.resample_triton(x, plan, tma=True)
        assert rel_err(y_tma.cpu(), r) < TOL
        assert rel_err(y_tma.cpu(), y_ptr.cpu().double()) < TOL
    old = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("high")
        telemetry.reset()
        y32 = resample(x, 48000, 44100)
        assert telemetry.counters().get("dsp.resample.triton.tf32") == 1
    finally:
        torch.set_float32_matmul_precision(old)
    e = rel_err(y32.cpu(), r)
    assert 1e-6 < e < 5e-3  # really one TF32 product (10-bit mantissa): ~1e-3, not float32's 1e-7


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_big_batches_take_big_super_hops():
    """Big batches (every row >= 8 tiles of 8-hop super-hops, the GPU filled twice) use
    BIG_HOPS; the result equals the float64 reference."""
    if rsmod._triton_module() is None:
        pytest.skip("triton not importable")
    from ironwave.dsp import _resample_triton as rt

    plan = design(48000, 44100)
    assert rt.big_hops(plan, torch.empty(64, 60 * 48000, device="cuda"), 128, 32, 4) == rt.BIG_HOPS
    assert rt.big_hops(plan, torch.empty(2, 60 * 48000, device="cuda"), 128, 32, 4) is None  # too few tiles
    assert rt.big_hops(plan, torch.empty(512, 48000, device="cuda"), 128, 32, 4) is None  # rows too short
    assert rt.big_hops(design(1, 3), torch.empty(64, 60 * 48000, device="cuda"), 128, 32, 4) is None  # L < BN
    x = torch.randn(3, 48000 * 30, generator=torch.Generator().manual_seed(4))
    y = rt.resample_triton(x.cuda(), plan, hops=rt.BIG_HOPS).cpu()
    assert rel_err(y, ref(x, 48000, 44100)) < TOL


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_dispatch(real_audio):
    if rsmod._triton_module() is None:
        pytest.skip("triton not importable")
    x, _ = real_audio
    xc = x.cuda()
    telemetry.reset()
    y = resample(xc, 44100, 48000)
    assert telemetry.counters().get("dsp.resample.backend.triton") == 1
    assert rel_err(y.cpu(), ref(x, 44100, 48000)) < TOL
    yt = resample(xc, 44100, 48000, backend="torch")
    assert rel_err(y.cpu(), yt.cpu().double()) < 2 * TOL
    # float64 and autograd take the torch path; half precision goes through the kernel in float32
    telemetry.reset()
    resample(xc.double(), 44100, 48000)
    g = xc.clone().requires_grad_(True)
    resample(g, 44100, 48000).sum().backward()
    assert g.grad is not None
    assert telemetry.counters().get("dsp.resample.backend.torch") == 2
    assert telemetry.counters().get("dsp.resample.backend.triton") is None
    yh = resample(xc.half(), 44100, 48000)
    assert yh.dtype == torch.float16 and telemetry.counters().get("dsp.resample.backend.triton") == 1
    with pytest.raises(BackendUnavailable):
        resample(xc.double(), 44100, 48000, backend="triton")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("where", [0, 777, 1600])
def test_kernel_flags_non_finite_input(tri, bad, where):
    """The kernel's output-tile screen sees a NaN/Inf anywhere in the input (first, middle, last sample)."""
    x = torch.randn(2, 1601, generator=torch.Generator().manual_seed(3))
    plan = design(48000, 44100)
    flag = torch.zeros(1, dtype=torch.int32)
    tri.resample_triton(x, plan, block_q=16, flag=flag)
    assert int(flag) == 0
    x[1, where] = bad
    tri.resample_triton(x, plan, block_q=16, flag=flag)
    assert int(flag) > 0


@pytest.mark.gpu
def test_gpu_resample_rejects_nan_with_its_index():
    from ironwave.errors import InvalidAudio

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    x = torch.randn(3, 48000, device="cuda")
    x[2, 40000] = float("nan")
    with pytest.raises(InvalidAudio, match="40000"):
        resample(x, 48000, 44100)
