"""General-purpose grouping: ``batch`` items into lists, ``unbatch`` lists into items.

One worker each, so groups keep arrival order. A batch is emitted when full, when ``max_wait_ms`` has
passed since its first item, or at end of stream (a partial batch is never lost).
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from flowgraph import END, Node, Port, WorkerIO, WorkerRule, node_type

__all__ = ["Batch", "Unbatch"]


class BatchParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    size: int = Field(ge=1, description="items per batch")
    max_wait_ms: float | None = Field(
        None, ge=0, description="emit a partial batch this long after its first item"
    )


@node_type("batch")
class Batch(Node):
    """Groups items into lists of up to ``size``."""

    Params = BatchParams
    params: BatchParams
    outputs: ClassVar = {"out": Port(list)}
    worker_rule = WorkerRule.fixed(1)

    async def run(self, io: WorkerIO) -> None:
        size, wait = self.params.size, self.params.max_wait_ms
        group: list[Any] = []
        deadline = 0.0
        while True:
            if group and wait is not None:
                item = await io.inbox.get_within(max(0.0, deadline - time.perf_counter()))
                if item is None:  # deadline passed
                    await io.out.send(group)
                    group = []
                    continue
            else:
                item = await io.inbox.get()
            if item is END:
                break
            if not group and wait is not None:
                deadline = time.perf_counter() + wait / 1e3
            group.append(item)
            if len(group) >= size:
                await io.out.send(group)
                group = []
        if group:
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
