"""Shared set-up of the Triton-interpreter tests (test_*_triton.py).

Triton decides interpreted vs compiled when it is first imported, for the whole process, and
other tests import it indirectly (torch.profiler does). On a machine without CUDA there is
nothing to compile for, so importing this module imports Triton in interpreter mode at
collection time. :func:`load_interpreted` gives a private copy of a kernel module whose
kernels run under the interpreter (CPU tensors), or skips the test where that is impossible.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

HAVE_TRITON = importlib.util.find_spec("triton") is not None
if HAVE_TRITON and "triton" not in sys.modules and not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"
    import triton  # noqa: F401


def interpreting(triton_mod: ModuleType) -> bool:
    """Was triton imported with TRITON_INTERPRET=1 (its jit'd library functions interpreted)?"""
    fn = getattr(getattr(triton_mod.language, "standard", None), "cdiv", None)
    return type(fn).__name__ == "InterpretedFunction"


def load_interpreted(src: Path, name: str, gpu_note: str) -> ModuleType:
    """A private copy of the kernel module *src* (registered as *name*) running under the interpreter.

    Skips when Triton is missing, when CUDA is present (*gpu_note* says which gpu tests cover the
    compiled kernels instead), or when Triton was already imported in compiled mode.
    """
    if not HAVE_TRITON:
        pytest.skip("triton is not installed: interpreter tests of the Triton kernels skipped")
    if torch.cuda.is_available():
        pytest.skip(f"CUDA present: {gpu_note}")
    if "triton" in sys.modules and not interpreting(sys.modules["triton"]):
        pytest.skip("triton was already imported in compiled mode in this process; run this file on its own")
    os.environ["TRITON_INTERPRET"] = "1"  # left set: this process has no GPU to compile for
    import triton

    assert interpreting(triton)
    spec = importlib.util.spec_from_file_location(name, src)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod
