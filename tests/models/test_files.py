"""Streaming separation of files from disk (bounded memory) and the separate/models CLI."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from ironwave.cli.main import main
from ironwave.models import SOURCES_4, SeparationStats, apply_model, save_th, separate_file


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A small HTDemucs (1 s segments) saved as a .th checkpoint."""
    from fractions import Fraction

    from ironwave.models import HTDEMUCS_KWARGS, HTDemucs

    kw = dict(HTDEMUCS_KWARGS, channels=8, bottom_channels=32, t_layers=2, t_heads=2, segment=Fraction(1, 2), nfft=2048,
              sources=list(SOURCES_4))
    torch.manual_seed(0)
    m = HTDemucs(**kw).eval()
    path = save_th(m, tmp_path_factory.mktemp("ckpt") / "tiny.th", kw, half=False)
    return m, path


def test_long_file_streams_with_bounded_memory_and_equals_in_memory(tiny, tmp_path):
    model, _ = tiny
    sr = 44100
    seconds = 12  # stands in for an hour: the window/buffer bound does not depend on the length
    rng = np.random.default_rng(0)
    t = np.arange(seconds * sr) / sr
    x = (0.3 * np.sin(2 * np.pi * 220 * t)[:, None] + 0.05 * rng.standard_normal((t.size, 2))).astype(np.float32)
    src = tmp_path / "long.wav"
    sf.write(str(src), x, sr, subtype="FLOAT")
    st = SeparationStats()
    paths = separate_file(model, src, tmp_path / "out", batch_size=4, normalize=False, device="cpu", stats=st)
    assert [p.name for p in paths] == [f"long.{s}.wav" for s in SOURCES_4]
    seg = int(0.5 * sr)
    stride = int(0.75 * seg)
    assert st.max_window_samples <= 4 * seg  # at most one batch of segments of input at once
    assert st.max_buffer_samples <= seg + 4 * stride  # overlap-add buffer: one segment + one batch of strides
    assert st.max_window_samples < seconds * sr / 5
    want = apply_model(model, torch.from_numpy(x.T.copy()), batch_size=4, device="cpu")
    for k, p in enumerate(paths):
        y, ysr = sf.read(str(p), dtype="float32", always_2d=True)
        assert ysr == sr and y.shape == (seconds * sr, 2)
        assert np.abs(y.T - want[k].numpy()).max() < 1e-5


def _cli(args, capsys):
    rc = main([str(a) for a in args])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_cli_separate_converts_rate_and_mono_and_says_so(tiny, tmp_path, capsys):
    _, ckpt = tiny
    mono = tmp_path / "mono48k.flac"
    sf.write(str(mono), (0.1 * np.random.default_rng(1).standard_normal(48000)).astype(np.float32), 48000)
    rc, out, err = _cli(["separate", mono, "-o", tmp_path / "o", "--model", ckpt, "--device", "cpu",
                         "--format", "flac"], capsys)
    assert rc == 0, err
    assert "resampled from 48000 Hz to 44100 Hz" in out and "mono input duplicated" in out
    y, sr = sf.read(str(tmp_path / "o" / "mono48k.vocals.flac"), always_2d=True)
    assert sr == 44100 and y.shape[1] == 2 and abs(y.shape[0] - 44100) <= 1


def test_cli_errors_are_one_line(tiny, tmp_path, capsys, monkeypatch):
    _, ckpt = tiny
    good = tmp_path / "good.wav"
    sf.write(str(good), np.zeros((4410, 2), np.float32), 44100)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio at all")
    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros((0, 2), np.float32), 44100)
    wrong = tmp_path / "wrong.th"
    torch.save({"w": torch.zeros(2)}, str(wrong))
    monkeypatch.setenv("IRONWAVE_CACHE_DIR", str(tmp_path / "cache"))
    cases = [
        (["separate", junk, "-o", tmp_path / "o", "--model", ckpt], "cannot read"),
        (["separate", empty, "-o", tmp_path / "o", "--model", ckpt], "no audio frames"),
        (["separate", tmp_path / "missing.wav", "-o", tmp_path / "o", "--model", ckpt], "not found"),
        (["separate", good, "-o", tmp_path / "o", "--model", wrong], "bare state dict"),
        (["separate", good, "-o", tmp_path / "o", "--model", "htdemucs"], "save it as"),
        (["separate", good, "-o", tmp_path / "o", "--model", ckpt, "--format", "mp3"], "wav, flac"),
        (["separate", good, "-o", tmp_path / "o", "--model", ckpt, "--device", "tpu"], "unknown device"),
    ]
    if not torch.cuda.is_available():
        cases.append((["separate", good, "-o", tmp_path / "o", "--model", ckpt, "--device", "cuda"], "CUDA is not available"))
    for args, needle in cases:
        rc, out, err = _cli(args, capsys)
        assert rc == 2, (args, out, err)
        assert needle in err, (args, err)
        assert err.strip().count("\n") == 0, err  # one line
        assert "Traceback" not in err


def test_cli_models_lists_names_and_cache_dir(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("IRONWAVE_CACHE_DIR", str(tmp_path / "c"))
    rc, out, _ = _cli(["models", "--json"], capsys)
    assert rc == 0
    import json

    data = json.loads(out)
    assert data["models_dir"] == str(tmp_path / "c" / "models")
    assert [m["name"] for m in data["models"]] == ["htdemucs", "htdemucs_6s"]
    assert all(m["weights"] is None for m in data["models"])
    (tmp_path / "c" / "models").mkdir(parents=True)
    (tmp_path / "c" / "models" / "955717e8-8726e21a.th").write_bytes(b"x")
    data = json.loads(_cli(["models", "--json"], capsys)[1])
    assert data["models"][0]["weights"].endswith("955717e8-8726e21a.th")


@pytest.mark.gpu
def test_cli_separate_real_file_on_cuda_equals_cpu(tiny, tmp_path, capsys):
    """End to end on the GPU: `ironwave separate --device cuda` on real music (file reader, pinned
    double-buffered uploads, side-stream copies) writes the same stems as the CPU run."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    _, ckpt = tiny
    src = Path(__file__).resolve().parents[1] / "data" / "loop_compus.flac"
    for dev in ("cpu", "cuda"):
        rc, out, err = _cli(["separate", src, "-o", tmp_path / dev, "--model", ckpt, "--device", dev], capsys)
        assert rc == 0, err
    for s in SOURCES_4:
        a, sra = sf.read(str(tmp_path / "cpu" / f"loop_compus.{s}.wav"), dtype="float32")
        b, srb = sf.read(str(tmp_path / "cuda" / f"loop_compus.{s}.wav"), dtype="float32")
        assert sra == srb == 44100 and a.shape == b.shape and a.shape[0] > 44100
        assert np.abs(a - b).max() < 1e-4 * max(1.0, float(np.abs(a).max()))
