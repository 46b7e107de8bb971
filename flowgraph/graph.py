"""The embedding API: load a graph, start it, feed it, read results, stop it.

    graph = Graph.from_yaml("graphs/hello.yaml", overrides={"scale": 3})
    async with graph.start() as run:
        run.feed(range(10))               # or: await run.submit(x) ... await run.close()
        async for result in run.results():
            ...
    report = run.report

``Graph.run_sync`` does all of that for a plain script and returns the ``Report``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

from .calls import Calls
from .channel import ChannelClosed
from .errors import FlowgraphError
from .feeds import Feed
from .load import load_graph, load_graph_text
from .metrics import Failure
from .report import Report
from .runtime import Runtime
from .validate import CheckedGraph, CheckedNode, validate

__all__ = ["Graph", "Run", "run_event_loop"]


class Graph:
    """A validated graph, ready to start any number of times."""

    def __init__(self, checked: CheckedGraph) -> None:
        self.checked = checked

    @classmethod
    def from_yaml(
        cls,
        path: str | Path,
        overrides: Mapping[str, Any] | None = None,
        *,
        scenario: str | None = None,
        check_environment: bool = True,
    ) -> Graph:
        """Load and validate a graph file; raises ``GraphFileError`` / ``GraphValidationError``."""
        return cls(validate(load_graph(path, overrides, scenario), check_environment=check_environment))

    @classmethod
    def from_text(
        cls,
        text: str,
        overrides: Mapping[str, Any] | None = None,
        *,
        file: str = "<graph>",
        scenario: str | None = None,
        check_environment: bool = True,
    ) -> Graph:
        """Like ``from_yaml`` for YAML held in a string."""
        return cls(
            validate(load_graph_text(text, file, overrides, scenario), check_environment=check_environment)
        )

    def with_on_error(self, policy: str) -> Graph:
        """This graph with every node that can skip a failed sample set to ``policy`` ('skip' or
        'fail'); nodes that handle several samples at once keep their own. For serving (``Run.call``):
        one bad request fails alone instead of stopping the graph."""
        if policy not in ("skip", "fail"):
            raise ValueError(f"on_error is 'skip' or 'fail', not {policy!r}")
        c = self.checked
        nodes = {
            name: replace(node, on_error=policy) if node.cls.honours_skip() else node
            for name, node in c.nodes.items()
        }
        return Graph(replace(c, nodes=nodes))

    def with_params(self, node: str, **params: Any) -> Graph:
        """This graph with some of ``node``'s params changed, checked by its ``Params``; the other nodes
        are not checked again (a LoadGen QSL load runs the same front with other sample indices)."""
        return Graph(self.checked.with_params(node, params))

    @property
    def name(self) -> str:
        return self.checked.name

    @property
    def params(self) -> Mapping[str, Any]:
        return self.checked.loaded.spec.params

    @property
    def nodes(self) -> Mapping[str, CheckedNode]:
        return self.checked.nodes

    def start(
        self,
        *,
        results_capacity: int = 1024,
        cache_dir: Path | None = None,
        announce: Callable[[str], None] = print,
        on_failure: Iterable[Callable[[Failure], None]] = (),
        fast_path: bool = True,
    ) -> Run:
        """A new run of this graph, to be entered with ``async with``."""
        runtime = Runtime(
            self.checked,
            results_capacity=results_capacity,
            cache_dir=cache_dir,
            announce=announce,
            on_failure=on_failure,
            fast_path=fast_path,
        )
        return Run(runtime)

    async def run(self, items: Iterable[Any] | AsyncIterable[Any] | None = None, **start: Any) -> Report:
        """Run to completion, feeding ``items`` to the graph's input node if given."""
        async with self.start(**start) as run:
            if items is not None:
                run.feed(items)
        assert run.report is not None  # set by wait() when the block ends without an error
        return run.report

    def run_sync(self, items: Iterable[Any] | None = None, **start: Any) -> Report:
        """``run`` for code with no event loop; uses uvloop when it is installed."""
        return run_event_loop(self.run(items, **start))


