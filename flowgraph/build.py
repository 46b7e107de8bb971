"""Wiring: a checked graph → node instances, the channels on its edges, and the embedding program's feeds.

Pure construction, nothing runs: ``runtime.Runtime`` drives what ``wire`` returns. Kept apart so the
shape of a run (which queue feeds which worker, which input node is wired straight through) can be read
and tested without starting one.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .channel import Channel
from .errors import NodeTimeout
from .feeds import Feed
from .metrics import EdgeMetrics, NodeMetrics
from .node import Node, NodeContext, within
from .ports import Inbox
from .validate import CheckedGraph, CheckedNode

__all__ = ["THREAD_PREFIX", "NodeRun", "Wiring", "wire"]

THREAD_PREFIX = "flowgraph-"
"""Node pool threads are named ``flowgraph-<node>_<n>``: how a stuck thread is traced to its node."""


@dataclass(eq=False)
class NodeRun:
    """One graph node while it runs: its instance, its queues, its workers' tasks and thread pool."""

    spec: CheckedNode
    node: Node
    metrics: NodeMetrics
    inputs: dict[str, list[Channel]] = field(default_factory=dict)
    """Per input port, one channel per partition (one unless the port is partitioned)."""
    outputs: dict[str, list[list[Channel]]] = field(default_factory=dict)
    """Per output port, one entry per edge: the target's channels."""
    remaining: int = 0
    executor: ThreadPoolExecutor | None = None
    feed: Feed | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    inboxes: list[Inbox] = field(default_factory=list)
    abandoned_calls: int = 0
    """Calls in the pool that outlived the node's timeout: their threads may still be busy."""

    @property
    def wired_through(self) -> bool:
        """An input node whose items go straight into its consumer's queue: it runs no worker."""
        return self.feed is not None and self.feed.through

    async def offload(self, fn: Callable[..., Any], /, *args: Any) -> Any:
        """Run blocking ``fn`` in this node's own thread pool, made on first use."""
        if self.executor is None:
            self.executor = ThreadPoolExecutor(
                self.node.offload_threads(), thread_name_prefix=f"{THREAD_PREFIX}{self.spec.name}_"
            )
        call = asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)
        if self.spec.timeout is None:
            return await call
        try:
            return await within(self.spec.timeout, call, self.spec.name, "a call in its threads")
        except NodeTimeout:
            self.abandoned_calls += 1
            raise

    def threads_alive(self) -> list[str]:
        """Names of this node's pool threads still running (a call that never returned keeps one)."""
        prefix = f"{THREAD_PREFIX}{self.spec.name}_"
        return [t.name for t in threading.enumerate() if t.name.startswith(prefix) and t.is_alive()]


@dataclass
class Wiring:
    """What ``wire`` builds: node runs in topological order, edge metrics with their channels, feeds."""

    runs: dict[str, NodeRun]
    edges: list[tuple[EdgeMetrics, list[Channel]]]
    feeds: dict[str, Feed]


def wire(
    graph: CheckedGraph,
    *,
    cache_dir: Path,
    announce: Callable[[str], None],
    shared: dict[str, Any],
    feed_capacity: int,
) -> Wiring:
    """Instantiate every node and connect them with bounded channels (one per partition of a port)."""
    runs: dict[str, NodeRun] = {}
    params = graph.loaded.spec.params
    for name in graph.topological_order():
        spec = graph.nodes[name]
        ctx = NodeContext(name, spec.workers, params, cache_dir, shared, announce)
        node = spec.cls(spec.params, ctx)
        metrics = NodeMetrics(name, spec.cls.kind, spec.workers)
        run = NodeRun(spec, node, metrics, remaining=spec.workers)
        ctx.offload = run.offload
        ctx.on_error = spec.on_error
        ctx.timeout = spec.timeout
        ctx.observe = metrics.latency.add
        runs[name] = run
    edges: list[tuple[EdgeMetrics, list[Channel]]] = []
    for name, run in runs.items():
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
            edges.append((EdgeMetrics(label, capacity, target=name), run.inputs[port_name]))
    for edge in graph.edges:
        runs[edge.source].outputs.setdefault(edge.source_port, []).append(
            runs[edge.target].inputs[edge.target_port]
        )
    feeds: dict[str, Feed] = {}
    for name, run in runs.items():
        if run.spec.cls.external_input:
            through = _through_channel(run)
            if through is None:
                own = Channel(feed_capacity, producers=1, label=f"<submit> -> {name}")
                run.feed = Feed(own, run.metrics, through=False)
            else:
                run.feed = Feed(through, run.metrics, through=True)
            feeds[name] = run.feed
    return Wiring(runs, edges, feeds)


def _through_channel(run: NodeRun) -> Channel | None:
    """The consumer's channel an input node can put into directly (see ``Feed``), or None."""
    edges = [edge for port in run.outputs.values() for edge in port]
    if len(edges) != 1 or len(edges[0]) != 1:  # one edge, into an unpartitioned port
        return None
    channel = edges[0][0]
    return channel if channel.producers == 1 and channel.capacity > 0 else None
