"""The shard process: bound to its device, it serves the parent's requests until told to close.

Started with multiprocessing's ``spawn`` (a fresh interpreter: CUDA does not survive ``fork``). The
device is chosen before anything imports CUDA: ``CUDA_VISIBLE_DEVICES`` names the shard's GPU, so the
shard's graph sees it as device 0; a CPU shard is pinned to its share of the cores instead. Ctrl-C is
the parent's to handle (it drains the shards), so a shard ignores SIGINT; if the parent dies, the link
closes and the shard exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from typing import Any

__all__ = ["main"]


def main(path: str, index: int, device: int | None, job: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # a parent inside flowgraph.interrupts blocks SIGTERM in the threads it starts, and a spawned process
    # inherits that mask: unblock it, so that the pool's terminate() works
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    if device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(device)
    else:
        _pin_cores(index, job.shard_count)
    from ..graph import run_event_loop

    run_event_loop(_serve(path, index, device, job))


def _pin_cores(index: int, count: int) -> None:
    """Give CPU shard ``index`` of ``count`` its own slice of the usable cores (shared round-robin when
    there are more shards than cores), so that the shards' thread pools do not all use every core."""
    cores = sorted(os.sched_getaffinity(0))
    if count <= 1 or len(cores) <= 1:
        return
    share = max(1, len(cores) // count)
    start = (index * share) % len(cores)
    os.sched_setaffinity(0, cores[start : start + share] or cores[:share])


async def _serve(path: str, index: int, device: int | None, job: Any) -> None:
    from ..errors import NodeFailure, first_failure
    from .service import ShardService
    from .transport import Link, LinkClosed

    link = await Link.connect(path)
    await link.send(("hello", index, os.getpid()))

    def announce(message: str) -> None:
        print(f"[shard {index}] {message}", file=sys.stderr, flush=True)

    service = ShardService(job, index, device, announce)
    tasks: set[asyncio.Task[None]] = set()

    async def answer(seq: int, op: str, payload: Any) -> None:
        try:
            result = await service.handle(op, payload)
            reply: tuple[Any, ...] = (seq, "ok", result)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # sent to the parent, which fails the run naming this shard
            error = first_failure(exc)
            node = error.node if isinstance(error, NodeFailure) else None
            reply = (seq, "error", {"node": node, "message": f"{type(error).__name__}: {error}"})
        with contextlib.suppress(ConnectionError, RuntimeError):  # the parent has gone: nobody to tell
            await link.send(reply)

    async def cancel_requests() -> None:
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    try:
        while True:
            seq, op, payload = await link.receive()
            if op == "close":
                await cancel_requests()
                await answer(seq, op, payload)
                return
            task = asyncio.create_task(answer(seq, op, payload))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    except LinkClosed:  # the parent went away (or closed after a failure): stop
        await cancel_requests()
        with contextlib.suppress(Exception):
            await service.handle("close", None)
    finally:
        link.close()
