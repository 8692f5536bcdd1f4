"""Node types of the engine. ``node_class(name)`` looks one up; :func:`node_types` lists them.

Register a new type with :func:`~ironwave.engine.nodes.base.register` (see
docs/engine.md, "Writing a node").
"""
from __future__ import annotations

from ironwave.engine.errors import UnknownNodeType
from ironwave.engine.nodes.base import _REGISTRY, Node, register
from ironwave.engine.nodes import basic, convolver, delay, fileio, filters, spectral  # noqa: F401  (registration)


def node_class(name: str) -> type[Node]:
    """The node class registered as *name*; raises UnknownNodeType listing the known ones."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise UnknownNodeType(f"unknown node type {name!r}; known types: {', '.join(sorted(_REGISTRY))}") from None


def node_types() -> dict[str, type[Node]]:
    """All registered node types by name."""
    return dict(sorted(_REGISTRY.items()))


__all__ = ["Node", "register", "node_class", "node_types"]
