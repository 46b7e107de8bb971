from __future__ import annotations

import pytest

onnx = pytest.importorskip("onnx")


def _conv_widths(path):
    model = onnx.load(str(path))
    inits = {i.name: i for i in model.graph.initializer}
    return [tuple(inits[n.input[1]].dims) for n in model.graph.node if n.op_type == "Conv"]


def test_pruned_model_has_the_submission_widths(pruned_model):
    convs = _conv_widths(pruned_model)
    assert convs[0] == (50, 3, 7, 7)
    inner = [c[0] for c in convs if c[2] == 3]  # the 3x3 convs carry the bottleneck inner width
    assert inner == [37, 37, 40, 89, 81, 108, 55, 248, 194, 163, 125, 232, 156, 404, 404, 358]
    model = onnx.load(str(pruned_model))
    assert model.opset_import[0].version == 17
    batch_dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param == "batch"  # dynamic batch


def test_full_model_is_resnet50_shaped_and_deterministic(tmp_path):
    from flowgraph.nodes.inference.resnet50_onnx import build_resnet50

    a = build_resnet50(tmp_path / "a.onnx", "full", seed=3)
    b = build_resnet50(tmp_path / "b.onnx", "full", seed=3)
    convs = _conv_widths(a)
    assert len(convs) == 53  # stem + 16 blocks x 3 + 4 downsample shortcuts
    params = sum(int(__import__("numpy").prod(i.dims)) for i in onnx.load(str(a)).graph.initializer)
    assert 25_400_000 < params < 25_700_000  # ResNet50: 25.5 M parameters
    assert a.read_bytes() == b.read_bytes()
