"""Graph compiler: a :class:`~ironwave.engine.graph.Graph` snapshot -> an immutable :class:`Plan`.

* Nodes of one type, level, channel count and structural config form a
  *group*, run as ONE batched kernel call over ``[n_nodes, channels, frames]``.
* Every output port of a group owns a contiguous run of slots in an *arena*
  (one arena tensor ``[slots, c, frames]`` per channel count c; slot 0 is
  silence), so a kernel writes its outputs straight into the arena: no scatter.
* Inputs are gathered by index (``index_select(out=)``), with zero-copy views
  when the sources are contiguous or a single slot, and ``index_add_`` for
  fan-in (sources summed in edge order) and mono->multichannel upmix.
* On CUDA the whole block (host->device input copy, parameter copies, every
  level, feedback writes, device->host output copy) is captured once as a
  CUDA graph and replayed; all state is updated in place.

Compilation runs on the control thread. The audio thread only swaps plans at
a block boundary and copies surviving nodes' state across (precomputed index
copies into preallocated buffers).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from ironwave.engine.errors import GraphError
from ironwave.engine.graph import Edge, Graph, NodeId, Schedule, levels
from ironwave.engine.nodes import Node, node_class
from ironwave.engine.params import ParamBank

_plan_ids = itertools.count(1)


class Resources:
    """Engine-wide buffers and long-lived node resources (file streams) that survive recompiles.

    Attributes:
        host_in / host_out: host blocks ``[channels, frames]`` the driver fills /
            reads (pinned on CUDA).
        input_buffer / output_buffer: their device-side twins (the same tensors on the CPU).
    """

    def __init__(self, in_channels: int, out_channels: int, frames: int, device: torch.device) -> None:
        cuda = device.type == "cuda"
        self.device, self.frames = device, frames
        self.in_channels, self.out_channels = in_channels, out_channels
        self.host_in = torch.zeros(in_channels, frames, pin_memory=cuda)
        self.host_out = torch.zeros(out_channels, frames, pin_memory=cuda)
        self.input_buffer = self.host_in.to(device) if cuda else self.host_in
        self.output_buffer = self.host_out.to(device) if cuda else self.host_out
        self._objects: dict[tuple[NodeId, str], Any] = {}
        self.offline = False  # set by the offline clock: file nodes may wait for their threads

    def get(self, nid: NodeId, key: str, factory: Callable[[], Any]) -> Any:
        k = (nid, key)
        if k not in self._objects:
            self._objects[k] = factory()
        return self._objects[k]

    def release_missing(self, live: set[NodeId]) -> None:
        """Close resources of nodes that no longer exist (control thread)."""
        for k in [k for k in self._objects if k[0] not in live]:
            obj = self._objects.pop(k)
            if hasattr(obj, "close"):
                obj.close()

    def close(self) -> None:
        for obj in self._objects.values():
            if hasattr(obj, "close"):
                obj.close()
        self._objects.clear()


@dataclass
class Group:
    """One batched kernel call: ``n`` nodes of one type at one level."""

    type: str
    level: int
    channels: int
    ids: list[NodeId]
    names: list[str]
    kernel: Node
    bank: ParamBank
    ins: list[torch.Tensor] = field(default_factory=list)
    outs: list[torch.Tensor] = field(default_factory=list)
    gathers: list[Callable[[], None]] = field(default_factory=list)
    feedback: bool = False
    late_in: torch.Tensor | None = None
    late_gather: list[Callable[[], None]] = field(default_factory=list)
    host_mirror: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.ids)

    def state(self) -> dict[str, torch.Tensor]:
        """Per-node state (leading dim n): kernel state plus parameter-bank state."""
        return {**self.kernel.state, **self.bank.state()}


@dataclass
class Analysis:
    """Channel counts and schedule of a graph (shared by the batched and the naive runner)."""

    schedule: Schedule
    channels: dict[NodeId, int]
    src_of: dict[tuple[NodeId, str], list[Edge]]
    order: list[NodeId]


def analyse(graph: Graph, in_channels: int | None = None, out_channels: int | None = None) -> Analysis:
    """Levels (Kahn), feedback edges, channel inference and connection checks."""
    sched = levels(graph)
    src_of: dict[tuple[NodeId, str], list[Edge]] = {}
    for e in graph.edges:
        src_of.setdefault((e.dst, e.dst_port), []).append(e)
    kinds: dict[str, list[NodeId]] = {}
    for s in graph.nodes():
        kinds.setdefault(s.type, []).append(s.id)
    for t in ("input", "output"):
        if len(kinds.get(t, [])) > 1:
            raise GraphError(f"a graph has at most one {t!r} node; found {', '.join(graph.node(i).name for i in kinds[t])}")
    order = [v for lvl in sched.levels for v in lvl]
    ch: dict[NodeId, int] = {}
    # channel inference to a fixpoint (feedback delays may learn their count from later nodes)
    for _ in range(len(order) + 2):
        changed = False
        for v in order:
            c = _infer(graph, v, ch, src_of, in_channels, out_channels)
            if ch.get(v) != c:
                ch[v] = c
                changed = True
        if not changed:
            break
    for e in graph.edges:
        scls, dcls = node_class(graph.node(e.src).type), node_class(graph.node(e.dst).type)
        cs = scls.port_channels(e.src_port, ch[e.src], False)
        cd = dcls.port_channels(e.dst_port, ch[e.dst], True)
        if cs != cd and cs != 1:
            raise GraphError(f"cannot connect {graph.node(e.src).name}.{e.src_port} ({cs} ch) to {graph.node(e.dst).name}.{e.dst_port} "
                             f"({cd} ch): channel counts must match (mono sources are upmixed); set 'channels' on a node")
    return Analysis(sched, ch, src_of, order)


def _infer(graph: Graph, v: NodeId, ch: dict[NodeId, int], src_of: dict, in_channels: int | None,
           out_channels: int | None) -> int:
    spec = graph.node(v)
    cls = node_class(spec.type)
    c = spec.channels
    if spec.type == "input" and in_channels is not None:
        if c is not None and c != in_channels:
            raise GraphError(f"node {spec.name!r} (input) has {c} channels but the engine input has {in_channels}")
        c = in_channels
    if spec.type == "output" and out_channels is not None:
        if c is not None and c != out_channels:
            raise GraphError(f"node {spec.name!r} (output) has {c} channels but the engine output has {out_channels}")
        c = out_channels
    if c is None:
        c = cls.config_channels(spec.config)
    if c is None:
        srcs = []
        if cls.inputs:
            first = next(iter(cls.inputs))
            for e in src_of.get((v, first), []):
                if e.src in ch:
                    srcs.append(node_class(graph.node(e.src).type).port_channels(e.src_port, ch[e.src], False))
        c = cls.infer_channels(srcs)
    return c


def _port_sources(an: Analysis, graph: Graph, v: NodeId, port: str, fb: bool) -> list[Edge]:
    """Sources of ``v.port`` in summation order: by source channel count, then edge order.

    *fb*: include feedback edges (True only for the late write of a feedback delay).
    """
    es = an.src_of.get((v, port), [])
    if not fb:
        es = [e for e in es if e not in an.schedule.feedback]
    return es


def _src_c(graph: Graph, an: Analysis, e: Edge) -> int:
    return node_class(graph.node(e.src).type).port_channels(e.src_port, an.channels[e.src], False)


class Plan:
    """A compiled, runnable graph (immutable once built; run on the audio thread).

    Use :meth:`run` once per block; the engine reads ``resources.host_out``.
    """

    def __init__(self, graph: Graph, frames: int, sample_rate: int, device: torch.device, resources: Resources,
                 *, batch: bool = True, capture: bool | None = None, prev: "Plan | None" = None) -> None:
        self.id = next(_plan_ids)
        self.graph = graph
        self.frames, self.sample_rate, self.device, self.resources = frames, sample_rate, device, resources
        self.cuda = device.type == "cuda"
        self.batch = batch
        an = self.analysis = analyse(graph, resources.in_channels, resources.out_channels)
        F = frames
        # -- groups ----------------------------------------------------------
        keyed: dict[tuple, list[NodeId]] = {}
        fb_delays = {e.dst for e in an.schedule.feedback}
        for v in an.order:
            spec = graph.node(v)
            cls = node_class(spec.type)
            key = (an.schedule.level_of[v], spec.type, an.channels[v], cls.group_key(spec.config), v in fb_delays)
            if not batch:
                key = key + (v,)
            keyed.setdefault(key, []).append(v)
        self.groups: list[Group] = []
        self.loc: dict[NodeId, tuple[Group, int]] = {}
        arenas_n: dict[int, int] = {}
        for c in {resources.in_channels, resources.out_channels, 1, *an.channels.values()}:
            arenas_n[c] = 1  # slot 0 = silence
        out_slots: dict[tuple[NodeId, str], tuple[int, int]] = {}  # (node, port) -> (c, slot)
        plan_groups: list[tuple[tuple, list[NodeId], dict[str, int]]] = []
        for key, ids in keyed.items():
            level, typ, c = key[0], key[1], key[2]
            cls = node_class(typ)
            starts = {}
            for port in cls.outputs:
                pc = cls.port_channels(port, c, False)
                arenas_n.setdefault(pc, 1)
                starts[port] = arenas_n[pc]
                for r, v in enumerate(ids):
                    out_slots[(v, port)] = (pc, arenas_n[pc] + r)
                arenas_n[pc] += len(ids)
            plan_groups.append((key, ids, starts))
        self.arenas = {c: torch.zeros(n, c, F, device=device) for c, n in arenas_n.items()}
        for key, ids, starts in plan_groups:
            level, typ, c, _gk, fb = key[:5]
            cls = node_class(typ)
            specs = [graph.node(v) for v in ids]
            connected = {port: any(_port_sources(an, graph, v, port, True) for v in ids) for port in cls.inputs}
            k = cls(len(ids), c, F, sample_rate, device, [s.config for s in specs], [s.name for s in specs],
                    resources=resources, ids=list(ids), connected=connected)
            pnames = list(cls.params)
            init = [[s.params.get(pn, cls.params[pn].default) for pn in pnames] for s in specs]
            k.param_init = torch.tensor(init, dtype=torch.float32).reshape(len(ids), len(pnames)) if pnames else torch.zeros(len(ids), 1)
            k.feedback = fb
            k.prepare()
            bank = ParamBank(len(ids), pnames, init, F, device)
            g = Group(typ, level, c, list(ids), [s.name for s in specs], k, bank, feedback=fb)
            for port in cls.outputs:
                pc = cls.port_channels(port, c, False)
                s0 = starts[port]
                g.outs.append(self.arenas[pc][s0:s0 + len(ids)])
            for port in cls.inputs:
                pc = cls.port_channels(port, c, True)
                if fb:  # a feedback delay reads nothing at its level; its input is gathered late
                    g.ins.append(self.arenas[pc][0:1].expand(len(ids), pc, F))
                    buf, gathers = self._gather(an, graph, ids, port, pc, out_slots, include_fb=True)
                    g.late_in, g.late_gather = buf, gathers
                    continue
                buf, gathers = self._gather(an, graph, ids, port, pc, out_slots, include_fb=False)
                g.ins.append(buf)
                g.gathers.extend(gathers)
            for r, v in enumerate(ids):
                self.loc[v] = (g, r)
            for name in getattr(cls, "host_state", ()):
                t = k.state[name]
                g.host_mirror[name] = torch.zeros(t.shape, dtype=t.dtype, pin_memory=True) if self.cuda else t
            self.groups.append(g)
        self.names = {graph.node(v).name: v for v in an.order}
        self.has_output = any(g.type == "output" for g in self.groups)
        self.host_groups = [g for g in self.groups if g.kernel.host_io]
        self.banks = [g.bank for g in self.groups]
        self.latency = max((getattr(g.kernel, "latency", 0) for g in self.groups), default=0)
        self.steps = self._build_steps(update=True)
        # CUDA: the steady graph has no parameter copies, ramps or coefficient rebuilds
        self.steady_steps = self._build_steps(update=False) if self.cuda else self.steps
        self.ramp_banks = [b for b in self.banks if b.P]
        self.transfers = self._build_transfers(prev) if prev is not None else []
        self.prev_id = prev.id if prev is not None else None
        self.cuda_graph: torch.cuda.CUDAGraph | None = None  # update graph (ramps, coefficient rebuilds)
        self.steady_graph: torch.cuda.CUDAGraph | None = None  # constant parameters
        self.two_graphs = False  # CPU: emulate the CUDA update/steady selection (tests)
        if self.cuda and (capture is None or capture):
            self.capture()

    # -- compilation helpers ------------------------------------------------------
    def _gather(self, an: Analysis, graph: Graph, ids: list[NodeId], port: str, pc: int,
                out_slots: dict, include_fb: bool) -> tuple[torch.Tensor, list[Callable[[], None]]]:
        F, n, dev = self.frames, len(ids), self.device
        per_row = [_port_sources(an, graph, v, port, include_fb) for v in ids]
        if not include_fb:
            pass
        if all(not es for es in per_row):
            return self.arenas[pc][0:1].expand(n, pc, F), []
        single = all(len(es) == 1 for es in per_row)
        if single:
            locs = [out_slots[(es[0].src, es[0].src_port)] for es in per_row]
            if all(c == pc for c, _ in locs):
                slots = [s for _, s in locs]
                arena = self.arenas[pc]
                if slots == list(range(slots[0], slots[0] + n)):
                    return arena[slots[0]:slots[0] + n], []
                if len(set(slots)) == 1:
                    return arena[slots[0]:slots[0] + 1].expand(n, pc, F), []
                buf = torch.zeros(n, pc, F, device=dev)
                idx = torch.tensor(slots, dtype=torch.long, device=dev)

                def g_sel(arena=arena, idx=idx, buf=buf) -> None:
                    torch.index_select(arena, 0, idx, out=buf)
                return buf, [g_sel]
        buf = torch.zeros(n, pc, F, device=dev)
        fns: list[Callable[[], None]] = [buf.zero_]
        by_c: dict[int, tuple[list[int], list[int]]] = {}
        for r, es in enumerate(per_row):
            for e in es:
                c, s = out_slots[(e.src, e.src_port)]
                rows, slots = by_c.setdefault(c, ([], []))
                rows.append(r)
                slots.append(s)
        for c in sorted(by_c):
            rows, slots = by_c[c]
            arena = self.arenas[c]
            src_idx = torch.tensor(slots, dtype=torch.long, device=dev)
            dst_idx = torch.tensor(rows, dtype=torch.long, device=dev)
            tmp = torch.zeros(len(slots), c, F, device=dev)
            src = tmp if c == pc else tmp.expand(len(slots), pc, F)

            def g_add(arena=arena, src_idx=src_idx, dst_idx=dst_idx, tmp=tmp, src=src, buf=buf) -> None:
                torch.index_select(arena, 0, src_idx, out=tmp)
                buf.index_add_(0, dst_idx, src)
            fns.append(g_add)
        return buf, fns

    def _group_step(self, g: Group) -> Callable[[], None]:
        k, bank, ins, outs, gathers = g.kernel, g.bank, g.ins, g.outs, g.gathers
        has_update = type(k).update is not Node.update
        ramp_views = bank.ramp_views

        def step() -> None:
            for fn in gathers:
                fn()
            p = bank.views()
            if has_update and p is ramp_views:
                k.update(p)
            k.process(ins, outs, p)
        return step

    def _io_groups(self) -> tuple[Group | None, Group | None]:
        """Input/output groups whose host copies can target the arena directly (no DtoD hop)."""
        res = self.resources
        in_g = next((g for g in self.groups if g.type == "input"), None)
        out_g = next((g for g in self.groups if g.type == "output"), None)
        if in_g is not None and not (in_g.n == 1 and in_g.outs[0][0].shape == res.host_in.shape):
            in_g = None
        if out_g is not None:
            src = out_g.ins[0][0]
            if not (out_g.n == 1 and src.shape == res.host_out.shape and src.is_contiguous()):
                out_g = None
        return in_g, out_g

    def _build_steps(self, update: bool = True) -> list[Callable[[], None]]:
        """The block's steps. CUDA ``update=False``: no parameter (ctrl) copies; the banks
        are forced to constant mode while that list is captured (see :meth:`capture`).

        The host input block is copied straight into the input node's arena slot and the
        output node's gathered input straight into the host output block (on CUDA: one
        HtoD and one DtoH copy, no device-to-device hop through ``input_buffer`` /
        ``output_buffer``)."""
        res = self.resources
        nb = self.cuda
        steps: list[Callable[[], None]] = []
        in_g, out_g = self._io_groups()
        if in_g is not None:
            dst_in = in_g.outs[0][0]
            steps.append(lambda: dst_in.copy_(res.host_in, non_blocking=nb))
        elif self.cuda:
            steps.append(lambda: res.input_buffer.copy_(res.host_in, non_blocking=True))
        if self.cuda and update:
            for b in self.banks:
                if b.P:
                    steps.append(lambda b=b: b.ctrl_dev.copy_(b.ctrl, non_blocking=True))
        if not self.has_output:
            steps.append(res.output_buffer.zero_)
        for g in self.groups:
            if g is in_g:
                continue
            if g is out_g:
                def out_step(gathers=g.gathers, src=g.ins[0][0]) -> None:
                    for fn in gathers:
                        fn()
                    res.host_out.copy_(src, non_blocking=nb)
                steps.append(out_step)
                continue
            steps.append(self._group_step(g))
        for g in self.groups:
            if g.feedback:
                def late(g=g) -> None:
                    for fn in g.late_gather:
                        fn()
                    g.kernel.late_write(g.late_in)
                steps.append(late)
        if self.cuda:
            for g in self.groups:
                for name, m in g.host_mirror.items():
                    steps.append(lambda m=m, t=g.kernel.state[name]: m.copy_(t, non_blocking=True))
            if out_g is None:
                steps.append(lambda: res.host_out.copy_(res.output_buffer, non_blocking=True))
        return steps

    def _all_state(self) -> list[torch.Tensor]:
        return [t for g in self.groups for t in g.state().values()]

    def _force(self, mode: bool | None) -> None:
        for b in self.banks:
            b.force = mode

    def _capture_one(self, steps: list[Callable[[], None]], mode: bool,
                     pool: Any = None) -> torch.cuda.CUDAGraph:
        dev = self.device
        self._force(mode)
        try:
            stream = torch.cuda.Stream(dev)
            stream.wait_stream(torch.cuda.current_stream(dev))
            with torch.cuda.stream(stream):
                for _ in range(2):
                    for s in steps:
                        s()
            torch.cuda.current_stream(dev).wait_stream(stream)
            torch.cuda.synchronize(dev)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=pool, capture_error_mode="thread_local"):
                for s in steps:
                    s()
            torch.cuda.synchronize(dev)
        finally:
            self._force(None)
        return graph

    def capture(self) -> None:
        """Capture the block as two CUDA graphs (state is restored after warm-up):

        * the **update** graph: parameter copies host->device, ramps (every bank in ramp
          mode) and coefficient rebuilds (``Node.update``), then every level;
        * the **steady** graph: every level with constant parameters (kernels read the
          current targets in place), no ramp or coefficient work.

        :meth:`run` replays the update graph while any bank has ``ramp_left > 0`` (a host
        integer) and the steady graph otherwise. Both share one memory pool (never replayed
        concurrently).
        """
        dev = self.device
        snap = [t.clone() for t in self._all_state()]
        upd = self._capture_one(self.steps, True)
        steady = self._capture_one(self.steady_steps, False, pool=upd.pool())
        for t, v in zip(self._all_state(), snap):
            t.copy_(v)
        for b in self.banks:
            b.ctrl[:, :, 3].zero_()
        torch.cuda.synchronize(dev)
        self.cuda_graph, self.steady_graph = upd, steady

    def _build_transfers(self, prev: "Plan") -> list[tuple]:
        """Index copies moving surviving nodes' state from *prev* into this plan."""
        out = []
        for g in self.groups:
            mine = g.state()
            pairs: dict[int, list[tuple[int, int]]] = {}
            for r, v in enumerate(g.ids):
                if v in prev.loc:
                    og, orow = prev.loc[v]
                    if og.type == g.type:
                        pairs.setdefault(id(og), []).append((r, orow))
            for og in prev.groups:
                if id(og) not in pairs:
                    continue
                theirs = og.state()
                rows = pairs[id(og)]
                for name, dst in mine.items():
                    src = theirs.get(name)
                    if src is None or src.shape[1:] != dst.shape[1:] or src.dtype != dst.dtype or src.device != dst.device:
                        continue
                    di = torch.tensor([r for r, _ in rows], dtype=torch.long, device=dst.device)
                    si = torch.tensor([o for _, o in rows], dtype=torch.long, device=dst.device)
                    tmp = torch.zeros((len(rows), *dst.shape[1:]), dtype=dst.dtype, device=dst.device)
                    out.append((dst, di, src, si, tmp))
        return out

    # -- audio thread ---------------------------------------------------------------
    def adopt(self, prev: "Plan") -> None:
        """Copy surviving nodes' state from *prev* (the plan this one replaces). No allocation."""
        if prev.id != self.prev_id:
            return
        for dst, di, src, si, tmp in self.transfers:
            torch.index_select(src, 0, si, out=tmp)
            dst.index_copy_(0, di, tmp)
        for b in self.banks:
            b.ramp_left = max(b.ramp_left, 2)

    def _pick_update(self) -> bool:
        """Host-side choice of the CUDA graph: the update graph while any bank ramps."""
        for b in self.ramp_banks:
            if b.ramp_left > 0:
                return True
        return False

    def _after_update(self) -> None:
        """After an update-graph block: count the ramp block, clear host new-ramp flags."""
        for b in self.ramp_banks:
            if b.ramp_left > 0:
                b.ramp_left -= 1
            if b.dirty:
                b.ctrl[:, :, 3].zero_()
                b.dirty = False

    def run(self) -> None:
        """Process one block: ``resources.host_in`` -> ``resources.host_out``.

        CPU: eager steps, each bank ramping only while it has ``ramp_left > 0``. CUDA:
        replay the update graph while any bank ramps, the steady graph otherwise
        (``two_graphs = True`` runs that same selection eagerly on the CPU, for tests).
        """
        for g in self.host_groups:
            g.kernel.pre_host()
        if self.cuda_graph is not None:
            if self.steady_graph is None or self._pick_update():
                self.cuda_graph.replay()
                torch.cuda.current_stream(self.device).synchronize()
                self._after_update()
            else:
                self.steady_graph.replay()
                torch.cuda.current_stream(self.device).synchronize()
        elif self.two_graphs:  # CPU emulation of the CUDA path (same host logic, eager steps)
            upd = self._pick_update()
            self._force(upd)
            try:
                for s in (self.steps if upd else self.steady_steps):
                    s()
            finally:
                self._force(None)
            if upd:
                self._after_update()
        else:
            for s in self.steps:
                s()
        for g in self.host_groups:
            g.kernel.post_host()

    def op_counts(self, update: bool = False) -> dict[str, Any]:
        """Diagnostics: the aten ops one block launches (≈ kernels in the captured CUDA graph).

        Runs the block's steps once, eagerly, with every bank forced to ramp mode
        (``update=True``: what the update graph holds) or constant mode (the steady graph),
        counting dispatched aten ops except views. Advances the state by one block.

        Returns ``{"ops": total, "float64_matmuls": n, "by_op": {name: count}}``.
        """
        from torch.utils._python_dispatch import TorchDispatchMode

        mm = {"bmm", "mm", "baddbmm", "addmm", "addbmm", "matmul", "addmv", "mv", "dot"}
        by: dict[str, int] = {}
        f64 = [0]

        class _Count(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
                kwargs = kwargs or {}
                if not func.is_view:
                    name = func.overloadpacket.__name__
                    by[name] = by.get(name, 0) + 1
                    if name in mm and any(isinstance(a, torch.Tensor) and a.dtype == torch.float64
                                          for a in (*args, *kwargs.values())):
                        f64[0] += 1
                return func(*args, **kwargs)

        steps = self.steps if update else self.steady_steps
        self._force(update)
        try:
            with _Count():
                for s in steps:
                    s()
        finally:
            self._force(None)
        return {"ops": sum(by.values()), "float64_matmuls": f64[0], "by_op": dict(sorted(by.items(), key=lambda kv: -kv[1]))}

    def close(self) -> None:
        """Release kernel resources (control thread, after the plan was retired)."""
        for g in self.groups:
            g.kernel.close()

    def describe(self) -> list[dict[str, Any]]:
        """One row per group: level, type, channels, nodes."""
        return [{"level": g.level, "type": g.type, "channels": g.channels, "nodes": g.n, "feedback": g.feedback}
                for g in sorted(self.groups, key=lambda g: (g.level, g.type))]


@dataclass
class _BankRef:
    bank: ParamBank


class NaiveRunner:
    """Reference executor: a plain Python loop over nodes, one kernel call per node.

    Uses the same kernels with ``n = 1`` and sums fan-in sources one by one in
    the same order as the compiler. It is the correctness reference of the
    batched plan and the peer of the benchmarks.
    """

    def __init__(self, graph: Graph, frames: int, sample_rate: int, device: torch.device, resources: Resources) -> None:
        self.graph, self.frames, self.resources = graph, frames, resources
        an = self.an = analyse(graph, resources.in_channels, resources.out_channels)
        self.nodes: list[tuple[NodeId, Node, ParamBank, list[tuple[str, int]], bool]] = []
        self.outputs: dict[tuple[NodeId, str], torch.Tensor] = {}
        self.loc: dict[NodeId, tuple[_BankRef, int]] = {}
        fb = {e.dst for e in an.schedule.feedback}
        for v in an.order:
            spec = graph.node(v)
            cls = node_class(spec.type)
            c = an.channels[v]
            connected = {port: bool(_port_sources(an, graph, v, port, True)) for port in cls.inputs}
            k = cls(1, c, frames, sample_rate, device, [spec.config], [spec.name], resources=resources, ids=[v], connected=connected)
            pn = list(cls.params)
            init = [[spec.params.get(p, cls.params[p].default) for p in pn]]
            k.param_init = torch.tensor(init, dtype=torch.float32).reshape(1, len(pn)) if pn else torch.zeros(1, 1)
            k.feedback = v in fb
            k.prepare()
            bank = ParamBank(1, pn, init, frames, device)
            ports = [(p, cls.port_channels(p, c, True)) for p in cls.inputs]
            for p in cls.outputs:
                self.outputs[(v, p)] = torch.zeros(1, cls.port_channels(p, c, False), frames, device=device)
            self.nodes.append((v, k, bank, ports, v in fb))
            self.loc[v] = (_BankRef(bank), 0)
        self.has_output = any(graph.node(v).type == "output" for v in an.order)

    def _input(self, v: NodeId, port: str, pc: int, include_fb: bool) -> torch.Tensor:
        es = _port_sources(self.an, self.graph, v, port, include_fb)
        acc = torch.zeros(1, pc, self.frames, device=self.resources.device)
        ordered = sorted(es, key=lambda e: _src_c(self.graph, self.an, e))  # stable: edge order within a channel count
        for e in ordered:
            acc.add_(self.outputs[(e.src, e.src_port)])
        return acc

    def run(self) -> None:
        """Process one block (host_in -> host_out), node by node."""
        res = self.resources
        if res.device.type == "cuda":
            res.input_buffer.copy_(res.host_in)
        if not self.has_output:
            res.output_buffer.zero_()
        late = []
        for v, k, bank, ports, is_fb in self.nodes:
            if k.host_io:
                k.pre_host()
            if is_fb:
                ins = [torch.zeros(1, pc, self.frames, device=res.device) for _, pc in ports]
                late.append((v, k, ports))
            else:
                ins = [self._input(v, p, pc, False) for p, pc in ports]
            outs = [self.outputs[(v, p)] for p in type(k).outputs]
            pv = bank.views()
            if type(k).update is not Node.update and pv is bank.ramp_views:
                k.update(pv)
            k.process(ins, outs, pv)
            if k.host_io:
                k.post_host()
        for v, k, ports in late:
            k.late_write(self._input(v, ports[0][0], ports[0][1], True))
        if res.device.type == "cuda":
            res.host_out.copy_(res.output_buffer)
