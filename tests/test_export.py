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
