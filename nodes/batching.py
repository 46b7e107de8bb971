"""Dynamic batching for the ResNet50 pipeline: ``batch_merge`` stacks images, ``batch_split`` unstacks.

batch_merge (one worker, arrival order): a batch goes out when it holds ``max_batch`` images, when
``max_wait_us`` has passed since its first image, or at end of stream. ``max_wait_us: 0`` means never
wait: send whatever is queued right now (SingleStream / MultiStream). Each image is copied into the
batch buffer as it arrives, so no single step copies a whole batch on the event loop.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from flowgraph import END, Node, Port, WorkerIO, WorkerRule, node_type

from .gpu import array_module
from .payloads import Batch, Flush, Image, Logits, Scores

__all__ = ["BatchMerge", "BatchSplit"]


class BatchMergeParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_batch: int = Field(8, ge=1, description="images per batch at most")
    max_wait_us: float = Field(2000.0, ge=0, description="longest a partial batch waits for more images")


class _Open:
    """The batch being filled. Host images are only referenced (stacked later, off the event loop);
    images already on the device are copied into a device buffer as they arrive."""

    __slots__ = ("array", "deadline", "ids", "labels", "parts", "t_starts")

    def __init__(self, first: Image, max_batch: int, wait_s: float) -> None:
        xp = array_module(first.array)
        self.parts: list[Any] | None = [] if xp.__name__ == "numpy" else None
        self.array = (
            None if self.parts is not None else xp.empty((max_batch, *first.array.shape), first.array.dtype)
        )
        self.ids: list[int] = []
        self.labels: list[int] = []
        self.t_starts: list[float] = []
        self.deadline = time.perf_counter() + wait_s

    def add(self, image: Image) -> None:
        if self.parts is not None:
            self.parts.append(image.array)
        else:
            self.array[len(self.ids)] = image.array
        self.ids.append(image.sample_id)
        self.labels.append(image.label)
        self.t_starts.append(image.t_start)

    def seal(self) -> Batch:
        n = len(self.ids)
        if self.parts is not None:
            return Batch(self.ids, self.labels, None, self.t_starts, parts=self.parts)
        return Batch(
            self.ids, self.labels, self.array[:n] if n < len(self.array) else self.array, self.t_starts
        )


@node_type("batch_merge")
class BatchMerge(Node):
    """``Image`` → ``Batch`` of up to ``max_batch``, waiting at most ``max_wait_us``."""

    Params = BatchMergeParams
    params: BatchMergeParams
    inputs: ClassVar = {"in": Port(Image)}
    outputs: ClassVar = {"out": Port(Batch)}
    worker_rule = WorkerRule.fixed(1)

    def __init__(self, params: BatchMergeParams, context: Any) -> None:
        super().__init__(params, context)
        self.wait_s = params.max_wait_us / 1e6

    def set_max_wait_us(self, microseconds: float) -> None:
        """Retune the deadline while running (the LoadGen harness derives it from the measured batch time)."""
        self.wait_s = max(0.0, microseconds) / 1e6

    async def run(self, io: WorkerIO) -> None:
        max_batch = self.params.max_batch
        inbox = io.inbox
        current: _Open | None = None
        while True:
            wait_s = self.wait_s
            if current is None:
                item = await inbox.get()
            elif wait_s == 0:
                for image in inbox.take_ready(max_batch - len(current.ids)):
                    if not isinstance(image, Flush):  # no waiting: every batch is flushed anyway
                        current.add(image)
                await io.out.send(current.seal())
                current = None
                continue
            else:
                item = await inbox.get_within(max(0.0, current.deadline - time.perf_counter()))
                if item is None:  # the oldest image has waited max_wait_us
                    await io.out.send(current.seal())
                    current = None
                    continue
            if item is END:
                break
            if isinstance(item, Flush):
                if current is not None:
                    await io.out.send(current.seal())
                    current = None
                continue
            if current is None:
                current = _Open(item, max_batch, wait_s)
            current.add(item)
            if len(current.ids) == max_batch:
                await io.out.send(current.seal())
                current = None
        if current is not None:
            await io.out.send(current.seal())


@node_type("batch_split")
class BatchSplit(Node):
    """``Logits`` of a batch → one ``Scores`` per sample, in batch order."""

    inputs: ClassVar = {"in": Port(Logits)}
    outputs: ClassVar = {"out": Port(Scores)}
    worker_rule = WorkerRule.fixed(1)

    async def run(self, io: WorkerIO) -> None:
        async for logits in io.inbox:
            for i, sample_id in enumerate(logits.sample_ids):
                t_start = logits.t_starts[i] if logits.t_starts else 0.0
                await io.out.send(Scores(sample_id, logits.labels[i], logits.scores[i], t_start))
