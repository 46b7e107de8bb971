"""Queues, worker tasks, end of stream and cancellation: the checked graph, running.

Every worker of every node is a task in one ``asyncio.TaskGroup``. When the last worker of a node
returns, the node's output channels are closed and end of stream flows downstream. When any worker
raises, the error is wrapped in ``NodeFailure`` (node, worker, sample), every channel is failed so no
put or get can stay blocked, the group cancels the rest, teardown runs, and that one exception surfaces.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

from .channel import EMPTY, Channel
from .errors import GraphStopped, NodeFailure
from .metrics import EdgeMetrics, NodeMetrics
from .node import END, SKIP, Node, NodeContext, SampleFailed, sample_count, sample_of
from .validate import CheckedGraph, CheckedNode

__all__ = ["Collector", "Failure", "Feed", "Inbox", "Outbox", "ResultStream", "Runtime"]

_perf = time.perf_counter
_FOREVER = float("inf")


@dataclass(frozen=True, slots=True)
class Failure:
    """A sample that did not complete, and why (recorded under ``on_error: skip``)."""

    node: str
    worker: int
    sample: object | None
    error: str
    samples: int = 1


class Collector(Protocol):
    """What ``Inbox.fill`` appends to: a list, or a batch being filled (anything with append and len)."""

    def append(self, item: Any, /) -> None: ...

    def __len__(self) -> int: ...


class Inbox:
    """One worker's view of one input port; tracks the item in hand for error messages."""

    __slots__ = ("_channel", "_m", "current", "partitioned", "sink")

    def __init__(self, channel: Channel, metrics: NodeMetrics, sink: bool, partitioned: bool) -> None:
        self._channel = channel
        self._m = metrics
        self.sink = sink
        self.partitioned = partitioned
        self.current: Any = None

    async def get(self) -> Any:
        """The next item, or ``END`` once every upstream producer has finished."""
        channel = self._channel
        self.current = None
        item = channel.get_nowait()
        if item is EMPTY:
            t0 = _perf()
            item = await channel.get()
            self._m.wait_in_s += _perf() - t0
        if item is END:
            return END
        self.current = item
        m = self._m
        m.items_in += 1
        if self.sink:
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
            if self.sink:
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
                t0 = _perf()
                await channel.put(item)
                m.wait_out_s += _perf() - t0
            else:
                await channel.put(item)
        m.items_out += 1
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
                t0 = _perf()
                await channel.wanted()
                self._m.wait_out_s += _perf() - t0
            return 0
        t0 = 0.0
        while True:
            for channel in targets:
                channel.raise_if_failed()
            best = _least_loaded(targets, start, with_room=True)
            if best >= 0 and targets[best].promise():
                if t0:
                    self._m.wait_out_s += _perf() - t0
                return best
            t0 = t0 or _perf()
            fut = asyncio.get_running_loop().create_future()
            for channel in targets:
                channel.add_wanter(fut)
            try:
                await fut
            finally:
                for channel in targets:
                    channel.remove_wanter(fut)

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


@dataclass(eq=False)
class _NodeRun:
    spec: CheckedNode
    node: Node
    metrics: NodeMetrics
    inputs: dict[str, list[Channel]] = field(default_factory=dict)
    outputs: dict[str, list[list[Channel]]] = field(default_factory=dict)
    remaining: int = 0
    executor: ThreadPoolExecutor | None = None
    feed: Feed | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    inboxes: list[Inbox] = field(default_factory=list)

    @property
    def wired_through(self) -> bool:
        """An input node whose items go straight into its consumer's queue: it runs no worker."""
        return self.feed is not None and self.feed.through


async def _offload(run: _NodeRun, fn: Callable[..., Any], /, *args: Any) -> Any:
    if run.executor is None:
        run.executor = ThreadPoolExecutor(
            run.node.offload_threads(), thread_name_prefix=f"flowgraph-{run.spec.name}"
        )
    return await asyncio.get_running_loop().run_in_executor(run.executor, fn, *args)


