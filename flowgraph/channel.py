"""Bounded async channels: the queues on the graph's edges.

Why not ``asyncio.Queue``: an edge needs three things it lacks. End of stream that every reader sees
once all producers have closed (no sentinel juggling between workers); ``fail()``, which wakes every
blocked reader and writer with the graph's error, so a full queue can never hang a failing graph; and a
high-water mark, to prove that capacity bounds memory. The fast paths (room to put, an item to get)
never suspend.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

from .node import END

__all__ = ["EMPTY", "Channel", "ChannelClosed"]


class _Empty:
    def __repr__(self) -> str:
        return "EMPTY"


EMPTY: Any = _Empty()
"""Returned by ``get_nowait`` when no item is ready (``None`` is a valid item)."""


class ChannelClosed(Exception):
    """Raised by ``put`` on a channel whose every producer already closed it."""


class Channel:
    """A FIFO of at most ``capacity`` items with ``producers`` writers that each close it once."""

    __slots__ = ("_error", "_getters", "_items", "_putters", "capacity", "high_water", "label", "producers")

    def __init__(self, capacity: int, producers: int = 1, label: str = "") -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.producers = producers
        self.label = label
        self.high_water = 0
        self._items: deque[Any] = deque()
        self._getters: deque[asyncio.Future[None]] = deque()
        self._putters: deque[asyncio.Future[None]] = deque()
        self._error: BaseException | None = None

    def __len__(self) -> int:
        return len(self._items)

    @property
    def ended(self) -> bool:
        """True once every producer closed and the last item was taken."""
        return self.producers <= 0 and not self._items

    async def put(self, item: Any) -> None:
        """Append ``item``, waiting while the channel is full."""
        while len(self._items) >= self.capacity:
            if self._error is not None:
                raise self._error
            fut = asyncio.get_running_loop().create_future()
            self._putters.append(fut)
            try:
                await fut
            except BaseException:
                self._abandon(fut, self._putters)
                raise
        if self._error is not None:
            raise self._error
        if self.producers <= 0:
            raise ChannelClosed(f"put on closed channel {self.label}")
        self._items.append(item)
        if len(self._items) > self.high_water:
            self.high_water = len(self._items)
        if self._getters:
            _wake_one(self._getters)

    def put_nowait(self, item: Any) -> bool:
        """Append ``item`` if there is room and return True; False means use ``await put`` (full or failed)."""
        items = self._items
        if len(items) >= self.capacity or self._error is not None or self.producers <= 0:
            return False
        items.append(item)
        if len(items) > self.high_water:
            self.high_water = len(items)
        if self._getters:
            _wake_one(self._getters)
        return True

    async def get(self) -> Any:
        """Take the oldest item, waiting while empty; ``END`` once every producer closed and it is empty."""
        while not self._items:
            if self._error is not None:
                raise self._error
            if self.producers <= 0:
                return END
            fut = asyncio.get_running_loop().create_future()
            self._getters.append(fut)
            try:
                await fut
            except BaseException:
                self._abandon(fut, self._getters)
                raise
        item = self._items.popleft()
        if self._putters:
            _wake_one(self._putters)
        return item

    def get_nowait(self) -> Any:
        """An item if one is ready, ``END`` at end of stream, else ``EMPTY``."""
        if self._items:
            item = self._items.popleft()
            if self._putters:
                _wake_one(self._putters)
            return item
        if self._error is not None:
            raise self._error
        return END if self.producers <= 0 else EMPTY

    def close(self) -> None:
        """One producer is done. When the last one closes, blocked readers see ``END``."""
        self.producers -= 1
        if self.producers <= 0:
            _wake_all(self._getters)

    def fail(self, error: BaseException) -> None:
        """Release every blocked reader and writer with ``error``; later calls raise it too."""
        if self._error is None:
            self._error = error
        _wake_all(self._getters)
        _wake_all(self._putters)

    def _abandon(self, fut: asyncio.Future[None], waiters: deque[asyncio.Future[None]]) -> None:
        """A waiter was cancelled: forget it, and pass on a wake-up that may have been meant for it.
        (The waits are written inline in put/get: a helper coroutine would add a frame to every hop.)"""
        fut.cancel()
        with contextlib.suppress(ValueError):  # already popped by a waker
            waiters.remove(fut)
        if waiters is self._putters and len(self._items) < self.capacity:
            _wake_one(self._putters)
        elif waiters is self._getters and self._items:
            _wake_one(self._getters)


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
