"""The real-time engine: a compiled graph, a command ring, telemetry.

Threads:

* **control thread** (your code, the CLI): edits the graph, compiles new plans
  (off the audio thread), and pushes commands (:mod:`~ironwave.engine.commands`)
  into a lock-free SPSC :class:`~ironwave.backend.buffers.CommandRing`.
* **audio thread** (a driver callback or the offline clock): calls
  :meth:`Engine.process_block` once per block. It applies at most
  ``max_commands_per_block`` commands at the block boundary, runs the plan
  (a CUDA graph replay on CUDA), and records the block time. It takes no lock,
  allocates nothing and does no I/O.

Example:
    >>> from ironwave.engine import Engine, Graph
    >>> g = Graph()
    >>> osc = g.add("sine", "osc", params={"freq": 220.0})
    >>> out = g.add("output", "out", channels=1)
    >>> _ = g.connect(osc, out)
    >>> eng = Engine(g, sample_rate=48000, block=64, device="cpu")
    >>> y = eng.process_block()          # [1, 64] host tensor
    >>> eng.set_param("osc", "freq", 440.0, ramp=0.05)
"""
from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from ironwave.backend.buffers import CommandRing
from ironwave.backend.device import DeviceLike, resolve_device
from ironwave.backend.telemetry import telemetry
from ironwave.engine import commands as C
from ironwave.engine.compiler import NaiveRunner, Plan, Resources
from ironwave.engine.errors import GraphError
from ironwave.engine.graph import Graph, NodeId
from ironwave.engine.nodes import node_class
from ironwave.engine.params import CURVES
from ironwave.errors import InvalidParameter, IronwaveError

SAMPLE_RATES = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000, 176400, 192000)


class CommandRingFull(IronwaveError, RuntimeError):
    """The audio thread is not draining commands (is the engine running?)."""


