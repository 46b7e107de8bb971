"""Node types shipped with flowgraph (installed as ``flowgraph.nodes``).

Importing this package registers every built-in type; the engine finds it through the
``flowgraph.nodes`` entry point and never imports it by name. Heavy libraries (numpy, OpenCV, ONNX
Runtime, CuPy, torch, TensorRT) are imported inside the node that needs them, so listing node types
or running a general-purpose graph needs none of them.

``Sample`` (what a ResNet50 graph's ``sample_input`` takes) and ``Prediction`` (what its
``postprocess`` answers) are public: a program that serves a graph builds the one and reads the other.
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
from .payloads import Prediction, Sample

__all__ = [
    "Prediction",
    "Sample",
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
