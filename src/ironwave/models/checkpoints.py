"""Loading demucs checkpoints without importing demucs.

Two layouts are read:

* the pickled ``.th`` package written by ``demucs.states.serialize_model``: a
  dict ``{"klass": <class demucs.htdemucs.HTDemucs>, "args": (...), "kwargs":
  {...}, "state": {name: tensor}}`` (state may be float16). It is loaded with
  ``torch.load(weights_only=True)``, i.e. torch's restricted unpickler: only
  tensors, containers, :class:`fractions.Fraction` and *name stubs* of the
  demucs model classes are allowed, so loading never executes code from the file
  and never imports demucs. The class reference is read as a name.
* ``model.safetensors`` with ``model.yaml`` next to it: the weights in
  safetensors, the constructor kwargs in YAML (either the kwargs mapping itself,
  or a mapping with ``kwargs:`` and optional ``klass:``/``args:`` keys).
"""
from __future__ import annotations

import inspect
import os
import pickle
import warnings
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Union

import torch

from ironwave.errors import IronwaveError, InvalidParameter
from ironwave.models.htdemucs import HTDemucs

PathLike = Union[str, os.PathLike]

__all__ = ["CheckpointError", "ModelPackage", "read_package", "load_checkpoint", "save_th", "save_safetensors",
           "model_from_package"]


class CheckpointError(IronwaveError, ValueError):
    """A file that is not a usable HTDemucs checkpoint."""


def _stub(module: str, name: str) -> type:
    cls = type(name, (), {"__module__": module, "__qualname__": name, "_ironwave_stub": f"{module}.{name}"})
    return cls


# Class names a demucs package may reference; only HTDemucs can be built.
_STUBS = {f"{m}.{n}": _stub(m, n) for m, n in [
    ("demucs.htdemucs", "HTDemucs"), ("demucs.hdemucs", "HDemucs"), ("demucs.demucs", "Demucs"),
    ("demucs.apply", "BagOfModels"), ("demucs.wdemucs", "WDemucs"),
]}
_HT = "demucs.htdemucs.HTDemucs"


@dataclass
class ModelPackage:
    """The parts of a checkpoint: the class name, constructor args/kwargs, state dict."""

    klass: str
    args: tuple
    kwargs: dict[str, Any]
    state: dict[str, torch.Tensor]
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _klass_name(k: Any) -> str:
    if isinstance(k, str):
        return k
    name = getattr(k, "_ironwave_stub", None)
    if name:
        return name
    mod, qn = getattr(k, "__module__", ""), getattr(k, "__qualname__", getattr(k, "__name__", repr(k)))
    return f"{mod}.{qn}" if mod else str(qn)


def _read_th(path: Path) -> ModelPackage:
    allowed = list(_STUBS.values()) + [Fraction]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with torch.serialization.safe_globals(allowed):
                pkg = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        msg = str(e).split("\n")[0]
        raise CheckpointError(f"{path} is not a loadable demucs checkpoint: it references objects outside the safe "
                              f"list ({msg[:200]})") from None
    except Exception as e:  # corrupt/foreign files raise many types inside torch.load
        first = (str(e).splitlines() or [type(e).__name__])[0][:200]
        raise CheckpointError(f"{path} is not a torch/demucs checkpoint: {first}") from None
    if not isinstance(pkg, dict):
        raise CheckpointError(f"{path} holds a {type(pkg).__name__}, not a demucs model package "
                              "(a dict with klass, args, kwargs, state)")
    if "state" not in pkg or "klass" not in pkg:
        if pkg and all(isinstance(v, torch.Tensor) for v in pkg.values()):
            raise CheckpointError(f"{path} is a bare state dict without the model configuration; save it as a demucs "
                                  "package (klass/args/kwargs/state) or as .safetensors with a .yaml of kwargs next to it")
        raise CheckpointError(f"{path} is not a demucs model package: keys {sorted(map(str, pkg))[:8]} "
                              "(expected klass, args, kwargs, state)")
    return ModelPackage(_klass_name(pkg["klass"]), tuple(pkg.get("args") or ()), dict(pkg.get("kwargs") or {}),
                        dict(pkg["state"]), str(path), {k: v for k, v in pkg.items()
                                                        if k not in ("klass", "args", "kwargs", "state")})


