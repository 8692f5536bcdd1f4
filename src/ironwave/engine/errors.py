"""Errors of the real-time engine (all are :class:`~ironwave.errors.IronwaveError`)."""
from __future__ import annotations

from ironwave.errors import IronwaveError


class GraphError(IronwaveError, ValueError):
    """A bad graph edit: unknown node or port, bad connection, channel mismatch."""


class CycleError(GraphError):
    """The graph has a cycle that does not pass through a ``delay`` node."""


class PatchError(IronwaveError, ValueError):
    """A patch file that cannot be loaded; the message names the file, line and node."""


class UnknownNodeType(GraphError):
    """A node type that is not registered."""
