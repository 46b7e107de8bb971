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


ENGINES = f"""\
nodes:
  s: {{type: source, params: {{range: 8}}}}
  b: {{type: batch, params: {{size: 4}}}}
  c: {{type: "{F}:CopyPerEngine"{{copy}}}}
  e: {{type: "{F}:PerEngineQueue", params: {{engine_num: 3}}}}
  p: {{type: "{F}:CopyPerEngine"{{post}}}}
  r: {{type: collect}}
edges: [{{from: s, to: b}}, {{from: b, to: c}}, {{from: c, to: e}}, {{from: e, to: p}}, {{from: p, to: r}}]
"""


def engines_graph(copy: str = "", post: str = "") -> str:
    return ENGINES.replace("{copy}", copy).replace("{post}", post)


def test_stages_around_the_engines_default_to_one_worker_per_engine():
    graph = Graph.from_text(engines_graph())
    assert graph.nodes["c"].workers == 3  # feeds e, downstream
    assert graph.nodes["p"].workers == 3  # follows e, upstream
    assert sorted(n for batch in graph.run_sync().results for n in batch) == list(range(8))


@pytest.mark.parametrize("node", ["copy", "post"])
def test_a_stage_sized_for_other_engines_than_it_feeds_is_rejected(node):
    msg = invalid(engines_graph(**{node: ", workers: 2"}))
    name = "c" if node == "copy" else "p"
    assert f"t.yaml:{4 if node == 'copy' else 6}: node '{name}': workers is 2" in msg
    assert "one worker per engine of 'e', which has 3" in msg
    assert "remove 'workers' (it follows e) or set workers: 3" in msg


def test_a_stage_sized_for_its_engines_is_accepted():
    assert Graph.from_text(engines_graph(copy=", workers: 3")).nodes["c"].workers == 3


def test_a_param_that_follows_upstream_is_filled_in_and_must_agree():
    assert Graph.from_text(engines_graph()).nodes["c"].params.max_batch == 0  # `batch` has no max_batch
    follows = """\
nodes:
  s: {type: source, params: {range: 8}}
  a: {type: "%s:CopyPerEngine", params: {max_batch: 4}}
  c: {type: "%s:CopyPerEngine"%s}
  r: {type: collect}
edges: [{from: s, to: a}, {from: a, to: c}, {from: c, to: r}]
"""
    assert Graph.from_text(follows % (F, F, "")).nodes["c"].params.max_batch == 4
    assert Graph.from_text(follows % (F, F, ", params: {max_batch: 4}")).nodes["c"].params.max_batch == 4
    msg = invalid(follows % (F, F, ", params: {max_batch: 8}"))
    assert "t.yaml:4: node 'c': max_batch is 8 but a.max_batch is 4" in msg
    assert "remove c's max_batch (it follows a.max_batch) or make them agree" in msg


def test_on_error_skip_is_refused_where_the_node_would_ignore_it():
    msg = invalid("""\
nodes:
  s: {type: source, params: {range: 8}}
  b: {type: batch, params: {size: 4}, on_error: skip}
  r: {type: collect}
edges: [{from: s, to: b}, {from: b, to: r}]
""")
    assert "t.yaml:3: node 'b': batch does not skip failed samples" in msg
    assert "set it on the node that fails" in msg
    ok = Graph.from_text(
        "nodes:\n  s: {type: source, params: {range: 2}}\n"
        "  m: {type: map, params: {fn: 'operator:neg'}, on_error: skip}\n  r: {type: collect}\n"
        "edges: [{from: s, to: m}, {from: m, to: r}]\n"
    )
    assert ok.nodes["m"].on_error == "skip"


def test_every_issue_is_reported_at_once_even_when_a_type_does_not_resolve():
    """A node whose type is unknown must not hide the other nodes' problems: one pass, all issues."""
    msg = invalid("""\
nodes:
  src: {type: source, params: {range: 3}}
  typo: {type: mapp}
  neg: {type: map, params: {fn: "operator:neg", colour: red}}
  sink: {type: collect}
edges:
  - {from: src, to: typo}
  - {from: typo, to: neg}
  - {from: neg.output, to: sink}
""")
    assert "t.yaml:3: node 'typo': unknown node type 'mapp'" in msg
    assert "t.yaml:4: node 'neg': unknown param 'colour'" in msg
    assert "neg has no output port 'output'" in msg
    assert "unknown node" not in msg.replace("unknown node type", "")  # typo's edges are not blamed on it


def test_process_written_without_async_is_refused_at_validation():
    msg = invalid(f"""\
nodes:
  src: {{type: source, params: {{range: 3}}}}
  slip: {{type: "{F}:PlainProcess"}}
  sink: {{type: collect}}
edges: [{{from: src, to: slip}}, {{from: slip, to: sink}}]
""")
    assert "t.yaml:3: node 'slip': PlainProcess.process is a plain function, but the engine awaits it" in msg
    assert "fix: write `async def process(...)`" in msg


def test_object_output_feeding_a_typed_input_is_a_warning_not_an_error():
    graph = Graph.from_text(
        f"nodes:\n  src: {{type: source, params: {{range: 3}}}}\n  eat: {{type: '{F}:EatsApples'}}\n"
        "edges: [{from: src, to: eat}]\n",
        file="t.yaml",
    )
    (warning,) = graph.checked.warnings
    assert warning.line == 4 and warning.node == "src"
    assert "src.out is typed object (anything) but eat.in accepts only Apple" in warning.message
    assert "put a node that makes Apple between them" in (warning.fix or "")


def test_typed_edges_give_no_warning():
    graph = Graph.from_text(
        "nodes:\n  src: {type: source, params: {range: 3}}\n  sink: {type: collect}\nedges: [{from: src, to: sink}]\n"
    )
    assert graph.checked.warnings == []