def _read_safetensors(path: Path) -> ModelPackage:
    try:
        from safetensors.torch import load_file
    except ImportError:  # pragma: no cover
        raise CheckpointError("reading .safetensors needs the 'safetensors' package (pip install safetensors)") from None
    import yaml

    ypath = next((p for p in (path.with_suffix(".yaml"), path.with_suffix(".yml")) if p.exists()), None)
    if ypath is None:
        raise CheckpointError(f"{path} needs its configuration next to it: {path.with_suffix('.yaml')} "
                              "(the HTDemucs constructor kwargs in YAML) was not found")
    try:
        state = load_file(str(path), device="cpu")
    except Exception as e:  # safetensors raises its own error types
        raise CheckpointError(f"{path} is not a valid safetensors file: {e}") from None
    try:
        conf = yaml.safe_load(ypath.read_text())
    except yaml.YAMLError as e:
        raise CheckpointError(f"{ypath} is not valid YAML: {e}") from None
    if not isinstance(conf, dict):
        raise CheckpointError(f"{ypath} must hold a mapping of HTDemucs kwargs, got {type(conf).__name__}")
    klass = str(conf.get("klass", _HT))
    if "kwargs" in conf:
        kwargs, args = dict(conf["kwargs"] or {}), tuple(conf.get("args") or ())
    else:
        kwargs, args = {k: v for k, v in conf.items() if k not in ("klass", "args")}, tuple(conf.get("args") or ())
    if klass in ("HTDemucs", "htdemucs.HTDemucs"):
        klass = _HT
    seg = kwargs.get("segment")
    if isinstance(seg, str):
        try:
            kwargs["segment"] = Fraction(seg)
        except ValueError:
            raise CheckpointError(f"{ypath}: segment {seg!r} is not a number of seconds (e.g. 7.8 or 39/5)") from None
    return ModelPackage(klass, args, kwargs, state, str(path))


