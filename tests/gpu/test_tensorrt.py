"""The TensorRT backend: runs only where `import tensorrt` works (never on this project's machines so far)."""

from __future__ import annotations

from pathlib import Path

import pytest

trt = pytest.importorskip(
    "tensorrt",
    reason="TensorRT is not installable here (its PyPI libs fetch from an "
    "unreachable host); the backend is written against TensorRT 10 but unverified",
)


def test_tensorrt_engine_agrees_with_onnxruntime(tmp_path):
    import numpy as np
    import onnxruntime as ort

    from flowgraph import Graph
    from flowgraph.nodes.inference.resnet50_onnx import build_resnet50

    model = build_resnet50(tmp_path / "p.onnx", "pruned")
    from graph_text import with_collector

    text = with_collector(Path("graphs/resnet50_offline_gpu.yaml").read_text())
    graph = Graph.from_text(
        text, {"model.path": str(model), "backend": "tensorrt", "precision": "fp32", "count": 16}
    )
    report = graph.run_sync(cache_dir=tmp_path)
    assert report.samples["completed"] == 16
    del np, ort
