"""A graph file cannot run code the user did not allow (flowgraph.trust)."""

from __future__ import annotations

import sys

import pytest

from flowgraph import Graph, GraphValidationError, allow_modules
from flowgraph.cli import main
from flowgraph.trust import allowed_modules

EVIL = """
from pathlib import Path
Path(__file__).with_name("imported").write_text("the module ran")

from flowgraph import Node

class Evil(Node):
    async def process(self, item):
        return item
"""


@pytest.fixture
def evil_module(tmp_path, monkeypatch):
    (tmp_path / "evilmod.py").write_text(EVIL)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path / "imported"
    sys.modules.pop("evilmod", None)


def graph_with(tmp_path, node: str) -> str:
    path = tmp_path / "downloaded.yaml"
    path.write_text(
        f"nodes:\n  s: {{type: source, params: {{range: 2}}}}\n  x: {node}\n  r: {{type: collect}}\n"
        "edges: [{from: s, to: x}, {from: x, to: r}]\n"
    )
    return str(path)


def test_a_map_fn_from_a_module_not_allowed_is_refused_at_validation(tmp_path, capsys):
    graph = graph_with(tmp_path, '{type: map, params: {fn: "os:system"}}')
    with pytest.raises(GraphValidationError) as err:
        Graph.from_yaml(graph)
    assert "downloaded.yaml:3: node 'x'" in str(err.value)
    assert "'os:system' is code from module 'os', which this run does not allow" in str(err.value)
    assert main(["run", graph, "--quiet"]) == 2
    assert "--allow-module os" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["validate"], ["viz", "--format", "mermaid"], ["run", "--quiet"]])
def test_validate_viz_and_run_import_no_module_the_user_did_not_allow(tmp_path, evil_module, command):
    graph = graph_with(tmp_path, '{type: "evilmod:Evil"}')
    assert main([command[0], graph, *command[1:]]) == 2
    assert not evil_module.exists()  # nothing of the graph's choosing was imported


def test_allowing_the_module_runs_it(tmp_path, evil_module, monkeypatch):
    monkeypatch.setattr("flowgraph.trust._allowed", set())
    graph = graph_with(tmp_path, '{type: "evilmod:Evil"}')
    assert main(["run", graph, "--quiet", "--allow-module", "evilmod"]) == 0
    assert evil_module.read_text() == "the module ran"
    assert "evilmod" in allowed_modules()


def test_a_source_iterable_is_held_to_the_same_rule(tmp_path):
    text = "nodes:\n  s: {type: source, params: {iterable: 'subprocess:getoutput'}}\n  r: {type: collect}\n"
    with pytest.raises(GraphValidationError, match="module 'subprocess', which this run does not allow"):
        Graph.from_text(text + "edges: [{from: s, to: r}]\n")


def test_safe_stdlib_functions_and_allowed_packages_need_no_flag(monkeypatch):
    monkeypatch.setattr("flowgraph.trust._allowed", set())
    ok = "nodes:\n  s: {type: source, params: {range: 3}}\n  m: {type: map, params: {fn: 'math:factorial'}}\n"
    report = Graph.from_text(
        ok + "  r: {type: collect}\nedges: [{from: s, to: m}, {from: m, to: r}]\n"
    ).run_sync()
    assert sorted(report.results) == [1, 1, 2]
    allow_modules("json")
    assert "json" in allowed_modules()


def test_dataset_entries_outside_the_folder_fail_as_samples(tmp_path):
    from flowgraph import SampleFailed
    from flowgraph.nodes.dataset import read_val_map

    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "secret.JPEG").write_text("not yours")
    (data / "val_map.txt").write_text("ok.JPEG 1\n../secret.JPEG 2\n/etc/passwd 3\n")
    entries = list(read_val_map(data / "val_map.txt", data))
    assert [isinstance(e, SampleFailed) for e in entries] == [False, True, True]
    assert "outside the dataset folder" in str(entries[1].error) and "val_map.txt:3" in str(entries[2].sample)
