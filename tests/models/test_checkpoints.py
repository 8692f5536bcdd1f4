"""Checkpoint loading (.th package, safetensors+yaml) without demucs; wrong kinds are clear errors."""
from __future__ import annotations

import pickle
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
import torch

from ironwave.models import SOURCES_4, SOURCES_6, CheckpointError, load_checkpoint, read_package, save_safetensors, save_th


def _serialize_like_demucs(ref, path: Path, half: bool = True) -> Path:
    """demucs.states.serialize_model's dict, without its omegaconf training args."""
    args, kwargs = ref._init_args_kwargs
    state = {k: p.data.to(device="cpu", dtype=torch.half if half else None) for k, p in ref.state_dict().items()}
    torch.save({"klass": ref.__class__, "args": args, "kwargs": kwargs, "state": state, "training_args": {}}, str(path))
    return path


@pytest.mark.parametrize("sources", [SOURCES_4, SOURCES_6], ids=["4s", "6s"])
def test_reference_th_package_loads_fp16_and_matches_demucs(sources, tmp_path, h):
    _, _, states = h.reference()
    ref, _ = h.pair(sources, h.SMALL, seed=10)
    path = _serialize_like_demucs(ref, tmp_path / "model.th", half=True)
    ours = load_checkpoint(path)
    assert ours.sources == list(sources) and ours.segment == Fraction(1, 1)
    ref16 = states.load_model(str(path)).eval()  # demucs' own loader, same fp16-rounded weights
    x = torch.randn(1, 2, 20000)
    with torch.no_grad():
        assert (ours(x) - ref16(x)).abs().max().item() < 1e-4


def test_loading_never_imports_demucs(tmp_path, h):
    ref, _ = h.pair(SOURCES_4, h.SMALL, seed=11)
    path = _serialize_like_demucs(ref, tmp_path / "model.th")
    code = ("import sys; sys.modules['demucs'] = None\n"
            "from ironwave.models import load_checkpoint\n"
            f"m = load_checkpoint({str(path)!r}); print(type(m).__module__, len(m.sources))\n"
            "assert not any(k.startswith('demucs.') for k in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["ironwave.models.htdemucs", "4"]


def test_our_writers_roundtrip_and_demucs_reads_our_th(tmp_path, h):
    _, _, states = h.reference()
    ref, ours = h.pair(SOURCES_6, h.SMALL, seed=12)
    kw = dict(h.SMALL, sources=list(SOURCES_6))
    th = save_th(ours, tmp_path / "a.th", kw, half=False)
    st = save_safetensors(ours, tmp_path / "b.safetensors", kw)
    assert st.with_suffix(".yaml").exists()
    x = torch.randn(1, 2, 20000)
    with torch.no_grad():
        want = ours(x)
        for p in (th, st):
            assert (load_checkpoint(p)(x) - want).abs().max().item() < 1e-6
        assert (states.load_model(str(th)).eval()(x) - want).abs().max().item() < 1e-5


def test_safetensors_with_bare_kwargs_yaml(tmp_path, h):
    import yaml
    from safetensors.torch import save_file

    ref, _ = h.pair(SOURCES_4, h.SMALL, seed=13)
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(tmp_path / "m.safetensors"))
    kw = {k: (str(v) if isinstance(v, Fraction) else v) for k, v in dict(h.SMALL, sources=SOURCES_4).items()}
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(kw))
    m = load_checkpoint(tmp_path / "m.safetensors")
    assert m.segment == 1 and m.sources == SOURCES_4


def test_wrong_kinds_of_checkpoint(tmp_path, h):
    from ironwave.models.checkpoints import _STUBS

    # a demucs package of another model class
    torch.save({"klass": h.reference()[0].__mro__[0], "args": (), "kwargs": {}, "state": {}}, str(tmp_path / "ok.th"))
    pkg = read_package(tmp_path / "ok.th")
    assert pkg.klass == "demucs.htdemucs.HTDemucs"
    from ironwave.models.checkpoints import _StubPickleModule
    torch.save({"klass": _STUBS["demucs.hdemucs.HDemucs"], "args": (), "kwargs": {}, "state": {}},
               str(tmp_path / "hd.th"), pickle_module=_StubPickleModule, pickle_protocol=2)
    with pytest.raises(CheckpointError, match="HDemucs"):
        load_checkpoint(tmp_path / "hd.th")
    # a bare state dict
    torch.save({"w": torch.zeros(3)}, str(tmp_path / "bare.th"))
    with pytest.raises(CheckpointError, match="bare state dict"):
        load_checkpoint(tmp_path / "bare.th")
    # a pickle that would run code is refused, not executed
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    (tmp_path / "evil.th").write_bytes(pickle.dumps({"klass": Evil()}))
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "evil.th")
    # not a checkpoint at all
    (tmp_path / "junk.th").write_bytes(b"hello world")
    with pytest.raises(CheckpointError, match="not a torch"):
        load_checkpoint(tmp_path / "junk.th")
    # weights that do not fit the configuration
    ref, _ = h.pair(SOURCES_4, h.SMALL, seed=14)
    args, kwargs = ref._init_args_kwargs
    torch.save({"klass": ref.__class__, "args": args, "kwargs": dict(kwargs, channels=16),
                "state": ref.state_dict()}, str(tmp_path / "mismatch.th"))
    with pytest.raises(CheckpointError, match="do not match"):
        load_checkpoint(tmp_path / "mismatch.th")
    # safetensors without its yaml
    from safetensors.torch import save_file
    save_file({"a": torch.zeros(2)}, str(tmp_path / "lone.safetensors"))
    with pytest.raises(CheckpointError, match="yaml"):
        load_checkpoint(tmp_path / "lone.safetensors")
