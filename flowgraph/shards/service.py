"""What a shard does with the parent's requests: load samples by index, run index batches, answer.

The same object serves a shard process (``worker``) and a Ray actor (``ray_pool``): each request is one
``await service.handle(op, payload)``. A shard holds two graphs from the cut (``plan.cut_for_shards``):
the loader, run once per load for the indices asked, and the shard graph, started once and fed the loaded
items. Its collected outputs are matched to the waiting requests by sample id.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from ..errors import FlowgraphError, first_failure
from ..graph import Graph, Run
from ..load import load_graph
from ..metrics import Failure
from ..node import sample_keys, sample_of
from ..trust import allow_modules
from ..validate import validate
from .plan import cut_for_shards

__all__ = ["ShardJob", "ShardService"]


@dataclass(frozen=True)
class ShardJob:
    """What every shard of one run is given: the graph and how to answer (all plain, picklable data)."""

    graph_file: str
    overrides: dict[str, Any] = field(default_factory=dict)
    scenario: str | None = None
    begin: str | None = None
    """Where the shard begins (default: the graph's ``shards.begin``); a harness may cut elsewhere
    (LoadGen: where its QSL ends)."""
    answer: str | None = None
    """``module:function(result) -> [(sample_id, value), ...]``: answers sent back as two arrays (ids,
    float32 values, NaN for a sample that failed); None sends the collected results themselves."""
    prepare: str | None = None
    """``module:function(items) -> items``, applied to the samples a load gives before they are kept
    (LoadGen: move them into GPU memory where ``start_from_device`` is set)."""
    cache_dir: str | None = None
    allowed_modules: tuple[str, ...] = ()
    shard_count: int = 1


class ShardService:
    """One shard's graphs and its requests in flight."""

    def __init__(
        self, job: ShardJob, index: int, device: int | None, announce: Callable[[str], None]
    ) -> None:
        self.job, self.index, self.device = job, index, device
        self._announce = announce
        self._start: dict[str, Any] = {"announce": announce}
        if job.cache_dir:
            self._start["cache_dir"] = Path(job.cache_dir)
        self._samples: dict[int, Any] = {}
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._run: Run | None = None
        self._reader: asyncio.Task[None] | None = None
        self._broken: BaseException | None = None
        self._answer: Callable[[Any], Any] | None = None
        self._prepare: Callable[[list[Any]], Any] | None = None

    async def handle(self, op: str, payload: Any) -> Any:
        if self._broken is not None and op != "close":
            raise self._broken
        return await getattr(self, f"_op_{op}")(payload)

    # requests ---------------------------------------------------------------------------------------
    async def _op_start(self, _: Any) -> dict[str, Any]:
        allow_modules(*self.job.allowed_modules)
        # hooks named by the embedding program (not a graph file): no trust check applies
        self._answer = _function(self.job.answer)
        self._prepare = _function(self.job.prepare)
        loaded = load_graph(self.job.graph_file, self.job.overrides, self.job.scenario)
        whole = validate(loaded)
        cut = cut_for_shards(loaded, self.job.begin)
        self._source, self._begin = cut.source, cut.begin
        self._loader = Graph(validate(cut.loader, known=whole.nodes))
        self._graph = Graph(validate(cut.shard, known=whole.nodes))
        async with self._loader.with_params(cut.source, indices=[]).start(**self._start) as opened:
            pass
        dataset = opened.node(cut.source)
        labels = list(getattr(dataset, "labels", []))
        run = self._graph.start(**self._start, on_failure=[self._failed])
        await run.__aenter__()
        self._run = run
        await run.started()
        self._reader = asyncio.create_task(self._read(run), name=f"shard{self.index}:results")
        info: dict[str, Any] = {
            "samples": len(labels),
            "val_map": str(getattr(dataset, "val_map", "") or "") or None,
        }
        return {**info, **_device_info(self.device)}

    async def _op_echo(self, payload: Any) -> Any:
        """The payload back, untouched: a health check, and what ``bench/scale.py transport`` times."""
        return payload

    async def _op_load(self, indices: list[int]) -> int:
        wanted = sorted(set(indices) - self._samples.keys())
        if wanted:
            loader = self._loader.with_params(self._source, indices=wanted, count=None)
            report = await loader.run(**self._start)
            if report.failures:
                raise RuntimeError(f"loading samples failed: {report.failures[0]}")
            items = list(report.results)
            if self._prepare is not None:
                items = list(self._prepare(items))
            for item in items:
                self._samples[cast(int, sample_of(item))] = item
        return len(wanted)

    async def _op_unload(self, indices: list[int]) -> None:
        for index in indices:
            self._samples.pop(index, None)

    async def _op_run(self, payload: tuple[Any, Any, bool]) -> Any:
        """Run samples ``indices`` as ids ``ids``; ``load``: load them first and drop them after (a plain
        run); otherwise they must be loaded (LoadGen's QSL)."""
        ids, indices, load = payload
        ids, indices = [int(i) for i in ids], [int(i) for i in indices]
        if load:
            await self._op_load(indices)
        try:
            results = await self._submit(ids, indices)
        finally:
            if load:
                await self._op_unload(indices)
        if self._answer is None:
            return results
        import numpy as np

        values = np.full(len(ids), np.nan, "<f4")
        answered: dict[int, dict[int, float]] = {}  # per result object: a batch's answers are read once
        for k, (qid, result) in enumerate(zip(ids, results, strict=True)):
            if result is not None:
                pairs = answered.get(id(result))
                if pairs is None:
                    pairs = answered[id(result)] = dict(self._answer(result))
                values[k] = pairs[qid]
        return np.asarray(ids, np.int64), values

    async def _op_warm(self, payload: tuple[int, int]) -> float:
        """``rounds`` full batches of ``size`` (sample 0, negative ids) through the shard graph, before
        any timing; returns the fastest batch's time."""
        rounds, size = payload
        await self._op_load([0])
        fastest = float("inf")
        for r in range(rounds):
            t0 = time.perf_counter()
            await self._submit([-1 - r * size - k for k in range(size)], [0] * size)
            fastest = min(fastest, time.perf_counter() - t0)
        return fastest

    async def _op_tune(self, payload: tuple[str, dict[str, Any]]) -> None:
        assert self._run is not None
        node, values = payload
        self._run.tune(node, **values)

    async def _op_metrics(self, _: Any) -> dict[str, Any]:
        """The shard graph's counters now (``shards.view``: the parent's live view, --metrics and
        Prometheus over every shard)."""
        assert self._run is not None
        runtime = self._run.runtime
        nodes = [m.counters() for m in runtime.metrics]
        return {"nodes": nodes, "queues": runtime.queue_fill(), "before": runtime.queue_before()}

    async def _op_close(self, _: Any) -> Any:
        """End the shard graph and return its report (its results are the parent's already)."""
        run, self._run = self._run, None
        if run is None:
            return None
        with contextlib.suppress(FlowgraphError):  # already sent as the failure of the requests it hit
            await run.__aexit__(None, None, None)
        if self._reader is not None:
            self._reader.cancel()
        report = run.report
        if report is not None:
            report.results = []
        return report

    # the shard graph ----------------------------------------------------------------------------------
    async def _submit(self, ids: list[int], indices: list[int]) -> list[Any]:
        assert self._run is not None, "start the shard first"
        loop = asyncio.get_running_loop()
        futures = []
        for qid, index in zip(ids, indices, strict=True):
            item = self._samples.get(index)
            if item is None:
                raise KeyError(f"sample {index} is not loaded in shard {self.index}")
            if qid != index:
                item = dataclasses.replace(item, sample_id=qid)
            future = self._waiting[qid] = loop.create_future()
            futures.append(future)
            await self._run.submit(item)
        return await asyncio.gather(*futures)

    async def _read(self, run: Run) -> None:
        try:
            async for result in run.results():
                for qid in sample_keys(sample_of(result)):
                    future = self._waiting.pop(cast(int, qid), None)
                    if future is not None and not future.done():
                        future.set_result(result)
            await run.task
        except BaseException as exc:
            self._broken = first_failure(exc) if not isinstance(exc, asyncio.CancelledError) else exc
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(self._broken)
            self._waiting.clear()
            if isinstance(exc, asyncio.CancelledError):
                raise

    def _failed(self, failure: Failure) -> None:
        """A sample failed under ``on_error: skip``: its request gets no answer for it (None)."""
        for qid in sample_keys(failure.sample):
            future = self._waiting.pop(cast(int, qid), None)
            if future is not None and not future.done():
                future.set_result(None)


def _function(ref: str | None) -> Any:
    if not ref:
        return None
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def _device_info(device: int | None) -> dict[str, Any]:
    """Which device this shard really has: the GPU's PCI bus id as CUDA reports it here (the shard sees
    its GPU as device 0), and the pid; for a CPU shard the cores it is pinned to."""
    import os

    if device is None:
        return {"pid": os.getpid(), "cores": sorted(os.sched_getaffinity(0))}
    try:
        import cupy

        return {"pid": os.getpid(), "pci_bus_id": cupy.cuda.Device(0).pci_bus_id}
    except Exception as exc:  # reported, not fatal: the graph itself says whether it can run
        return {"pid": os.getpid(), "pci_bus_id": None, "device_error": f"{type(exc).__name__}: {exc}"}
