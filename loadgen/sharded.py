"""LoadGen over a sharded graph: LoadGen and the dispatch in the parent, the QSL and the SUT in each shard.

Each shard loads the QSL samples itself (``load_samples`` is sent to every shard), so only indices
cross: a query batch goes out as two int64 arrays (query ids, sample indices) to the shard with the
most free credit, and comes back as ids and float32 classes, answered to LoadGen in one
``QuerySamplesComplete``. LoadGen's thread only appends the list it was given and, if none is on its
way, schedules one drain on the loop: the per-query work in the parent is two attribute reads there.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from flowgraph import Graph, GraphStopped
from flowgraph.errors import first_failure
from flowgraph.shards.pool import ShardPool

from .bridge import complete_queries
from .options import LoadgenOptions

__all__ = ["ShardBridge", "test_sharded", "to_device", "top1_answers"]


def top1_answers(result: Any) -> Iterator[tuple[int, float]]:
    """A shard's answer to LoadGen: (query id, top-1 class) for a ``Prediction`` or ``Predictions``."""
    ids = getattr(result, "sample_ids", None)
    if ids is not None:
        yield from zip(ids, result.top1, strict=True)
    else:
        yield result.sample_id, result.top1


def to_device(images: list[Any]) -> list[Any]:
    """A shard's QSL in its GPU's memory (``start_from_device``), as the one-process QSL keeps it: one
    array, each sample a row, so that a batch is gathered by one take."""
    import cupy
    import numpy as np

    rows = cupy.asarray(np.stack([image.array for image in images]))
    cupy.cuda.runtime.deviceSynchronize()
    return [dataclasses.replace(image, array=rows[k]) for k, image in enumerate(images)]


class ShardBridge:
    """LoadGen's callbacks on one side, the shard pool on the other; every query answered once."""

    def __init__(self, lg: Any, loop: asyncio.AbstractEventLoop, pool: ShardPool, dispatch: int) -> None:
        import numpy as np

        self.lg, self.loop, self.pool, self.dispatch = lg, loop, pool, dispatch
        self._np = np
        self.issued: deque[Any] = deque()  # LoadGen's thread appends lists of queries; the loop drains
        self._drain_scheduled = False
        self._ids: deque[int] = deque()
        self._indices: deque[int] = deque()
        self.outstanding: set[int] = set()
        self.wake = asyncio.Event()
        self.closed = False
        self.failure: BaseException | None = None
        self.answered = 0
        self._sends: set[asyncio.Task[None]] = set()

    # LoadGen's threads ------------------------------------------------------------------------------
    def issue_queries(self, samples: list[Any]) -> None:
        self.issued.append(samples)
        if not self._drain_scheduled:
            self._drain_scheduled = True
            self.loop.call_soon_threadsafe(self._drain)

    def flush_queries(self) -> None:
        pass  # each shard's batcher has its deadline; nothing waits for a flush

    def load_samples(self, indices: list[int]) -> None:
        if self.failure is None:
            with contextlib.suppress(Exception):  # a shard's failure fails the run through the pool
                asyncio.run_coroutine_threadsafe(
                    self.pool.broadcast("load", list(indices)), self.loop
                ).result()

    def unload_samples(self, indices: list[int]) -> None:
        if self.failure is None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(
                    self.pool.broadcast("unload", list(indices)), self.loop
                ).result()

    # the loop --------------------------------------------------------------------------------------
    def _drain(self) -> None:
        self._drain_scheduled = False
        while self.issued:
            samples = self.issued.popleft()
            ids = [q.id for q in samples]
            if self.failure is not None:
                self._answer_empty(ids)
                continue
            self.outstanding.update(ids)
            self._ids.extend(ids)
            self._indices.extend(q.index for q in samples)
        self.wake.set()

    async def pump(self) -> None:
        """Send what LoadGen issued, as batches of at most ``dispatch``, each to the shard with the most
        free credit (waiting for credit: that is the backpressure)."""
        while not (self.closed and not self._ids):
            if not self._ids:
                self.wake.clear()
                await self.wake.wait()
                continue
            n = min(len(self._ids), self.dispatch)
            shard = await self.pool.acquire(n)
            n = min(n, len(self._ids))
            ids = self._np.fromiter((self._ids.popleft() for _ in range(n)), self._np.int64, n)
            indices = self._np.fromiter((self._indices.popleft() for _ in range(n)), self._np.int64, n)
            task = asyncio.create_task(self._send(shard, ids, indices))
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)
        await asyncio.gather(*self._sends, return_exceptions=True)

    async def _send(self, shard: int, ids: Any, indices: Any) -> None:
        try:
            answered_ids, values = await self.pool.request(shard, "run", (ids, indices, False))
        except Exception as exc:
            self.fail(exc)
            return
        finally:
            self.pool.release(shard, len(ids))
        self.complete(answered_ids, values)

    def complete(self, ids: Any, values: Any) -> None:
        np = self._np
        good = ~np.isnan(values)
        if not good.all():  # samples that failed in a shard (on_error: skip): answered empty
            self._answer_empty([int(i) for i in ids[~good]])
            ids, values = ids[good], values[good]
        kept = [int(i) for i in ids if int(i) in self.outstanding]
        if len(kept) != len(ids):
            mask = np.array([int(i) in self.outstanding for i in ids], bool)
            values = values[mask]
        if not kept:
            return
        complete_queries(self.lg, kept, np.ascontiguousarray(values, "<f4"))
        self.outstanding.difference_update(kept)
        self.answered += len(kept)

    def _answer_empty(self, ids: list[int]) -> None:
        if ids:
            self.lg.QuerySamplesComplete([self.lg.QuerySampleResponse(q, 0, 0) for q in ids])
            self.outstanding.difference_update(ids)

    def fail(self, error: BaseException) -> None:
        """A shard failed (or the run was stopped): answer everything outstanding now, later queries at
        once, and send nothing more."""
        if self.failure is None:
            self.failure = error
        self._ids.clear()
        self._indices.clear()
        self._answer_empty(list(self.outstanding))
        self.wake.set()

    def stop(self) -> None:
        if self.failure is None:
            self.fail(GraphStopped({"shards": len(self.outstanding)}))


