"""The torch backend's model side: loading a model, sharing it between engines, and which batch sizes
get a CUDA graph. Apart from ``torch_backend`` (the engine that runs it), which imports these."""

from __future__ import annotations

import threading
import weakref
from pathlib import Path
from typing import Any

__all__ = ["bucket_for", "graph_sizes", "load_module", "shared_module"]


def load_module(model: Path | str) -> Any:
    """An ONNX file through our converter, or ``torchvision:<name>`` (random weights: no downloads)."""
    spec = str(model)
    if spec.startswith("torchvision:"):
        import torchvision

        return getattr(torchvision.models, spec.split(":", 1)[1])(weights=None).eval()
    from .onnx_to_torch import onnx_module

    return onnx_module(spec)


def graph_sizes(batch_sizes: list[int], step: int = 0) -> list[int]:
    """The batch sizes to capture a CUDA graph for.

    Powers of two up to the largest size: a partial batch (Server, end of stream) replays the smallest
    graph that fits it, not the full-size one (which made Server collapse on the H100). ``step`` adds
    every multiple of it, so Server's varied batch sizes pad by less than ``step`` images."""
    largest = max(batch_sizes, default=0)
    return sorted(
        {
            *batch_sizes,
            *(1 << k for k in range(largest.bit_length()) if 1 << k <= largest),
            *(range(step, largest + 1, step) if step else ()),
        }
    )


def bucket_for(n: int, sizes: list[int]) -> int:
    """The CUDA-graph batch size a batch of ``n`` replays: the smallest captured size that fits."""
    for size in sorted(sizes):
        if size >= n:
            return size
    power = 1
    while power < n:
        power *= 2
    return power


_MODULES: weakref.WeakValueDictionary[tuple[Any, ...], Any] = weakref.WeakValueDictionary()
"""Modules in use, by what makes them: the engines of a node share one (see ``shared_module``)."""
_MODULES_LOCK = threading.Lock()
_compiled_modules = 0


def shared_module(
    model: Path | str, params: Any, device: Any, dtype: Any, sizes: list[int]
) -> tuple[Any, bool]:
    """The model on ``device`` in ``dtype`` (channels_last on cuda, compiled if asked), and whether an
    engine already had it.

    Why shared: engines only read the weights, and each replays its own CUDA graphs on its own stream,
    so one module serves them all; and torch.compile then compiles once for the node, not once per
    engine (two compiled engines took ~70 s of setup on the H100). Held weakly: a module goes when its
    last engine does."""
    global _compiled_modules
    import torch

    path = Path(str(model))
    built = path.stat().st_mtime_ns if path.is_file() else None  # a file rewritten since is a new model
    key = (str(model), built, str(device), dtype, params.compile, params.compile and params.compile_shapes)
    with _MODULES_LOCK:
        module = _MODULES.get(key)
        if module is not None:
            return module, True
        module = load_module(model).to(device, dtype)
        if device.type == "cuda":
            module = module.to(memory_format=torch.channels_last)
        if params.compile:
            # Dynamo counts compiled variants per code object, and every module built in this process
            # shares its forward's code: each adds ~3 (the first batch size, the dynamic one, batch size
            # 1), or one per bucket when static. At the default limit of 8 a second module's later batch
            # sizes silently ran eager on the H100, so the limit grows with every module compiled.
            static = params.compile_shapes == "static"
            _compiled_modules += 1
            per_module = len(sizes) + 2 if static else 4
            config = torch._dynamo.config
            config.recompile_limit = max(config.recompile_limit, per_module * _compiled_modules + 4)
            module = torch.compile(module, dynamic=False if static else None)
        _MODULES[key] = module
        return module, False
