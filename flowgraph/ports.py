"""A worker's ends of its edges: ``Inbox`` (one input port) and ``Outbox`` (its output ports).

Nodes see these through ``WorkerIO``; only this module touches a ``Channel``'s internals. It also owns
the engine's fast path (``process_each``), the default one-in-one-out loop with the non-suspending
paths of ``Inbox.get`` and ``Outbox.send`` inlined: it must behave exactly like ``Node.run``'s plain
loop, which ``tests/test_ports.py`` checks item for item.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from .channel import EMPTY, END, Channel
from .metrics import NodeMetrics
from .node import SKIP, sample_count, within

__all__ = ["Collector", "Inbox", "Outbox", "process_each"]

_perf = time.perf_counter
_FOREVER = float("inf")


class Collector(Protocol):
    """What ``Inbox.fill`` appends to: a list, or a batch being filled (anything with append and len)."""

    def append(self, item: Any, /) -> None: ...

    def __len__(self) -> int: ...


class Inbox:
    """One worker's view of one input port; tracks the item in hand for error messages."""

    __slots__ = ("_channel", "_m", "current", "partitioned")

    def __init__(self, channel: Channel, metrics: NodeMetrics, partitioned: bool) -> None:
        self._channel = channel
        self._m = metrics
        self.partitioned = partitioned
        self.current: Any = None

    async def get(self) -> Any:
        """The next item, or ``END`` once every upstream producer has finished."""
        channel = self._channel
        self.current = None
        item = channel.get_nowait()
        if item is EMPTY:
            t0 = self._m.wait_begins()
            try:
                item = await channel.get()
            finally:
                self._m.wait_ends(t0)
        if item is END:
            return END
        self.current = item
        m = self._m
        m.items_in += 1
        m.samples_in += sample_count(item)
        return item

    async def get_wanted(self, out: Outbox, start: int = 0) -> tuple[int, Any]:
        """Wait until ``out`` wants an item (``Outbox.wanted``), then take the next input for it: the
        output partition that asked, and the item (``END`` at end of stream). Pull instead of push."""
        self.current = None  # nothing in hand while waiting for demand
        partition = await out.wanted(start=start)
        item = await self.get()
        if item is END:
            out.withdraw(partition)  # a sibling worker may still have an item to answer it with
        return partition, item

    async def get_within(self, seconds: float) -> Any:
        """Like ``get`` but returns ``None`` if nothing arrives within ``seconds`` (for batching deadlines)."""
        if len(self._channel) or self._channel.ended:
            return await self.get()
        try:
            async with asyncio.timeout(seconds):
                return await self.get()
        except TimeoutError:
            return None

    async def fill(self, batch: Collector, limit: int, deadline: float, cut: type | None = None) -> bool:
        """Append items to ``batch`` until it holds ``limit``, ``perf_counter()`` passes ``deadline``,
        the stream ends, or an item of type ``cut`` arrives (taken, not appended: a flush marker).
        A deadline of ``float("inf")`` waits for ``limit`` items or the end.

        The one deadline-batching loop every batcher shares; a past deadline takes only what is queued.
        End of stream is left for the caller's next ``get``, which sees it again. Returns True when a
        ``cut`` item ended the batch."""
        channel = self._channel
        while len(batch) < limit:
            if len(channel) or channel.ended or deadline == _FOREVER:
                item = await self.get()
            else:
                remaining = deadline - _perf()
                if remaining <= 0:
                    return False
                item = await self.get_within(remaining)
                if item is None:
                    return False
            if item is END:
                return False
            if cut is not None and isinstance(item, cut):
                return True
            batch.append(item)
        return False

    def take_ready(self, limit: int) -> list[Any]:
        """Up to ``limit`` items that are already queued, without waiting (for micro-batching)."""
        taken: list[Any] = []
        channel = self._channel
        while len(taken) < limit:
            item = channel.get_nowait()
            if item is EMPTY or item is END:
                break
            taken.append(item)
        if taken:
            self.current = taken[-1]
            self._m.items_in += len(taken)
            self._m.samples_in += sum(sample_count(i) for i in taken)
        return taken

    def __len__(self) -> int:
        return len(self._channel)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        while (item := await self.get()) is not END:
            yield item


