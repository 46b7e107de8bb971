"""``gpu_schedule``: route each batch to the least-busy inference engine.

The inference node's input is partitioned (one queue per engine), so the scheduler sees every engine's
backlog. It first waits until some engine wants a batch (``Outbox.wanted``: room in its queue; with
``capacity: 0`` an engine that is idle), only then takes the next batch and sends it there, the shortest
queue winning and ties going round-robin so idle engines share the work. One worker: it needs the
global view. Holding no batch while every engine is busy leaves it upstream, where Server batching can
still grow it.
"""

from __future__ import annotations

from typing import ClassVar

from flowgraph import END, Node, Port, WorkerIO, WorkerRule, node_type

from .payloads import Batch

__all__ = ["GpuSchedule"]


@node_type("gpu_schedule")
class GpuSchedule(Node):
    """``Batch`` → the same ``Batch``, on the partition (the engine's queue) that asked for it."""

    inputs: ClassVar = {"in": Port(Batch)}
    outputs: ClassVar = {"out": Port(Batch)}
    worker_rule = WorkerRule.fixed(1)

    def __init__(self, params, context) -> None:  # type: ignore[no-untyped-def]
        super().__init__(params, context)
        self.routed: list[int] = []
        self._next = 0

    async def run(self, io: WorkerIO) -> None:
        engines = len(io.out.loads())
        self.routed = [0] * engines
        while True:
            engine, batch = await io.inbox.get_wanted(io.out, start=self._next)
            if batch is END:
                break
            self._next = (engine + 1) % engines
            self.routed[engine] += 1
            await io.out.send(batch, partition=engine)

    def summary(self) -> dict[str, object]:
        return {"batches per engine": self.routed} if len(self.routed) > 1 else {}
