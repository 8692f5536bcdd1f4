"""Patch files: loading, saving, and errors that name the line and the node."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ironwave.engine import Engine, PatchError, load_patch, parse_patch, save_patch

GOOD = """\
name: voice
sample_rate: 48000
block: 64
metadata: {author: test}
nodes:
  osc: {type: saw, params: {freq: 110, amp: 0.3}}
  filt:
    type: biquad
    kind: lowpass
    freq: 900
  env: {type: adsr, gate: 1}
  out: {type: output, channels: 1}
connections:
  - osc -> filt
  - filt.out -> env.in
  - [env, out]
"""


def test_good_patch_loads_and_runs():
    p = parse_patch(GOOD, "voice.yaml")
    assert p.block == 64 and p.metadata == {"author": "test"}
    eng = Engine(p.graph, block=p.block, sample_rate=p.sample_rate, device="cpu")
    y = torch.cat([eng.process() for _ in range(20)], -1)
    assert y.abs().max() > 0.01


def test_roundtrip_yaml_and_json(tmp_path):
    p = parse_patch(GOOD, "voice.yaml")
    for suffix in (".yaml", ".json"):
        path = save_patch(p.graph, tmp_path / f"v{suffix}", block=64)
        q = load_patch(path)
        assert [(s.name, s.type, s.params, s.config) for s in q.graph.nodes()] == [(s.name, s.type, s.params, s.config) for s in p.graph.nodes()]
        assert len(q.graph.edges) == 3
    json.loads((tmp_path / "v.json").read_text())


@pytest.mark.parametrize("text, pattern", [
    ("nodes:\n  a: {type: gain}\n  b: {type: reverbb}\n", r"x.yaml:3: node 'b': unknown node type 'reverbb'"),
    ("nodes:\n  a: {type: gain}\n  b:\n    type: gain\n    gian: 0.5\n", r"x.yaml:5: node 'b': unknown parameter or option 'gian' for type 'gain'; known: gain"),
    ("nodes:\n  a: {type: gain, params: {gain: 1000}}\n", r"x.yaml:2: node 'a': .*'gain' = 1000.* out of range"),
    ("nodes:\n  a: {type: gain}\n  b: {type: gain}\nconnections:\n  - a -> b\n  - b -> a\n", r"x.yaml:\d+: node 'a': the graph has a cycle: a -> b -> a"),
    ("nodes:\n  a: {type: gain}\n  b: {type: gain}\nconnections:\n  - a -> b\n  - a -> c.in\n", r"x.yaml:6: node 'a': no node named 'c'"),
    ("nodes:\n  a: {type: gain}\n  b: {type: sine}\nconnections:\n  - a -> b.fmm\n", r"x.yaml:5: node 'a': node 'b' \(sine\) has no input port 'fmm'"),
    ("nodes:\n  a: {type: gain}\nconnections:\n  - a => b\n", r"x.yaml:4: bad connection 'a => b'"),
    ("nodes:\n  a: {type: gain\n  b: [1, 2\n", r"x.yaml:3: YAML/JSON syntax error"),
    ('{"nodes": {"a": {"type": "gain"},}\n', r"x.yaml:1: YAML/JSON syntax error"),
    ("nodes:\n  a: {type: gain}\nblok: 64\n", r"x.yaml:3: unknown top-level key 'blok'"),
    ("nodes:\n  a: {gain: 1}\n", r"x.yaml:2: node 'a': missing 'type'"),
    ("nodes:\n  in: {type: input, channels: 2}\n  o: {type: sine}\nconnections:\n  - in -> o.fm\n", r"node 'in'.*cannot connect in.out \(2 ch\) to o.fm \(1 ch\)"),
])
def test_bad_patch_errors_name_line_and_node(text, pattern):
    with pytest.raises(PatchError, match=pattern):
        parse_patch(text, "x.yaml")


def test_missing_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_patch(tmp_path / "nope.yaml")
    with pytest.raises(PatchError, match="directory"):
        load_patch(tmp_path)


def test_examples_load():
    root = Path(__file__).resolve().parents[2] / "examples"
    patches = sorted(root.glob("*.yaml"))
    assert len(patches) >= 3
    for p in patches:
        load_patch(p)