class Engine:
    """A block-processing audio graph engine.

    Args:
        graph: the graph to run (copied; edit through the engine afterwards).
        sample_rate: Hz.
        block: frames per block (e.g. 64..1024).
        device: ``"auto" | "cpu" | "cuda" | "cuda:N"``; an explicit CUDA request
            without CUDA raises BackendUnavailable.
        in_channels / out_channels: external I/O channel counts (default: the
            input/output nodes' channels, else 2).
        ring_capacity: command ring slots.
        max_commands_per_block: commands applied per block at most (the rest
            wait for the next block), bounding the work on the audio thread.
        capture: capture CUDA graphs (CUDA only; default True).
        batch: run batched groups (True) or the node-by-node reference (False).
    """

    def __init__(self, graph: Graph | None = None, *, sample_rate: int = 48000, block: int = 128, device: DeviceLike = "auto",
                 in_channels: int | None = None, out_channels: int | None = None, ring_capacity: int = 4096,
                 max_commands_per_block: int = 64, capture: bool = True, batch: bool = True,
                 stats_capacity: int = 1 << 16) -> None:
        if not isinstance(sample_rate, int) or isinstance(sample_rate, bool) or not 1000 <= sample_rate <= 768000:
            raise InvalidParameter(f"sample_rate must be an integer in 1000..768000 Hz, got {sample_rate!r}")
        if not isinstance(block, int) or isinstance(block, bool) or not 1 <= block <= 65536:
            raise InvalidParameter(f"block must be an integer number of frames in 1..65536, got {block!r}")
        if max_commands_per_block < 1:
            raise InvalidParameter(f"max_commands_per_block must be >= 1, got {max_commands_per_block}")
        self.requested_device = device
        self.device = resolve_device(device)
        self.sample_rate, self.block = sample_rate, block
        self.graph = graph.copy() if graph is not None else Graph()
        kinds = {s.type: s for s in self.graph.nodes()}
        if in_channels is None:
            in_channels = kinds["input"].channels if "input" in kinds and kinds["input"].channels else 2
        if out_channels is None:
            out_channels = kinds["output"].channels if "output" in kinds and kinds["output"].channels else 2
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.capture = capture
        self.batch = batch
        self.resources = Resources(self.in_channels, self.out_channels, block, self.device)
        self.host_in, self.host_out = self.resources.host_in, self.resources.host_out
        self.plan: Plan = self._compile(self.graph, prev=None)
        self._last_plan = self.plan
        self.naive: NaiveRunner | None = None if batch else NaiveRunner(self.graph, block, sample_rate, self.device, self.resources)
        self.ring: CommandRing[C.Command] = CommandRing(ring_capacity)
        self._retired: CommandRing[Plan] = CommandRing(256)
        self.max_commands_per_block = max_commands_per_block
        self.running = False
        # telemetry (preallocated)
        self._times = np.zeros(stats_capacity, dtype=np.float64)
        self._tmask = stats_capacity - 1 if stats_capacity & (stats_capacity - 1) == 0 else None
        if self._tmask is None:
            raise InvalidParameter("stats_capacity must be a power of two")
        self.blocks = 0
        self.sample_time = 0
        self.deadline_misses = 0
        self.xruns = 0
        self.swaps = 0
        self.dropped_commands = 0
        self.deadline_s = block / sample_rate
        self._mute_target = 1.0
        self._mute_gain = 1.0
        self._fade = torch.linspace(0.0, 1.0, block + 1)[1:]  # fade shape
        self._fade_buf = torch.zeros(block)
        self._pending_swaps = 0

    # -- compile -----------------------------------------------------------------------
    def _compile(self, graph: Graph, prev: Plan | None) -> Plan:
        return Plan(graph, self.block, self.sample_rate, self.device, self.resources, batch=self.batch,
                    capture=self.capture, prev=prev)

    @classmethod
    def from_patch(cls, path: str | Path, **kw: Any) -> "Engine":
        """Load a patch file (YAML/JSON) and build an engine; keyword args override the patch's
        ``sample_rate`` / ``block``."""
        from ironwave.engine.patch import load_patch

        patch = load_patch(path)
        kw.setdefault("sample_rate", patch.sample_rate)
        kw.setdefault("block", patch.block)
        eng = cls(patch.graph, **kw)
        eng.patch_path = Path(path)
        return eng

    # -- control thread: graph edits -------------------------------------------------------
    @contextlib.contextmanager
    def edit(self) -> Iterator[Graph]:
        """Edit a copy of the graph; on exit it is compiled and swapped in at a block boundary.

        If the edited graph does not compile (cycle, bad connection, ...) the
        error is raised and the running graph is unchanged.
        """
        if self.naive is not None:
            raise GraphError("live edits are not supported by the node-by-node reference runner (batch=False)")
        g = self.graph.copy()
        yield g
        plan = self._compile(g, prev=self._last_plan)
        self.graph = g
        self._last_plan = plan
        self._push(C.SwapPlan(plan))
        self._pending_swaps += 1
        self.collect()

    def add_node(self, type: str, name: str | None = None, *, channels: int | None = None,
                 params: dict[str, float] | None = None, config: dict[str, Any] | None = None,
                 connect_from: list[str] | None = None, connect_to: list[str] | None = None) -> NodeId:
        """Add a node (optionally wired) and swap the new graph in; returns its id."""
        with self.edit() as g:
            nid = g.add(type, name, channels=channels, params=params, config=config)
            for s in connect_from or []:
                g.connect(s, nid)
            for d in connect_to or []:
                g.connect(nid, d)
        return nid

    def remove_node(self, node: NodeId | str) -> None:
        """Remove a node and its edges."""
        with self.edit() as g:
            g.remove(node)

    def connect(self, src: NodeId | str, dst: NodeId | str, src_port: str | None = None, dst_port: str | None = None) -> None:
        """Connect ``src[.port]`` to ``dst[.port]``."""
        with self.edit() as g:
            g.connect(src, dst, src_port, dst_port)

    def disconnect(self, src: NodeId | str, dst: NodeId | str, src_port: str | None = None, dst_port: str | None = None) -> None:
        """Remove the edge(s) between two nodes."""
        with self.edit() as g:
            g.disconnect(src, dst, src_port, dst_port)

    # -- control thread: parameters ------------------------------------------------------
    def set_param(self, node: NodeId | str, param: str, value: float, *, ramp: float | None = None,
                  curve: str | None = None, at: int | None = None) -> None:
        """Ramp a parameter to *value*.

        Args:
            node: node id or name.
            param: parameter name.
            value: target value (checked against the parameter's range).
            ramp: ramp time in seconds (None: the parameter's default smoothing; 0: jump).
            curve: ``"linear"`` or ``"exp"`` (default: the parameter's curve).
            at: absolute sample time at which the ramp starts (sample-accurate);
                None: at the next block boundary.
        """
        spec = self.graph.node(node)
        cls = node_class(spec.type)
        cls.check_params(spec.name, {param: value})
        ps = cls.params[param]
        if ramp is None:
            ramp = ps.smooth
        if not isinstance(ramp, (int, float)) or not 0 <= ramp <= 3600:
            raise InvalidParameter(f"ramp must be seconds in [0, 3600], got {ramp!r}")
        cname = curve or ps.curve
        if cname not in CURVES:
            raise InvalidParameter(f"curve must be one of {', '.join(CURVES)}, got {curve!r}")
        spec.params[param] = float(value)
        idx = list(cls.params).index(param)
        self._push(C.SetParam(spec.id, idx, float(value), float(ramp) * self.sample_rate, CURVES[cname], at))

    def mute(self, on: bool = True) -> None:
        """Mute/unmute the output with a one-block fade."""
        self._push(C.Mute(bool(on)))

    def call(self, fn: Any) -> None:
        """Run ``fn(engine)`` on the audio thread at the next block boundary."""
        self._push(C.Call(fn))

    def _push(self, cmd: C.Command, timeout: float = 2.0) -> None:
        if self.ring.push(cmd):
            return
        t0 = time.perf_counter()
        while not self.ring.push(cmd):
            if not self.running or time.perf_counter() - t0 > timeout:
                raise CommandRingFull(f"command ring is full ({self.ring.capacity} commands); the audio thread is not draining it "
                                      "(call process_block() or start a driver)")
            time.sleep(0.0005)

    def collect(self) -> None:
        """Close plans retired by the audio thread and resources of removed nodes (control thread)."""
        while True:
            old = self._retired.pop()
            if old is None:
                break
            self._pending_swaps -= 1
            old.close()
        if self._pending_swaps == 0:
            self.resources.release_missing({s.id for s in self.graph.nodes()})

    # -- audio thread ---------------------------------------------------------------------
    def process_block(self) -> torch.Tensor:
        """Run one block: ``host_in [in_channels, block]`` -> returns ``host_out [out_channels, block]``.

        Called by the audio thread (driver) or the offline clock. Fill
        :attr:`host_in` before; read the returned tensor (overwritten next block).
        """
        t0 = time.perf_counter()
        ring = self.ring
        for _ in range(self.max_commands_per_block):
            cmd = ring.pop()
            if cmd is None:
                break
            cmd.apply(self)
        if self.naive is not None:
            self.naive.run()
        else:
            self.plan.run()
        if self._mute_gain != 1.0 or self._mute_target != 1.0:
            self._apply_mute()
        dt = time.perf_counter() - t0
        self._times[self.blocks & self._tmask] = dt
        if dt > self.deadline_s:
            self.deadline_misses += 1
        self.blocks += 1
        self.sample_time += self.block
        return self.host_out

    def _apply_mute(self) -> None:
        g0, g1 = self._mute_gain, self._mute_target
        if g0 == g1:
            if g1 == 0.0:
                self.host_out.zero_()
            return
        torch.mul(self._fade, g1 - g0, out=self._fade_buf)
        self._fade_buf.add_(g0)
        self.host_out.mul_(self._fade_buf)
        self._mute_gain = g1

    def process(self, x: torch.Tensor | None = None) -> torch.Tensor:
        """Convenience: copy one input block ``[in_channels, block]`` in, run, return a copy of the output."""
        if x is not None:
            if tuple(x.shape) != (self.in_channels, self.block):
                raise InvalidParameter(f"input block must be shaped [{self.in_channels}, {self.block}], got {list(x.shape)}")
            self.host_in.copy_(x)
        return self.process_block().clone()

    # -- observation ------------------------------------------------------------------------
    def meter(self, node: NodeId | str) -> dict[str, list[float]]:
        """Latest block's peak and RMS per channel of a ``meter`` node (control thread)."""
        nid = self.graph.id(node)
        loc = self.plan.loc.get(nid)
        if loc is None or loc[0].type != "meter":
            raise GraphError(f"{self.graph.node(nid).name!r} is not a live meter node")
        g, r = loc
        return {k: [float(v) for v in g.host_mirror[k][r, :, 0]] for k in ("peak", "rms")}

    @property
    def backend(self) -> str:
        """What runs the blocks, e.g. ``"cpu (batched)"`` or ``"cuda:0 (CUDA graph)"``."""
        if self.naive is not None:
            return f"{self.device} (node-by-node reference)"
        if self.plan.cuda_graph is not None:
            return f"{self.device} (CUDA graph)"
        return f"{self.device} (batched)"

    @property
    def latency(self) -> int:
        """Algorithmic latency of the graph in samples (e.g. STFT nodes)."""
        return self.plan.latency

    def block_times(self) -> np.ndarray:
        """Recorded block times in seconds (the most recent ``stats_capacity`` blocks)."""
        n = min(self.blocks, len(self._times))
        return self._times[:n].copy()

    def stats(self) -> dict[str, Any]:
        """Blocks, block-time percentiles (us), deadline, misses, xruns, backend."""
        t = self.block_times()
        pct = {f"p{q}_us": float(np.percentile(t, q) * 1e6) if len(t) else 0.0 for q in (50, 90, 99)}
        return {"blocks": self.blocks, **pct, "max_us": float(t.max() * 1e6) if len(t) else 0.0,
                "mean_us": float(t.mean() * 1e6) if len(t) else 0.0,
                "deadline_us": self.deadline_s * 1e6, "deadline_misses": self.deadline_misses, "xruns": self.xruns,
                "backend": self.backend, "nodes": len(self.graph), "groups": len(self.plan.groups),
                "swaps": self.swaps, "dropped_commands": self.dropped_commands, "latency_samples": self.latency}

    def reset_stats(self) -> None:
        self.blocks = 0
        self.deadline_misses = 0
        self.xruns = 0

    def flush_telemetry(self, seconds: float | None = None) -> None:
        """Record this run in the process telemetry (call off the audio thread, e.g. after a run)."""
        t = self.block_times()
        telemetry.record("engine.run", self.device, float(t.sum()) if seconds is None else seconds, requested=self.requested_device)
        for g in self.plan.groups:
            telemetry.record(f"engine.node.{g.type}", self.device, 0.0, requested=self.requested_device)
        telemetry.count("engine.blocks", self.blocks)
        telemetry.count("engine.deadline_misses", self.deadline_misses)
        if self.xruns:
            telemetry.count("engine.xruns", self.xruns)

    # -- state ------------------------------------------------------------------------------
    def save_state(self, path: str | Path | None = None, timeout: float = 2.0) -> dict[str, torch.Tensor]:
        """Snapshot every node's state (``"node/state"`` -> tensor, CPU). Optionally ``torch.save`` to *path*.

        While a driver runs, the copy is made by the audio thread at a block boundary.
        """
        plan = self.plan if not self.running else self._last_plan
        items = [(g, name, t) for g in plan.groups for name, t in g.state().items()]
        bufs = [torch.empty_like(t) for _, _, t in items]
        if self.running:
            cmd = C.Snapshot(plan.id, list(zip(bufs, [t for _, _, t in items])))
            self._push(cmd)
            t0 = time.perf_counter()
            while cmd.done[0] is False:
                if time.perf_counter() - t0 > timeout:
                    raise CommandRingFull("state snapshot timed out: the audio thread did not reach a block boundary")
                time.sleep(0.001)
            if cmd.done[0] is None:
                return self.save_state(path, timeout)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
        else:
            for b, (_, _, t) in zip(bufs, items):
                b.copy_(t)
        out: dict[str, torch.Tensor] = {}
        for b, (g, name, _) in zip(bufs, items):
            for r, nm in enumerate(g.names):
                out[f"{nm}/{name}"] = b[r].detach().cpu().clone()
        if path is not None:
            torch.save(out, str(path))
        return out

    def load_state(self, state: dict[str, torch.Tensor] | str | Path) -> None:
        """Restore a snapshot from :meth:`save_state` (applied at the next block boundary).

        Entries of nodes that do not exist, or whose shapes differ, raise GraphError.
        """
        if not isinstance(state, dict):
            p = Path(state)
            if not p.exists():
                raise FileNotFoundError(f"state file not found: {p}")
            state = torch.load(str(p), weights_only=True)
        plan = self._last_plan
        per: dict[tuple[int, str], tuple[torch.Tensor, list[int], list[torch.Tensor]]] = {}
        for key, val in state.items():
            node, _, name = key.partition("/")
            if node not in plan.names:
                raise GraphError(f"state entry {key!r}: no node named {node!r} in the graph")
            g, r = plan.loc[plan.names[node]]
            st = g.state()
            if name not in st:
                raise GraphError(f"state entry {key!r}: node {node!r} ({g.type}) has no state {name!r}; it has {', '.join(st)}")
            dst = st[name]
            if tuple(val.shape) != tuple(dst.shape[1:]):
                raise GraphError(f"state entry {key!r}: shape {list(val.shape)} does not match {list(dst.shape[1:])}")
            _, rows, vals = per.setdefault((id(dst), key.partition('/')[2]), (dst, [], []))
            rows.append(r)
            vals.append(val)
        copies = []
        for dst, rows, vals in per.values():
            copies.append((dst, torch.tensor(rows, dtype=torch.long, device=dst.device),
                           torch.stack(vals).to(device=dst.device, dtype=dst.dtype)))
        self._push(C.LoadState(plan.id, copies))

    def save_patch(self, path: str | Path) -> Path:
        """Write the current graph (with current parameter values) as a YAML or JSON patch."""
        from ironwave.engine.patch import save_patch

        return save_patch(self.graph, path, sample_rate=self.sample_rate, block=self.block)

    def close(self) -> None:
        """Close file streams and retired plans."""
        self.collect()
        self.plan.close()
        self.resources.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
