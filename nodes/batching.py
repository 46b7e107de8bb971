"""Dynamic batching for the ResNet50 pipeline: ``batch_merge`` stacks images, ``batch_split`` unstacks.

batch_merge (one worker, arrival order): a batch is complete when it holds ``max_batch`` images, when
``max_wait_us`` has passed since its first image, at a ``Flush`` marker, or at end of stream. A partial
batch is sealed only once the next stage wants it (``Outbox.wanted``); until then it keeps taking the
images that arrive. So with a ``capacity: 0`` edge behind it, a batch is formed when the next stage asks
for one, holding everything that waited meanwhile (Server). ``max_wait_us: 0`` never waits for more
images than are queued. No image is copied here: ``Images`` holds references, which memory_copy stacks
off the loop.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from flowgraph import END, Node, Port, WorkerIO, WorkerRule, node_type

from .payloads import Flush, Image, Images, Logits, Scores

__all__ = ["BatchMerge", "BatchSplit"]


class BatchMergeParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_batch: int = Field(8, ge=1, description="images per batch at most")
    max_wait_us: float = Field(2000.0, ge=0, description="longest a partial batch waits for more images")


class _Open:
    """The batch being filled. Images are only referenced, never copied here: memory_copy stacks them
    in its own thread or on its own stream (host images into pinned memory, device images gathered by
    one kernel), so no copy, and no CUDA call, runs on the event loop."""

    __slots__ = ("ids", "labels", "parts", "t_starts")

    def __init__(self) -> None:
        self.parts: list[Any] = []
        self.ids: list[int] = []
        self.labels: list[int] = []
        self.t_starts: list[float] = []

    def __len__(self) -> int:
        return len(self.ids)

    def append(self, image: Image) -> None:
        self.parts.append(image.array)
        self.ids.append(image.sample_id)
        self.labels.append(image.label)
        self.t_starts.append(image.t_start)

    def seal(self) -> Images:
        return Images(self.ids, self.labels, self.parts, self.t_starts)


@node_type("batch_merge")
class BatchMerge(Node):
    """``Image`` → ``Images`` (up to ``max_batch``, referenced, not stacked), waiting at most
    ``max_wait_us``."""

    Params = BatchMergeParams
    params: BatchMergeParams
    inputs: ClassVar = {"in": Port(Image)}
    outputs: ClassVar = {"out": Port(Images)}
    worker_rule = WorkerRule.fixed(1)

    def __init__(self, params: BatchMergeParams, context: Any) -> None:
        super().__init__(params, context)
        self.wait_s = params.max_wait_us / 1e6

    tunables = frozenset({"max_wait_us"})
    """The LoadGen harness derives the Server deadline from a measured batch (``Run.tune``)."""

    def tuned(self) -> None:
        self.wait_s = self.params.max_wait_us / 1e6

    async def run(self, io: WorkerIO) -> None:
        max_batch, inbox = self.params.max_batch, io.inbox
        while (first := await inbox.get()) is not END:
            if isinstance(first, Flush):
                continue  # nothing open to flush
            batch = _Open()
            batch.append(first)
            flushed = await inbox.fill(batch, max_batch, time.perf_counter() + self.wait_s, cut=Flush)
            if len(batch) < max_batch:
                await io.out.wanted()  # a partial batch goes when wanted, with what arrived meanwhile
                if not flushed:
                    await inbox.fill(batch, max_batch, 0.0, cut=Flush)
            await io.out.send(batch.seal())


@node_type("batch_split")
class BatchSplit(Node):
    """``Logits`` of a batch → one ``Scores`` per sample, in batch order."""

    inputs: ClassVar = {"in": Port(Logits)}
    outputs: ClassVar = {"out": Port(Scores)}
    worker_rule = WorkerRule.fixed(1)

    async def run(self, io: WorkerIO) -> None:
        async for logits in io.inbox:
            scores, top = logits.scores, logits.top
            for i, sample_id in enumerate(logits.sample_ids):
                t_start = logits.t_starts[i] if logits.t_starts else 0.0
                await io.out.send(
                    Scores(
                        sample_id,
                        logits.labels[i],
                        None if scores is None else scores[i],
                        t_start,
                        None if top is None else top[i],
                    )
                )
