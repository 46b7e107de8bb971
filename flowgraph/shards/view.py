"""The shards' graphs seen from the parent as one graph: what the live view, ``--metrics`` and the
Prometheus endpoint read for a sharded run.

Every ``every_s`` the parent asks each shard for its counters (the ``metrics`` request) and sums them
per node and per queue: a node's workers, items, samples, busy and waiting seconds over all shards.
Readers get the last snapshot and its time (``now``), so rates are taken between two snapshots, not
between a snapshot and whenever a reader looked.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from ..metrics import NodeMetrics

__all__ = ["ShardsView"]


class ShardsView:
    """Looks like a ``Runtime`` to ``live.Sampler``, ``timeseries.MetricsWriter`` and
    ``monitor.RunCollector``, over the shards of one run."""

    def __init__(self, name: str, every_s: float = 1.0) -> None:
        self.name = name
        self.every_s = every_s
        self._nodes: list[NodeMetrics] = []
        self._queues: dict[str, tuple[int, int]] = {}
        self._before: dict[str, tuple[int, int]] = {}
        self._at = time.perf_counter()
        self.shards = 0

    def now(self) -> float:
        """When the figures were taken."""
        return self._at

    @property
    def metrics(self) -> list[NodeMetrics]:
        return list(self._nodes)

    def live_metrics(self) -> list[NodeMetrics]:
        return list(self._nodes)

    def queue_fill(self) -> dict[str, tuple[int, int]]:
        return dict(self._queues)

    def queue_before(self) -> dict[str, tuple[int, int]]:
        return dict(self._before)

    def update(self, snapshots: list[dict[str, Any]]) -> None:
        """Sum the shards' answers to ``metrics`` per node and per queue."""
        nodes: dict[str, NodeMetrics] = {}
        queues: dict[str, tuple[int, int]] = {}
        before: dict[str, tuple[int, int]] = {}
        for snapshot in snapshots:
            for n in snapshot["nodes"]:
                m = nodes.get(n["name"])
                if m is None:
                    m = nodes[n["name"]] = NodeMetrics(n["name"], n["type"], 0)
                m.add(n)
            for into, key in ((queues, "queues"), (before, "before")):
                for label, (queued, capacity) in snapshot[key].items():
                    q, c = into.get(label, (0, 0))
                    into[label] = (q + queued, c + capacity)
        self._nodes, self._queues, self._before = list(nodes.values()), queues, before
        self._at = time.perf_counter()
        self.shards = len(snapshots)

    @contextlib.asynccontextmanager
    async def following(self, pool: Any) -> AsyncIterator[None]:
        """Keep the view up to date from ``pool`` while the block runs; when it ends (but not when
        cancelled), refresh once more, so the watchers' closing figures are the final ones."""
        task = asyncio.create_task(self.follow(pool), name="flowgraph:shard-view")
        cancelled = False
        try:
            yield
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            if not cancelled:
                await self.last(pool)

    async def follow(self, pool: Any) -> None:
        """Refresh from ``pool`` every ``every_s`` until cancelled, or until a shard cannot answer (the
        run reports that failure itself; the view keeps its last figures)."""
        while True:
            try:
                self.update(await pool.broadcast("metrics"))
            except Exception:
                return
            await asyncio.sleep(self.every_s)

    async def last(self, pool: Any, patience_s: float = 5.0) -> None:
        """One more refresh when the run's work is done, so the watchers' closing figures are the
        final ones, not the last interval's (a short test may fit between two refreshes)."""
        with contextlib.suppress(Exception):
            self.update(await asyncio.wait_for(pool.broadcast("metrics"), patience_s))
