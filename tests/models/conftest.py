"""Helpers for the HTDemucs tests: the reference demucs (imported only here) and small configs."""
from __future__ import annotations

import sys
import types
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from ironwave.models.htdemucs import HTDEMUCS_KWARGS, SOURCES_4, SOURCES_6

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root: benchmarks/
from benchmarks._demucs_ref import stub_optional_deps  # noqa: E402

#: a reduced architecture (same structure, fewer channels/layers, 1 s segments) for fast tests
SMALL = dict(HTDEMUCS_KWARGS, channels=8, bottom_channels=32, t_layers=2, t_heads=2, segment=Fraction(1, 1))


def reference():
    """``(demucs.htdemucs.HTDemucs, demucs.apply.apply_model, demucs.states)``; missing optional deps are stubbed."""
    stub_optional_deps()
    htd = pytest.importorskip("demucs.htdemucs")
    ap = pytest.importorskip("demucs.apply")
    states = pytest.importorskip("demucs.states")
    return htd.HTDemucs, ap.apply_model, states


def pair(sources, kwargs, seed=0):
    """The reference model and ours with identical random weights (eval mode)."""
    from ironwave.models import HTDemucs

    Ref, _, _ = reference()
    torch.manual_seed(seed)
    ref = Ref(list(sources), **kwargs).eval()
    ours = HTDemucs(list(sources), **kwargs).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ref, ours



@pytest.fixture(scope="session")
def music():
    """loop_compus.flac (stereo 44.1 kHz) + guit_harmonics (resampled, duplicated) as ``[2, time]`` float32."""
    from pathlib import Path

    import soxr

    data = Path(__file__).resolve().parents[1] / "data"
    a, sr = sf.read(str(data / "loop_compus.flac"), dtype="float32", always_2d=True)
    assert sr == 44100
    g, gsr = sf.read(str(data / "guit_harmonics.flac"), dtype="float32", always_2d=True)
    if gsr != 44100:
        g = soxr.resample(g, gsr, 44100)
    if g.shape[1] == 1:
        g = np.repeat(g, 2, axis=1)
    x = np.concatenate([a[:, :2] if a.shape[1] >= 2 else np.repeat(a, 2, 1), g[:, :2]], 0)
    return torch.from_numpy(np.ascontiguousarray(x.T))


@pytest.fixture(scope="session")
def h():
    """The helpers above as a namespace (test modules cannot import conftest in importlib mode)."""
    return types.SimpleNamespace(SMALL=SMALL, pair=pair, reference=reference)
