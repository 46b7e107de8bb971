"""Bounded async channels: the queues on the graph's edges.

Why not ``asyncio.Queue``: an edge needs three things it lacks. End of stream that every reader sees
once all producers have closed (no sentinel juggling between workers); ``fail()``, which wakes every
blocked reader and writer with the graph's error, so a full queue can never hang a failing graph; and a
high-water mark, to prove that capacity bounds memory. The fast paths (room to put, an item to get)
never suspend.

Demand (pull). A producer may ``await wanted()`` before it takes its own input: it returns once an item
put now would not wait, and promises that item, so two producers never answer one opening. With
``capacity: 0`` the channel holds no queue at all: only a reader already waiting makes room. A batcher
that waits for demand before sealing therefore forms its batch when the next stage asks for one, not
several batch-times ahead of it (which is what Server latency is made of).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

__all__ = ["EMPTY", "END", "Channel", "ChannelClosed", "Marker"]


class Marker:
    """A named singleton that flows beside items (end of stream, nothing ready, emit nothing)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


END: Any = Marker("END")
"""Returned by ``get`` once every producer of the channel has closed it (``Inbox.get`` passes it on)."""

EMPTY: Any = Marker("EMPTY")
"""Returned by ``get_nowait`` when no item is ready (``None`` is a valid item)."""


class ChannelClosed(Exception):
    """Raised by ``put`` on a channel whose every producer already closed it."""


