"""The bridge between LoadGen's threads and the event loop, and the sink that answers LoadGen.

Threads: LoadGen runs its test on a thread of ours (``StartTest`` on the event loop's thread hangs).
Its callbacks hand work to the loop with ``call_soon_threadsafe`` and never block it. Queries LoadGen
has issued wait in LoadGen's own lists until the graph's bounded input takes them: no queue of ours
grows. Every query is answered exactly once; if the graph fails, the rest are answered empty at once so
LoadGen can finish.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

from flowgraph import Needs, Node, Port, WorkerIO, WorkerRule, node_type
from flowgraph.nodes.payloads import Answers, Flush, Image, Prediction, Predictions

__all__ = ["BRIDGE_KEY", "Bridge", "LoadgenComplete", "SampleStore", "complete_queries"]

BRIDGE_KEY = "loadgen.bridge"
"""Where the harness puts the ``Bridge`` in the graph's shared objects, for ``LoadgenComplete``."""


class SampleStore(Protocol):
    """The QSL's samples as the bridge sees them (``qsl.SampleLibrary``)."""

    labels: list[int]
    images: dict[int, Any]
    """Loaded samples by index: what a query's sample index is answered from."""

    async def load(self, indices: list[int]) -> None: ...

    def unload(self, indices: list[int]) -> None: ...


@node_type("loadgen_complete")
class LoadgenComplete(Node):
    """Answers LoadGen's queries with each ``Prediction``'s top-1 class, batched: every prediction that
    is already queued goes into one ``QuerySamplesComplete`` call."""

    inputs: ClassVar = {"in": Port(Answers)}
    outputs: ClassVar = {}
    worker_rule = WorkerRule.fixed(1)
    needs = Needs("flowgraph[loadgen]", ("numpy", "mlperf_loadgen"))

    async def run(self, io: WorkerIO) -> None:
        bridge = self.context.shared[BRIDGE_KEY]
        async for first in io.inbox:
            bridge.complete([first, *io.inbox.take_ready(1023)])


def complete_queries(lg: Any, ids: list[int], answers: Any) -> None:
    """Answer LoadGen's queries ``ids`` with ``answers`` (a contiguous float32 array, one each) in one
    ``QuerySamplesComplete`` call; LoadGen copies the bytes during the call."""
    base = answers.ctypes.data
    lg.QuerySamplesComplete([lg.QuerySampleResponse(qid, base + 4 * i, 4) for i, qid in enumerate(ids)])


