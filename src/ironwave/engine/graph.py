"""The editable graph model: nodes with generational ids, ports, edges, levels.

This is the *control-side* description of a patch. It is never touched by the
audio thread: :mod:`ironwave.engine.compiler` turns a snapshot of it into an
immutable :class:`~ironwave.engine.compiler.Plan` that the audio thread runs.

* Nodes are addressed by :class:`NodeId` ``(index, generation)``. Removing a
  node bumps the generation of its slot, so a stale id never aliases a node
  added later into the same slot.
* Edges connect an output port to an input port. Several edges into one input
  port are summed (fan-in) in edge order.
* A cycle is refused with :class:`~ironwave.engine.errors.CycleError` unless it
  passes through a ``delay`` node (the only legal feedback path).
* :func:`levels` groups nodes by topological level (Kahn's algorithm).
"""
from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from ironwave.engine.errors import CycleError, GraphError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


@dataclass(frozen=True, order=True)
class NodeId:
    """Generational node id: slot *index* plus the slot's *generation*."""

    index: int
    generation: int

    def __str__(self) -> str:
        return f"#{self.index}.{self.generation}"


@dataclass
class NodeSpec:
    """One node of the graph: its type, name, channel count, params and config.

    Attributes:
        id: the node's generational id.
        name: unique name (used by patches and error messages).
        type: registered node type name, e.g. ``"gain"``.
        channels: channel count of the node's main ports, or None for "infer
            from the inputs" (see the node type's docs).
        params: smoothed parameter values (floats), by name.
        config: structural options (file paths, filter kind, sizes), by name.
    """

    id: NodeId
    name: str
    type: str
    channels: int | None = None
    params: dict[str, float] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Edge:
    """A connection ``src.src_port -> dst.dst_port``."""

    src: NodeId
    src_port: str
    dst: NodeId
    dst_port: str