class Outbox:
    """One worker's output ports. ``send`` blocks while the downstream queue is full (backpressure)."""

    __slots__ = ("_declared", "_default", "_m", "_ports", "direct", "source")

    def __init__(
        self,
        ports: dict[str, list[list[Channel]]],
        metrics: NodeMetrics,
        source: bool,
        declared: tuple[str, ...] = (),
    ) -> None:
        # ports[name] = one entry per edge; each entry is the target's channels (one per partition)
        self._ports = ports
        self._declared = declared or tuple(ports)
        self._m = metrics
        self.source = source
        self._default = self._declared[0] if len(self._declared) == 1 else None
        only = next(iter(ports.values())) if len(ports) == 1 else None
        self.direct: Channel | None = (
            only[0][0] if only is not None and len(only) == 1 and len(only[0]) == 1 else None
        )
        """The one channel a single-port, single-edge, unpartitioned output feeds: the hot path's target."""

    @property
    def connected(self) -> bool:
        """Whether any output port feeds an edge (a sink's outbox feeds none)."""
        return bool(self._ports)

    async def send(self, item: Any, port: str | None = None, partition: int | None = None) -> None:
        """Put ``item`` on ``port`` (optional when the node has one output port)."""
        name = port or self._default
        if name is None:
            raise ValueError(
                f"node has output ports {list(self._declared)}; send(item, port=...) must name one"
            )
        edges = self._ports.get(name)
        m = self._m
        if edges is None:
            if name not in self._declared:
                raise ValueError(f"no output port {name!r}; ports: {list(self._declared)}")
            m.items_out += 1  # an optional port left unconnected: the item ends here
            return
        for targets in edges:
            channel = (
                targets[0]
                if len(targets) == 1
                else targets[partition if partition is not None else _least_loaded(targets)]
            )
            if len(channel) >= channel.limit:
                t0 = m.wait_begins()
                try:
                    await channel.put(item)
                finally:
                    m.wait_ends(t0, output=True)
            else:
                await channel.put(item)
        m.items_out += 1
        if len(edges) > 1:  # each edge carries the sample on a path of its own (accounting)
            m.copies += (len(edges) - 1) * sample_count(item)
        if self.source:
            m.samples_out += sample_count(item)

    async def wanted(self, port: str | None = None, start: int = 0) -> int:
        """Wait until the edge on ``port`` wants an item, promise it, and return the partition that does.

        Call it before taking your own input: a node that waits here holds nothing, so work stays
        upstream until the next stage asks for it (with ``capacity: 0`` edges, only a reader that is
        already waiting asks). Of several partitions with room the least loaded is chosen, ties going
        to the first from ``start`` (pass a rotating start to share work round-robin). A port that feeds
        no edge (optional, unconnected) or several (``multi``, fan-out) is not pulled from: it returns at
        once and ``send`` alone applies backpressure."""
        targets = self._pull_targets(port)
        if targets is None:  # no single edge to ask
            return 0
        if len(targets) == 1:
            channel = targets[0]
            if not channel.promise():
                t0 = self._m.wait_begins()
                try:
                    await channel.wanted()
                finally:
                    self._m.wait_ends(t0, output=True)
            return 0
        t0 = 0.0
        try:
            while True:
                for channel in targets:
                    channel.raise_if_failed()
                best = _least_loaded(targets, start, with_room=True)
                if best >= 0 and targets[best].promise():
                    return best
                t0 = t0 or self._m.wait_begins()
                fut = asyncio.get_running_loop().create_future()
                for channel in targets:
                    channel.add_wanter(fut)
                try:
                    await fut
                finally:
                    for channel in targets:
                        channel.remove_wanter(fut)
        finally:
            if t0:
                self._m.wait_ends(t0, output=True)

    def withdraw(self, partition: int = 0, port: str | None = None) -> None:
        """Take back a ``wanted()`` promise that this worker will not keep."""
        targets = self._pull_targets(port)
        if targets is not None:
            targets[partition].withdraw()

    def _pull_targets(self, port: str | None) -> list[Channel] | None:
        """The channels (one per partition) behind a port that feeds exactly one edge, else None."""
        name = port or self._default
        if name is None:
            raise ValueError(f"node has output ports {list(self._declared)}; name one")
        edges = self._ports.get(name)
        return edges[0] if edges is not None and len(edges) == 1 else None

    def loads(self, port: str | None = None) -> list[int]:
        """Queued items per partition of the (first) edge on ``port``: a scheduler's view of engine load."""
        name = port or self._default
        if name is None:
            raise ValueError("name the port")
        return [len(c) for c in self._ports[name][0]]


def _least_loaded(channels: list[Channel], start: int = 0, with_room: bool = False) -> int:
    """The partition with the fewest items queued or promised, ties going to the first from ``start``.
    ``with_room``: only one an item fits in now (-1 when none does)."""
    best, best_load, n = -1, 0, len(channels)
    for k in range(start, start + n):
        index = k % n
        channel = channels[index]
        load = len(channel) + channel.promised
        if (not with_room or load < channel.limit) and (best < 0 or load < best_load):
            best, best_load = index, load
    return best


async def process_each(
    inbox: Inbox,
    out: Outbox,
    metrics: NodeMetrics,
    process: Callable[[Any], Awaitable[Any]],
    skip: Callable[[Any, Exception], None] | None,
    timeout: float | None = None,
) -> None:
    """The default one-in-one-out loop: ``process`` each item of ``inbox`` and send what it returns.

    It inlines the non-suspending paths of ``Inbox.get`` and ``Outbox.send`` (an item ready, room
    downstream): two coroutine frames per hop instead of four, which is most of the engine's overhead
    over a hand-written queue chain (bench/engine_overhead.py). ``skip``: record a failed item and go
    on (``on_error: skip``); None lets the error out. Equivalent to ``Node.run``'s plain loop."""
    channel = inbox._channel
    direct = out.direct
    m = metrics
    latency = m.latency
    lat_values, lat_size = latency.values, latency.size
    emits = out.connected
    while True:
        item = channel.get_nowait()
        if item is EMPTY:
            t0 = m.wait_begins()
            try:
                item = await channel.get()
            finally:
                m.wait_ends(t0)
        if item is END:
            break
        inbox.current = item
        m.items_in += 1
        m.samples_in += sample_count(item)
        t0 = _perf()
        try:
            result = await (process(item) if timeout is None else within(timeout, process(item)))
        except Exception as exc:
            if skip is None:
                raise
            skip(item, exc)
            continue
        dt = _perf() - t0
        m.busy_s += dt
        if len(lat_values) < lat_size:  # Reservoir.add, inlined while the reservoir fills
            lat_values.append(dt)
            latency.count += 1
        else:
            latency.add(dt)
        if emits and result is not SKIP:
            if direct is not None and direct.put_nowait(result):
                m.items_out += 1
            else:
                await out.send(result)
    inbox.current = None
