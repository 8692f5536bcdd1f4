"""``ironwave run`` and ``ironwave demo`` through the CLI entry point."""
from __future__ import annotations

from pathlib import Path

import soundfile as sf

from ironwave.cli.main import main

EX = Path(__file__).resolve().parents[2] / "examples"


def test_run_offline_file_to_file(tmp_path, capsys):
    import numpy as np

    x = (0.3 * np.random.default_rng(0).standard_normal((9600, 2))).astype("float32")
    sf.write(str(tmp_path / "in.wav"), x, 48000)
    rc = main(["run", str(EX / "reverb.yaml"), "-i", str(tmp_path / "in.wav"), "-o", str(tmp_path / "out.wav"), "--device", "cpu", "--block", "256"])
    assert rc == 0
    y, sr = sf.read(str(tmp_path / "out.wav"))
    assert sr == 48000 and y.shape == (9600, 2) and np.abs(y).max() > 0.01
    out = capsys.readouterr().out
    assert "p99_us" in out and "deadline_misses" in out and "cpu (batched)" in out


def test_run_user_mistakes_are_one_line(tmp_path, capsys):
    cases = [
        (["run", str(EX / "voice_bank.yaml"), "-o", str(tmp_path / "o.wav")], "give --seconds"),
        (["run", str(tmp_path / "missing.yaml"), "-o", "x.wav", "--seconds", "1"], "patch file not found"),
        (["run", str(EX / "reverb.yaml"), "-i", str(tmp_path / "nope.wav"), "-o", "x.wav"], "input file not found"),
        (["run", str(EX / "voice_bank.yaml"), "-o", str(tmp_path / "o.wav"), "--seconds", "1", "--device", "cuda:7"], "cuda"),
        (["run", str(EX / "voice_bank.yaml"), "-o", str(tmp_path / "o.xyz"), "--seconds", "0.1"], "unsupported output format"),
    ]
    bad = tmp_path / "bad.yaml"
    bad.write_text("nodes:\n  a: {type: gain}\n  b: {type: oscillatorr}\n")
    cases.append((["run", str(bad), "-o", "x.wav", "--seconds", "1"], "bad.yaml:3: node 'b': unknown node type 'oscillatorr'"))
    for argv, msg in cases:
        rc = main(argv)
        err = capsys.readouterr().err
        assert rc == 2, (argv, err)
        assert "error:" in err and msg in err and "Traceback" not in err and err.strip().count("\n") <= 2, err


def test_demo_uses_engine(tmp_path, capsys):
    rc = main(["demo", "-o", str(tmp_path / "demo.wav"), "--seconds", "0.5", "--device", "cpu"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "ironwave engine demo" in out and "deadline misses" in out and "engine.run" in out
    y, sr = sf.read(str(tmp_path / "demo.wav"))
    assert sr == 48000 and len(y) == 24000 and abs(y).max() > 0.01
