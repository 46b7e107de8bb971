"""Tiny ONNX models whose answers are known, for accuracy tests."""

from __future__ import annotations

from pathlib import Path


def constant_class_model(path: Path, answer: int, classes: int = 1000, batch: int | str = "n") -> Path:
    """A tiny ONNX classifier that gives class ``answer`` the highest score for every image
    (``batch``: a fixed batch size, or a name for a dynamic one)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = np.zeros((3, classes), np.float32)
    bias = np.zeros(classes, np.float32)
    bias[answer] = 10.0
    bias[(answer + 1) % classes] = 5.0  # a known runner-up for top-5
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["pooled"], axes=[2, 3], keepdims=0),
        helper.make_node("Gemm", ["pooled", "W", "B"], ["scores"]),
    ]
    graph = helper.make_graph(
        nodes,
        "constant",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 224, 224])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [batch, classes])],
        [numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path
