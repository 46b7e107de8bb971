"""The contract every inference backend meets, and how the ``inference`` node finds them.

A backend module exposes ``load(model_path, params, engine_index, context) -> Engine``. Backends are
imported by name only when a graph selects them, so the CPU install never imports torch or TensorRT.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

__all__ = ["BACKENDS", "Engine", "PipelinedEngine", "load_backend"]

BACKENDS = {
    "onnxruntime": "flowgraph.nodes.inference.onnxruntime_backend",
    "torch": "flowgraph.nodes.inference.torch_backend",
    "tensorrt": "flowgraph.nodes.inference.tensorrt_backend",
}


class Engine(Protocol):
    """One model instance that runs one batch at a time (the inference node has one per worker)."""

    name: str
    precision: str

    async def infer(self, batch: Any) -> Any:
        """Scores [N, classes] on the host for ``batch`` (a ``Batch``). Must not block the event loop."""
        ...

    def close(self) -> None:
        """Free the engine's memory."""
        ...


class PipelinedEngine(Engine, Protocol):
    """An engine that can queue a batch on its device and collect the result later, so the inference
    node can launch the next batch while the current one runs (``in_flight`` > 1)."""

    async def launch(self, batch: Any) -> Any:
        """Queue ``batch`` on the device and return a handle once queued, before it has run. Launches
        of one engine are awaited one at a time, in order."""
        ...

    async def collect(self, handle: Any) -> Any:
        """Scores [N, classes] (with ``top_k``, class indices [N, k]) on the host once the launched batch
        has run."""
        ...

    def bucket(self, n: int) -> int:
        """The batch size the device actually runs for ``n`` images (what its time depends on)."""
        ...


def load_backend(name: str) -> Any:
    return importlib.import_module(BACKENDS[name])
