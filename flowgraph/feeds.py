"""Where the embedding program meets a running graph: ``Feed`` (items in) and ``ResultStream`` (out)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from .channel import END, Channel
from .metrics import NodeMetrics
from .node import sample_count

__all__ = ["Feed", "ResultStream"]


class ResultStream:
    """Finished items on their way to the embedding program, bounded to ``capacity`` unread items."""

    def __init__(self, capacity: int) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue()  # bounded by the semaphore, not maxsize,
        self._slots = asyncio.Semaphore(capacity)  # so the end marker always fits
        self._error: BaseException | None = None

    async def put(self, item: Any) -> None:
        await self._slots.acquire()
        self._queue.put_nowait(item)

    def finish(self, error: BaseException | None = None) -> None:
        self._error = error
        self._queue.put_nowait(END)

    async def __aiter__(self) -> AsyncIterator[Any]:
        while True:
            item = await self._queue.get()
            if item is END:
                self._queue.put_nowait(END)  # later readers end too
                if self._error is not None:
                    raise self._error
                return
            self._slots.release()
            yield item


class Feed:
    """Where the embedding program's items enter one input node (``Run.submit`` and friends).

    An input node with one edge, into a port that edge alone feeds, is wired straight through: its
    items go into the consumer's queue (the edge's capacity) and the node runs no worker. Why: that
    worker only moved items from one queue to the next, a task switch per item, and it was always
    waiting, so every item put from another thread woke the loop. Otherwise the node's worker moves
    items from a queue of its own (``through`` False)."""

    __slots__ = ("_metrics", "_thread_items", "_thread_samples", "channel", "loop", "through")

    def __init__(self, channel: Channel, metrics: NodeMetrics, through: bool) -> None:
        self.channel = channel
        self.through = through
        self._metrics = metrics
        self._thread_items = 0  # counted apart: only the putting thread writes these
        self._thread_samples = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        """The run's loop, set when the run starts (``put_threadsafe`` hands wake-ups to it)."""

    @property
    def producers(self) -> int:
        return self.channel.producers

    async def put(self, item: Any) -> None:
        """Put ``item``, waiting while the queue is full."""
        await self.channel.put(item)
        if self.through:
            self._count(item)

    def put_nowait(self, item: Any) -> bool:
        """Put ``item`` if there is room; False: full, closed or failed (then use ``put``)."""
        if not self.channel.put_nowait(item):
            return False
        if self.through:
            self._count(item)
        return True

    def put_threadsafe(self, item: Any) -> bool:
        """From one thread other than the loop's (a server's, LoadGen's): put ``item`` if there is room,
        waking the loop only if a reader waits (``Channel.put_threadsafe``). False: full, closed, or
        failed: hand the item to the loop instead (``loop.call_soon_threadsafe``)."""
        if self.loop is None:
            raise RuntimeError("the run has not started: put_threadsafe needs its event loop")
        if not self.channel.put_threadsafe(item, self.loop):
            return False
        if self.through:
            self._thread_items += 1
            self._thread_samples += sample_count(item)
        return True

    def close(self) -> None:
        self.channel.close()

    def _count(self, item: Any) -> None:
        m = self._metrics
        m.items_out += 1
        m.samples_out += sample_count(item)

    def settle(self) -> None:
        """Fold the counts made on the putting thread into the node's metrics (on the loop)."""
        m = self._metrics
        m.items_out += self._thread_items
        m.samples_out += self._thread_samples
        self._thread_items = self._thread_samples = 0
