"""``gpu_schedule``: route each batch to the least-busy inference engine.

The inference node's input is partitioned (one queue per engine), so the scheduler sees every engine's
backlog and picks the shortest queue, breaking ties round-robin so idle engines share the work. One
worker: it needs the global view. Fewer queued batches per engine also means less latency in Server.
"""

from __future__ import annotations

from typing import ClassVar

from flowgraph import Node, Port, WorkerIO, WorkerRule, node_type

from .payloads import Batch

__all__ = ["GpuSchedule"]


@node_type("gpu_schedule")
class GpuSchedule(Node):
    """``Batch`` → the same ``Batch``, tagged with and sent to its engine."""

    inputs: ClassVar = {"in": Port(Batch)}
    outputs: ClassVar = {"out": Port(Batch)}
    worker_rule = WorkerRule.fixed(1)

    def __init__(self, params, context) -> None:  # type: ignore[no-untyped-def]
        super().__init__(params, context)
        self.routed: list[int] = []
        self._next = 0

    async def run(self, io: WorkerIO) -> None:
        async for batch in io.inbox:
            loads = io.out.loads()
            if len(self.routed) < len(loads):
                self.routed = [0] * len(loads)
            n = len(loads)
            shortest = min(loads)
            engine = next(k % n for k in range(self._next, self._next + n) if loads[k % n] == shortest)
            self._next = engine + 1
            batch.engine = engine
            self.routed[engine] += 1
            await io.out.send(batch, partition=engine)

    def summary(self) -> dict[str, object]:
        return {"batches per engine": self.routed} if len(self.routed) > 1 else {}
