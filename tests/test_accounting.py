"""Every sample is accounted for, per path: entered + copies = completed + failed + dropped."""

from __future__ import annotations

import pytest

from flowgraph import Graph, NodeFailure
from flowgraph.cli import main

F = "fixture_nodes"


def balanced(samples: dict[str, int]) -> bool:
    paths = samples["entered"] + samples.get("copies", 0)
    return paths == samples["completed"] + samples["failed"] + samples["dropped"]


def test_a_fan_out_counts_each_path_once():
    report = Graph.from_text("""
nodes:
  s: {type: source, params: {range: 5}}
  t: {type: tee}
  a: {type: collect}
  b: {type: discard}
edges: [{from: s, to: t}, {from: t, to: a}, {from: t, to: b}]
""").run_sync()
    assert report.samples == {"entered": 5, "completed": 10, "failed": 0, "copies": 5, "dropped": 0}
    assert balanced(report.samples)


def test_a_sample_a_source_could_not_emit_entered_and_failed(tmp_path):
    (tmp_path / "val_map.txt").write_text("a.JPEG 1\nthis line is broken\nb.JPEG 2\n")
    report = Graph.from_text(f"""
nodes:
  d: {{type: imagenet, params: {{path: "{tmp_path}"}}, on_error: skip}}
  r: {{type: collect}}
edges: [{{from: d, to: r}}]
""").run_sync(announce=lambda m: None)
    assert report.samples == {"entered": 3, "completed": 2, "failed": 1, "dropped": 0}
    assert "val_map.txt:2" in str(report.failures[0].sample)


def test_skipped_and_failed_samples_balance():
    report = Graph.from_text(f"""
nodes:
  s: {{type: source, params: {{range: 10}}}}
  f: {{type: "{F}:FailsOn", params: {{bad: 3}}, on_error: skip}}
  r: {{type: collect}}
edges: [{{from: s, to: f}}, {{from: f, to: r}}]
""").run_sync()
    assert report.samples == {"entered": 10, "completed": 9, "failed": 1, "dropped": 0}


def test_a_failed_run_still_writes_its_report(tmp_path, capsys):
    graph = tmp_path / "g.yaml"
    graph.write_text(
        f"nodes:\n  s: {{type: source, params: {{range: 10}}}}\n  f: {{type: '{F}:FailsOn', params: {{bad: 3}}}}\n"
        "  r: {type: collect}\nedges: [{from: s, to: f}, {from: f, to: r}]\n"
    )
    report = tmp_path / "r.json"
    assert main(["run", str(graph), "--quiet", "--report", str(report)]) == 1
    import json

    data = json.loads(report.read_text())
    assert data["failures"] and data["failures"][0]["node"] == "f"
    assert "report written" in capsys.readouterr().err


def test_the_failure_carries_the_report_for_embedders():
    graph = Graph.from_text(f"""
nodes:
  s: {{type: source, params: {{range: 10}}}}
  f: {{type: "{F}:FailsOn", params: {{bad: 3}}}}
  r: {{type: collect}}
edges: [{{from: s, to: f}}, {{from: f, to: r}}]
""")
    with pytest.raises(NodeFailure) as err:
        graph.run_sync()
    assert err.value.report is not None and err.value.report.failures[0].node == "f"


def test_an_empty_label_file_is_an_error_not_an_empty_success(tmp_path):
    (tmp_path / "val_map.txt").write_text("\n")
    graph = Graph.from_text(f"""
nodes:
  d: {{type: imagenet, params: {{path: "{tmp_path}"}}}}
  r: {{type: collect}}
edges: [{{from: d, to: r}}]
""")
    with pytest.raises(NodeFailure, match="lists no samples"):
        graph.run_sync(announce=lambda m: None)


def _aggregate(node: str) -> str:
    return f"""
nodes:
  s: {{type: source, params: {{range: 2000}}}}
  fold: {{type: {node}}}
  r: {{type: collect}}
edges: [{{from: s, to: fold}}, {{from: fold, to: r}}]
"""


def test_many_to_one_a_group_that_names_its_samples_completes_them_all():
    report = Graph.from_text(_aggregate("batch, params: {size: 2000}")).run_sync()
    assert report.samples == {"entered": 2000, "completed": 2000, "failed": 0, "dropped": 0}
    assert report.node("fold")["items_out"] == 1 and report.node("r")["samples_in"] == 2000


def test_many_to_one_an_aggregate_naming_its_samples_completes_them():
    report = Graph.from_text(_aggregate(f'"{F}:TotalNamingSamples"')).run_sync()
    assert report.results[0].value == sum(range(2000))
    assert report.samples == {"entered": 2000, "completed": 2000, "failed": 0, "dropped": 0}


def test_many_to_one_an_aggregate_naming_none_shows_where_the_count_fell():
    report = Graph.from_text(_aggregate(f'"{F}:Total"')).run_sync()
    assert report.samples == {"entered": 2000, "completed": 1, "failed": 0, "dropped": 1999}
    assert report.node("fold")["samples_in"] == 2000 and report.node("r")["samples_in"] == 1
    assert balanced(report.samples)
