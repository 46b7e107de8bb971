"""The ``inference`` node: ``engine_num`` engines, one per worker, each fed its own queue by gpu_schedule.

Why one worker per engine: an engine (a session, an execution context, a captured CUDA graph) runs one
batch at a time, so its worker owns it; the validator enforces workers == engine_num. Which engine runs
a batch is the partition of the edge it arrived on, nothing in the batch. Every backend meets one
contract (``backend.Engine``: launch, collect) and runs in one loop, which keeps up to ``in_flight``
batches launched. Core time (inside the backend) is tallied separately from the node's wall time so
the report can tell the model's speed from the pipeline's.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

from flowgraph import END, Follows, Node, Port, SampleFailed, WorkerIO, WorkerRule, node_type, sample_of
from flowgraph.errors import first_failure

from ..payloads import Batch, Logits
from .backend import Engine, EngineParams, all_backends, backend_names, resolve_backend
from .pacing import Pacer

__all__ = ["Inference", "InferenceStats", "resolve_model"]

BUILTIN_PREFIX = "builtin:"


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
    """``Batch`` → ``Logits`` on the engine of the partition the batch came in on.

    Its params are the chosen backend's model (``backend: torch`` → ``TorchParams``); ``Params`` lists
    the ones every backend shares."""

    Params = EngineParams
    params: EngineParams
    inputs: ClassVar = {"in": Port(Batch, partitioned=True, doc="one queue per engine")}
    outputs: ClassVar = {"out": Port(Logits)}
    worker_rule = WorkerRule.equals("engine_num")
    follows = (Follows("batch_sizes", source="max_batch"),)  # backends that prepare batch sizes ahead

    def __init__(self, params: EngineParams, context: Any) -> None:
        super().__init__(params, context)
        self.engines: list[Engine] = []
        self.stats = InferenceStats(params.engine_num)
        context.shared["inference"] = self.stats

    @classmethod
    def params_model(cls, params: Mapping[str, Any]) -> type[BaseModel]:
        name = params.get("backend", EngineParams.model_fields["backend"].default)
        if not isinstance(name, str):
            raise ValueError(f"backend must be a name ({', '.join(backend_names())}), got {name!r}")
        return resolve_backend(name).Params

    @classmethod
    def params_variants(cls) -> Mapping[str, type[BaseModel]]:
        return {f"backend: {name}": b.Params for name, b in all_backends().items()}

    @classmethod
    def check_environment(cls, params: BaseModel) -> str | None:
        assert isinstance(params, EngineParams)
        return resolve_backend(params.backend).check_environment(params)

    async def setup(self) -> None:
        model = await self.offload(
            resolve_model, self.params.model, self.context.cache_dir, self.context.announce
        )
        backend = resolve_backend(self.params.backend)
        self.stats.backend = self.params.backend
        for index in range(self.params.engine_num):
            self.engines.append(await self.offload(backend.load, model, self.params, index, self.context))
        self.stats.precision = self.engines[0].precision

    def offload_threads(self) -> int:
        # Per engine: one blocked in each in-flight batch's completion wait, one launching the next.
        return self.context.workers * (self.params.in_flight + 1)

    async def run(self, io: WorkerIO) -> None:
        """Keep up to ``in_flight`` batches launched on this worker's engine; ask for the next one when
        the pacer says the device is about to free up. Results go on in launch order. With
        ``in_flight: 1`` this is launch, collect, answer, one batch at a time."""
        engine = self.engines[io.worker]
        try:
            # Each launched batch is finished (collected, answered) by a task of this group: a failed
            # batch cancels the rest, and leaving the group waits for every batch still in flight.
            async with asyncio.TaskGroup() as batches:
                await self._launch_loop(io, engine, batches)
        except BaseExceptionGroup as group:
            raise first_failure(group) from None  # the batch's own SampleFailed, as the runtime expects

    async def _launch_loop(self, io: WorkerIO, engine: Engine, batches: asyncio.TaskGroup) -> None:
        pacer, depth = Pacer(), self.params.in_flight
        pending: deque[asyncio.Task[None]] = deque()
        while True:
            while pending:  # wait for room, and for the moment to ask
                if pending[0].done():
                    pending.popleft()
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
                return
            t0 = time.perf_counter()
            self.stats.begin(t0)
            try:
                handle = await engine.launch(batch)
            except BaseException:
                self.stats.end(time.perf_counter())
                raise
            # The lead counts from the ask even when nothing was waiting then (which overstates it at low
            # load, where asking early costs nothing): counting from the first image's arrival instead
            # gave no better p99 in the simulation (bench/RESULTS.md 4d).
            token = pacer.launched(engine.bucket(len(batch.sample_ids)), asked, time.perf_counter())
            previous = pending[-1] if pending else None
            finish = self._finish(io, engine, (pacer, token), batch, handle, t0, previous)
            pending.append(batches.create_task(finish, name=f"{self.context.name}[{io.worker}] batch"))

    async def _finish(
        self,
        io: WorkerIO,
        engine: Engine,
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
        self.context.observe(t1 - t0)
        n = len(batch.sample_ids)
        stats = self.stats
        stats.images += n
        stats.batches += 1
        stats.max_batch = max(stats.max_batch, n)
        if getattr(self.params, "top_k", 0):
            await io.out.send(Logits(batch.sample_ids, batch.labels, None, batch.t_starts, top=scores))
        else:
            await io.out.send(Logits(batch.sample_ids, batch.labels, scores, batch.t_starts))

    async def teardown(self) -> None:
        for engine in self.engines:
            peak = getattr(engine, "device_memory_peak", None)
            if peak:
                self.stats.device_memory_peak = max(self.stats.device_memory_peak or 0, peak())
            engine.close()
        self.engines.clear()