class Graph:
    """A mutable graph of nodes and edges (control thread only).

    Example:
        >>> g = Graph()
        >>> osc = g.add("sine", "osc", params={"freq": 440.0})
        >>> out = g.add("output", "out", channels=1)
        >>> g.connect(osc, out)
    """

    def __init__(self) -> None:
        self._slots: list[NodeSpec | None] = []
        self._gens: list[int] = []
        self._free: list[int] = []
        self._names: dict[str, NodeId] = {}
        self.edges: list[Edge] = []
        self.metadata: dict[str, Any] = {}
        self.version = 0

    # -- nodes -------------------------------------------------------------
    def add(self, type: str, name: str | None = None, *, channels: int | None = None,
            params: dict[str, float] | None = None, config: dict[str, Any] | None = None) -> NodeId:
        """Add a node of a registered *type*; returns its id.

        Params and config are checked against the type (unknown names and
        out-of-range values raise :class:`~ironwave.errors.InvalidParameter` /
        :class:`~ironwave.engine.errors.GraphError`).
        """
        from ironwave.engine.nodes import node_class

        cls = node_class(type)
        if name is None:
            k = 1
            while f"{type}{k}" in self._names:
                k += 1
            name = f"{type}{k}"
        if not isinstance(name, str) or not _NAME.match(name):
            raise GraphError(f"bad node name {name!r}: use letters, digits, '_' or '-', starting with a letter")
        if name in self._names:
            raise GraphError(f"a node named {name!r} exists already")
        if channels is not None and (not isinstance(channels, int) or isinstance(channels, bool) or not 1 <= channels <= 64):
            raise GraphError(f"node {name!r}: channels must be an integer 1..64, got {channels!r}")
        p = cls.check_params(name, params or {})
        c = cls.check_config(name, config or {})
        if self._free:
            i = self._free.pop()
        else:
            i = len(self._slots)
            self._slots.append(None)
            self._gens.append(0)
        nid = NodeId(i, self._gens[i])
        self._slots[i] = NodeSpec(nid, name, cls.type_name, channels, p, c)
        self._names[name] = nid
        self.version += 1
        return nid

    def remove(self, node: NodeId | str) -> None:
        """Remove a node and every edge touching it."""
        nid = self.id(node)
        spec = self._slots[nid.index]
        assert spec is not None
        self.edges = [e for e in self.edges if e.src != nid and e.dst != nid]
        del self._names[spec.name]
        self._slots[nid.index] = None
        self._gens[nid.index] += 1
        self._free.append(nid.index)
        self.version += 1

    def id(self, node: NodeId | str) -> NodeId:
        """The id of a node given by id or name; raises GraphError if it does not exist."""
        if isinstance(node, str):
            if node not in self._names:
                raise GraphError(f"no node named {node!r}; nodes: {', '.join(sorted(self._names)) or '(none)'}")
            return self._names[node]
        if not isinstance(node, NodeId):
            raise GraphError(f"a node is addressed by NodeId or name, got {type(node).__name__}")
        if not (0 <= node.index < len(self._slots)) or self._gens[node.index] != node.generation or self._slots[node.index] is None:
            raise GraphError(f"node id {node} is stale or unknown (was the node removed?)")
        return node

    def node(self, node: NodeId | str) -> NodeSpec:
        """The spec of a live node."""
        nid = self.id(node)
        spec = self._slots[nid.index]
        assert spec is not None
        return spec

    def __contains__(self, node: object) -> bool:
        try:
            self.id(node)  # type: ignore[arg-type]
            return True
        except GraphError:
            return False

    def nodes(self) -> Iterator[NodeSpec]:
        """Live nodes in slot order."""
        return (s for s in self._slots if s is not None)

    def __len__(self) -> int:
        return len(self._names)

    def set_param(self, node: NodeId | str, param: str, value: float) -> None:
        """Change the stored value of a parameter (the engine also ramps the live one)."""
        spec = self.node(node)
        from ironwave.engine.nodes import node_class

        spec.params.update(node_class(spec.type).check_params(spec.name, {param: value}))

    # -- edges -------------------------------------------------------------
    @staticmethod
    def _split(ref: NodeId | str, default_port: str) -> tuple[NodeId | str, str]:
        if isinstance(ref, str) and "." in ref:
            n, p = ref.split(".", 1)
            return n, p
        return ref, default_port

    def connect(self, src: NodeId | str, dst: NodeId | str, src_port: str | None = None, dst_port: str | None = None) -> Edge:
        """Connect ``src.src_port`` to ``dst.dst_port`` (default ports: first output, first input).

        ``"name.port"`` strings are accepted for *src* / *dst*. A duplicate edge
        or an unknown port raises GraphError. Cycles are checked at compile time
        (:func:`levels`), since an edit may pass through a cyclic state.
        """
        from ironwave.engine.nodes import node_class

        s, sp = self._split(src, src_port or "")
        d, dp = self._split(dst, dst_port or "")
        sspec, dspec = self.node(s), self.node(d)
        scls, dcls = node_class(sspec.type), node_class(dspec.type)
        if not scls.outputs:
            raise GraphError(f"node {sspec.name!r} ({sspec.type}) has no output ports")
        if not dcls.inputs:
            raise GraphError(f"node {dspec.name!r} ({dspec.type}) has no input ports")
        sp = sp or src_port or next(iter(scls.outputs))
        dp = dp or dst_port or next(iter(dcls.inputs))
        if sp not in scls.outputs:
            raise GraphError(f"node {sspec.name!r} ({sspec.type}) has no output port {sp!r}; outputs: {', '.join(scls.outputs)}")
        if dp not in dcls.inputs:
            raise GraphError(f"node {dspec.name!r} ({dspec.type}) has no input port {dp!r}; inputs: {', '.join(dcls.inputs)}")
        e = Edge(sspec.id, sp, dspec.id, dp)
        if e in self._edge_index()[1]:
            raise GraphError(f"{sspec.name}.{sp} is already connected to {dspec.name}.{dp}")
        self.edges.append(e)
        self.version += 1
        cache = getattr(self, "_eidx", None)
        if cache is not None and cache[0] == self.version - 1 and cache[1] == len(self.edges) - 1:
            cache[2].setdefault((e.dst, e.dst_port), []).append(e)  # keep the index current (no rebuild)
            cache[3].add(e)
            self._eidx = (self.version, len(self.edges), cache[2], cache[3])
        return e

    def disconnect(self, src: NodeId | str, dst: NodeId | str, src_port: str | None = None, dst_port: str | None = None) -> None:
        """Remove the edge(s) from *src* to *dst* (all of them when ports are not given)."""
        s, sp = self._split(src, src_port or "")
        d, dp = self._split(dst, dst_port or "")
        sid, did = self.id(s), self.id(d)
        keep = [e for e in self.edges if not (e.src == sid and e.dst == did and (not sp or e.src_port == sp) and (not dp or e.dst_port == dp))]
        if len(keep) == len(self.edges):
            raise GraphError(f"{self.node(sid).name} is not connected to {self.node(did).name}")
        self.edges = keep
        self.version += 1

    def sources(self, node: NodeId, port: str) -> list[Edge]:
        """Edges into ``node.port`` in fan-in summation order."""
        return list(self._edge_index()[0].get((node, port), ()))

    def _edge_index(self) -> tuple[dict[tuple[NodeId, str], list[Edge]], set[Edge]]:
        """``(dst, port) -> edges`` in order, and the edge set; rebuilt when the graph changed.

        Keeps ``connect`` and ``sources`` O(1) amortised, so building or compiling a
        graph of tens of thousands of nodes stays linear (it was quadratic)."""
        cache = getattr(self, "_eidx", None)
        if cache is not None and cache[0] == self.version and cache[1] == len(self.edges):
            return cache[2], cache[3]
        by_dst: dict[tuple[NodeId, str], list[Edge]] = {}
        for e in self.edges:
            by_dst.setdefault((e.dst, e.dst_port), []).append(e)
        es = set(self.edges)
        self._eidx = (self.version, len(self.edges), by_dst, es)
        return by_dst, es

    def name(self, nid: NodeId) -> str:
        return self.node(nid).name

    def copy(self) -> "Graph":
        """A deep copy (the compiler works on copies, so later edits cannot race it)."""
        import copy as _copy

        g = Graph()
        g._slots = [None if s is None else NodeSpec(s.id, s.name, s.type, s.channels, dict(s.params), _copy.deepcopy(s.config)) for s in self._slots]
        g._gens = list(self._gens)
        g._free = list(self._free)
        g._names = dict(self._names)
        g.edges = list(self.edges)
        g.metadata = _copy.deepcopy(self.metadata)
        g.version = self.version
        return g