class _WorkerIO:
    """The ``WorkerIO`` a node's ``run`` receives."""

    __slots__ = ("_run", "_runtime", "inbox", "inputs", "out", "worker")

    def __init__(self, runtime: Runtime, run: _NodeRun, worker: int) -> None:
        self._runtime = runtime
        self._run = run
        self.worker = worker
        sink = not run.outputs
        self.inputs: Mapping[str, Inbox] = {
            port: Inbox(
                chs[worker] if run.spec.cls.inputs[port].partitioned else chs[0],
                run.metrics,
                sink,
                run.spec.cls.inputs[port].partitioned,
            )
            for port, chs in run.inputs.items()
        }
        run.inboxes.extend(self.inputs.values())
        # The single input, or None for sources and multi-input nodes (those read ``inputs[port]``).
        self.inbox: Inbox = next(iter(self.inputs.values())) if len(self.inputs) == 1 else cast(Inbox, None)
        self.out = Outbox(
            run.outputs, run.metrics, source=not run.inputs, declared=tuple(run.spec.cls.outputs)
        )

    async def offload(self, fn: Callable[..., Any], /, *args: Any) -> Any:
        return await _offload(self._run, fn, *args)

    async def feed(self) -> AsyncIterator[Any]:
        feed = self._run.feed
        if feed is None:
            raise RuntimeError(f"node '{self._run.spec.name}' is not an external input")
        channel = feed.channel
        m = self._run.metrics
        while True:
            item = channel.get_nowait()
            if item is EMPTY:  # waiting for the embedding program counts as waiting, not as busy
                t0 = _perf()
                item = await channel.get()
                m.wait_in_s += _perf() - t0
            if item is END:
                return
            yield item

    async def deliver(self, item: Any) -> None:
        await self._runtime.results.put(item)


