"""Run an ONNX CNN as a torch module, so the torch backend uses exactly the weights ONNX Runtime uses.

Covers the operators of ResNet-style classifiers (Conv, BatchNormalization, Relu, MaxPool, AveragePool,
GlobalAveragePool, Add, Flatten, Reshape, Gemm, MatMul, Softmax, Identity). Anything else is a clear
error naming the operator, pointing at ``torchvision:resnet50`` or the tensorrt backend instead.
The forward pass is a plain loop over the nodes: torch.compile and CUDA-graph capture both see
straight-line tensor code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["SUPPORTED_OPS", "onnx_module"]

SUPPORTED_OPS = (
    "Conv",
    "BatchNormalization",
    "Relu",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Add",
    "Flatten",
    "Reshape",
    "Gemm",
    "MatMul",
    "Softmax",
    "Identity",
)


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _symmetric_pads(pads: list[int], what: str) -> tuple[int, int]:
    if not pads:
        return (0, 0)
    top, left, bottom, right = pads
    if (top, left) != (bottom, right):
        raise ValueError(f"{what}: asymmetric padding {pads} is not supported by the torch backend")
    return (top, left)


def onnx_module(path: Path | str) -> Any:
    """A ``torch.nn.Module`` computing the ONNX model at ``path`` (input: the model's first input)."""
    import onnx
    import torch
    from onnx import numpy_helper
    from torch import nn

    model = onnx.load(str(path))
    graph = model.graph
    consts = {init.name: torch.from_numpy(numpy_helper.to_array(init).copy()) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            consts[node.output[0]] = torch.from_numpy(numpy_helper.to_array(_attrs(node)["value"]).copy())
    unsupported = sorted({n.op_type for n in graph.node if n.op_type not in SUPPORTED_OPS + ("Constant",)})
    if unsupported:
        raise ValueError(
            f"{path}: the torch backend cannot run ONNX operators {unsupported}; use "
            "model: torchvision:resnet50, or the onnxruntime / tensorrt backend"
        )

    class OnnxGraph(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.ModuleDict()
            self.steps: list[tuple[str, str, list[str], str, dict[str, Any]]] = []
            for i, node in enumerate(graph.node):
                if node.op_type == "Constant":
                    continue
                a = _attrs(node)
                key = f"n{i}"
                op = node.op_type
                if op == "Conv":
                    w = consts[node.input[1]]
                    b = consts[node.input[2]] if len(node.input) > 2 and node.input[2] else None
                    groups = int(a.get("group", 1))
                    conv = nn.Conv2d(
                        w.shape[1] * groups,
                        w.shape[0],
                        tuple(w.shape[2:]),  # type: ignore[arg-type]
                        tuple(a.get("strides", [1, 1])),
                        _symmetric_pads(list(a.get("pads", [])), node.name or key),
                        tuple(a.get("dilations", [1, 1])),
                        groups,
                        bias=b is not None,
                    )
                    conv.weight.data.copy_(w)
                    if b is not None:
                        conv.bias.data.copy_(b)  # type: ignore[union-attr]
                    self.layers[key] = conv
                elif op == "BatchNormalization":
                    scale, bias, mean, var = (consts[n] for n in node.input[1:5])
                    bn = nn.BatchNorm2d(scale.shape[0], eps=float(a.get("epsilon", 1e-5)))
                    bn.weight.data.copy_(scale)
                    bn.bias.data.copy_(bias)
                    bn.running_mean.copy_(mean)  # type: ignore[union-attr]
                    bn.running_var.copy_(var)  # type: ignore[union-attr]
                    self.layers[key] = bn
                elif op == "MaxPool":
                    self.layers[key] = nn.MaxPool2d(
                        tuple(a["kernel_shape"]),
                        tuple(a.get("strides", a["kernel_shape"])),
                        _symmetric_pads(list(a.get("pads", [])), key),
                    )
                elif op == "AveragePool":
                    self.layers[key] = nn.AvgPool2d(
                        tuple(a["kernel_shape"]),
                        tuple(a.get("strides", a["kernel_shape"])),
                        _symmetric_pads(list(a.get("pads", [])), key),
                        count_include_pad=bool(a.get("count_include_pad", 0)),
                    )
                elif op == "Gemm":
                    w = consts[node.input[1]]
                    if not a.get("transB", 0):
                        w = w.t()
                    if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
                        raise ValueError(f"{key}: Gemm with transA/alpha/beta is not supported")
                    b = consts.get(node.input[2]) if len(node.input) > 2 else None
                    linear = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
                    linear.weight.data.copy_(w)
                    if b is not None:
                        linear.bias.data.copy_(b)
                    self.layers[key] = linear
                elif op == "MatMul" and node.input[1] in consts:
                    w = consts[node.input[1]]
                    linear = nn.Linear(w.shape[0], w.shape[1], bias=False)
                    linear.weight.data.copy_(w.t())
                    self.layers[key] = linear
                elif op == "Reshape":
                    a["shape"] = [int(s) for s in consts[node.input[1]].tolist()]
                inputs = [n for n in node.input if n and n not in consts]
                self.steps.append((op, key, inputs, node.output[0], a))
            self.input_name = graph.input[0].name
            outputs = [o.name for o in graph.output]
            self.output_name = next(
                (
                    o
                    for o in outputs
                    if any(s[3] == o and s[0] in ("Gemm", "MatMul", "Softmax") for s in self.steps)
                ),
                outputs[0],
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            env = {self.input_name: x}
            for op, key, inputs, output, a in self.steps:
                args = [env[n] for n in inputs]
                if key in self.layers:
                    y = self.layers[key](args[0])
                elif op == "Relu":
                    y = torch.relu(args[0])
                elif op == "Add":
                    y = args[0] + args[1]
                elif op == "GlobalAveragePool":
                    y = args[0].mean(dim=(2, 3), keepdim=True)
                elif op == "Flatten":
                    y = torch.flatten(args[0], int(a.get("axis", 1)))
                elif op == "Reshape":
                    shape = [args[0].shape[0] if i == 0 and s == 0 else s for i, s in enumerate(a["shape"])]
                    y = args[0].reshape(shape)
                elif op == "Softmax":
                    y = torch.softmax(args[0], dim=int(a.get("axis", -1)))
                else:  # Identity
                    y = args[0]
                env[output] = y
            return env[self.output_name]

    return OnnxGraph().eval()
