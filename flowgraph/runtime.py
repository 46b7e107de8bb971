"""Worker tasks, end of stream and cancellation: a wired graph (``build.wire``), running.

Every worker of every node is a task in one ``asyncio.TaskGroup``. When the last worker of a node
returns, the node's output channels are closed and end of stream flows downstream. When any worker
raises, the error is wrapped in ``NodeFailure`` (node, worker, sample), every channel is failed so no
put or get can stay blocked, the group cancels the rest, teardown runs, and that one exception surfaces.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, cast

from .build import NodeRun, wire
from .channel import EMPTY, END
from .errors import GraphStopped, NodeFailure, first_failure
from .feeds import Feed, ResultStream
from .metrics import EdgeMetrics, Failure, NodeMetrics
from .node import Node, SampleFailed, sample_count, sample_of
from .ports import Inbox, Outbox, process_each
from .validate import CheckedGraph

__all__ = ["Runtime"]

_perf = time.perf_counter

STOP_PATIENCE_S = 5.0
"""How long a stopped or failed run waits for node threads still inside a call before naming them."""


class _WorkerIO:
    """The ``WorkerIO`` a node's ``run`` receives."""

    __slots__ = ("_run", "_runtime", "inbox", "inputs", "out", "worker")

    def __init__(self, runtime: Runtime, run: NodeRun, worker: int) -> None:
        self._runtime = runtime
        self._run = run
        self.worker = worker
        self.inputs: Mapping[str, Inbox] = {
            port: Inbox(
                chs[worker] if run.spec.cls.inputs[port].partitioned else chs[0],
                run.metrics,
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
        return await self._run.offload(fn, *args)

    async def feed(self) -> AsyncIterator[Any]:
        feed = self._run.feed
        if feed is None:
            raise RuntimeError(f"node '{self._run.spec.name}' is not an external input")
        channel = feed.channel
        m = self._run.metrics
        while True:
            item = channel.get_nowait()
            if item is EMPTY:  # waiting for the embedding program counts as waiting, not as busy
                t0 = m.wait_begins()
                try:
                    item = await channel.get()
                finally:
                    m.wait_ends(t0)
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
        fast_path: bool = True,
    ) -> None:
        """``fast_path``: run one-in-one-out nodes through ``ports.process_each`` (False: ``Node.run``'s
        plain loop, which behaves the same, item for item; for tests and comparisons)."""
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
        self.fast_path = fast_path
        self.announce = announce
        wiring = wire(
            graph,
            cache_dir=cache_dir or Path.home() / ".cache" / "flowgraph",
            announce=announce,
            shared=self.shared,
            feed_capacity=results_capacity,
        )
        self._runs = wiring.runs
        for run in self._runs.values():
            run.node.context.report_failure = functools.partial(self._report_failure, run)
            run.node.context.skip_item = functools.partial(self._skip, run, -1)
        self._edge_channels = wiring.edges
        self.edges: list[EdgeMetrics] = [em for em, _ in wiring.edges]
        self.feeds: dict[str, Feed] = wiring.feeds
        """Where ``Run.submit`` puts items, by external-input node."""

    # --- public ---------------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.graph.name

    def now(self) -> float:
        """The clock its figures are read against (``live.Watched``)."""
        return _perf()

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

    def live_metrics(self) -> list[NodeMetrics]:
        """The nodes' metrics as they are now, without folding in other threads' counts (``metrics``
        does that on the loop): safe to read from another thread, a scraper's."""
        return [run.metrics for run in self._runs.values()]

    def _edge_fills(self) -> Iterator[tuple[EdgeMetrics, int, int]]:
        """Each edge, its items queued now and its capacity (a partitioned edge: its queues summed)."""
        for em, channels in self._edge_channels:
            yield em, sum(len(c) for c in channels), em.capacity * len(channels)

    def queue_fill(self) -> dict[str, tuple[int, int]]:
        """Each edge's items queued now and its capacity, by edge label."""
        return {em.label: (queued, capacity) for em, queued, capacity in self._edge_fills()}

    def queue_before(self) -> dict[str, tuple[int, int]]:
        """Per node: the items queued at its inputs now and their capacity (its input edges summed)."""
        before: dict[str, tuple[int, int]] = {}
        for em, queued, capacity in self._edge_fills():
            q, c = before.get(em.target, (0, 0))
            before[em.target] = (q + queued, c + capacity)
        return before

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

    def input_type(self, node: str | None = None) -> type:
        """What an input node sends on (its output port's type): what ``Run.call`` accepts."""
        feed = self.feed(node)
        run = next(r for r in self._runs.values() if r.feed is feed)
        return next(iter(run.spec.cls.outputs.values())).type

    def delivers(self) -> bool:
        """Whether a sink hands items to the embedding program (``Run.results``, ``Run.call``)."""
        return any(run.spec.cls.delivers for run in self._runs.values())

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
        set_up: list[NodeRun] = []
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
            error = first_failure(group_error)
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
            left = await self._shut_down_threads(patient=error is None and self.stopped is None)
            if left:
                self.announce(f"warning: {left}")
            self.results.finish(error if isinstance(error, Exception) else None)
        if error is not None:
            raise error

    def still_running(self) -> str:
        """What has not stopped: nodes whose workers are still running, and node threads still busy in a
        call (readable from another thread, for a stop that does not end)."""
        parts = []
        for name, run in self._runs.items():
            workers = [t.get_name() for t in run.tasks if not t.done()]
            threads = run.threads_alive() if run.executor is not None else []
            busy = [*(f"worker {w}" for w in workers), *(f"thread {t}" for t in threads)]
            if busy:
                parts.append(f"node '{name}' ({', '.join(busy)})")
        return "; ".join(parts) or "no node (the harness or the interpreter is still finishing)"

    # --- internals ------------------------------------------------------------------------------------

    async def _shut_down_threads(self, patient: bool) -> str:
        """Shut every node's thread pool. After a run that ended by itself every call has returned, so
        this waits for the threads; after a failure or a stop a thread may still be inside a call that
        never returns (a stuck library), and waiting for it would hang the loop: give such threads
        ``STOP_PATIENCE_S`` in a helper thread, then name the ones left instead of waiting on."""
        unsure: list[NodeRun] = []  # pools whose threads may still be inside a call
        for run in self._runs.values():
            if run.executor is None:
                continue
            sure = patient and not run.abandoned_calls
            run.executor.shutdown(wait=sure, cancel_futures=True)
            if not sure:
                unsure.append(run)
        names = {name for run in unsure for name in run.threads_alive()}
        if names:
            await asyncio.to_thread(_join_threads, names, STOP_PATIENCE_S)
        left = {run.spec.name: threads for run in unsure if (threads := run.threads_alive())}
        return "; ".join(
            f"node '{name}' left {len(threads)} thread(s) in a call that did not return within "
            f"{STOP_PATIENCE_S:g} s of the stop ({', '.join(threads)})"
            for name, threads in left.items()
        )

    async def _worker(self, run: NodeRun, worker: int) -> None:
        io = _WorkerIO(self, run, worker)
        node = run.node
        t_alive = _perf()
        m = run.metrics
        m.running += 1
        m.running_since += t_alive
        try:
            if self.fast_path and type(node).run is Node.run and io.inbox is not None:
                skip = functools.partial(self._skip, run, io.worker) if run.spec.on_error == "skip" else None
                await process_each(io.inbox, io.out, run.metrics, node.process, skip, run.spec.timeout)
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
            self._record_failure(run, worker, exc.sample, exc.error)
            self._fail_all(failure)
            raise failure from exc.error
        except Exception as exc:
            current = next((b.current for b in io.inputs.values() if b.current is not None), None)
            failure = NodeFailure(
                run.spec.name, worker, sample_of(current) if current is not None else None, exc
            )
            if current is not None:  # the sample in hand failed (the others in flight are dropped)
                self._record_failure(run, worker, current, exc, item_given=True)
            self._fail_all(failure)
            raise failure from exc
        finally:
            m.finished = now = _perf()
            m.worker_s += now - t_alive
            m.running -= 1
            m.running_since -= t_alive
        run.remaining -= 1
        if run.remaining == 0:
            for edges in run.outputs.values():
                for targets in edges:
                    for channel in targets:
                        channel.close()

    def _report_failure(self, run: NodeRun, sample: object, error: BaseException) -> None:
        count = self._record_failure(run, -1, sample, error)
        if not run.inputs:  # a source that could not emit a sample (a malformed line): it entered, failed
            run.metrics.samples_out += count

    def _skip(self, run: NodeRun, worker: int, item: Any, error: BaseException) -> None:
        self._record_failure(run, worker, item, error, item_given=True)

    def _record_failure(
        self, run: NodeRun, worker: int, item: Any, error: BaseException, item_given: bool = False
    ) -> int:
        """Record a failure; the number of samples it stands for."""
        sample = sample_of(item) if item_given else item
        count = sample_count(item) if item_given else (len(item) if isinstance(item, list) else 1)
        failure = Failure(run.spec.name, worker, sample, f"{type(error).__name__}: {error}", count)
        run.metrics.failed += count
        self.failures.append(failure)
        for hook in self.on_failure:
            hook(failure)
        return count

    def _fail_all(self, error: BaseException) -> None:
        for run in self._runs.values():
            for chs in run.inputs.values():
                for channel in chs:
                    channel.fail(error)
            if run.feed is not None:
                run.feed.channel.fail(error)


def _join_threads(names: set[str], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    for thread in threading.enumerate():
        if thread.name in names:
            thread.join(max(0.0, deadline - time.monotonic()))
