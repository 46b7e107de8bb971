"""Item-wise transforms: ``map`` over a user's function, ``tee`` to fan out.

Ordering: with one worker, output order is input order; with several, items finish in any order.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flowgraph import Node, Port, WorkerRule, node_type

from .callables import checked_reference, import_callable

__all__ = ["Map", "Tee"]


class MapParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fn: str = Field(description="'module:function' applied to each item; sync or async")
    blocking: bool = Field(
        False, description="run a sync fn in the node's threads (for I/O or GIL-free C code)"
    )
    kwargs: dict[str, Any] = Field(default_factory=dict, description="extra keyword arguments for fn")

    @field_validator("fn")
    @classmethod
    def _trusted(cls, ref: str) -> str:
        return checked_reference(ref)


@node_type("map")
class Map(Node):
    """Applies ``fn`` to each item. Async functions are awaited; sync ones marked ``blocking`` run in
    threads so the event loop stays free; others are called inline (cheapest for tiny functions)."""

    Params = MapParams
    params: MapParams
    worker_rule = WorkerRule.any()

    def __init__(self, params: MapParams, context: Any) -> None:
        super().__init__(params, context)
        fn = import_callable(params.fn)
        self._fn: Callable[..., Any] = functools.partial(fn, **params.kwargs) if params.kwargs else fn
        self._is_async = inspect.iscoroutinefunction(fn)

    async def process(self, item: Any) -> Any:
        if self._is_async:
            return await self._fn(item)
        if self.params.blocking:
            return await self.offload(self._fn, item)
        return self._fn(item)


@node_type("tee")
class Tee(Node):
    """Sends every item to every edge leaving ``out`` (the same object: copy in a map if you mutate)."""

    outputs: ClassVar = {"out": Port(object, multi=True)}
    worker_rule = WorkerRule.any()

    async def process(self, item: Any) -> Any:
        return item
