from __future__ import annotations

import json
import shutil

import pytest

from flowgraph import DependencyMissing, Graph
from flowgraph.export import export


@pytest.fixture
def hello():
    return Graph.from_yaml("graphs/hello.yaml").checked


def test_dot_labels_type_workers_and_capacity(hello):
    dot = export(hello, "dot", throughput={"factorial": 1234.5})
    assert 'label="factorial\\nmap x2\\n1,234.5 items/s"' in dot
    assert 'label="out->in\\ncap 8"' in dot


def test_mermaid_is_a_left_to_right_flowchart(hello):
    text = export(hello, "mermaid")
    assert text.startswith("flowchart LR") and 'group -->|"out→in cap 8"| split' in text


def test_json_is_networkx_node_link(hello):
    import networkx as nx

    data = json.loads(export(hello, "json"))
    g = nx.node_link_graph(data, edges="edges")
    assert list(nx.topological_sort(g))[0] == "numbers" and g.nodes["factorial"]["workers"] == 2


def test_svg_needs_graphviz_or_says_so(hello):
    if shutil.which("dot"):
        assert export(hello, "svg").startswith(b"<?xml")
    else:
        with pytest.raises(DependencyMissing, match="Graphviz"):
            export(hello, "svg")


def test_a_sharded_graph_is_drawn_with_its_shards_boxed_and_named():
    from flowgraph import load_graph, validate
    from flowgraph.export import to_dot, to_json, to_mermaid

    checked = validate(load_graph("graphs/resnet50_offline.yaml", {"shards.devices": [0, 0, 1]}))
    mermaid = to_mermaid(checked)
    inside = mermaid.split('subgraph shards["', 1)[1].split("    end", 1)[0]
    assert inside.startswith("x3 shards (GPU 0, GPU 0, GPU 1)")
    assert "preprocess[" in inside and "postprocess[" in inside and "init[" not in inside
    dot = to_dot(checked)
    assert "subgraph cluster_shards" in dot and dot.index('"init" [') < dot.index("subgraph cluster_shards")
    data = json.loads(to_json(checked))
    assert data["graph"]["shards"].startswith("x3 shards")
    assert {n["id"]: n["in_shards"] for n in data["nodes"]}["init"] is False
    plain = validate(load_graph("graphs/resnet50_offline.yaml"))
    assert "subgraph" not in to_mermaid(plain) and "cluster" not in to_dot(plain)
