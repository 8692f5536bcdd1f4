"""Importing the reference ``demucs`` 4.1.0 offline: it imports packages it does not need for
HTDemucs inference (torchaudio, lameenc, dora, diffq, openunmix); the ones missing here are
replaced by empty modules. Used by bench_htdemucs and the HTDemucs tests."""
from __future__ import annotations

import sys
import types

OPTIONAL = ("torchaudio", "lameenc", "dora", "diffq", "openunmix")


def stub_optional_deps() -> None:
    """Make ``import demucs.htdemucs`` / ``demucs.apply`` work without demucs' optional dependencies."""
    for name in OPTIONAL:
        if name not in sys.modules:
            try:
                __import__(name)
            except Exception:
                sys.modules[name] = types.ModuleType(name)
