"""A node whose libraries are missing is refused at validation, saying what to install (exit 2)."""

from __future__ import annotations

import importlib.util

import pytest

from flowgraph import Graph, GraphValidationError, Needs
from flowgraph.cli import main

HIDDEN = {"cv2", "onnxruntime"}


@pytest.fixture
def without_cv2_and_onnxruntime(monkeypatch):
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name in HIDDEN else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_needs_names_what_is_missing_and_what_installs_it(without_cv2_and_onnxruntime):
    needs = Needs("flowgraph[cpu]", ("json", "cv2"))
    assert needs.missing() == ["cv2"]
    assert needs.problem("preprocess") == (
        "preprocess needs cv2, not installed here: pip install 'flowgraph[cpu]'"
    )
    assert Needs("x", ("json",)).problem("y") is None


def test_the_pipeline_without_its_extra_is_a_validation_error_naming_the_extra(without_cv2_and_onnxruntime):
    with pytest.raises(GraphValidationError) as err:
        Graph.from_yaml("graphs/resnet50_offline.yaml")
    message = str(err.value)
    assert "node 'preprocess': preprocess needs cv2" in message
    assert "node 'inference': inference backend onnxruntime needs onnxruntime" in message
    assert "pip install 'flowgraph[cpu]'" in message


def test_the_cli_exits_2_for_a_missing_extra_and_runs_a_generic_graph(without_cv2_and_onnxruntime, capsys):
    assert main(["validate", "graphs/resnet50_offline.yaml"]) == 2
    assert "flowgraph[cpu]" in capsys.readouterr().err
    assert main(["run", "graphs/hello.yaml", "--quiet"]) == 0  # generic nodes need no extra


def test_viz_draws_a_graph_whose_extras_are_missing(without_cv2_and_onnxruntime, capsys):
    assert main(["viz", "graphs/resnet50_offline.yaml", "--format", "mermaid"]) == 0
    assert "preprocess" in capsys.readouterr().out
