"""Hostile or broken graph files are refused quickly, with a message, never a traceback or a dead machine."""

from __future__ import annotations

import time

import pytest

from flowgraph import GraphFileError, load_graph, load_graph_text
from flowgraph.cli import main

LAUGHS = "\n".join(
    ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    + [
        f"{chr(98 + k)}: &{chr(98 + k)} [*{chr(97 + k)}, *{chr(97 + k)}, *{chr(97 + k)}, *{chr(97 + k)}, "
        f"*{chr(97 + k)}, *{chr(97 + k)}, *{chr(97 + k)}, *{chr(97 + k)}, *{chr(97 + k)}, *{chr(97 + k)}]"
        for k in range(8)
    ]
    + ["nodes: *i", "edges: []"]
)  # 10^9 values once expanded


def test_nested_aliases_are_refused_quickly_without_expanding_them():
    t0 = time.perf_counter()
    with pytest.raises(GraphFileError, match="too many values"):
        load_graph_text(LAUGHS, "laughs.yaml")
    assert time.perf_counter() - t0 < 5


def test_very_deep_nesting_is_a_message_not_a_recursion_error():
    deep = "nodes: " + "[" * 5000 + "]" * 5000 + "\nedges: []\n"
    with pytest.raises(GraphFileError, match="nested too deeply|too deep nesting"):
        load_graph_text(deep, "deep.yaml")
    deep = "nodes: " + "[" * 100 + "]" * 100 + "\nedges: []\n"
    with pytest.raises(GraphFileError, match="too deep nesting"):
        load_graph_text(deep, "deep.yaml")


def test_extends_in_a_circle_names_the_chain(tmp_path, capsys):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(GraphFileError, match="extends goes round in a circle") as err:
        load_graph(tmp_path / "a.yaml")
    assert "a.yaml" in str(err.value) and "b.yaml" in str(err.value)
    assert main(["validate", str(tmp_path / "a.yaml")]) == 2
    assert "circle" in capsys.readouterr().err


def test_a_graph_file_that_is_not_utf8_names_the_line(tmp_path):
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"name: g\nnodes: {}\n# caf\xe9\nedges: []\n")
    with pytest.raises(GraphFileError, match="latin1.yaml:3: not UTF-8 text"):
        load_graph(bad)