class Bridge:
    """Between LoadGen's threads and the event loop: queries in, answers out, each exactly once."""

    def __init__(
        self, lg: Any, loop: asyncio.AbstractEventLoop, library: SampleStore, flushable: bool
    ) -> None:
        import numpy as np

        self.lg, self.loop = lg, loop
        self.library = library
        self.labels = library.labels
        self.images = library.images
        self.flushable = flushable
        self.outstanding: set[int] = set()
        self.issued: deque[Any] = deque()  # LoadGen's thread appends, the loop drains (deque is atomic)
        self._drain_scheduled = False
        self.pending: deque[Any] = deque()  # accepted, waiting for room in the graph's input
        self._submit_nowait: Callable[[Any], bool] | None = None
        self._put_threadsafe: Callable[[Any], bool] | None = None
        self._pumping = False  # the pump holds accepted queries not yet in the graph
        self.wake = asyncio.Event()
        self.closed = False
        self.failure: BaseException | None = None
        self.answered = 0
        self.warmup_left = 0
        self.warmup_done = asyncio.Event()
        self._np = np

    # LoadGen's threads ------------------------------------------------------------------------------
    def issue_queries(self, samples: list[Any]) -> None:
        """Put the queries straight into the graph's input from LoadGen's thread while it has room;
        the rest go to the loop. Why: in Server this runs once per query, holding the GIL anyway; a
        put here wakes the loop only if the graph's reader is idle, so queries that arrive while the
        batcher waits for the GPU cost the loop nothing until it takes them as a batch."""
        put = self._put_threadsafe
        if put is None or self.issued or self.pending or self._pumping or self.failure is not None:
            self._hand_over(samples)  # behind queries the loop holds: keep first in, first in
            return
        self.outstanding.update([q.id for q in samples])
        try:
            rest = self._put_while_room(samples, put)
        except Exception as exc:  # a sample not loaded: fail the run (on the loop), answer LoadGen
            self.loop.call_soon_threadsafe(self.fail, exc)
            return
        if rest:
            self._hand_over(rest)

    def flush_queries(self) -> None:
        self._hand_over(None)

    def _hand_over(self, samples: list[Any] | None) -> None:
        """Queue for the loop, waking it only if no drain is already on its way.

        Why: in Server LoadGen calls once per query; at 20k QPS a loop callback each (and the GIL it
        takes) was a large share of the loop's work. Append first, then look at the flag; the loop clears
        the flag before draining: an item is never left without a drain to take it."""
        self.issued.append(samples)
        if not self._drain_scheduled:
            self._drain_scheduled = True
            self.loop.call_soon_threadsafe(self._drain)

    def load_samples(self, indices: list[int]) -> None:
        if self.failure is not None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self.library.load(indices), self.loop).result()
        except BaseException as exc:  # LoadGen cannot take an exception: remember it, answer empty
            self.loop.call_soon_threadsafe(self.fail, exc)

    def unload_samples(self, indices: list[int]) -> None:
        self.library.unload(indices)

    # the loop ---------------------------------------------------------------------------------------
    def _drain(self) -> None:
        self._drain_scheduled = False
        issued = self.issued
        while issued:
            self._accept(issued.popleft())

    def _accept(self, samples: list[Any] | None) -> None:
        if samples is None:
            if self.flushable:
                self.pending.append(None)
                self.wake.set()
            return
        if self.failure is not None:
            self._answer_empty([q.id for q in samples])
            return
        self.outstanding.update([q.id for q in samples])
        if not self.pending and not self._pumping and self._submit_nowait is not None:
            # Straight into the graph while its input has room: no hop through the pump's task.
            try:
                samples = self._put_while_room(samples, self._submit_nowait)
            except Exception as exc:  # a sample not loaded: fail the run, answer LoadGen
                self.fail(exc)
                return
            if not samples:
                return
        self.pending.append(samples)
        self.wake.set()

    def _put_while_room(self, samples: list[Any], put: Callable[[Any], bool]) -> list[Any]:
        """Put queries into the graph with ``put`` until it refuses one; the queries left (none if all
        went in). Raises ``KeyError`` for a sample not loaded."""
        for k, q in enumerate(samples):
            if not put(self._item(q.id, q.index)):
                return samples[k:]
        return []

    async def pump(
        self,
        submit: Callable[[Any], Any],
        submit_nowait: Callable[[Any], bool] | None = None,
        put_threadsafe: Callable[[Any], bool] | None = None,
    ) -> None:
        """Move issued queries into the graph at the pace its input queue allows. With
        ``submit_nowait``, queries that find room go in as they are accepted; the pump takes the rest.
        With ``put_threadsafe``, LoadGen's thread puts them in itself while there is room."""
        self._submit_nowait = submit_nowait
        self._put_threadsafe = put_threadsafe
        try:
            while True:
                await self.wake.wait()
                self.wake.clear()
                self._pumping = True  # queries accepted meanwhile queue behind these: first in, first in
                while self.pending:
                    samples = self.pending.popleft()
                    if samples is None:
                        await submit(Flush())
                        continue
                    for q in samples:
                        if self.failure is not None:
                            break
                        await submit(self._item(q.id, q.index))
                self._pumping = False
                if self.closed and not self.pending:
                    return
        except Exception as exc:  # answer LoadGen rather than leave its test waiting on us
            self.fail(exc)
            raise
        finally:
            self._submit_nowait = self._put_threadsafe = None

    def _item(self, sample_id: int, index: int) -> Any:
        image = self.images.get(index)
        if image is None:
            raise KeyError(f"LoadGen issued sample {index}, which is not loaded")
        return Image(sample_id, self.labels[index], image, time.perf_counter())

    def complete(self, answers_in: list[Prediction | Predictions]) -> None:
        pairs: list[tuple[int, int]] = []
        for a in answers_in:
            if isinstance(a, Predictions):
                pairs.extend(zip(a.sample_ids, a.top1, strict=True))
            else:
                pairs.append((a.sample_id, a.top1))
        warm = sum(1 for qid, _ in pairs if qid < 0)
        if warm:
            self.warmup_left -= warm
            if self.warmup_left <= 0:
                self.warmup_done.set()
        pairs = [(qid, top1) for qid, top1 in pairs if qid in self.outstanding]
        if not pairs:
            return
        ids = [qid for qid, _ in pairs]
        complete_queries(self.lg, ids, self._np.array([float(top1) for _, top1 in pairs], "<f4"))
        self.outstanding.difference_update(ids)
        self.answered += len(ids)

    def _answer_empty(self, ids: list[int]) -> None:
        if ids:
            self.lg.QuerySamplesComplete([self.lg.QuerySampleResponse(qid, 0, 0) for qid in ids])
            self.outstanding.difference_update(ids)

    def fail(self, error: BaseException) -> None:
        """The graph failed: answer everything outstanding now, and every later query at once."""
        if self.failure is None:
            self.failure = error
        self.pending.clear()
        self._answer_empty(list(self.outstanding))
        self.wake.set()
