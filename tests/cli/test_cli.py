"""CLI behaviour: commands run, user mistakes give one line and a non-zero exit."""
import subprocess
import sys

import pytest
import soundfile as sf
import torch

from ironwave.cli.main import main


def _run(args, capsys):
    rc = main(args)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_info_json(capsys):
    rc, out, _ = _run(["info", "--json"], capsys)
    assert rc == 0 and '"torch"' in out and torch.__version__ in out


def test_demo_writes_audio(tmp_path, capsys):
    out = tmp_path / "demo.wav"
    rc, text, err = _run(["demo", "--output", str(out), "--seconds", "1", "--device", "cpu"], capsys)
    assert rc == 0, err
    data, sr = sf.read(str(out))
    assert sr in (44100, 48000) and data.shape[0] > 0.9 * sr
    assert abs(data).max() > 0.1 and abs(data).max() <= 1.0


@pytest.mark.parametrize("args,fragment", [
    (["demo", "--device", "tpu"], "unknown device 'tpu'"),
    (["demo", "--seconds", "-1"], "--seconds"),
    (["nosuchcommand"], "No such command"),
    (["demo", "--output", "x.mp9", "--seconds", "0.5", "--device", "cpu"], "unsupported output format"),
])
def test_user_mistakes_are_one_line(args, fragment, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, _, err = _run(args, capsys)
    assert rc == 2
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error:") and fragment in lines[0]
    assert "Traceback" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="CPU-only behaviour")
def test_explicit_cuda_on_cpu_machine_is_one_line(capsys):
    rc, _, err = _run(["demo", "--device", "cuda", "--seconds", "0.5"], capsys)
    assert rc == 2 and "CUDA is not available" in err and "Traceback" not in err


def test_console_script_entry_point(tmp_path):
    p = subprocess.run([sys.executable, "-m", "ironwave", "demo", "--device", "nope"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr and "unknown device" in p.stderr


def test_bench_list(capsys):
    rc = main(["bench", "--list"])
    assert rc == 0
