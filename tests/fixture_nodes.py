"""Small node types used only by tests, named in test graphs as ``fixture_nodes:Class``."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from flowgraph import Follows, Node, Port, WorkerRule
from flowgraph.nodes.inference.node import Inference


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


class PerEngineQueue(PerEngine):
    """Like ``PerEngine``, with a queue per engine (a partitioned input), as the inference node has."""

    inputs: ClassVar = {"in": Port(partitioned=True)}


class CopyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_batch: int = 0


class CopyPerEngine(Node):
    """A copy stage: one worker per engine it feeds, and a max_batch that follows the batcher's."""

    Params = CopyParams
    worker_rule = WorkerRule.per_partition()
    follows = (Follows("max_batch"),)

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


class FakeDevice:
    """A pipelined engine whose 'device' runs one batch at a time for ``seconds`` each, in launch order;
    it records how many batches were in flight and can fail one batch's collect."""

    def __init__(self, seconds: float, fail_on: int | None = None) -> None:
        self.name, self.precision = "fake", "fp32"
        self.seconds, self.fail_on = seconds, fail_on
        self.free_at = 0.0
        self.in_flight = 0
        self.most_in_flight = 0
        self.launch_sizes: list[int] = []

    def bucket(self, n: int) -> int:
        return 64  # one cost for every size: the device time does not depend on n here

    async def launch(self, batch: Any) -> tuple[Any, float]:
        now = time.perf_counter()
        self.free_at = max(now, self.free_at) + self.seconds
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.launch_sizes.append(len(batch.sample_ids))
        return batch, self.free_at

    async def collect(self, handle: tuple[Any, float]) -> Any:
        batch, done_at = handle
        await asyncio.sleep(max(0.0, done_at - time.perf_counter()))
        self.in_flight -= 1
        if self.fail_on is not None and self.fail_on in batch.sample_ids:
            raise RuntimeError("device fault")
        import numpy as np

        return np.asarray(batch.sample_ids, np.float32)[:, None]

    def close(self) -> None:
        pass


FAKE_DEVICE: dict[str, tuple[float, int | None]] = {}
"""Per graph (its ``device_key`` param): seconds per batch, and the sample whose batch fails."""
ENGINES: dict[str, list[FakeDevice]] = {}


class FakeDeviceInference(Inference):
    """The inference node with ``FakeDevice`` engines."""

    async def setup(self) -> None:
        key = self.context.graph_params["device_key"]
        seconds, fail_on = FAKE_DEVICE[key]
        self.engines = [FakeDevice(seconds, fail_on) for _ in range(self.params.engine_num)]
        ENGINES[key] = list(self.engines)  # teardown clears the node's list


class StuckParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    how: str = "thread"
    """thread: a call in the node's threads never returns; loop: blocks the event loop; coroutine: an
    await that never ends."""
    seconds: float = 3600
    marker: str = ""
    """A file written when the node takes its first item (so a test knows it is stuck now)."""


class Stuck(Node):
    """Never finishes its first item, in the way ``how`` says."""

    Params = StuckParams

    async def process(self, item: Any) -> Any:
        if self.params.marker:
            Path(self.params.marker).write_text("stuck")
        if self.params.how == "thread":
            await self.offload(time.sleep, self.params.seconds)
        elif self.params.how == "loop":
            time.sleep(self.params.seconds)  # the bug under test: a blocking call on the event loop
        else:
            await asyncio.Event().wait()
        return item


class DieParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sample: int = 0
    how: str = "exit"  # exit: the process dies; raise: the node raises; anything else: neither


class DieOnSample(Node):
    """Passes items through; on sample ``sample`` ends its process at once (a crashed shard) or raises."""

    Params = DieParams
    inputs: ClassVar = {"in": Port(object)}
    outputs: ClassVar = {"out": Port(object)}

    async def process(self, item: Any) -> Any:
        if getattr(item, "sample_id", None) == self.params.sample:
            if self.params.how == "exit":
                import os

                os._exit(7)
            if self.params.how == "raise":
                raise RuntimeError(f"told to fail on sample {self.params.sample}")
        return item


class PlainProcess(Node):
    """A node author's slip: ``process`` written without ``async``."""

    def process(self, item: Any) -> Any:  # type: ignore[override]
        return item


class EatsApples(Node):
    inputs: ClassVar = {"in": Port(Apple)}
    outputs: ClassVar = {}

    async def run(self, io: Any) -> None:
        async for _ in io.inbox:
            pass


class Total(Node):
    """An aggregate that names none of the samples it folds: one plain number at the end."""

    outputs: ClassVar = {"out": Port(int)}
    worker_rule = WorkerRule.fixed(1)

    async def run(self, io: Any) -> None:
        total = 0
        async for item in io.inbox:
            total += item
        await io.out.send(total)


@dataclass
class Sum:
    value: int
    sample_ids: list[int]


class TotalNamingSamples(Node):
    """The same aggregate, naming the samples it folded (``sample_ids``): they count as completed."""

    outputs: ClassVar = {"out": Port(Sum)}
    worker_rule = WorkerRule.fixed(1)

    async def run(self, io: Any) -> None:
        total, ids = 0, []
        async for item in io.inbox:
            total += item
            ids.append(item)
        await io.out.send(Sum(total, ids))


class SlowLoop(Node):
    """Like ``Slow``, in a loop of its own (so its busy time is derived, not timed per item)."""

    Params = SlowParams

    async def run(self, io: Any) -> None:
        async for item in io.inbox:
            await asyncio.sleep(self.params.seconds)
            await io.out.send(item)
