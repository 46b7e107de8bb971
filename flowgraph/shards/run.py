"""``flowgraph run`` of a sharded graph: the parent enumerates the source's samples and sends them, in
index batches, to the shard with the most free credit; each shard loads and runs its batches; the
results come back and the shards' reports are joined into one."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..errors import first_failure
from ..load import load_graph
from ..metrics import Failure
from ..report import Report
from ..spec import ShardSpec
from ..trust import allowed_modules
from ..validate import validate
from .plan import resolve_devices
from .pool import ProcessShardPool, ShardPool
from .service import ShardJob
from .view import ShardsView

__all__ = ["open_pool", "run_sharded", "shard_job"]


def open_pool(shards: ShardSpec, job: ShardJob, devices: list[int | None], credit: int) -> ShardPool:
    """The pool ``shards.runner`` names: processes here, or actors on a Ray cluster."""
    if shards.runner == "ray":
        from .ray_pool import RayShardPool

        return RayShardPool(job, devices, credit, shards.address)
    return ProcessShardPool(job, devices, credit)


def shard_job(
    graph_file: str | Path, overrides: Mapping[str, Any], devices: list[int | None], **more: Any
) -> ShardJob:
    """The job every shard of a run gets (what the trust rule allows here is allowed there too)."""
    return ShardJob(
        graph_file=str(Path(graph_file).resolve()),
        overrides=dict(overrides),
        allowed_modules=tuple(sorted(allowed_modules())),
        shard_count=len(devices),
        **more,
    )


async def run_sharded(
    graph_file: str | Path,
    overrides: Mapping[str, Any] | None = None,
    announce: Callable[[str], None] = print,
    cache_dir: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    stop: asyncio.Event | None = None,
    view: ShardsView | None = None,
) -> Report:
    """Run a graph with ``shards:`` to the end; ``progress(done, total)`` after each batch. Raises
    ``ShardFailure`` (naming the shard, its device and the node) if a shard fails. Setting ``stop``
    drains: no batch is sent after it, the batches in flight finish, and the report says what was
    not run (``stopped``). ``view``: kept up to date with the shards' summed counters while they run."""
    loaded = load_graph(graph_file, overrides)
    validate(loaded)
    assert loaded.spec.shards is not None, "run_sharded runs graphs with a shards: section"
    devices = resolve_devices(loaded.spec.shards)
    batch = loaded.spec.shards.batch
    job = shard_job(graph_file, overrides or {}, devices, cache_dir=str(cache_dir) if cache_dir else None)
    announce(f"{len(devices)} shards on {', '.join('cpu' if d is None else f'GPU {d}' for d in devices)}")
    started = time.perf_counter()
    results: list[Any] = []
    failed: list[Failure] = []
    stopped: dict[str, int] | None = None
    async with open_pool(loaded.spec.shards, job, devices, loaded.spec.shards.credit * batch) as pool:
        total = int(pool.infos[0]["samples"])
        done = 0

        async def one(shard: int, indices: list[int]) -> None:
            nonlocal done
            try:
                answers = await pool.request(shard, "run", (indices, indices, True))
            finally:
                pool.release(shard, len(indices))
            for index, result in zip(indices, answers, strict=True):
                if result is None:
                    failed.append(Failure("shard", shard, index, "failed in the shard (on_error: skip)"))
                else:
                    results.append(result)
            done += len(indices)
            if progress is not None:
                progress(done, total)

        try:
            async with (
                view.following(pool) if view is not None else contextlib.nullcontext(),
                asyncio.TaskGroup() as group,
            ):
                watcher = group.create_task(_raise_on_failure(pool))
                batches = []
                for start in range(0, total, batch):
                    indices = list(range(start, min(start + batch, total)))
                    shard = await pool.acquire(len(indices))
                    if stop is not None and stop.is_set():
                        pool.release(shard, len(indices))
                        stopped = {"not sent": total - start}
                        break
                    batches.append(group.create_task(one(shard, indices)))
                await asyncio.gather(*batches)
                watcher.cancel()
        except BaseExceptionGroup as group_error:
            raise first_failure(group_error) from None
    sent = total - (stopped or {}).get("not sent", 0)
    report = _joined(
        loaded.spec.name or Path(graph_file).stem,
        pool.reports,
        results,
        failed,
        sent,
        time.perf_counter() - started,
    )
    report.stopped = stopped
    report.summaries["shards"] = {
        f"s{i}": {"device": "cpu" if d is None else f"GPU {d}", **info}
        for i, (d, info) in enumerate(zip(devices, pool.infos, strict=True))
    }
    return report


async def _raise_on_failure(pool: ShardPool) -> None:
    raise await pool.wait_failed()


def _joined(
    name: str, reports: list[Any], results: list[Any], failed: list[Failure], sent: int, wall_s: float
) -> Report:
    """One report for the run: each shard's nodes and edges under ``s<i>.``; the samples are counted
    once, by the parent: every sample sent to a shard came back answered or failed."""
    nodes, edges, summaries = [], [], {}
    for index, report in enumerate(reports):
        if report is None:
            continue
        nodes += [{**n, "node": f"s{index}.{n['node']}"} for n in report.nodes]
        edges += [{**e, "edge": f"s{index}.{e.get('edge', '')}"} for e in report.edges]
        summaries.update({f"s{index}.{k}": v for k, v in report.summaries.items()})
        failed = failed + [f for f in report.failures if f not in failed]
    samples = {"entered": sent, "completed": len(results), "failed": sent - len(results), "dropped": 0}
    return Report(name, wall_s, nodes, edges, failed, samples, summaries, results=results)
