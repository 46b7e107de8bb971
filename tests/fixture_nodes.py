"""Small node types used only by tests, named in test graphs as ``fixture_nodes:Class``."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from flowgraph import Node, Port, WorkerRule


@dataclass
class Tagged:
    sample_id: int
    value: int


class Apple:
    pass


class Pear:
    pass


class EngineParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    engine_num: int = 1


class PerEngine(Node):
    """Passes items through; one worker per engine."""

    Params = EngineParams
    worker_rule = WorkerRule.equals("engine_num")

    async def process(self, item: Any) -> Any:
        return item


class OnlyOne(Node):
    worker_rule = WorkerRule.fixed(1)

    async def process(self, item: Any) -> Any:
        return item


class MakesApples(Node):
    inputs: ClassVar = {}
    outputs: ClassVar = {"out": Port(Apple)}


class EatsPears(Node):
    inputs: ClassVar = {"in": Port(Pear)}
    outputs: ClassVar = {}


class TwoOutputs(Node):
    outputs: ClassVar = {"even": Port(object), "odd": Port(object)}

    async def run(self, io: Any) -> None:
        async for item in io.inbox:
            await io.out.send(item, port="even" if item % 2 == 0 else "odd")


class FailParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bad: int = 3


class FailsOn(Node):
    """Raises on the item equal to ``bad``."""

    Params = FailParams

    async def process(self, item: Any) -> Any:
        value = item.value if isinstance(item, Tagged) else item
        if value == self.params.bad:
            raise ValueError(f"cannot handle {value}")
        return item


class SlowParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float = 0.001


class Slow(Node):
    """Sleeps per item: a bottleneck for backpressure tests."""

    Params = SlowParams

    async def process(self, item: Any) -> Any:
        await asyncio.sleep(self.params.seconds)
        return item


class BlockingSlow(Node):
    """Sleeps per item in a thread: offloaded blocking work."""

    Params = SlowParams

    async def process(self, item: Any) -> Any:
        await self.offload(time.sleep, self.params.seconds)
        return item


class NeedsGpu(Node):
    @classmethod
    def check_environment(cls, params: BaseModel) -> str | None:
        return "needs a CUDA GPU, and this machine has none; run it on a GPU machine or use the CPU graph"


def tagged_items(n: int = 10) -> list[Tagged]:
    return [Tagged(i, i) for i in range(n)]


def ten_tagged() -> list[Tagged]:
    return tagged_items(10)


GATES: dict[str, asyncio.Semaphore] = {}
"""Tests ``release()`` ``GATES[name]`` once per item a ``Gated`` node may finish."""


class GateParams(BaseModel):
    name: str


class Gated(Node):
    """Holds each item until the test releases its gate: one item per ``release()``."""

    Params = GateParams
    worker_rule = WorkerRule.fixed(1)

    async def process(self, item: Any) -> Any:
        await GATES[self.params.name].acquire()  # not released: each release() admits one item
        return item


class GatedEngineParams(BaseModel):
    engine_num: int = 1
    gate: str


class GatedEngine(Node):
    """An engine per worker, each on its own queue, finishing one item per release of ``<gate><worker>``."""

    Params = GatedEngineParams
    inputs: ClassVar = {"in": Port(partitioned=True)}
    worker_rule = WorkerRule.equals("engine_num")

    async def run(self, io: Any) -> None:
        async for item in io.inbox:
            await GATES[f"{self.params.gate}{io.worker}"].acquire()
            await io.out.send((io.worker, item))
