"""ONNX Runtime on the CPU: the embedded default backend.

One ``InferenceSession`` per engine. ``session.run`` releases the GIL, so it runs in the node's threads
and engines overlap. Input name, shape and layout are read from the model: any ONNX classifier with one
image input works, NCHW or NHWC, fixed or dynamic batch.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field

from flowgraph import DependencyMissing, Needs

from .backend import Backend, EngineParams, backend

__all__ = ["OnnxRuntimeBackend", "OnnxRuntimeParams", "OrtEngine"]


class OnnxRuntimeParams(EngineParams):
    model_config = ConfigDict(title="backend onnxruntime")

    backend: Literal["onnxruntime"] = "onnxruntime"
    threads: int | None = Field(
        None,
        ge=1,
        description="intra-op threads per engine (default: the cores this process may use / engines)",
    )


class OrtEngine:
    """One ONNX Runtime session."""

    def __init__(self, model: Path, threads: int, output: str | None, offload: Any, name: str) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise DependencyMissing(
                "the onnxruntime backend needs onnxruntime: pip install 'flowgraph[cpu]'"
            ) from exc
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        self.name = name
        self.precision = "fp32"
        inputs = self.session.get_inputs()
        if len(inputs) != 1:  # found at setup, not at the first batch
            raise ValueError(
                f"model {model} takes {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); the "
                "pipeline feeds one image tensor"
            )
        model_input = inputs[0]
        self.input_name = model_input.name
        shape = model_input.shape
        if len(shape) != 4 or 3 not in (shape[1], shape[3]):
            raise ValueError(
                f"model {model} takes {model_input.name} of shape {shape}; the pipeline sends images as "
                "[batch, 3, height, width] or [batch, height, width, 3]"
            )
        self.layout = "NHWC" if len(shape) == 4 and shape[3] == 3 else "NCHW"
        self.fixed_batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
        self.output_name = output or _pick_output(self.session)
        self._offload = offload
        self._warm_up(shape)

    def _warm_up(self, shape: list[Any]) -> None:
        """Run once at setup, so the session's first-run work (memory arenas, kernel choice) is not
        paid by the first timed batch: it made the first LoadGen run of a process 40% slower on a short
        test (a compliance test's reference would then fail its 10% bound for no fault of its own)."""
        import numpy as np

        dims = [self.fixed_batch or 1, *shape[1:]]
        if all(isinstance(d, int) and d > 0 for d in dims):
            self.session.run([self.output_name], {self.input_name: np.zeros(dims, np.float32)})

    def _run(self, batch: Any) -> Any:
        import numpy as np

        array = batch.array
        if array.dtype != np.float32:
            raise TypeError(
                f"the model takes float32 input but the batch is {array.dtype}: use preprocess "
                "variant 'mlperf' or 'torchvision' with the onnxruntime backend"
            )
        if (array.shape[1] == 3) != (self.layout == "NCHW"):  # batch layout differs from the model's
            array = np.ascontiguousarray(
                array.transpose(0, 2, 3, 1) if self.layout == "NHWC" else array.transpose(0, 3, 1, 2)
            )
        if self.fixed_batch is not None and array.shape[0] != self.fixed_batch:
            raise ValueError(
                f"the model has a fixed batch size of {self.fixed_batch} but got {array.shape[0]}: "
                f"set batch_merge max_batch to {self.fixed_batch} or export the model with a dynamic batch"
            )
        return self.session.run([self.output_name], {self.input_name: array})[0]

    async def launch(self, batch: Any) -> Any:
        # The session runs in the node's thread at once (it releases the GIL): the handle is that run.
        return asyncio.ensure_future(self._offload(self._run, batch))

    async def collect(self, handle: Any) -> Any:
        return await handle

    def bucket(self, n: int) -> int:
        return n

    def close(self) -> None:
        del self.session


def _pick_output(session: Any) -> str:
    for out in session.get_outputs():
        if len(out.shape) == 2 and "float" in out.type:
            return out.name
    raise ValueError("the model has no [batch, classes] float output; name one with the 'output' param")


@backend("onnxruntime")
class OnnxRuntimeBackend(Backend):
    """ONNX Runtime's CPU provider: the embedded default, on any machine."""

    Params = OnnxRuntimeParams

    @classmethod
    def check_environment(cls, params: EngineParams) -> str | None:
        modules = (
            ("numpy", "onnxruntime", "onnx")
            if params.model.startswith("builtin:")
            else ("numpy", "onnxruntime")
        )
        missing = Needs("flowgraph[cpu]", modules).problem("inference backend onnxruntime")
        if missing:
            return missing
        if params.device == "cuda":
            return "the onnxruntime backend runs on the CPU here: set device: cpu, or backend: torch"
        return None

    @classmethod
    def load(cls, model: Path, params: Any, engine_index: int, context: Any) -> OrtEngine:
        # the cores this process may use (a CPU shard is pinned to its share), not the machine's
        threads = params.threads or max(1, len(os.sched_getaffinity(0)) // params.engine_num)
        return OrtEngine(model, threads, params.output, context.offload, f"ort[{engine_index}]")