async def test_sharded(
    lg: Any,
    graph_file: Path,
    overrides: dict[str, Any],
    options: LoadgenOptions,
    loaded: Any,
    split: Any,
    back: Graph,
    settings: Any,
    log_dir: Path,
    announce: Callable[[str], None],
    cache_dir: Path | None,
    control: Any,
) -> tuple[Any, dict[str, Any], Path | None]:
    """The test with LoadGen here and the QSL and SUT in each shard: (None: the shards keep their
    reports, extra figures, val_map)."""
    from flowgraph.shards.plan import resolve_devices
    from flowgraph.shards.run import open_pool, shard_job
    from flowgraph.shards.view import ShardsView

    from .run import log_settings_for, stop_helpers, sut_batching, timed_test, warm_up_and_tune

    shards = loaded.spec.shards
    devices = resolve_devices(shards)
    on_device = bool((loaded.spec.params.get("loadgen") or {}).get("start_from_device", False))
    size, tune = sut_batching(back, split.first_sut_node, options)
    dispatch = max(shards.batch, size)
    job = shard_job(
        graph_file,
        overrides,
        devices,
        scenario=options.scenario,
        begin=split.first_sut_node,
        answer="flowgraph.loadgen.sharded:top1_answers",
        prepare="flowgraph.loadgen.sharded:to_device" if on_device else None,
        cache_dir=str(cache_dir) if cache_dir else None,
    )
    announce(f"{len(devices)} shards on {', '.join('cpu' if d is None else f'GPU {d}' for d in devices)}")
    extra: dict[str, Any] = {"shards": len(devices)}
    async with (
        open_pool(shards, job, devices, shards.credit * dispatch) as pool,
        contextlib.AsyncExitStack() as watched,
    ):
        total = int(pool.infos[0]["samples"])
        val_map = pool.infos[0].get("val_map")
        bridge = ShardBridge(lg, asyncio.get_running_loop(), pool, dispatch)
        if control is not None:  # the CLI's progress lines and watchers read the shards' summed counters
            view = ShardsView(Path(graph_file).stem, control.view_every_s)
            await watched.enter_async_context(view.following(pool))
            control.attach_shards(bridge, view)
        sut = lg.ConstructSUT(bridge.issue_queries, bridge.flush_queries)
        qsl = lg.ConstructQSL(
            total,
            min(total, options.performance_sample_count or 1024),
            bridge.load_samples,
            bridge.unload_samples,
        )
        log_settings, audit = log_settings_for(lg, log_dir, options)
        try:

            async def warm(rounds: int) -> float:  # the slowest shard's fastest batch
                return float(max(await pool.broadcast("warm", (rounds, size))))

            async def tune_wait(wait_us: float) -> None:
                await pool.broadcast("tune", (split.first_sut_node, {"max_wait_us": wait_us}))

            await warm_up_and_tune(
                warm, tune_wait if tune else None, size, options, settings, announce, extra
            )
            async with asyncio.TaskGroup() as helpers:
                pump = helpers.create_task(bridge.pump(), name="loadgen:shard-pump")
                watcher = helpers.create_task(_fail_bridge(pool, bridge), name="loadgen:shard-watch")
                try:
                    await timed_test(lg, (sut, qsl, settings, log_settings, audit), options, extra)
                finally:
                    await stop_helpers(bridge, pump, watcher)
            if bridge.failure is not None:
                raise bridge.failure
        except BaseException as exc:
            error = first_failure(exc)
            (log_dir / "flowgraph_error.txt").write_text(f"{type(error).__name__}: {error}\n")
            raise error from None
        finally:
            lg.DestroyQSL(qsl)
            lg.DestroySUT(sut)
    return None, extra, Path(val_map) if val_map else None


async def _fail_bridge(pool: Any, bridge: ShardBridge) -> None:
    """A shard's failure answers LoadGen at once (its test can then end) and is the run's error."""
    bridge.fail(await pool.wait_failed())
