"""``await run.call(item)``: one answer per request, for a graph behind a server.

A graph's results come out as one unordered stream (``Run.results``); a server wants each request's own
answer, and each request's own error. ``Calls`` routes by sample id, the engine's one convention for
naming a sample (``node.sample_of``): every result a collecting sink delivers goes to the call waiting
for its id, and every failure record (``on_error: skip``) to the call of the sample that failed, raised
there as ``SampleError`` while the graph goes on. When the graph ends (stopped, or failed under
``on_error: fail``), calls still waiting get the run's error, so no caller waits forever on a graph
that is gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from .channel import ChannelClosed
from .errors import FlowgraphError, SampleError
from .feeds import Feed, ResultStream
from .metrics import Failure
from .node import sample_keys, sample_of

__all__ = ["Calls"]


class Calls:
    """The waiting calls of one run, keyed by sample id; owns the run's result stream once created."""

    def __init__(self, results: ResultStream, on_failure: list[Callable[[Failure], None]]) -> None:
        self._waiting: dict[object, asyncio.Future[Any]] = {}
        self.unclaimed: list[Any] = []
        """Results no call waited for (items fed by ``submit`` beside the calls): the report keeps them."""
        on_failure.append(self._failed)
        self.router = asyncio.create_task(self._route(results), name="flowgraph:calls")

    async def call(self, feed: Feed, item: Any, timeout: float | None) -> Any:
        key = sample_of(item)
        if key is None or isinstance(key, list):
            raise ValueError(
                f"call() needs an item that names one sample (a sample_id attribute or an 'id' key), "
                f"got {type(item).__name__}"
            )
        if key in self._waiting:
            raise ValueError(f"sample id {key!r} is already in flight; give each call its own id")
        if self.router.done():
            raise RuntimeError("the graph has ended; it takes no more calls")
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[key] = answer
        try:
            try:
                await feed.put(item)
            except ChannelClosed:
                raise FlowgraphError(
                    "the graph takes no more calls: it was stopped or its input closed"
                ) from None
            async with asyncio.timeout(timeout):
                return await answer
        finally:
            if self._waiting.get(key) is answer:
                del self._waiting[key]

    def _failed(self, failure: Failure) -> None:
        for key in sample_keys(failure.sample):
            answer = self._waiting.get(key)
            if answer is not None and not answer.done():
                answer.set_exception(SampleError(failure))

    async def _route(self, results: ResultStream) -> None:
        error: BaseException | None = None
        try:
            async for item in results:
                claimed = False
                for key in sample_keys(sample_of(item)):
                    answer = self._waiting.get(key)
                    if answer is not None and not answer.done():
                        answer.set_result(item)
                        claimed = True
                if not claimed:
                    self.unclaimed.append(item)
        except Exception as exc:  # the run failed: its error is raised by the run itself too
            error = exc
        for key, answer in self._waiting.items():
            if not answer.done():
                answer.set_exception(
                    error
                    or FlowgraphError(
                        f"the graph ended without an answer for sample {key!r} (a node dropped it, or the "
                        "run was stopped)"
                    )
                )
