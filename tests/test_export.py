from __future__ import annotations

import importlib.util
import json
import shutil

import pytest

from flowgraph import DependencyMissing, Graph
from flowgraph.export import busy_colour, export


@pytest.fixture
def hello():
    return Graph.from_yaml("graphs/hello.yaml").checked


def test_dot_is_top_to_bottom_with_types_params_and_capacities(hello):
    dot = export(hello, "dot")
    assert "rankdir=TB" in dot
    assert 'label="factorial\\nmap ×2\\nfn=math:factorial"' in dot  # the params the file set
    assert 'label="list\\ncap 8"' in dot  # the data type on the edge, and the queue's capacity


def test_mermaid_is_a_top_to_bottom_flowchart(hello):
    text = export(hello, "mermaid")
    assert text.startswith("flowchart TB") and 'group -->|"list cap 8"| split' in text


def test_a_report_labels_and_colours_nodes_by_busy_percent(hello):
    figures = {
        "factorial": {"rate_per_s": 1234.5, "utilization": 0.97},
        "group": {"rate_per_s": 9e3, "utilization": 0.02},
    }
    dot = export(hello, "dot", figures)
    assert "1,234 samples/s, 97% busy" in dot or "1,235 samples/s, 97% busy" in dot
    hot, cold = busy_colour(0.97), busy_colour(0.02)
    assert f'fillcolor="{hot}"' in dot and f'fillcolor="{cold}"' in dot and hot != cold
    assert int(hot[1:3], 16) > int(hot[3:5], 16) and int(cold[3:5], 16) > int(cold[1:3], 16)  # red vs green
    mermaid = export(hello, "mermaid", figures)
    assert f"style factorial fill:{hot}" in mermaid


def test_viz_reads_a_run_report_from_the_cli(tmp_path, capsys):
    from flowgraph.cli import main

    report = tmp_path / "run.json"
    assert main(["run", "graphs/hello.yaml", "--quiet", "--report", str(report)]) == 0
    capsys.readouterr()
    assert main(["viz", "graphs/hello.yaml", "--format", "mermaid", "--report", str(report)]) == 0
    text = capsys.readouterr().out
    assert "samples/s" in text and "% busy" in text and "style factorial fill:#" in text
    (tmp_path / "bad.json").write_text("[1, 2]")
    assert main(["viz", "graphs/hello.yaml", "--report", str(tmp_path / "bad.json")]) == 2
    assert "not a run's --report JSON" in capsys.readouterr().err


def test_json_is_networkx_node_link(hello):
    import networkx as nx

    data = json.loads(export(hello, "json"))
    g = nx.node_link_graph(data, edges="edges")
    assert list(nx.topological_sort(g))[0] == "numbers" and g.nodes["factorial"]["workers"] == 2


def test_svg_needs_graphviz_or_matplotlib_or_says_so(hello, monkeypatch):
    if shutil.which("dot"):
        assert export(hello, "svg").startswith(b"<?xml")
    import flowgraph.export as exporting
    import flowgraph.plot as plot

    monkeypatch.setattr(exporting.shutil, "which", lambda name: None)
    if importlib.util.find_spec("matplotlib"):
        assert b"<svg" in export(hello, "svg")[:2000]

    def no_matplotlib() -> None:
        raise DependencyMissing("drawing needs matplotlib")

    monkeypatch.setattr(plot, "_pyplot", no_matplotlib)
    with pytest.raises(DependencyMissing, match="Graphviz's `dot` program .* or matplotlib"):
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
