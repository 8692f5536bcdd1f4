"""Graph model: generational ids, ports, fan-in, cycles, Kahn levels, channel checks."""
from __future__ import annotations

import pytest

from ironwave.engine import CycleError, Graph, GraphError, UnknownNodeType, levels
from ironwave.engine.compiler import analyse
from ironwave.errors import InvalidParameter


def test_generational_ids_never_alias():
    g = Graph()
    a = g.add("gain", "a")
    g.remove(a)
    b = g.add("gain", "b")
    assert b.index == a.index and b.generation == a.generation + 1
    with pytest.raises(GraphError, match="stale"):
        g.node(a)
    assert g.node(b).name == "b"
    assert a not in g and b in g


def test_connect_errors_are_clear():
    g = Graph()
    g.add("sine", "osc")
    g.add("gain", "amp")
    g.add("noise", "nz")
    with pytest.raises(GraphError, match="no input port 'foo'.*inputs: in, mod"):
        g.connect("osc", "amp.foo")
    with pytest.raises(GraphError, match="no node named 'nope'"):
        g.connect("nope", "amp")
    with pytest.raises(GraphError, match="has no input ports"):
        g.connect("amp", "nz")
    g.connect("osc", "amp")
    with pytest.raises(GraphError, match="already connected"):
        g.connect("osc", "amp")
    g.disconnect("osc", "amp")
    with pytest.raises(GraphError, match="not connected"):
        g.disconnect("osc", "amp")


def test_unknown_type_and_param():
    g = Graph()
    with pytest.raises(UnknownNodeType, match="unknown node type 'reverbb'.*known types:.*convolver"):
        g.add("reverbb")
    with pytest.raises(InvalidParameter, match="unknown parameter 'gian'.*known: gain"):
        g.add("gain", params={"gian": 1.0})
    with pytest.raises(InvalidParameter, match="out of range"):
        g.add("pan", params={"pan": 3.0})
    with pytest.raises(GraphError, match="unknown option 'kindd'"):
        g.add("biquad", config={"kindd": "lowpass"})


def test_cycle_refused_unless_through_delay():
    g = Graph()
    for n in ("a", "b", "c"):
        g.add("gain", n)
    g.connect("a", "b")
    g.connect("b", "c")
    g.connect("c", "a")
    with pytest.raises(CycleError, match="cycle: .*a.*b.*c.*delay"):
        levels(g)
    g.disconnect("c", "a")
    g.add("delay", "d")
    g.connect("c", "d")
    g.connect("d", "a")
    s = levels(g)
    assert len(s.feedback) == 1 and next(iter(s.feedback)).dst == g.id("d")
    assert s.level_of[g.id("d")] == 0 and s.level_of[g.id("c")] == 3


def test_self_loop_refused():
    g = Graph()
    g.add("gain", "a")
    g.connect("a", "a")
    with pytest.raises(CycleError):
        levels(g)


def test_kahn_levels():
    g = Graph()
    for n in ("s1", "s2"):
        g.add("sine", n)
    g.add("gain", "g1")
    g.add("gain", "g2")
    g.add("mixer", "m")
    g.connect("s1", "g1")
    g.connect("s2", "g2")
    g.connect("g1", "m")
    g.connect("g2", "m")
    g.connect("s1", "m")
    s = levels(g)
    names = [[g.name(v) for v in lvl] for lvl in s.levels]
    assert sorted(names[0]) == ["s1", "s2"] and sorted(names[1]) == ["g1", "g2"] and names[2] == ["m"]


def test_channel_inference_and_mismatch():
    g = Graph()
    g.add("input", "in", channels=2)
    g.add("gain", "g")
    g.add("sine", "osc")
    g.connect("in", "g")
    g.connect("osc", "g")  # mono into stereo: upmixed
    an = analyse(g)
    assert an.channels[g.id("g")] == 2
    g.connect("in", "osc.fm")  # stereo into a mono port
    with pytest.raises(GraphError, match=r"cannot connect in.out \(2 ch\) to osc.fm \(1 ch\)"):
        analyse(g)


def test_one_output_node_only():
    g = Graph()
    g.add("output", "o1")
    g.add("output", "o2")
    with pytest.raises(GraphError, match="at most one 'output'"):
        analyse(g)
