"""Patch files: YAML or JSON descriptions of a graph.

Format::

    name: my patch                # optional
    sample_rate: 48000            # optional (default 48000)
    block: 128                    # optional (default 128)
    metadata: {author: me}        # optional, free-form
    nodes:
      osc:  {type: saw, params: {freq: 110}}
      filt: {type: biquad, kind: lowpass, params: {freq: 800, q: 2}}
      amp:  {type: gain, gain: 0.3}            # params may also be given inline
      out:  {type: output, channels: 2}
    connections:
      - osc -> filt                 # default ports
      - filt.out -> amp.in          # explicit ports
      - [amp, out]                  # list form
      - {from: amp, to: out.in}     # mapping form

Every error names the file, the line and the node (line numbers come from
the YAML node marks; JSON is parsed by the same YAML loader).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ironwave.engine.errors import GraphError, PatchError
from ironwave.engine.graph import Graph
from ironwave.errors import IronwaveError

TOP_KEYS = ("name", "sample_rate", "block", "metadata", "nodes", "connections", "description")
NODE_KEYS = ("type", "channels", "params", "config")


@dataclass
class Patch:
    """A loaded patch: the graph plus run settings."""

    graph: Graph
    sample_rate: int = 48000
    block: int = 128
    name: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def _py(node: yaml.Node) -> Any:
    """Plain Python value of a composed YAML node."""
    return yaml.safe_load(yaml.serialize(node)) if node is not None else None


def _line(node: yaml.Node | None) -> int:
    return node.start_mark.line + 1 if node is not None else 0


class _Ctx:
    def __init__(self, path: str) -> None:
        self.path = path

    def err(self, node: yaml.Node | None, msg: str, who: str | None = None) -> PatchError:
        where = f"{self.path}:{_line(node)}" if node is not None else self.path
        return PatchError(f"{where}: {'node ' + repr(who) + ': ' if who else ''}{msg}")


def _mapping(ctx: _Ctx, node: yaml.Node, what: str, who: str | None = None) -> list[tuple[yaml.Node, yaml.Node]]:
    if not isinstance(node, yaml.MappingNode):
        raise ctx.err(node, f"{what} must be a mapping", who)
    return node.value


_EDGE = re.compile(r"^\s*([^\s>-][^\s>]*?)\s*->\s*([^\s>]+)\s*$")


def parse_patch(text: str, path: str = "<patch>") -> Patch:
    """Parse patch text (YAML or JSON) into a :class:`Patch` (errors name line and node)."""
    ctx = _Ctx(path)
    if path.lower().endswith(".json") or text.lstrip().startswith("{"):
        try:
            json.loads(text)
        except json.JSONDecodeError as e:
            raise PatchError(f"{path}:{e.lineno}: YAML/JSON syntax error: {e.msg} (column {e.colno})") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise PatchError(f"{path}{line}: YAML/JSON syntax error: {problem}") from None
    if root is None:
        raise PatchError(f"{path}: the patch is empty; it needs at least a 'nodes' mapping")
    top = dict((k.value, (k, v)) for k, v in _mapping(ctx, root, "the patch"))
    for k, (kn, _) in top.items():
        if k not in TOP_KEYS:
            raise ctx.err(kn, f"unknown top-level key {k!r}; accepted: {', '.join(TOP_KEYS)}")
    if "nodes" not in top:
        raise ctx.err(root, "the patch has no 'nodes' mapping")
    sr = _py(top["sample_rate"][1]) if "sample_rate" in top else 48000
    if not isinstance(sr, int) or isinstance(sr, bool) or not 1000 <= sr <= 768000:
        raise ctx.err(top["sample_rate"][1], f"sample_rate must be an integer number of Hz, got {sr!r}")
    block = _py(top["block"][1]) if "block" in top else 128
    if not isinstance(block, int) or isinstance(block, bool) or not 1 <= block <= 65536:
        raise ctx.err(top["block"][1], f"block must be an integer number of frames, got {block!r}")
    meta = _py(top["metadata"][1]) if "metadata" in top else {}
    if not isinstance(meta, dict):
        raise ctx.err(top["metadata"][1], "metadata must be a mapping")
    g = Graph()
    g.metadata = meta
    base = Path(path).parent if path and not path.startswith("<") else Path(".")
    from ironwave.engine.nodes import node_class

    for kn, vn in _mapping(ctx, top["nodes"][1], "'nodes'"):
        name = kn.value
        items = dict((k.value, (k, v)) for k, v in _mapping(ctx, vn, "a node", name))
        if "type" not in items:
            raise ctx.err(vn, "missing 'type'", name)
        typ = _py(items["type"][1])
        try:
            cls = node_class(typ)
        except IronwaveError as e:
            raise ctx.err(items["type"][1], str(e), name) from None
        channels = _py(items["channels"][1]) if "channels" in items else None
        params: dict[str, Any] = {}
        config: dict[str, Any] = {}
        marks: dict[str, yaml.Node] = {}
        if "params" in items:
            for pk, pv in _mapping(ctx, items["params"][1], "'params'", name):
                params[pk.value] = _py(pv)
                marks[pk.value] = pk
        if "config" in items:
            for ck, cv in _mapping(ctx, items["config"][1], "'config'", name):
                config[ck.value] = _py(cv)
                marks[ck.value] = ck
        for k, (knode, vnode) in items.items():
            if k in NODE_KEYS:
                continue
            marks[k] = knode
            if k in cls.params:
                params[k] = _py(vnode)
            elif k in cls.config:
                config[k] = _py(vnode)
            else:
                known = sorted([*cls.params, *cls.config])
                raise ctx.err(knode, f"unknown parameter or option {k!r} for type {typ!r}; known: {', '.join(known) or '(none)'}", name)
        for k in ("ir", "path"):  # relative file paths are relative to the patch file
            if isinstance(config.get(k), str) and not Path(config[k]).is_absolute() and base != Path("."):
                config[k] = str((base / config[k]))
        try:
            g.add(typ, name, channels=channels, params=params, config=config)
        except IronwaveError as e:
            bad = next((m for k, m in marks.items() if repr(k) in str(e)), vn)
            raise ctx.err(bad, str(e), name) from None
    if "connections" in top:
        cn = top["connections"][1]
        if not isinstance(cn, yaml.SequenceNode):
            raise ctx.err(cn, "'connections' must be a list")
        for item in cn.value:
            v = _py(item)
            if isinstance(v, str):
                m = _EDGE.match(v)
                if not m:
                    raise ctx.err(item, f"bad connection {v!r}; write 'src -> dst' or 'src.port -> dst.port'")
                src, dst = m.group(1), m.group(2)
            elif isinstance(v, list) and len(v) == 2 and all(isinstance(s, str) for s in v):
                src, dst = v
            elif isinstance(v, dict) and set(v) == {"from", "to"}:
                src, dst = str(v["from"]), str(v["to"])
            else:
                raise ctx.err(item, f"bad connection {v!r}; use 'a -> b', [a, b] or {{from: a, to: b}}")
            try:
                g.connect(src, dst)
            except IronwaveError as e:
                raise ctx.err(item, str(e), src.split(".")[0]) from None
    from ironwave.engine.compiler import analyse

    try:
        analyse(g)
    except IronwaveError as e:
        node = _guess_node(str(e), g)
        raise ctx.err(top["connections"][1] if "connections" in top else top["nodes"][1], str(e), node) from None
    name = _py(top["name"][1]) if "name" in top else Path(path).stem
    return Patch(g, sr, block, str(name), meta, Path(path) if not path.startswith("<") else None)


def _guess_node(msg: str, g: Graph) -> str | None:
    for pat in (r"connect ([A-Za-z_][\w\-]*)\.", r"cycle: ([A-Za-z_][\w\-]*)", r"node '([^']+)'"):
        m = re.search(pat, msg)
        if m and m.group(1) in g:
            return m.group(1)
    for s in g.nodes():
        if f"{s.name}" in msg:
            return s.name
    return None


def load_patch(path: str | Path) -> Patch:
    """Load a ``.yaml``/``.yml``/``.json`` patch file (errors name file, line and node)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"patch file not found: {p}")
    if p.is_dir():
        raise PatchError(f"{p} is a directory, not a patch file")
    try:
        text = p.read_text()
    except UnicodeDecodeError:
        raise PatchError(f"{p}: not a text file (expected YAML or JSON)") from None
    return parse_patch(text, str(p))


