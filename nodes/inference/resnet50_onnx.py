"""ResNet50 as an ONNX graph built with onnx.helper: no torch, no download.

Torchvision's layout (v1.5: stride in the 3x3 conv), batch norm folded into the convolutions (as an
inference export would), deterministic He-initialised weights from a seed. The weights are random, so
its top-1 on real images is chance; what it gives is ResNet50's exact shape and cost (4.1 G MACs per
image), which is what an inference pipeline is measured against.

``variant="pruned"`` builds the pruned ResNet50 of the open-division submission this project starts
from: same depth, narrower layers (widths below).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..files import replace_atomically

__all__ = ["FULL", "PRUNED", "ResNetWidths", "build_resnet50", "builtin_model_path"]

INPUT_NAME = "input_tensor"
OUTPUT_NAME = "logits"


@dataclass(frozen=True)
class ResNetWidths:
    stem: int
    inner: tuple[tuple[int, ...], ...]
    """Bottleneck inner width of every block, per stage (3, 4, 6, 3 blocks)."""
    outputs: tuple[int, int, int, int]
    classes: int = 1000


FULL = ResNetWidths(64, ((64,) * 3, (128,) * 4, (256,) * 6, (512,) * 3), (256, 512, 1024, 2048))
PRUNED = ResNetWidths(
    50,
    ((37, 37, 40), (89, 81, 108, 55), (248, 194, 163, 125, 232, 156), (404, 404, 358)),
    (156, 296, 624, 2048),
)
VARIANTS = {"full": FULL, "pruned": PRUNED}


def builtin_model_path(cache_dir: Path, variant: str, seed: int = 0) -> Path:
    return cache_dir / "models" / f"resnet50-{variant}-seed{seed}-opset17.onnx"


def build_resnet50(out: Path | str, variant: str = "full", seed: int = 0) -> Path:
    """Write the model to ``out`` (atomically) and return the path."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    widths = VARIANTS[variant]
    rng = np.random.default_rng(seed)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    counter = [0]

    def name(prefix: str) -> str:
        counter[0] += 1
        return f"{prefix}_{counter[0]}"

    def conv(
        x: str, cin: int, cout: int, k: int, stride: int = 1, relu: bool = True, gain: float = 1.0
    ) -> str:
        w_name, b_name, y = name("W"), name("B"), name("conv")
        std = gain * np.sqrt(2.0 / (cin * k * k))  # He init keeps activations' scale through ReLUs
        inits.append(
            numpy_helper.from_array((rng.standard_normal((cout, cin, k, k)) * std).astype(np.float32), w_name)
        )
        inits.append(numpy_helper.from_array((rng.standard_normal(cout) * 0.01).astype(np.float32), b_name))
        nodes.append(
            helper.make_node(
                "Conv",
                [x, w_name, b_name],
                [y],
                kernel_shape=[k, k],
                strides=[stride, stride],
                pads=[k // 2] * 4,
            )
        )
        if not relu:
            return y
        r = name("relu")
        nodes.append(helper.make_node("Relu", [y], [r]))
        return r

    x = conv(INPUT_NAME, 3, widths.stem, 7, stride=2)
    pooled = name("maxpool")
    nodes.append(
        helper.make_node("MaxPool", [x], [pooled], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    )
    x, cin = pooled, widths.stem
    for stage, (inner_widths, cout) in enumerate(zip(widths.inner, widths.outputs, strict=True)):
        for block, inner in enumerate(inner_widths):
            stride = 2 if stage > 0 and block == 0 else 1
            y = conv(x, cin, inner, 1)
            y = conv(y, inner, inner, 3, stride=stride)
            # The last conv of a block starts small (as zero-init-residual training does), so a deep
            # random network's activations stay finite instead of growing with every residual add.
            y = conv(y, inner, cout, 1, relu=False, gain=0.2)
            shortcut = conv(x, cin, cout, 1, stride=stride, relu=False) if block == 0 else x
            added, activated = name("add"), name("relu")
            nodes.append(helper.make_node("Add", [y, shortcut], [added]))
            nodes.append(helper.make_node("Relu", [added], [activated]))
            x, cin = activated, cout
    gap, flat = name("gap"), name("flatten")
    nodes.append(helper.make_node("GlobalAveragePool", [x], [gap]))
    nodes.append(helper.make_node("Flatten", [gap], [flat], axis=1))
    image_input = helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", 3, 224, 224])

    def make(graph_nodes: list, output: onnx.ValueInfoProto) -> onnx.ModelProto:
        graph = helper.make_graph(graph_nodes, f"resnet50_{variant}", [image_input], [output], inits)
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="flowgraph"
        )
        model.ir_version = 8
        return model

    # Random convolutions give every image nearly the same positive feature vector, so a random
    # classifier would answer one class for everything. Standardise the features on a few image-like
    # inputs and fold that into the classifier, so different images get different answers (and a test
    # that compares predictions sample for sample can tell samples apart).
    backbone = make(nodes, helper.make_tensor_value_info(flat, TensorProto.FLOAT, ["batch", cin]))
    features = _run_backbone(backbone, np.random.default_rng(seed + 1))
    # The floor on std bounds the gain, so logits stay far inside fp16 range on images unlike these.
    mean = features.mean(0)
    std = features.std(0) + 0.05 * np.abs(mean).mean() + 1e-6
    fc_w = (rng.standard_normal((widths.classes, cin)) * np.sqrt(1.0 / cin)).astype(np.float32) / std
    inits.append(numpy_helper.from_array(fc_w.astype(np.float32), "fc_W"))
    inits.append(numpy_helper.from_array((-(fc_w @ mean)).astype(np.float32), "fc_B"))
    nodes.append(helper.make_node("Gemm", [flat, "fc_W", "fc_B"], [OUTPUT_NAME], transB=1))
    model = make(
        nodes, helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", widths.classes])
    )
    onnx.checker.check_model(model)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    replace_atomically(out, lambda tmp: onnx.save(model, str(tmp)))  # shards may build it at once
    return out


def _run_backbone(model: Any, rng: Any) -> Any:
    """Features of 16 smooth random images (gradients plus blobs, mean-subtracted like MLPerf's input)."""
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])  # type: ignore[attr-defined]
    yy, xx = np.mgrid[0:224, 0:224].astype(np.float32) / 224
    images = []
    for _ in range(16):
        a = rng.uniform(-1, 1, (3, 3)).astype(np.float32)  # type: ignore[attr-defined]
        image = a[:, 0, None, None] * 100 + a[:, 1, None, None] * 120 * yy + a[:, 2, None, None] * 120 * xx
        images.append(image + rng.normal(0, 10, image.shape).astype(np.float32))  # type: ignore[attr-defined]
    return session.run(None, {INPUT_NAME: np.stack(images).astype(np.float32)})[0]