def read_package(path: PathLike) -> ModelPackage:
    """Read a checkpoint (``.th``/``.pt`` package or ``.safetensors`` + ``.yaml``) without building the model."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"checkpoint not found: {p}")
    if p.is_dir():
        raise CheckpointError(f"{p} is a directory; give the .th or .safetensors file")
    if p.suffix.lower() == ".safetensors":
        return _read_safetensors(p)
    if p.suffix.lower() in (".yaml", ".yml"):
        st = p.with_suffix(".safetensors")
        if st.exists():
            return _read_safetensors(st)
        raise CheckpointError(f"{p} is a configuration file; its weights {st} were not found")
    return _read_th(p)


def model_from_package(pkg: ModelPackage, *, strict_kwargs: bool = False) -> HTDemucs:
    """Build an :class:`HTDemucs` from a package and load its (float32-converted) state."""
    if pkg.klass != _HT:
        raise CheckpointError(f"{pkg.source or 'checkpoint'} holds a {pkg.klass} model; ironwave runs HTDemucs "
                              "(demucs.htdemucs.HTDemucs: htdemucs, htdemucs_6s) only. Bags of models (e.g. "
                              "htdemucs_ft) must be loaded one .th file at a time")
    if pkg.state.get("__quantized"):
        raise CheckpointError(f"{pkg.source}: quantized (diffq) checkpoints are not supported")
    kwargs = dict(pkg.kwargs)
    args = list(pkg.args)
    if args and "sources" not in kwargs:
        kwargs["sources"] = args.pop(0)
    if args:
        raise CheckpointError(f"{pkg.source}: unexpected positional constructor args {args!r}")
    if "sources" not in kwargs:
        raise CheckpointError(f"{pkg.source}: the configuration does not name the sources")
    sig = inspect.signature(HTDemucs.__init__).parameters
    known = {k: v for k, v in kwargs.items() if k in sig or k in _IGNORED_KWARGS}
    unknown = sorted(set(kwargs) - set(known))
    if unknown and strict_kwargs:
        raise CheckpointError(f"{pkg.source}: unknown HTDemucs kwargs {unknown}")
    try:
        model = HTDemucs(**known)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{pkg.source}: cannot build HTDemucs from its kwargs: {e}") from None
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in pkg.state.items() if isinstance(v, torch.Tensor)}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if "size mismatch" in ln]
        raise CheckpointError(f"{pkg.source}: weights do not match the configuration: {len(lines)} shape "
                              f"mismatch(es), e.g. {lines[0] if lines else str(e)[:200]}") from None
    if missing or unexpected:
        raise CheckpointError(f"{pkg.source}: weights do not match the configuration: "
                              f"{len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} unexpected "
                              f"(e.g. {unexpected[:3]})")
    for k, v in state.items():
        if not bool(torch.isfinite(v).all()):
            raise CheckpointError(f"{pkg.source}: weight {k} contains NaN or Inf")
    return model.eval()


# Accepted demucs kwargs that only matter for training.
_IGNORED_KWARGS = {"t_dropout", "t_max_positions", "t_weight_decay", "t_lr", "t_cape_mean_normalize",
                   "t_cape_augment", "t_cape_glob_loc_scale", "t_mask_type", "t_mask_random_seed",
                   "t_sparse_attn_window", "t_global_window", "t_sparsity", "t_auto_sparsity", "wiener_residual",
                   "end_iters", "multi_freqs_depth"}


def load_checkpoint(path: PathLike) -> HTDemucs:
    """Load an HTDemucs checkpoint (``.th`` package or ``.safetensors`` + ``.yaml``), eval mode, float32, CPU."""
    return model_from_package(read_package(path))


class _StubPickler(pickle._Pickler):  # type: ignore[misc,name-defined]
    """Pure-Python pickler that writes a stub class as a plain GLOBAL reference by name."""

    def save_global(self, obj: Any, name: str | None = None) -> None:
        stub = getattr(obj, "_ironwave_stub", None)
        if stub is None or not isinstance(obj, type):
            return super().save_global(obj, name)
        module, qual = stub.rsplit(".", 1)
        self.write(pickle.GLOBAL + f"{module}\n{qual}\n".encode("utf-8"))
        self.memoize(obj)


class _StubPickleModule:
    """The bits of the ``pickle`` module torch.save uses, with :class:`_StubPickler`."""

    Pickler = _StubPickler
    Unpickler = pickle.Unpickler
    __name__ = "pickle"


def _state(model: HTDemucs, half: bool) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", torch.half if half and v.is_floating_point() else v.dtype).contiguous()
            for k, v in model.state_dict().items()}


def save_th(model: HTDemucs, path: PathLike, kwargs: dict[str, Any], *, half: bool = True) -> Path:
    """Write a demucs-format ``.th`` package (``serialize_model`` layout) for *model*.

    The class is recorded by name as ``demucs.htdemucs.HTDemucs`` (a stub), so demucs
    itself can load the file too.
    """
    p = Path(path)
    pkg = {"klass": _STUBS[_HT], "args": (), "kwargs": dict(kwargs), "state": _state(model, half),
           "training_args": {}}
    p.parent.mkdir(parents=True, exist_ok=True)
    torch.save(pkg, str(p), pickle_module=_StubPickleModule, pickle_protocol=2)
    return p


def save_safetensors(model: HTDemucs, path: PathLike, kwargs: dict[str, Any], *, half: bool = False) -> Path:
    """Write ``path`` (.safetensors weights) and the kwargs as YAML next to it."""
    import yaml
    from safetensors.torch import save_file

    p = Path(path).with_suffix(".safetensors")
    p.parent.mkdir(parents=True, exist_ok=True)
    save_file(_state(model, half), str(p))
    kw = {k: (f"{v.numerator}/{v.denominator}" if isinstance(v, Fraction) else v) for k, v in kwargs.items()}
    p.with_suffix(".yaml").write_text(yaml.safe_dump({"klass": "HTDemucs", "kwargs": kw}, sort_keys=False))
    return p
