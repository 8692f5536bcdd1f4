"""Real-time engine: a compiled graph of batched DSP nodes, block by block against a deadline.

* :class:`Graph` — editable model (generational node ids, ports, fan-in, cycle checks).
* :class:`Engine` — compiled plan + lock-free command ring + telemetry; drivers call
  :meth:`Engine.process_block`.
* :func:`load_patch` / :func:`save_patch` — YAML/JSON patch files.
* Drivers live in :mod:`ironwave.io.clock` (offline), :mod:`ironwave.io.jack`,
  :mod:`ironwave.io.portaudio`.
"""
from ironwave.engine.errors import CycleError, GraphError, PatchError, UnknownNodeType
from ironwave.engine.graph import Edge, Graph, NodeId, levels
from ironwave.engine.nodes import Node, node_class, node_types, register
from ironwave.engine.params import ParamSpec
from ironwave.engine.compiler import NaiveRunner, Plan, Resources
from ironwave.engine.engine import CommandRingFull, Engine
from ironwave.engine.patch import Patch, load_patch, parse_patch, save_patch

__all__ = [
    "CycleError", "GraphError", "PatchError", "UnknownNodeType", "Edge", "Graph", "NodeId", "levels",
    "Node", "node_class", "node_types", "register", "ParamSpec", "NaiveRunner", "Plan", "Resources",
    "CommandRingFull", "Engine", "Patch", "load_patch", "parse_patch", "save_patch",
]