class Channel:
    """A FIFO of at most ``capacity`` items with ``producers`` writers that each close it once."""

    __slots__ = (
        "_error",
        "_getters",
        "_items",
        "_putters",
        "_wake_pending",
        "_wanters",
        "capacity",
        "high_water",
        "label",
        "limit",
        "producers",
        "promised",
    )

    def __init__(self, capacity: int, producers: int = 1, label: str = "") -> None:
        if capacity < 0:
            raise ValueError("capacity must be 0 (hand-over only) or more")
        self.capacity = capacity
        self.limit = capacity
        """Items the channel may hold right now: ``capacity``, or with capacity 0 the readers waiting."""
        self.promised = 0
        """Items producers promised through ``wanted()`` and have not put yet."""
        self.producers = producers
        self.label = label
        self.high_water = 0
        self._items: deque[Any] = deque()
        self._getters: deque[asyncio.Future[None]] = deque()
        self._putters: deque[asyncio.Future[None]] = deque()
        self._wanters: deque[asyncio.Future[None]] = deque()
        self._error: BaseException | None = None
        self._wake_pending = False

    def __len__(self) -> int:
        return len(self._items)

    @property
    def ended(self) -> bool:
        """True once every producer closed and the last item was taken."""
        return self.producers <= 0 and not self._items

    async def put(self, item: Any) -> None:
        """Append ``item``, waiting while the channel is full."""
        while len(self._items) >= self.limit:
            if self._error is not None:
                raise self._error
            if self.producers <= 0:  # closed while this put waited (a run stopped under its feeder)
                raise ChannelClosed(f"put on closed channel {self.label}")
            await self._wait(self._putters)
        if self._error is not None:
            raise self._error
        if self.producers <= 0:
            raise ChannelClosed(f"put on closed channel {self.label}")
        self._items.append(item)
        if len(self._items) > self.high_water:
            self.high_water = len(self._items)
        if self.promised:
            self.promised -= 1
        if self._getters:
            _wake_one(self._getters)

    def put_nowait(self, item: Any) -> bool:
        """Append ``item`` if there is room and return True; False means use ``await put`` (full or failed)."""
        items = self._items
        if len(items) >= self.limit or self._error is not None or self.producers <= 0:
            return False
        items.append(item)
        if len(items) > self.high_water:
            self.high_water = len(items)
        if self.promised:
            self.promised -= 1
        if self._getters:
            _wake_one(self._getters)
        return True

    def put_threadsafe(self, item: Any, loop: asyncio.AbstractEventLoop) -> bool:
        """From a thread other than ``loop``'s: append ``item`` if there is room and return True. The
        loop is woken only if a reader is waiting, so items put while the readers are busy cost the loop
        nothing until they are taken (a Server's queries arriving while the batcher waits for the GPU).

        Only one thread may put this way on a channel (its room check is then exact: the loop only takes
        items away), and ``capacity`` must be at least 1. False: full, closed or failed."""
        items = self._items
        if len(items) >= self.capacity or self._error is not None or self.producers <= 0:
            return False
        items.append(item)  # atomic; a reader about to wait re-checks after registering (``_wait``)
        if len(items) > self.high_water:
            self.high_water = len(items)
        if self._getters and not self._wake_pending:
            self._wake_pending = True
            loop.call_soon_threadsafe(self._wake_reader)
        return True

    def _wake_reader(self) -> None:
        self._wake_pending = False
        if self._items and self._getters:
            _wake_one(self._getters)

    async def get(self) -> Any:
        """Take the oldest item, waiting while empty; ``END`` once every producer closed and it is empty."""
        while not self._items:
            if self._error is not None:
                raise self._error
            if self.producers <= 0:
                return END
            if not self.capacity:  # a waiting reader is the only room a hand-over channel has
                self.limit += 1
                if self._putters:
                    _wake_one(self._putters)
            if self._wanters:
                _wake_one(self._wanters)
            try:
                await self._wait(self._getters)
            finally:
                if not self.capacity:
                    self.limit -= 1
        return self.get_nowait()  # an item is there now

    def get_nowait(self) -> Any:
        """An item if one is ready, ``END`` at end of stream, else ``EMPTY``."""
        if self._items:
            item = self._items.popleft()
            if self._putters:
                _wake_one(self._putters)
            if self._wanters:
                _wake_one(self._wanters)
            return item
        if self._error is not None:
            raise self._error
        return END if self.producers <= 0 else EMPTY

    def promise(self) -> bool:
        """Promise one item if one put now would not wait (counting earlier promises); else False."""
        if len(self._items) + self.promised < self.limit and self._error is None:
            self.promised += 1
            return True
        return False

    def withdraw(self) -> None:
        """Take back a promise that will not be kept (the producer's input ended): another may answer."""
        if self.promised:
            self.promised -= 1
            if self._wanters:
                _wake_one(self._wanters)

    async def wanted(self) -> None:
        """Wait until this channel wants an item, and promise it (the promise ends with the next put,
        or ``withdraw``).

        A producer calls this before taking its own input, so that it holds nothing while the channel
        is full: what it would have held stays upstream, where a batcher can still add to it."""
        while not self.promise():
            self.raise_if_failed()
            await self._wait(self._wanters)

    def add_wanter(self, fut: asyncio.Future[None]) -> None:
        """Resolve ``fut`` at the next chance of room (for a producer watching several channels)."""
        self._wanters.append(fut)

    def remove_wanter(self, fut: asyncio.Future[None]) -> None:
        with contextlib.suppress(ValueError):
            self._wanters.remove(fut)

    def raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error
        if self.producers <= 0:
            raise ChannelClosed(f"wanted() on closed channel {self.label}")

    def close(self) -> None:
        """One producer is done. When the last one closes, blocked readers see ``END`` and a put still
        waiting for room (a feeder the run was stopped under) raises ``ChannelClosed``."""
        self.producers -= 1
        if self.producers <= 0:
            _wake_all(self._getters)
            _wake_all(self._putters)
            _wake_all(self._wanters)

    def fail(self, error: BaseException) -> None:
        """Release every blocked reader and writer with ``error``; later calls raise it too."""
        if self._error is None:
            self._error = error
        _wake_all(self._getters)
        _wake_all(self._putters)
        _wake_all(self._wanters)

    async def _wait(self, waiters: deque[asyncio.Future[None]]) -> None:
        """Suspend until woken (only on the slow paths: a put or get that can go ahead never calls it)."""
        fut = asyncio.get_running_loop().create_future()
        waiters.append(fut)
        if waiters is self._getters and self._items:
            # Put from another thread after the caller looked and before ``fut`` was registered, so that
            # thread saw no reader to wake: take it now. (``fut`` is still the last waiter: nothing else
            # runs on the loop in between.)
            waiters.pop()
            return
        try:
            await fut
        except BaseException:
            self._abandon(fut, waiters)
            raise

    def _abandon(self, fut: asyncio.Future[None], waiters: deque[asyncio.Future[None]]) -> None:
        """A waiter was cancelled: forget it, and pass on a wake-up that may have been meant for it."""
        fut.cancel()
        with contextlib.suppress(ValueError):  # already popped by a waker
            waiters.remove(fut)
        if waiters is self._putters and len(self._items) < self.limit:
            _wake_one(self._putters)
        elif waiters is self._getters and self._items:
            _wake_one(self._getters)
        elif waiters is self._wanters and len(self._items) + self.promised < self.limit:
            _wake_one(self._wanters)


def _wake_one(waiters: deque[asyncio.Future[None]]) -> None:
    while waiters:
        fut = waiters.popleft()
        if not fut.done():
            fut.set_result(None)
            return


def _wake_all(waiters: deque[asyncio.Future[None]]) -> None:
    while waiters:
        fut = waiters.popleft()
        if not fut.done():
            fut.set_result(None)
