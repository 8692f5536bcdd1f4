"""Node API: a node type is a class whose kernel runs over a batch of nodes.

A node type declares its ports, parameters and config, and implements
``__init__`` (= prepare: allocate every buffer for ``n`` nodes) and
:meth:`Node.process`, which processes one block for all ``n`` nodes of one
group at once:

* ``ins[k]``: input port k, ``[n, c_in, frames]`` (read only)
* ``outs[k]``: output port k, ``[n, c_out, frames]``: write into it
* ``p[j]``: parameter j, ``[n, 1, frames]`` while ramping or ``[n, 1, 1]``

``process`` must allocate nothing: write with ``out=`` / in-place ops into
buffers made in ``__init__`` (the CPU no-allocation test and CUDA graph
capture both rely on it), keep all state in tensors (no Python-side state
that changes per block: a CUDA graph would not see it), and update state in
place. Per-node state tensors registered with :meth:`Node.add_state` have a
leading dim ``n``; they are saved/restored and moved between plans when the
graph is edited.
"""
from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from ironwave.engine.errors import GraphError
from ironwave.engine.params import ParamSpec
from ironwave.errors import InvalidParameter

# Port channel spec: an int (fixed) or None (= the node's channel count).
PortSpec = int | None


class Node:
    """Base class of node kernels (one instance per compiled group).

    Class attributes:
        type_name: registered name used in patches.
        inputs / outputs: port name -> channel spec (int or None = node channels).
        params: name -> :class:`ParamSpec`.
        config: name -> default value of a structural option.
        default_channels: channel count when the node has no inputs to infer from
            (None: infer from the sources of the first input port).
        host_io: True for nodes that move data to/from the host outside the
            captured graph (file player/recorder): they implement
            :meth:`pre_host` / :meth:`post_host`.
        doc: one-paragraph description.

    Instance attributes set before ``setup``: ``n``, ``channels``, ``frames``,
    ``sample_rate``, ``device``, ``configs`` (one dict per node), ``names``.
    """

    type_name: ClassVar[str] = ""
    inputs: ClassVar[dict[str, PortSpec]] = {}
    outputs: ClassVar[dict[str, PortSpec]] = {}
    params: ClassVar[dict[str, ParamSpec]] = {}
    config: ClassVar[dict[str, Any]] = {}
    default_channels: ClassVar[int | None] = None
    host_io: ClassVar[bool] = False
    host_state: ClassVar[tuple[str, ...]] = ()
    doc: ClassVar[str] = ""

    def __init__(self, n: int, channels: int, frames: int, sample_rate: int, device: torch.device,
                 configs: list[dict[str, Any]], names: list[str], resources: Any = None, ids: list[Any] | None = None,
                 connected: dict[str, bool] | None = None) -> None:
        self.n, self.channels, self.frames, self.sample_rate, self.device = n, channels, frames, sample_rate, device
        self.configs, self.names = configs, names
        self.resources, self.ids = resources, ids or []
        self.connected = connected or {}
        self.state: dict[str, torch.Tensor] = {}
        self._consts: dict[Any, torch.Tensor] = {}
        self.param_init: torch.Tensor = torch.zeros(n, max(len(self.params), 1))
        self.feedback = False

    def prepare(self) -> None:
        """Run :meth:`setup` (the compiler sets ``param_init`` / ``feedback`` first)."""
        self.setup()

    # -- to override ---------------------------------------------------------
    def setup(self) -> None:
        """Allocate state and scratch for ``n`` nodes (called once, off the audio thread)."""

    def process(self, ins: list[torch.Tensor], outs: list[torch.Tensor], p: list[torch.Tensor]) -> None:
        """Process one block for all nodes of the group (see module docs)."""
        raise NotImplementedError

    def update(self, p: list[torch.Tensor]) -> None:
        """Recompute derived coefficients from params (called before process while
        params ramp, and always on CUDA). Default: nothing."""

    def pre_host(self) -> None:
        """host_io nodes: host-side work before the block (outside any captured graph)."""

    def post_host(self) -> None:
        """host_io nodes: host-side work after the block (outside any captured graph)."""

    def close(self) -> None:
        """Release resources (threads, files). Called off the audio thread."""

    # -- helpers ---------------------------------------------------------------
    def add_state(self, name: str, t: torch.Tensor) -> torch.Tensor:
        """Register per-node state (leading dim n) for save/restore and plan transfer."""
        self.state[name] = t
        return t

    def k(self, value: float) -> torch.Tensor:
        """A cached 0-dim tensor of *value* on the node's device. Python-float scalars make
        torch allocate a wrapped-number tensor per op; cached tensors do not."""
        c = self._consts.get(value)
        if c is None:
            c = self._consts[value] = torch.tensor(float(value), device=self.device)
        return c

    def k64(self, value: float) -> torch.Tensor:
        """A cached float64 0-dim tensor of *value* (for float64 phase/coefficient math)."""
        key = ("f64", float(value))
        c = self._consts.get(key)  # type: ignore[call-overload]
        if c is None:
            c = self._consts[key] = torch.tensor(float(value), dtype=torch.float64, device=self.device)  # type: ignore[index]
        return c

    def zeros(self, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.zeros(*shape, dtype=dtype, device=self.device)

    def cfg(self, key: str) -> list[Any]:
        """The config value *key* of every node of the group."""
        return [c.get(key, self.config.get(key)) for c in self.configs]

    @classmethod
    def group_key(cls, config: dict[str, Any]) -> Any:
        """Hashable part of the config that must be equal within one batched group."""
        return ()

    @classmethod
    def config_channels(cls, config: dict[str, Any]) -> int | None:
        """Channel count implied by the config (e.g. a file's channels), or None."""
        return None

    @classmethod
    def infer_channels(cls, source_channels: list[int]) -> int:
        """Channel count when the node's ``channels`` is not given."""
        if cls.default_channels is not None:
            return cls.default_channels
        return max(source_channels, default=1)

    @classmethod
    def port_channels(cls, port: str, node_channels: int, is_input: bool) -> int:
        spec = (cls.inputs if is_input else cls.outputs)[port]
        return node_channels if spec is None else int(spec)

    @classmethod
    def check_params(cls, node: str, params: dict[str, Any]) -> dict[str, float]:
        """Validate parameter values; returns them as floats."""
        out: dict[str, float] = {}
        for k, v in params.items():
            if k not in cls.params:
                known = ", ".join(cls.params) or "(none)"
                raise InvalidParameter(f"node {node!r} ({cls.type_name}): unknown parameter {k!r}; known: {known}")
            spec = cls.params[k]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
                raise InvalidParameter(f"node {node!r} ({cls.type_name}): parameter {k!r} must be a finite number, got {v!r}")
            if not spec.lo <= float(v) <= spec.hi:
                raise InvalidParameter(f"node {node!r} ({cls.type_name}): parameter {k!r} = {v} is out of range [{spec.lo}, {spec.hi}]{' ' + spec.unit if spec.unit else ''}")
            out[k] = float(v)
        return out

    @classmethod
    def check_config(cls, node: str, config: dict[str, Any]) -> dict[str, Any]:
        """Validate structural options (unknown keys raise)."""
        for k in config:
            if k not in cls.config:
                known = ", ".join(cls.config) or "(none)"
                raise GraphError(f"node {node!r} ({cls.type_name}): unknown option {k!r}; known options: {known}; parameters: {', '.join(cls.params) or '(none)'}")
        out = dict(config)
        cls.validate_config(node, out)
        return out

    @classmethod
    def validate_config(cls, node: str, config: dict[str, Any]) -> None:
        """Type-specific checks of the config (override)."""


def rfft_rows(x: torch.Tensor, n: int, out: torch.Tensor) -> None:
    """``rfft(x, n, dim=-1, out=out)`` over ``[nodes, ...]``.

    On the CPU the FFT library picks a different (SIMD multi-transform) code path
    for different batch sizes, which changes the last bits; transforming node by
    node keeps a batched group bit-identical to the node-by-node reference. On
    CUDA one batched call is made.
    """
    if x.device.type == "cpu" and x.shape[0] > 1:
        for i in range(x.shape[0]):
            torch.fft.rfft(x[i], n=n, dim=-1, out=out[i])
    else:
        torch.fft.rfft(x, n=n, dim=-1, out=out)


def irfft_rows(X: torch.Tensor, n: int, out: torch.Tensor) -> None:
    """``irfft(X, n, dim=-1, out=out)``, node by node on the CPU (see :func:`rfft_rows`)."""
    if X.device.type == "cpu" and X.shape[0] > 1:
        for i in range(X.shape[0]):
            torch.fft.irfft(X[i], n=n, dim=-1, out=out[i])
    else:
        torch.fft.irfft(X, n=n, dim=-1, out=out)


def cmul_rows(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> None:
    """Complex ``out = a * b`` over ``[nodes, ...]``, node by node on the CPU.

    The CPU complex multiply rounds differently in its SIMD body (fused
    multiply-add/sub) and its scalar tail, and which elements fall in the tail
    depends on the batch size; per-node calls keep a batched group identical
    to the node-by-node reference. On CUDA one batched call is made.
    """
    if out.device.type == "cpu" and out.shape[0] > 1:
        for i in range(out.shape[0]):
            torch.mul(a[i], b[i], out=out[i])
    else:
        torch.mul(a, b, out=out)


_REGISTRY: dict[str, type[Node]] = {}


def register(cls: type[Node]) -> type[Node]:
    """Class decorator: make a node type available by its ``type_name``."""
    if not cls.type_name:
        raise ValueError(f"{cls.__name__} has no type_name")
    _REGISTRY[cls.type_name] = cls
    return cls
