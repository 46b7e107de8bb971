"""General-purpose grouping: ``batch`` items into lists, ``unbatch`` lists into items.

One worker each, so groups keep arrival order. A batch is emitted when full, when ``max_wait_ms`` has
passed since its first item, or at end of stream (a partial batch is never lost).
"""

from __future__ import annotations

import time
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from flowgraph import END, Node, Port, WorkerIO, WorkerRule, node_type, sample_of

__all__ = ["Group", "Grouped", "Unbatch"]


class GroupParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    size: int = Field(ge=1, description="items per batch")
    max_wait_ms: float | None = Field(
        None, ge=0, description="emit a partial batch this long after its first item"
    )


class Grouped(list):  # type: ignore[type-arg]
    """A ``batch`` node's list: a plain list that names the samples it holds (``sample_ids``), so a
    group of 2000 samples reaching a sink counts as 2000 completed, not 1 (``flowgraph.sample_count``)."""

    __slots__ = ()

    @property
    def sample_ids(self) -> list[object]:
        return [sample_of(item) for item in self]


@node_type("batch")
class Group(Node):
    """Groups items into lists of up to ``size``."""

    Params = GroupParams
    params: GroupParams
    outputs: ClassVar = {"out": Port(list)}
    worker_rule = WorkerRule.fixed(1)

    async def run(self, io: WorkerIO) -> None:
        size, wait = self.params.size, self.params.max_wait_ms
        while (first := await io.inbox.get()) is not END:
            group = Grouped([first])
            deadline = time.perf_counter() + wait / 1e3 if wait is not None else float("inf")
            await io.inbox.fill(group, size, deadline)
            await io.out.send(group)


@node_type("unbatch")
class Unbatch(Node):
    """Emits each element of each incoming list."""

    inputs: ClassVar = {"in": Port(list)}
    worker_rule = WorkerRule.fixed(1)

    async def run(self, io: WorkerIO) -> None:
        async for group in io.inbox:
            for item in group:
                await io.out.send(item)
