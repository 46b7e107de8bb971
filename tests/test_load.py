from __future__ import annotations

import pytest

from flowgraph import GraphFileError, load_graph, load_graph_text

GOOD = """\
name: g
params:
  n: 5
  model: {path: builtin}
nodes:
  src: {type: source, params: {range: "${n}"}}
  sink: {type: collect}
edges:
  - {from: src, to: sink}
"""


def test_parameter_reference_keeps_its_type():
    spec = load_graph_text(GOOD).spec
    assert spec.nodes["src"].params["range"] == 5


def test_override_sets_graph_parameter_and_nested_key():
    spec = load_graph_text(GOOD, overrides={"n": 7, "model.path": "x.onnx"}).spec
    assert spec.nodes["src"].params["range"] == 7
    assert spec.params["model"]["path"] == "x.onnx"


def test_override_sets_node_param_and_workers():
    spec = load_graph_text(GOOD, overrides={"src.count": 2, "sink.on_error": "skip"}).spec
    assert spec.nodes["src"].params["count"] == 2
    assert spec.nodes["sink"].on_error == "skip"


def test_override_of_unknown_key_suggests_the_closest():
    with pytest.raises(GraphFileError, match="did you mean n"):
        load_graph_text(GOOD, overrides={"nn": 3})


def test_yaml_syntax_error_names_the_line():
    text = GOOD.replace("  sink: {type: collect}", "  sink: {type: collect")
    with pytest.raises(GraphFileError) as err:
        load_graph_text(text, "broken.yaml")
    assert "broken.yaml:" in str(err.value) and "YAML syntax error" in str(err.value)
    assert err.value.issues[0].line is not None and err.value.issues[0].line >= 7


def test_unknown_key_names_line_key_and_suggestion():
    text = GOOD.replace("sink: {type: collect}", "sink: {type: collect, worker: 2}")
    with pytest.raises(GraphFileError) as err:
        load_graph_text(text, "g.yaml")
    msg = str(err.value)
    assert "g.yaml:7" in msg and "nodes.sink.worker" in msg and "did you mean workers" in msg


def test_wrong_value_type_names_the_key():
    text = GOOD.replace("sink: {type: collect}", "sink: {type: collect, workers: many}")
    with pytest.raises(GraphFileError, match=r"g.yaml:7: node 'sink': nodes.sink.workers"):
        load_graph_text(text, "g.yaml")


def test_unknown_parameter_reference_is_an_error_with_line():
    text = GOOD.replace("${n}", "${count}")
    with pytest.raises(GraphFileError, match=r"g.yaml:6: node 'src': unknown graph parameter \$\{count\}"):
        load_graph_text(text, "g.yaml")


def test_duplicate_key_is_an_error():
    text = GOOD.replace("  sink: {type: collect}\n", "  sink: {type: collect}\n  sink: {type: collect}\n")
    with pytest.raises(GraphFileError, match="g.yaml:8.*duplicate key 'sink'"):
        load_graph_text(text, "g.yaml")


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(GraphFileError, match="cannot read graph file"):
        load_graph(tmp_path / "nope.yaml")


def test_scenario_bypass_splices_the_node_out():
    text = """\
nodes:
  a: {type: source, params: {range: 3}}
  b: {type: batch, params: {size: 2}}
  c: {type: unbatch}
  d: {type: collect}
edges:
  - {from: a, to: b}
  - {from: b, to: c}
  - {from: c, to: d}
scenarios:
  SingleStream: {bypass: [b, c]}
"""
    spec = load_graph_text(text, scenario="SingleStream").spec
    assert set(spec.nodes) == {"a", "d"}
    assert [(e.source.node, e.target.node) for e in spec.edges] == [("a", "d")]
    assert set(load_graph_text(text, scenario="Offline").spec.nodes) == {"a", "b", "c", "d"}


def test_extends_takes_the_base_graph_and_overrides_params(tmp_path):
    (tmp_path / "base.yaml").write_text(GOOD)
    (tmp_path / "child.yaml").write_text("extends: base.yaml\nname: child\nparams: {n: 9}\n")
    loaded = load_graph(tmp_path / "child.yaml")
    assert loaded.spec.name == "child" and loaded.spec.nodes["src"].params["range"] == 9
    assert loaded.source.file.endswith("base.yaml")  # node lines point where the nodes are written


def test_extends_refuses_nodes_in_the_child(tmp_path):
    (tmp_path / "base.yaml").write_text(GOOD)
    (tmp_path / "child.yaml").write_text("extends: base.yaml\nnodes: {}\n")
    with pytest.raises(GraphFileError, match="child.yaml:2: a graph that extends another sets only"):
        load_graph(tmp_path / "child.yaml")
