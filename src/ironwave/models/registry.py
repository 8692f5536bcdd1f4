"""Named models and where their weights are expected (no network access).

Weights live in ``ironwave.backend.profile.cache_dir() / "models"`` (override
the root with ``IRONWAVE_CACHE_DIR``). For a model named ``htdemucs`` ironwave
looks for, in order: ``htdemucs.th``, ``htdemucs.safetensors`` (+ ``htdemucs.yaml``),
then the demucs release file names (``955717e8-8726e21a.th`` for htdemucs,
``5c90dfd2-34c22ccb.th`` for htdemucs_6s), also inside a ``htdemucs/`` sub-folder.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ironwave.errors import IronwaveError

__all__ = ["MODELS", "ModelInfo", "ModelNotFound", "models_dir", "find_weights", "load_model"]

_DL = "https://dl.fbaipublicfiles.com/demucs/hybrid_transformer/"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    sources: tuple[str, ...]
    release_file: str
    description: str

    @property
    def url(self) -> str:
        return _DL + self.release_file


MODELS: dict[str, ModelInfo] = {
    "htdemucs": ModelInfo("htdemucs", ("drums", "bass", "other", "vocals"), "955717e8-8726e21a.th",
                          "Hybrid Transformer Demucs, 4 sources (demucs v4 default)"),
    "htdemucs_6s": ModelInfo("htdemucs_6s", ("drums", "bass", "other", "vocals", "guitar", "piano"),
                             "5c90dfd2-34c22ccb.th", "Hybrid Transformer Demucs, 6 sources (adds guitar, piano)"),
}


class ModelNotFound(IronwaveError, FileNotFoundError):
    """The weights of a named model are not in the cache directory."""


def models_dir() -> Path:
    """The directory where model weights are expected: ``<cache_dir>/models``."""
    from ironwave.backend.profile import cache_dir

    return cache_dir() / "models"


def _candidates(name: str) -> list[Path]:
    d = models_dir()
    names = [f"{name}.th", f"{name}.safetensors"]
    info = MODELS.get(name)
    if info:
        names.append(info.release_file)
    return [d / n for n in names] + [d / name / n for n in names]


def find_weights(name: str) -> Path | None:
    """The weights file of a named model in :func:`models_dir`, or None."""
    for p in _candidates(name):
        if p.is_file():
            return p
    return None


def how_to_obtain(name: str) -> str:
    """A message telling where to put the weights of *name* and how to get them."""
    info = MODELS[name]
    d = models_dir()
    return (f"weights of model {name!r} not found in {d}. ironwave does not download anything: fetch "
            f"{info.url} (or copy it from ~/.cache/torch/hub/checkpoints/ if demucs downloaded it before) and save it "
            f"as {d / (name + '.th')} (or keep its name {info.release_file} in that folder); a .safetensors file with "
            f"its .yaml of kwargs also works. Set IRONWAVE_CACHE_DIR to use another cache root.")


def load_model(name_or_path: str | os.PathLike):
    """Load ``"htdemucs"``, ``"htdemucs_6s"`` (from :func:`models_dir`) or a checkpoint path (.th/.safetensors)."""
    from ironwave.models.checkpoints import load_checkpoint

    s = str(name_or_path)
    if s in MODELS:
        p = find_weights(s)
        if p is None:
            raise ModelNotFound(how_to_obtain(s))
        return load_checkpoint(p)
    p = Path(s)
    if p.suffix.lower() in (".th", ".pt", ".pth", ".safetensors", ".yaml", ".yml") or p.exists():
        return load_checkpoint(p)
    raise ModelNotFound(f"unknown model {s!r}; accepted: {', '.join(MODELS)} or a path to a .th/.safetensors checkpoint")