def _sccs(nodes: list[NodeId], succ: dict[NodeId, list[NodeId]]) -> list[list[NodeId]]:
    """Strongly connected components (iterative Tarjan)."""
    index: dict[NodeId, int] = {}
    low: dict[NodeId, int] = {}
    on: set[NodeId] = set()
    stack: list[NodeId] = []
    out: list[list[NodeId]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(succ[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(succ[w])))
                    advanced = True
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(comp)
    return out


def _find_cycle(members: set[NodeId], succ: dict[NodeId, list[NodeId]]) -> list[NodeId]:
    """One cycle among *members* (each has a successor inside *members*)."""
    start = next(iter(sorted(members)))
    seen: dict[NodeId, int] = {}
    path: list[NodeId] = []
    v = start
    while v not in seen:
        seen[v] = len(path)
        path.append(v)
        v = next(w for w in succ[v] if w in members)
    return path[seen[v]:] + [v]


@dataclass
class Schedule:
    """Result of :func:`levels`: node levels and the feedback edges (into delays)."""

    levels: list[list[NodeId]]
    level_of: dict[NodeId, int]
    feedback: set[Edge]


def levels(graph: Graph) -> Schedule:
    """Topological levels by Kahn's algorithm.

    Edges into a ``delay`` node that lies on a cycle are *feedback* edges: the
    delay reads its history at its level and writes its input after the last
    level, so the cycle is broken. Any other cycle raises CycleError naming
    the nodes on it.
    """
    ids = [s.id for s in graph.nodes()]
    succ: dict[NodeId, list[NodeId]] = {i: [] for i in ids}
    for e in graph.edges:
        succ[e.src].append(e.dst)
    comp_of: dict[NodeId, int] = {}
    comps = _sccs(ids, succ)
    for k, comp in enumerate(comps):
        for v in comp:
            comp_of[v] = k
    cyclic = {k for k, comp in enumerate(comps) if len(comp) > 1}
    cyclic |= {comp_of[e.src] for e in graph.edges if e.src == e.dst}
    feedback = {e for e in graph.edges
                if graph.node(e.dst).type == "delay" and comp_of[e.src] == comp_of[e.dst] and comp_of[e.dst] in cyclic}
    indeg = {i: 0 for i in ids}
    succ2: dict[NodeId, list[NodeId]] = {i: [] for i in ids}
    for e in graph.edges:
        if e in feedback:
            continue
        indeg[e.dst] += 1
        succ2[e.src].append(e.dst)
    level_of: dict[NodeId, int] = {}
    current = [i for i in ids if indeg[i] == 0]
    out: list[list[NodeId]] = []
    while current:
        out.append(current)
        nxt: list[NodeId] = []
        for v in current:
            level_of[v] = len(out) - 1
            for w in succ2[v]:
                indeg[w] -= 1
                if indeg[w] == 0:
                    nxt.append(w)
        current = sorted(set(nxt))
    if len(level_of) != len(ids):
        left = {i for i in ids if i not in level_of}
        cyc = _find_cycle(left, {v: [w for w in succ2[v] if w in left] for v in left})
        names = " -> ".join(graph.node(v).name for v in cyc)
        raise CycleError(f"the graph has a cycle: {names}; feedback is only allowed through a 'delay' node")
    return Schedule(out, level_of, feedback)