class Run:
    """One running graph. Leaving ``async with`` closes open inputs, waits for the end, and tears down;
    leaving it with an exception stops the graph first."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.report: Report | None = None
        self._task: asyncio.Task[None] | None = None
        self._feeders: list[asyncio.Task[None]] = []
        self._fed: set[int] = set()  # ids of the feeds a feeder task owns (and closes itself)
        self._collected: list[Any] = []
        self._calls: Calls | None = None

    async def __aenter__(self) -> Run:
        self._task = asyncio.create_task(self.runtime.run(), name=f"flowgraph:{self.runtime.graph.name}")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None:
            self.stop(drain=False)
            await self._settle()
            self.report = Report.from_runtime(self.runtime, self._collected)
            if isinstance(exc, FlowgraphError) and exc.report is None:
                exc.report = self.report  # a harness raising the graph's failure keeps the counts
            return
        for feed in self._open_feeds():
            if id(feed) not in self._fed:
                feed.close()
        try:
            await self.wait()
        except asyncio.CancelledError:  # the owner was cancelled while the run ended: end it, then go
            self.stop(drain=False)
            await self._settle()
            raise

    async def _settle(self) -> None:
        """Wait for the graph's task and the feeders to end after a stop, even if cancelled meanwhile:
        leaving earlier would leak the whole graph (its tasks and its nodes' threads)."""
        pending = asyncio.gather(self._task, *self._feeders, return_exceptions=True)  # type: ignore[arg-type]
        cancelled = False
        while not pending.done():
            try:
                await asyncio.shield(pending)
            except asyncio.CancelledError:
                cancelled = True
                self.stop(drain=False)
        if cancelled:
            raise asyncio.CancelledError

    @property
    def task(self) -> asyncio.Task[None]:
        """The task running the graph: watch it to react the moment the graph fails."""
        assert self._task is not None, "use `async with graph.start() as run`"
        return self._task

    async def started(self) -> None:
        """Wait until every node's setup is done (models built, engines captured) and workers run.

        Why: ``async with`` returns at once and setup runs in the background; anything timed from
        outside (a benchmark, MLPerf LoadGen) must start its clock after this, not before. Raises the
        setup's error if it failed."""
        ready = asyncio.ensure_future(self.runtime.ready.wait())
        try:
            await asyncio.wait({ready, self.task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
        if not self.runtime.ready.is_set():
            await self.task  # raises the setup failure
            raise RuntimeError("the graph ended before it started")

    async def submit(self, item: Any, node: str | None = None) -> None:
        """Put one item into an input node, waiting while its queue is full."""
        await self.runtime.feed(node).put(item)

    def submit_nowait(self, item: Any, node: str | None = None) -> bool:
        """Put one item into an input node if its queue has room, and say whether it did (False: full,
        or the graph failed; use ``submit``). For callbacks on the loop, which cannot await."""
        return self.runtime.feed(node).put_nowait(item)

    async def call(self, item: Any, node: str | None = None, *, timeout: float | None = None) -> Any:
        """Submit one item and return the graph's answer for it: what a collecting sink delivers with
        the same sample id. Many calls may wait at once (a server's requests); each gets its own answer.

        If the item's sample fails in a node that skips failed samples (``on_error: skip``, or
        ``Graph.with_on_error("skip")``), ``SampleError`` (node, sample, error) is raised here and the
        graph goes on; under ``on_error: fail`` the graph stops, and every waiting call gets its
        ``NodeFailure``. ``timeout``: seconds to wait for the answer (a node that drops the item never
        answers; the run's end also ends the wait). The item must carry a sample id (``sample_id``
        attribute or ``id`` key), unique among the calls in flight, and be of the type the input node
        sends (``TypeError`` otherwise). Once a run takes calls, their answers are not in ``results()``;
        answers nobody waited for land in ``report.results``."""
        feed = self.runtime.feed(node)
        accepts = self.runtime.input_type(node)
        if not isinstance(item, accepts):
            raise TypeError(f"this graph's input takes {accepts.__name__}, not {type(item).__name__}")
        if self._calls is None:
            if not self.runtime.delivers():
                raise ValueError("call() needs a collecting sink (type 'collect') to take the answers from")
            self._calls = Calls(self.runtime.results, self.runtime.on_failure)
        return await self._calls.call(feed, item, timeout)

    def tune(self, node: str, **values: Any) -> None:
        """Change a running node's tunable params (``Node.tunables``), checked like the graph file's."""
        self.node(node).tune(**values)

    def node(self, name: str) -> Any:
        """The running instance of node ``name``: for what a node type documents as readable after setup
        (a dataset's labels), not for changing it (use ``tune``)."""
        nodes = self.runtime.nodes
        if name not in nodes:
            raise ValueError(f"no node {name!r} in this graph; nodes: {list(nodes)}")
        return nodes[name]

    def input(self, node: str | None = None) -> Feed:
        """The input node's ``Feed``: ``put``, ``put_nowait``, ``close``, and ``put_threadsafe`` for one
        thread other than the loop's, which wakes the loop only when a reader waits. Look it up once
        when putting many items."""
        return self.runtime.feed(node)

    async def close(self, node: str | None = None) -> None:
        """No more items for this input node: end of stream flows through the graph."""
        self.runtime.feed(node).close()

    def feed(self, items: Iterable[Any] | AsyncIterable[Any], node: str | None = None) -> None:
        """Submit every item of ``items`` in the background, then close the input."""
        feed = self.runtime.feed(node)
        self._fed.add(id(feed))

        async def pump() -> None:
            try:
                if isinstance(items, AsyncIterable):
                    async for item in items:
                        await feed.put(item)
                else:
                    for item in items:
                        await feed.put(item)
            except ChannelClosed:
                if self.runtime.stopped is None:
                    raise
                return  # the run was stopped: the rest of the items are not wanted
            feed.close()

        self._feeders.append(asyncio.create_task(pump(), name="flowgraph:feed"))

    async def results(self) -> AsyncIterator[Any]:
        """Items delivered by the graph's collecting sinks, as they finish. Raises the run's error."""
        if self._calls is not None:
            raise RuntimeError("this run answers call(); its results go to the calls, not to results()")
        async for item in self.runtime.results:
            yield item

    def stop(self, drain: bool = True) -> None:
        """Stop early: ``drain`` lets in-flight items finish; otherwise everything is cancelled."""
        for feed in self._open_feeds():
            feed.close()
        self.runtime.stop(drain)

    async def wait(self) -> Report:
        """Wait for the run to end; unread results land in ``report.results``. Raises ``NodeFailure``."""
        assert self._task is not None, "use `async with graph.start() as run`"
        if self._calls is not None:  # the calls own the result stream
            await self._calls.router
            self._collected.extend(self._calls.unclaimed)
        else:
            try:
                async for item in self.runtime.results:
                    self._collected.append(item)
            except Exception:
                pass  # the same error is raised by the runtime task below
        feed_outcomes = await asyncio.gather(*self._feeders, return_exceptions=True)
        try:
            await self._task
        except FlowgraphError as exc:  # the counts and failures of a failed or stopped run still count
            self.report = exc.report = Report.from_runtime(self.runtime, self._collected)
            raise
        for outcome in feed_outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        self.report = Report.from_runtime(self.runtime, self._collected)
        return self.report

    def _open_feeds(self) -> list[Feed]:
        return [feed for feed in self.runtime.feeds.values() if feed.producers > 0]


def run_event_loop(coro: Any) -> Any:
    """Run a coroutine to completion on uvloop when installed, else on asyncio's default loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)