class Runtime:
    """One run of a checked graph. Build it, ``await run()``, then read ``metrics`` and ``failures``."""

    def __init__(
        self,
        graph: CheckedGraph,
        *,
        results_capacity: int = 1024,
        cache_dir: Path | None = None,
        announce: Callable[[str], None] = print,
        on_failure: Iterable[Callable[[Failure], None]] = (),
    ) -> None:
        self.graph = graph
        self.results = ResultStream(results_capacity)
        self.failures: list[Failure] = []
        self.on_failure = list(on_failure)
        self.shared: dict[str, Any] = {}
        self.started = 0.0
        """perf_counter when the workers started (after every node's setup)."""
        self.setup_s = 0.0
        self.finished = 0.0
        self.stopped: GraphStopped | None = None
        self.ready = asyncio.Event()
        """Set once every node's setup has finished and the workers start."""
        self._draining = False
        self._runs: dict[str, _NodeRun] = {}
        params = graph.loaded.spec.params
        cache = cache_dir or Path.home() / ".cache" / "flowgraph"
        for name in graph.topological_order():
            spec = graph.nodes[name]
            ctx = NodeContext(name, spec.workers, params, cache, self.shared, announce)
            node = spec.cls(spec.params, ctx)
            metrics = NodeMetrics(name, spec.cls.kind, spec.workers)
            run = _NodeRun(spec, node, metrics, remaining=spec.workers)
            ctx.offload = functools.partial(_offload, run)
            ctx.on_error = spec.on_error
            ctx.observe = metrics.latency.add
            ctx.report_failure = functools.partial(self._report_failure, run)
            self._runs[name] = run
        self.edges: list[EdgeMetrics] = []
        self._edge_channels: list[tuple[EdgeMetrics, list[Channel]]] = []
        for name, run in self._runs.items():
            for port_name, port in run.spec.cls.inputs.items():
                feeding = [e for e in graph.edges if e.target == name and e.target_port == port_name]
                if not feeding:
                    continue
                capacity = max(e.capacity for e in feeding)
                label = f"{'+'.join(f'{e.source}.{e.source_port}' for e in feeding)} -> {name}.{port_name}"
                parts = run.spec.workers if port.partitioned else 1
                run.inputs[port_name] = [
                    Channel(capacity, producers=len(feeding), label=label) for _ in range(parts)
                ]
                em = EdgeMetrics(label, capacity)
                self.edges.append(em)
                self._edge_channels.append((em, run.inputs[port_name]))
        for edge in graph.edges:
            self._runs[edge.source].outputs.setdefault(edge.source_port, []).append(
                self._runs[edge.target].inputs[edge.target_port]
            )
        for name, run in self._runs.items():
            if getattr(run.spec.cls, "external_input", False):
                through = _through_channel(run)
                if through is None:
                    own = Channel(results_capacity, producers=1, label=f"<submit> -> {name}")
                    run.feed = Feed(own, run.metrics, through=False)
                else:
                    run.feed = Feed(through, run.metrics, through=True)
        self.feeds: dict[str, Feed] = {
            name: run.feed for name, run in self._runs.items() if run.feed is not None
        }
        """Where ``Run.submit`` puts items, by external-input node."""

    # --- public ---------------------------------------------------------------------------------------

    @property
    def nodes(self) -> dict[str, Node]:
        return {name: run.node for name, run in self._runs.items()}

    @property
    def metrics(self) -> list[NodeMetrics]:
        for feed in self.feeds.values():
            feed.settle()
        for em, channels in self._edge_channels:
            em.high_water = max(c.high_water for c in channels)
        return [run.metrics for run in self._runs.values()]

    def sources(self) -> list[str]:
        """Nodes that take no input edges: samples enter the graph there."""
        return [name for name, run in self._runs.items() if not run.inputs]

    def sinks(self) -> list[str]:
        """Nodes whose outputs feed no edge: samples complete there."""
        return [name for name, run in self._runs.items() if not run.outputs]

    def feed(self, node: str | None = None) -> Feed:
        """Where ``Run.submit`` puts items for an external-input node (the only one when not named)."""
        feeds = self.feeds
        if not feeds:
            raise ValueError("this graph has no external input node (type 'input'); it reads its own source")
        if node is None:
            if len(feeds) > 1:
                raise ValueError(f"the graph has several input nodes {list(feeds)}; name one")
            node = next(iter(feeds))
        feed = feeds.get(node)
        if feed is None:
            raise ValueError(f"node {node!r} is not an input node; input nodes: {list(feeds)}")
        return feed

    def in_flight(self) -> dict[str, int]:
        """Items queued before each node plus items its workers hold right now."""
        counts = {}
        for name, run in self._runs.items():
            queued = sum(len(c) for chs in run.inputs.values() for c in chs)
            held = sum(1 for box in run.inboxes if box.current is not None)
            counts[name] = queued + held
        return counts

    def stop(self, drain: bool = True) -> None:
        """Stop the run. ``drain``: sources stop and what is in flight finishes; otherwise cancel everything."""
        if self.stopped is None:
            self.stopped = GraphStopped(self.in_flight())
        self._draining = True
        for run in self._runs.values():
            if drain and run.inputs:
                continue
            if run.feed is not None and run.feed.producers > 0:
                run.feed.close()
            for task in run.tasks:
                task.cancel()

    async def run(self) -> None:
        """Set up every node, run all workers to end of stream, tear down; raise ``NodeFailure`` on error."""
        t_setup = _perf()
        set_up: list[_NodeRun] = []
        error: BaseException | None = None
        try:
            for run in self._runs.values():
                try:
                    await run.node.setup()
                except Exception as exc:
                    raise NodeFailure(run.spec.name, -1, None, exc) from exc
                set_up.append(run)
            self.started = _perf()
            self.setup_s = self.started - t_setup
            loop = asyncio.get_running_loop()
            for feed in self.feeds.values():
                feed.loop = loop
            self.ready.set()
            async with asyncio.TaskGroup() as group:
                for run in self._runs.values():
                    run.metrics.started = _perf()
                    workers = 0 if run.wired_through else run.spec.workers
                    for worker in range(workers):
                        run.tasks.append(
                            group.create_task(self._worker(run, worker), name=f"{run.spec.name}[{worker}]")
                        )
        except BaseExceptionGroup as group_error:
            error = _first_failure(group_error)
        except BaseException as exc:
            error = exc
        finally:
            self.finished = _perf()
            if not self.started:
                self.started = self.finished
            for run in self._runs.values():
                if run.wired_through:  # no worker of its own to time it
                    run.metrics.finished = self.finished
            for run in reversed(set_up):
                try:
                    await run.node.teardown()
                except Exception as exc:  # a teardown error must not hide the run's own error
                    error = error or NodeFailure(run.spec.name, -1, None, exc)
            for run in self._runs.values():
                if run.executor is not None:
                    run.executor.shutdown(wait=True, cancel_futures=True)
            self.results.finish(error if isinstance(error, Exception) else None)
        if error is not None:
            raise error

    # --- internals ------------------------------------------------------------------------------------

    async def _worker(self, run: _NodeRun, worker: int) -> None:
        io = _WorkerIO(self, run, worker)
        node = run.node
        t_alive = _perf()
        try:
            if type(node).run is Node.run and io.inbox is not None:
                await self._process_loop(run, io)
            else:
                await node.run(io)
        except asyncio.CancelledError:
            if not self._draining:
                raise
            # A drain cancels sources; ending them normally lets end of stream flow downstream.
            asyncio.current_task().uncancel()  # type: ignore[union-attr]
        except NodeFailure as exc:
            self._fail_all(exc)
            raise
        except SampleFailed as exc:
            failure = NodeFailure(run.spec.name, worker, exc.sample, exc.error)
            self._fail_all(failure)
            raise failure from exc.error
        except Exception as exc:
            current = next((b.current for b in io.inputs.values() if b.current is not None), None)
            failure = NodeFailure(
                run.spec.name, worker, sample_of(current) if current is not None else None, exc
            )
            self._fail_all(failure)
            raise failure from exc
        finally:
            run.metrics.finished = now = _perf()
            run.metrics.worker_s += now - t_alive
        run.remaining -= 1
        if run.remaining == 0:
            for edges in run.outputs.values():
                for targets in edges:
                    for channel in targets:
                        channel.close()

    async def _process_loop(self, run: _NodeRun, io: _WorkerIO) -> None:
        """The default one-in-one-out loop. It inlines the non-suspending paths of ``Inbox.get`` and
        ``Outbox.send`` (an item ready, room downstream): two coroutine frames per hop instead of four,
        which is most of the engine's overhead over a hand-written queue chain (bench/engine_overhead.py)."""
        inbox, out, m = io.inbox, io.out, run.metrics
        channel = inbox._channel
        direct = out.direct
        sink = inbox.sink
        process = run.node.process
        skip_errors = run.spec.on_error == "skip"
        latency = m.latency
        lat_values, lat_size = latency.values, latency.size
        emits = bool(run.outputs)
        while True:
            item = channel.get_nowait()
            if item is EMPTY:
                t0 = _perf()
                item = await channel.get()
                m.wait_in_s += _perf() - t0
            if item is END:
                break
            inbox.current = item
            m.items_in += 1
            if sink:
                m.samples_in += sample_count(item)
            t0 = _perf()
            try:
                result = await process(item)
            except Exception as exc:
                if not skip_errors:
                    raise
                self._record_failure(run, io.worker, item, exc, item_given=True)
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

    def _report_failure(self, run: _NodeRun, sample: object, error: BaseException) -> None:
        self._record_failure(run, -1, sample, error)

    def _record_failure(
        self, run: _NodeRun, worker: int, item: Any, error: BaseException, item_given: bool = False
    ) -> None:
        sample = sample_of(item) if item_given else item
        count = sample_count(item) if item_given else (len(item) if isinstance(item, list) else 1)
        failure = Failure(run.spec.name, worker, sample, f"{type(error).__name__}: {error}", count)
        run.metrics.failed += count
        self.failures.append(failure)
        for hook in self.on_failure:
            hook(failure)

    def _fail_all(self, error: BaseException) -> None:
        for run in self._runs.values():
            for chs in run.inputs.values():
                for channel in chs:
                    channel.fail(error)
            if run.feed is not None:
                run.feed.channel.fail(error)


def _through_channel(run: _NodeRun) -> Channel | None:
    """The consumer's channel an input node can put into directly (see ``Feed``), or None."""
    edges = [edge for port in run.outputs.values() for edge in port]
    if len(edges) != 1 or len(edges[0]) != 1:  # one edge, into an unpartitioned port
        return None
    channel = edges[0][0]
    return channel if channel.producers == 1 and channel.capacity > 0 else None


def _first_failure(group: BaseExceptionGroup) -> BaseException:
    """The error to surface from a task group: the first NodeFailure, else the first error."""
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    for exc in leaves:
        if isinstance(exc, NodeFailure):
            return exc
    return leaves[0]
