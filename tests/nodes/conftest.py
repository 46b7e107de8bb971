"""Fixtures for the ResNet50 pipeline tests: a small synthetic dataset and the pruned model, built once."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("cv2", reason="the ResNet50 pipeline needs flowgraph[cpu]")
pytest.importorskip("onnxruntime", reason="the ResNet50 pipeline needs flowgraph[cpu]")


@pytest.fixture(scope="session")
def dataset(tmp_path_factory) -> Path:
    from flowgraph.nodes.dataset import write_synthetic_dataset

    return write_synthetic_dataset(tmp_path_factory.mktemp("synthetic"), 24, seed=1)


@pytest.fixture(scope="session")
def pruned_model(tmp_path_factory) -> Path:
    from flowgraph.nodes.inference.resnet50_onnx import build_resnet50

    return build_resnet50(tmp_path_factory.mktemp("models") / "pruned.onnx", "pruned")
