"""Where items end: ``collect`` hands them to the embedding program, ``discard`` only counts them."""

from __future__ import annotations

from typing import Any, ClassVar

from flowgraph import Node, WorkerIO, WorkerRule, node_type

__all__ = ["Collect", "Discard"]


@node_type("collect")
class Collect(Node):
    """Delivers every item to ``Run.results()`` (or to ``report.results`` when nobody reads them)."""

    outputs: ClassVar = {}
    worker_rule = WorkerRule.fixed(1)
    delivers = True

    async def run(self, io: WorkerIO) -> None:
        async for item in io.inbox:
            await io.deliver(item)


@node_type("discard")
class Discard(Node):
    """Consumes items and keeps nothing: a sink for benchmarks and side-effect pipelines."""

    outputs: ClassVar = {}
    worker_rule = WorkerRule.any()

    async def process(self, item: Any) -> Any:
        return None