def graph_to_dict(graph: Graph, *, sample_rate: int = 48000, block: int = 128, name: str = "") -> dict[str, Any]:
    """The patch document of a graph (inverse of :func:`parse_patch`)."""
    nodes: dict[str, Any] = {}
    for s in graph.nodes():
        d: dict[str, Any] = {"type": s.type}
        if s.channels is not None:
            d["channels"] = s.channels
        if s.config:
            d["config"] = dict(s.config)
        if s.params:
            d["params"] = dict(s.params)
        nodes[s.name] = d
    conns = [f"{graph.name(e.src)}.{e.src_port} -> {graph.name(e.dst)}.{e.dst_port}" for e in graph.edges]
    doc: dict[str, Any] = {"sample_rate": sample_rate, "block": block}
    if name:
        doc["name"] = name
    if graph.metadata:
        doc["metadata"] = graph.metadata
    doc["nodes"] = nodes
    doc["connections"] = conns
    return doc


def save_patch(graph: Graph, path: str | Path, *, sample_rate: int = 48000, block: int = 128) -> Path:
    """Write a graph as YAML (``.yaml``/``.yml``) or JSON (``.json``)."""
    p = Path(path)
    doc = graph_to_dict(graph, sample_rate=sample_rate, block=block, name=p.stem)
    if p.suffix.lower() == ".json":
        p.write_text(json.dumps(doc, indent=2))
    elif p.suffix.lower() in (".yaml", ".yml"):
        p.write_text(yaml.safe_dump(doc, sort_keys=False))
    else:
        raise GraphError(f"patch files end in .yaml, .yml or .json, got {p.name}")
    return p
