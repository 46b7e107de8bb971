"""Node types shipped with flowgraph (installed as ``flowgraph.nodes``).

Importing this package registers every built-in type; the engine finds it through the
``flowgraph.nodes`` entry point and never imports it by name. Heavy libraries (numpy, OpenCV, ONNX
Runtime, CuPy, torch, TensorRT) are imported inside the node that needs them, so listing node types
or running a general-purpose graph needs none of them.
"""

from __future__ import annotations

from . import (  # general purpose  # ResNet50
    batching,
    dataset,
    grouping,
    postprocess,
    preprocess,
    preprocess_gpu,
    schedule,
    sinks,
    sources,
    transfer,
    transform,
)
from .inference import node as inference_node

__all__ = [
    "batching",
    "dataset",
    "grouping",
    "inference_node",
    "postprocess",
    "preprocess",
    "preprocess_gpu",
    "schedule",
    "sinks",
    "sources",
    "transfer",
    "transform",
]
