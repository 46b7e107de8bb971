"""The ``inference`` node: ``engine_num`` engines, one per worker, each fed its own queue by gpu_schedule.

Why one worker per engine: an engine (a session, an execution context, a captured CUDA graph) runs one
batch at a time, so its worker owns it; the validator enforces workers == engine_num. Core time (inside
the backend) is tallied separately from the node's wall time so the report can tell the model's speed
from the pipeline's.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from flowgraph import END, Node, Port, SampleFailed, WorkerIO, WorkerRule, node_type, sample_of

from ..payloads import Batch, Logits
from .backend import Engine, PipelinedEngine, load_backend
from .pacing import Pacer

__all__ = ["Inference", "InferenceStats", "resolve_model"]

BUILTIN_PREFIX = "builtin:"


class InferenceParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: Literal["onnxruntime", "torch", "tensorrt"] = Field("onnxruntime")
    model: str = Field(
        "builtin:resnet50",
        description="ONNX file, builtin:resnet50[-pruned], or torchvision:resnet50 (torch)",
    )
    engine_num: int = Field(1, ge=1, description="engines (and workers) of this node")
    threads: int | None = Field(
        None, ge=1, description="onnxruntime: intra-op threads per engine (default cores/engines)"
    )
    output: str | None = Field(
        None, description="model output to read (default: the first [batch, classes] float)"
    )
    precision: Literal["fp32", "fp16", "bf16", "int8"] = Field(
        "fp32", description="torch/tensorrt compute precision"
    )
    device: Literal["cpu", "cuda"] = Field("cpu", description="where the engines run")
    cuda_graphs: bool = Field(True, description="torch: capture a CUDA graph per batch size")
    compile: bool = Field(False, description="torch: torch.compile the model first (slow start, faster run)")
    compile_shapes: Literal["auto", "static"] = Field(
        "auto",
        description="torch.compile: 'auto' lets torch specialize the first batch size and share one "
        "dynamic-shape compile among the rest; 'static' compiles every CUDA-graph bucket for its own "
        "size (a compile each at setup)",
    )
    batch_sizes: list[int] = Field(
        default_factory=list, description="torch/tensorrt: batch sizes to prepare ahead"
    )
    batch_step: int = Field(
        0,
        ge=0,
        description="torch: also capture a graph for every multiple of this up to the largest batch size "
        "(0: powers of two only); a partial batch then pads to at most step-1 more images",
    )
    inline_batch: int = Field(
        8,
        ge=0,
        description="torch: batches of up to this many images already on the device launch their CUDA "
        "graph on the event loop (~20 µs) instead of through a thread hand-off",
    )
    spin_wait: int = Field(
        0,
        ge=0,
        description="torch on cuda: batches of up to this many images are waited for by a thread spinning "
        "in the CUDA driver (one core busy while the batch runs, completion noticed sooner) instead of "
        "one sleeping until the GPU's interrupt; 0: always sleep. A busy wait (off the event loop), so off "
        "unless asked: SingleStream p90 was 0.08-0.15 ms lower with 1 on the H100 (bench/RESULTS.md 4i)",
    )
    in_flight: int = Field(
        1,
        ge=1,
        le=4,
        description="batches an engine keeps queued on its device (torch on cuda): with 2 the next batch "
        "is asked for just before the device frees up, so it holds every query that arrived meanwhile "
        "and the device never idles between batches",
    )
    top_k: int = Field(
        0,
        ge=0,
        description="torch: rank inside the CUDA graph and send on each sample's top_k class indices "
        "instead of its scores (no ranking on the event loop); 0: scores. Off in the shipped graphs: "
        "it made compiled LoadGen Offline on the H100 about 20% slower, ranked by torch.topk or by k "
        "rounds of argmax alike (bench/RESULTS.md 4g, 4h)",
    )
    input_format: Literal["uint8_nhwc", "float32_nchw"] = Field(
        "uint8_nhwc", description="torch: the batches' format, for capturing CUDA graphs at setup"
    )
    cache_dir: str | None = Field(None, description="engine / compile caches (default: <cache>/engines)")
    calibration_cache: str | None = Field(None, description="tensorrt int8: calibration cache file")

    @field_validator("top_k")
    @classmethod
    def _ranking_needs_torch(cls, top_k: int, info: ValidationInfo) -> int:
        backend = info.data.get("backend", "onnxruntime")
        if top_k and backend != "torch":
            raise ValueError(
                f"top_k ranks on the device in the torch backend; backend {backend} sends scores "
                "(set top_k: 0, and postprocess ranks them)"
            )
        return top_k


class InferenceStats:
    """Figures the postprocess report reads: images, batches, core seconds, batch sizes."""

    def __init__(self, engine_num: int) -> None:
        self.images = 0
        self.batches = 0
        self.core_s = 0.0
        """Seconds during which at least one engine had a batch in hand (the union, not the sum: summing
        per-engine times and dividing by engine_num overstates throughput when engines do not overlap)."""
        self.active = 0
        self._busy_since = 0.0
        self.max_batch = 0
        self.engine_num = engine_num
        self.precision = "fp32"
        self.backend = ""
        self.device_memory_peak: int | None = None

    def begin(self, now: float) -> None:
        if self.active == 0:
            self._busy_since = now
        self.active += 1

    def end(self, now: float) -> None:
        self.active -= 1
        if self.active == 0:
            self.core_s += now - self._busy_since


def resolve_model(spec: str, cache_dir: Path, announce: Any) -> Path:
    """A model path; ``builtin:resnet50[-pruned]`` is built once into the cache."""
    if spec.startswith("torchvision:"):
        return Path(spec)  # the torch backend builds it; no file
    if not spec.startswith(BUILTIN_PREFIX):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"model {path} not found (set model.path, or use builtin:resnet50)")
        return path
    from .resnet50_onnx import build_resnet50, builtin_model_path

    name = spec[len(BUILTIN_PREFIX) :]
    variants = {"resnet50": "full", "resnet50-pruned": "pruned"}
    if name not in variants:
        raise ValueError(
            f"unknown built-in model {spec!r}; choose builtin:resnet50 or builtin:resnet50-pruned"
        )
    path = builtin_model_path(cache_dir, variants[name])
    if not path.exists():
        announce(f"building {spec} (random He-initialised weights, opset 17) into {path} (once) …")
        t0 = time.perf_counter()
        build_resnet50(path, variants[name])
        announce(f"… done in {time.perf_counter() - t0:.1f} s")
    return path


@node_type("inference")
class Inference(Node):
    """``Batch`` → ``Logits`` on the engine the batch was routed to."""

    Params = InferenceParams
    params: InferenceParams
    inputs: ClassVar = {"in": Port(Batch, partitioned=True, doc="one queue per engine")}
    outputs: ClassVar = {"out": Port(Logits)}
    worker_rule = WorkerRule.equals("engine_num")

    def __init__(self, params: InferenceParams, context: Any) -> None:
        super().__init__(params, context)
        self.engines: list[Engine] = []
        self.stats = InferenceStats(params.engine_num)
        context.shared["inference"] = self.stats

    @classmethod
    def check_environment(cls, params: BaseModel) -> str | None:
        assert isinstance(params, InferenceParams)
        if params.device == "cuda":
            from ..gpu import cuda_problem

            return cuda_problem(f"inference backend {params.backend} on cuda")
        if params.backend == "tensorrt":
            return "the tensorrt backend runs on the GPU only: set device: cuda"
        return None

    async def setup(self) -> None:
        model = await self.offload(
            resolve_model, self.params.model, self.context.cache_dir, self.context.announce
        )
        backend = load_backend(self.params.backend)
        self.stats.backend = self.params.backend
        for index in range(self.params.engine_num):
            self.engines.append(await self.offload(backend.load, model, self.params, index, self.context))
        self.stats.precision = self.engines[0].precision

    def offload_threads(self) -> int:
        # Per engine: one blocked in each in-flight batch's completion wait, one launching the next.
        return self.context.workers * (self.params.in_flight + 1)

    async def run(self, io: WorkerIO) -> None:
        engine = self.engines[io.worker]
        if self.params.in_flight > 1 and hasattr(engine, "launch"):
            await self._run_pipelined(io, engine)  # type: ignore[arg-type]
            return
        stats = self.stats
        async for batch in io.inbox:
            t0 = time.perf_counter()
            stats.begin(t0)
            try:
                scores = await engine.infer(batch)
            finally:
                t1 = time.perf_counter()
                stats.end(t1)
            await self._answer(io, batch, scores, t1 - t0)

    async def _answer(self, io: WorkerIO, batch: Batch, scores: Any, seconds: float) -> None:
        self.context.observe(seconds)
        n = len(batch.sample_ids)
        stats = self.stats
        stats.images += n
        stats.batches += 1
        stats.max_batch = max(stats.max_batch, n)
        if batch.release is not None:
            batch.release()
        if self.params.top_k:
            await io.out.send(Logits(batch.sample_ids, batch.labels, None, batch.t_starts, top=scores))
        else:
            await io.out.send(Logits(batch.sample_ids, batch.labels, scores, batch.t_starts))

    async def _run_pipelined(self, io: WorkerIO, engine: PipelinedEngine) -> None:
        """Keep up to ``in_flight`` batches queued on the device; ask for the next one when the pacer
        says the device is about to free up. Results go on in launch order."""
        pacer, depth = Pacer(), self.params.in_flight
        pending: deque[asyncio.Task[None]] = deque()
        try:
            while True:
                while pending:  # wait for room, and for the moment to ask
                    if pending[0].done():
                        pending.popleft().result()  # raises the batch's failure, if it failed
                        continue
                    delay = pacer.ask_at() - time.perf_counter()
                    if len(pending) < depth and delay <= 0:
                        break
                    await asyncio.wait([pending[0]], timeout=None if len(pending) >= depth else delay)
                    if len(pending) < depth and not pending[0].done():
                        break  # the moment came first
                asked = time.perf_counter()
                batch = await io.inbox.get()
                if batch is END:
                    break
                t0 = time.perf_counter()
                self.stats.begin(t0)
                try:
                    handle = await engine.launch(batch)
                except BaseException:
                    self.stats.end(time.perf_counter())
                    raise
                # The lead counts from the ask even when nothing was waiting then (which overstates it at
                # low load, where asking early costs nothing): counting from the first image's arrival
                # instead gave no better p99 in the simulation (bench/RESULTS.md 4d).
                token = pacer.launched(engine.bucket(len(batch.sample_ids)), asked, time.perf_counter())
                previous = pending[-1] if pending else None
                finish = self._finish(io, engine, (pacer, token), batch, handle, t0, previous)
                pending.append(asyncio.create_task(finish))
            while pending:
                await pending.popleft()
        finally:
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

    async def _finish(
        self,
        io: WorkerIO,
        engine: PipelinedEngine,
        paced: tuple[Pacer, int],
        batch: Batch,
        handle: Any,
        t0: float,
        previous: asyncio.Task[None] | None,
    ) -> None:
        try:
            scores = await engine.collect(handle)
        except Exception as exc:
            raise SampleFailed(sample_of(batch), exc) from exc
        finally:
            t1 = time.perf_counter()
            self.stats.end(t1)
        paced[0].finished(paced[1], t1)
        if previous is not None:
            await previous  # answers leave in launch order (a failure there is raised by the worker)
        await self._answer(io, batch, scores, t1 - t0)

    async def teardown(self) -> None:
        for engine in self.engines:
            peak = getattr(engine, "device_memory_peak", None)
            if peak:
                self.stats.device_memory_peak = max(self.stats.device_memory_peak or 0, peak())
            engine.close()
        self.engines.clear()
