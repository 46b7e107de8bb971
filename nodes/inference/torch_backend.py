"""PyTorch inference: fp16/bf16/fp32, channels_last, cudnn autotuning, CUDA graphs per batch-size
bucket, optional torch.compile, each engine on its own CuPy stream.

Why these choices (measured on the H100, FACTS.md): a captured CUDA graph runs ResNet50 at bs 8 five
times faster than eager (launch overhead); torch.compile's default mode adds 1.8x at bs 256 for a 15 s
compile; channels_last is what cuDNN's fp16 kernels want. The engine's stream is a CuPy stream seen by
torch as an ``ExternalStream``, so copies (memory_copy) and compute overlap across engines, and GPU
completion reaches asyncio through ``gpu.stream_done`` (an event waited on in a thread, or a host
callback): the loop never blocks. ``launch`` and ``collect`` apart let the inference node keep two
batches on the stream (``in_flight``).

Inputs: a ``Batch`` whose array is host numpy or a device array (CuPy, torch), either uint8 NHWC
(normalized here, on the device: MLPERF means, no std) or float32 NCHW/NHWC already normalized.
The normalization is captured into the CUDA graph with the model. Output: float32 scores [N, classes],
or with ``top_k`` the class indices [N, k] (int32, best first), ranked inside the graph too.
The engines of one node share one model (``torch_model.shared_module``): one set of weights, one compile.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import ConfigDict, Field, field_validator

from flowgraph import DependencyMissing, Needs

from ..preprocess import MLPERF_MEANS
from .backend import Backend, EngineParams, backend
from .torch_model import bucket_for, graph_sizes, load_module, shared_module

__all__ = ["TorchBackend", "TorchEngine", "TorchParams", "bucket_for", "graph_sizes", "load_module"]

# Re-exported: the model side of the backend lives in torch_model (loading, sharing, graph sizes).


class TorchParams(EngineParams):
    model_config = ConfigDict(title="backend torch")

    backend: Literal["torch"] = "torch"
    cuda_graphs: bool = Field(True, description="capture a CUDA graph per batch size")
    compile: bool = Field(False, description="torch.compile the model first (slow start, faster run)")
    compile_shapes: Literal["auto", "static"] = Field(
        "auto",
        description="torch.compile: 'auto' lets torch specialize the first batch size and share one "
        "dynamic-shape compile among the rest; 'static' compiles every CUDA-graph bucket for its own "
        "size (a compile each at setup)",
    )
    batch_sizes: list[int] = Field(default_factory=list, description="batch sizes to prepare ahead")
    batch_step: int = Field(
        0,
        ge=0,
        description="also capture a graph for every multiple of this up to the largest batch size "
        "(0: powers of two only); a partial batch then pads to at most step-1 more images",
    )
    inline_batch: int = Field(
        8,
        ge=0,
        description="batches of up to this many images already on the device launch their CUDA graph "
        "on the event loop (~20 µs) instead of through a thread hand-off",
    )
    spin_wait: int = Field(
        0,
        ge=0,
        description="on cuda: batches of up to this many images are waited for by a thread spinning "
        "in the CUDA driver (one core busy while the batch runs, completion noticed sooner) instead of "
        "one sleeping until the GPU's interrupt; 0: always sleep. A busy wait (off the event loop), so off "
        "unless asked: SingleStream p90 was 0.08-0.15 ms lower with 1 on the H100 (bench/RESULTS.md 4i)",
    )
    top_k: int = Field(
        0,
        ge=0,
        description="rank inside the CUDA graph and send on each sample's top_k class indices instead "
        "of its scores (no ranking on the event loop); 0: scores. Off in the shipped graphs: it made "
        "compiled LoadGen Offline on the H100 about 20% slower, ranked by torch.topk or by k rounds of "
        "argmax alike (bench/RESULTS.md 4g, 4h)",
    )
    input_format: Literal["uint8_nhwc", "float32_nchw"] = Field(
        "uint8_nhwc", description="the batches' format, for capturing CUDA graphs at setup"
    )
    cache_dir: str | None = Field(None, description="compile caches (default: <cache>/engines)")

    @field_validator("precision")
    @classmethod
    def _no_int8(cls, precision: str) -> str:
        if precision == "int8":
            raise ValueError("the torch backend runs fp32, fp16 or bf16; int8 needs backend: tensorrt")
        return precision


class TorchEngine:
    """One model instance on one stream; ``infer`` is awaited by one inference worker at a time."""

    def __init__(self, model: Path | str, params: Any, engine_index: int, context: Any) -> None:
        try:
            import torch
        except ImportError as exc:
            raise DependencyMissing("the torch backend needs PyTorch: pip install 'flowgraph[gpu]'") from exc
        self.torch = torch
        self.name = f"torch[{engine_index}]"
        self.precision = params.precision
        self.cuda = params.device == "cuda"
        self.device = torch.device("cuda" if self.cuda else "cpu")
        if not self.cuda and params.threads:
            torch.set_num_threads(params.threads)  # process-wide: torch has no per-module thread count
        self.dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[params.precision]
        self.use_graphs = self.cuda and params.cuda_graphs
        self.sizes = graph_sizes(params.batch_sizes, params.batch_step)
        self._offload = context.offload
        self.inline_batch = params.inline_batch
        self.spin_wait = params.spin_wait
        self.top_k = params.top_k
        self.compile_s = 0.0
        if self.cuda:
            from ..gpu import new_stream

            torch.backends.cudnn.benchmark = True  # autotune conv algorithms per shape
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            self.cupy_stream = new_stream()
            self.stream = torch.cuda.ExternalStream(self.cupy_stream.ptr)
            self._default_stream = torch.cuda.default_stream(self.device)
        self.module, self.shared = shared_module(model, params, self.device, self.dtype, self.sizes)
        if params.compile:
            cache = Path(params.cache_dir or context.cache_dir / "engines") / "inductor"
            os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache))  # compiled kernels survive restarts
        self.mean = torch.tensor(MLPERF_MEANS, device=self.device, dtype=self.dtype).view(1, 3, 1, 1)
        self.graphs: dict[tuple[int, Any, tuple[int, ...]], tuple[Any, Any, Any, Any]] = {}
        self.pool = torch.cuda.graph_pool_handle() if self.use_graphs else None
        # Pinned result buffers, reused (pinning memory per batch costs milliseconds): one per batch that
        # may be in flight, so a queued batch's result never lands on one not yet read.
        self._host_out: list[Any] = [None] * params.in_flight
        self._host_views: list[Any] = [None] * params.in_flight  # their numpy views
        self._torch_dtypes: dict[Any, Any] = {}
        self._launches = 0
        if self.use_graphs and self.sizes:  # capture now, not on the first batches of the run
            shape, dtype = (
                ((224, 224, 3), np.uint8)
                if params.input_format == "uint8_nhwc"
                else ((3, 224, 224), np.float32)
            )
            self.prepare(np.zeros((1, *shape), dtype))

    # -- input -------------------------------------------------------------------------------------
    def _as_tensor(self, array: Any) -> Any:
        torch = self.torch
        if isinstance(array, torch.Tensor):
            return array.to(self.device, non_blocking=True)
        if type(array).__module__.startswith("cupy"):
            return torch.from_dlpack(array)
        return torch.from_numpy(array).to(self.device, non_blocking=True)

    def _normalize(self, x: Any) -> Any:
        """uint8 NHWC → dtype NCHW (channels_last memory) minus means; float input → dtype, channels_last."""
        torch = self.torch
        if x.dtype == torch.uint8:
            x = x.permute(0, 3, 1, 2).to(self.dtype) - self.mean  # permuted NHWC is channels_last already
        else:
            if x.shape[-1] == 3 and x.shape[1] != 3:
                x = x.permute(0, 3, 1, 2)
            x = x.to(self.dtype)
        return x.contiguous(memory_format=torch.channels_last) if self.cuda else x

    def _forward(self, x: Any) -> Any:
        scores = self.module(self._normalize(x)).float()
        return self._rank_top(scores) if self.top_k else scores

    def _rank_top(self, scores: Any) -> Any:
        """[N, k] int32 class indices, best first, ties to the lower index: postprocess's ``rank_top``,
        on the device and captured into the CUDA graph with the model.

        Why not ``torch.topk``: with it, compiled LoadGen Offline on the H100 ran 15-22% slower
        (bench/RESULTS.md 4g); k rounds of argmax are 2k small kernels whatever the batch size, but
        cost the same there (4h), so the ranking kernel is not what slows top_k down."""
        torch = self.torch
        work = scores.clone()
        picks = []
        for _ in range(min(self.top_k, work.shape[1])):
            best = work.argmax(dim=1, keepdim=True)
            picks.append(best)
            work.scatter_(1, best, float("-inf"))
        return torch.cat(picks, dim=1).to(torch.int32)

    # -- CUDA graphs -------------------------------------------------------------------------------
    def graph_for(self, n: int, dtype: Any, item_shape: tuple[int, ...]) -> tuple[Any, Any, Any, Any]:
        """(graph, static input, static output, the input as a CuPy array) for ``n`` inputs: the smallest
        captured bucket that holds them, captured now if there is none."""
        torch = self.torch
        size = bucket_for(n, self.sizes)
        key = (size, dtype, item_shape)
        if key not in self.graphs:
            static_in = torch.zeros((size, *item_shape), dtype=dtype, device=self.device)
            t0 = time.perf_counter()
            with torch.cuda.stream(self.stream):
                for _ in range(3):  # warm up: cudnn autotuning and lazy init happen outside the capture
                    self._forward(static_in)
                self.stream.synchronize()
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, pool=self.pool, stream=self.stream):
                    static_out = self._forward(static_in)
            self.stream.synchronize()
            self.compile_s += time.perf_counter() - t0
            import cupy

            # Made once: a CuPy view of a torch tensor is cheap to use and slow-ish to make.
            self.graphs[key] = (graph, static_in, static_out, cupy.from_dlpack(static_in.detach()))
        return self.graphs[key]

    def prepare(self, example: Any) -> None:
        """Capture graphs for every configured batch size ahead of the run (``batch_sizes`` param)."""
        if not self.use_graphs:
            return
        x = self._as_tensor(example)
        for size in sorted(self.sizes, reverse=True):  # largest first: smaller graphs reuse its pool
            self.graph_for(size, x.dtype, tuple(x.shape[1:]))
        if not self.graphs:
            return
        _, _, out, _ = self.graphs[max(self.graphs, key=lambda key: key[0])]
        # Pin the result buffers now too (milliseconds each, stalling CUDA calls meanwhile), not on the
        # run's first launches: one per batch in flight, sized for the largest graph's output.
        self._host_out = [
            self.torch.empty(out.shape, dtype=out.dtype, pin_memory=True) for _ in self._host_out
        ]
        self._host_views = [buffer.numpy() for buffer in self._host_out]

    # -- running -----------------------------------------------------------------------------------
    def _launch(self, batch: Any) -> Any:
        """Queue the batch's work on the stream and return where its scores will land on the host.

        On the loop for a small batch, in the node's thread otherwise (eager launches cost ms of CPU).
        With CUDA graphs the input goes straight into the graph's static input and the result straight
        into a pinned buffer, through CuPy on the engine's stream: the torch stream context manager,
        ``from_dlpack`` and torch's ``copy_`` cost ~0.25 ms of the loop per bs-1 query on the H100's host
        under cProfile (bench/RESULTS.md 4i), more than the rest of the launch together."""
        torch = self.torch
        if not self.cuda:
            with torch.inference_mode():
                return self._forward(self._as_tensor(batch.array)).numpy()
        if not self.use_graphs:
            with torch.inference_mode(), torch.cuda.stream(self.stream), self.cupy_stream:
                self._wait_ready(batch)
                return self._to_host(self._forward(self._as_tensor(batch.array)))
        n = len(batch.sample_ids)
        graph, static_in, static_out, as_cupy = self.graph_for(n, *self._input_key(batch))
        with self.cupy_stream:
            # The thread's current torch stream, set directly: replay launches on it.
            torch.cuda.set_stream(self.stream)
            try:
                self._wait_ready(batch)
                self._fill(batch, static_in[:n], as_cupy[:n])
                graph.replay()
                return self._to_host(static_out[:n])
            finally:
                torch.cuda.set_stream(self._default_stream)

    def _wait_ready(self, batch: Any) -> None:
        ready = batch.ready
        if ready is None:
            return
        if isinstance(ready, self.torch.cuda.Event):
            self.stream.wait_event(ready)
        else:
            self.cupy_stream.wait_event(ready)

    def _input_key(self, batch: Any) -> tuple[Any, tuple[int, ...]]:
        """(torch dtype, one image's shape) of the batch: which graph takes it."""
        first = batch.array[0]
        dtype = first.dtype
        if not isinstance(dtype, self.torch.dtype):
            dtype = self._torch_dtypes.get(dtype)
            if dtype is None:
                dtype = self._torch_dtypes[first.dtype] = self.torch.from_numpy(
                    np.empty(0, first.dtype)
                ).dtype
        return dtype, tuple(first.shape)

    def _fill(self, batch: Any, static_in: Any, as_cupy: Any) -> None:
        """Put the batch into the graph's input (``static_in`` as torch, ``as_cupy`` the same memory)."""
        torch = self.torch
        array = batch.array
        if isinstance(array, torch.Tensor):
            static_in.copy_(array)
        elif type(array).__module__.startswith("cupy"):
            if array.flags.c_contiguous and array.dtype == as_cupy.dtype and array.shape == as_cupy.shape:
                as_cupy.data.copy_from_device_async(array.data, array.nbytes, self.cupy_stream)
            else:
                as_cupy[...] = array
        else:  # host memory: one host→device copy into the graph's input
            as_cupy.set(np.ascontiguousarray(array), stream=self.cupy_stream)

    def _to_host(self, out: Any) -> Any:
        """Queue device→host of ``out`` into the next pinned buffer; its numpy view (read once done)."""
        import cupy

        n = len(out)
        slot = self._launches % len(self._host_out)
        self._launches += 1
        buffer = self._host_out[slot]
        if (
            buffer is None
            or buffer.shape[0] < n
            or buffer.shape[1:] != out.shape[1:]
            or buffer.dtype != out.dtype
        ):
            buffer = self._host_out[slot] = self.torch.empty(
                (max(n, *self.sizes, 1), *out.shape[1:]), dtype=out.dtype, pin_memory=True
            )
            self._host_views[slot] = buffer.numpy()
        out = out.contiguous()
        nbytes = out.numel() * out.element_size()
        cupy.cuda.runtime.memcpyAsync(
            buffer.data_ptr(),
            out.data_ptr(),
            nbytes,
            cupy.cuda.runtime.memcpyDeviceToHost,
            self.cupy_stream.ptr,
        )
        return self._host_views[slot][:n]

    def bucket(self, n: int) -> int:
        return bucket_for(n, self.sizes) if self.use_graphs else n

    def _launches_inline(self, batch: Any) -> bool:
        """A small batch replaying a captured graph launches in tens of µs: cheaper on the loop than a
        thread hand-off (~80 µs round trip), which is what SingleStream latency is made of. A host array
        is copied from the loop only while small."""
        n = len(batch.sample_ids)
        if not self.use_graphs or n > self.inline_batch or not any(key[0] >= n for key in self.graphs):
            return False
        from ..gpu import INLINE_BYTES, on_device

        return on_device(batch.array) or batch.array.nbytes <= INLINE_BYTES

    async def launch(self, batch: Any) -> Any:
        """Queue the batch on the engine's stream; the handle is collected by ``collect``."""
        inline = self._launches_inline(batch)
        result = self._launch(batch) if inline else await self._offload(self._launch, batch)
        if not self.cuda:
            return result, None
        from ..gpu import stream_done

        # Waiting starts now, as a task: a handle dropped unread (a failure elsewhere cancelled its
        # collect) then leaves no never-awaited coroutine behind.
        spin = len(batch.sample_ids) <= self.spin_wait
        return result, asyncio.ensure_future(stream_done(self.cupy_stream, self._offload, spin))

    async def collect(self, handle: Any) -> Any:
        result, done = handle
        if done is None:
            return result
        await done  # the copy to host has landed; the loop never blocked
        return result.copy()  # the pinned buffer is reused by a later batch of this engine

    def device_memory_peak(self) -> int:
        return int(self.torch.cuda.max_memory_allocated()) if self.cuda else 0

    def close(self) -> None:
        if self.cuda:
            self.stream.synchronize()
        self.graphs.clear()
        self._host_out = [None] * len(self._host_out)
        self._host_views = [None] * len(self._host_views)


@backend("torch")
class TorchBackend(Backend):
    """PyTorch on the GPU (CUDA graphs, fp16, torch.compile) or, for tests, on the CPU."""

    Params = TorchParams

    @classmethod
    def check_environment(cls, params: EngineParams) -> str | None:
        # The GPU first: on a machine without one, that is the problem to report, installed torch or not.
        gpu = super().check_environment(params)
        return gpu or Needs("flowgraph[gpu]", ("numpy", "torch")).problem("inference backend torch")

    @classmethod
    def load(cls, model: Path, params: Any, engine_index: int, context: Any) -> TorchEngine:
        return TorchEngine(model, params, engine_index, context)
