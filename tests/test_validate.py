from __future__ import annotations

import pytest

from flowgraph import Graph, GraphValidationError

F = "fixture_nodes"


def invalid(text: str) -> str:
    with pytest.raises(GraphValidationError) as err:
        Graph.from_text(text, file="t.yaml")
    return str(err.value)


def test_unknown_node_type_suggests_closest_registered_name():
    msg = invalid(
        "nodes:\n  a: {type: sorce, params: {range: 1}}\n  b: {type: collect}\nedges: [{from: a, to: b}]\n"
    )
    assert "t.yaml:2: node 'a': unknown node type 'sorce'; did you mean 'source'" in msg


def test_cycle_is_named():
    msg = invalid("""\
nodes:
  s: {type: source, params: {range: 1}}
  a: {type: map, params: {fn: "operator:neg"}}
  b: {type: map, params: {fn: "operator:neg"}}
  j: {type: collect}
edges:
  - {from: s, to: a}
  - {from: a, to: b}
  - {from: b, to: a}
""")
    assert "cycle: a -> b -> a" in msg or "cycle: b -> a -> b" in msg


def test_unconnected_required_input_port():
    msg = invalid(
        "nodes:\n  a: {type: source, params: {range: 1}}\n  b: {type: collect}\n  c: {type: collect}\n"
        "edges: [{from: a, to: b}]\n"
    )
    assert "t.yaml:4: node 'c': input port c.in is not connected" in msg


def test_unconnected_output_port_would_lose_items():
    msg = invalid("nodes:\n  a: {type: source, params: {range: 1}}\n")
    assert "output port a.out is not connected" in msg


def test_edge_to_unknown_node_suggests_name():
    msg = invalid(
        "nodes:\n  src: {type: source, params: {range: 1}}\n  sink: {type: collect}\n"
        "edges: [{from: src, to: snk}]\n"
    )
    assert "edge to unknown node 'snk'" in msg and "did you mean 'sink'" in msg


def test_edge_to_unknown_port_lists_ports():
    msg = invalid(
        f"nodes:\n  a: {{type: source, params: {{range: 1}}}}\n  t: {{type: '{F}:TwoOutputs'}}\n"
        "  b: {type: collect}\nedges:\n  - {from: a, to: t}\n  - {from: t.evn, to: b}\n"
    )
    assert "t has no output port 'evn'" in msg and "did you mean t.even" in msg


def test_port_must_be_named_when_node_has_several():
    msg = invalid(
        f"nodes:\n  a: {{type: source, params: {{range: 1}}}}\n  t: {{type: '{F}:TwoOutputs'}}\n"
        "  b: {type: collect}\nedges:\n  - {from: a, to: t}\n  - {from: t, to: b}\n"
    )
    assert "t has several output ports; say which" in msg and "t.even" in msg


def test_port_type_mismatch():
    msg = invalid(
        f"nodes:\n  a: {{type: '{F}:MakesApples'}}\n  b: {{type: '{F}:EatsPears'}}\nedges:\n  - {{from: a, to: b}}\n"
    )
    assert "t.yaml:5: node 'b': type mismatch: a.out produces Apple but b.in accepts Pear" in msg


def test_inference_workers_must_equal_engine_num():
    msg = invalid(f"""\
params: {{engine_num: 2}}
nodes:
  a: {{type: source, params: {{range: 1}}}}
  inf: {{type: '{F}:PerEngine', params: {{engine_num: "${{engine_num}}"}}, workers: 4}}
  b: {{type: collect}}
edges: [{{from: a, to: inf}}, {{from: inf, to: b}}]
""")
    assert (
        "t.yaml:4: node 'inf': workers is 4 but" in msg
        and "engine_num is 2" in msg
        and "set workers: 2" in msg
    )


def test_engine_workers_default_to_engine_num():
    g = Graph.from_text(f"""\
params: {{engine_num: 3}}
nodes:
  a: {{type: source, params: {{range: 1}}}}
  inf: {{type: '{F}:PerEngine', params: {{engine_num: "${{engine_num}}"}}}}
  b: {{type: collect}}
edges: [{{from: a, to: inf}}, {{from: inf, to: b}}]
""")
    assert g.nodes["inf"].workers == 3


def test_fixed_one_worker_node_rejects_two():
    msg = invalid(
        f"nodes:\n  a: {{type: source, params: {{range: 1}}}}\n  m: {{type: '{F}:OnlyOne', workers: 2}}\n"
        "  b: {type: collect}\nedges: [{from: a, to: m}, {from: m, to: b}]\n"
    )
    assert "t.yaml:3: node 'm': workers is 2 but" in msg and "exactly 1" in msg


def test_batch_with_two_workers_is_rejected():
    msg = invalid(
        "nodes:\n  a: {type: source, params: {range: 1}}\n  m: {type: batch, params: {size: 2}, workers: 2}\n"
        "  b: {type: collect}\nedges: [{from: a, to: m}, {from: m, to: b}]\n"
    )
    assert "node 'm': workers is 2 but batch runs with exactly 1" in msg


def test_missing_required_param():
    msg = invalid(
        "nodes:\n  a: {type: source, params: {range: 1}}\n  m: {type: map}\n  b: {type: collect}\n"
        "edges: [{from: a, to: m}, {from: m, to: b}]\n"
    )
    assert "t.yaml:3: node 'm': missing required param 'fn'" in msg


def test_unknown_param_suggests_closest():
    msg = invalid(
        "nodes:\n  a: {type: source, params: {rnage: 1}}\n  b: {type: collect}\nedges: [{from: a, to: b}]\n"
    )
    assert "unknown param 'rnage'" in msg and "did you mean range" in msg


def test_output_feeding_two_edges_needs_a_tee():
    msg = invalid(
        "nodes:\n  a: {type: source, params: {range: 1}}\n  b: {type: collect}\n  c: {type: discard}\n"
        "edges: [{from: a, to: b}, {from: a, to: c}]\n"
    )
    assert "output port a.out feeds 2 edges" in msg and "tee" in msg


def test_environment_check_rejects_gpu_node_before_running():
    msg = invalid(
        f"nodes:\n  a: {{type: source, params: {{range: 1}}}}\n  g: {{type: '{F}:NeedsGpu'}}\n"
        "  b: {type: collect}\nedges: [{from: a, to: g}, {from: g, to: b}]\n"
    )
    assert "node 'g': needs a CUDA GPU" in msg


def test_all_issues_are_reported_together():
    msg = invalid(
        "nodes:\n  a: {type: source, params: {range: 1}}\n  b: {type: collect}\n  c: {type: collect}\n"
        "  d: {type: collect}\nedges: [{from: a, to: b}]\n"
    )
    assert "c.in is not connected" in msg and "d.in is not connected" in msg
