"""Where items come from: an inline list, a range, a file of records, a Python iterable, or the
embedding program (``input``). Sources run one worker so their order is the file's order."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flowgraph import Node, Port, Source, WorkerIO, WorkerRule, node_type

from .callables import checked_reference, import_callable

__all__ = ["ExternalInput", "IterableSource"]


class SourceParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[Any] | None = Field(None, description="inline items")
    range: int | None = Field(None, ge=0, description="the integers 0..range-1")
    file: Path | None = Field(None, description="records, one per line: JSON lines (.jsonl) or plain text")
    iterable: str | None = Field(None, description="'module:function' returning an iterable")
    count: int | None = Field(None, ge=0, description="stop after this many items")

    @field_validator("iterable")
    @classmethod
    def _trusted(cls, ref: str | None) -> str | None:
        return None if ref is None else checked_reference(ref)

    @model_validator(mode="after")
    def _exactly_one(self) -> SourceParams:
        given = [k for k in ("items", "range", "file", "iterable") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of items, range, file, iterable (got {given or 'none'})")
        return self


@node_type("source")
class IterableSource(Source):
    """Emits items from one of: ``items``, ``range``, ``file`` (JSON lines or text), ``iterable``."""

    Params = SourceParams
    outputs: ClassVar = {"out": Port(object, doc="one item per record")}
    worker_rule = WorkerRule.fixed(1)
    params: SourceParams

    def _records(self) -> Iterable[Any]:
        p = self.params
        if p.items is not None:
            return p.items
        if p.range is not None:
            return range(p.range)
        if p.file is not None:
            return _read_records(p.file)
        assert p.iterable is not None
        return import_callable(p.iterable)()

    def expected_items(self) -> int | None:
        p = self.params
        n = len(p.items) if p.items is not None else p.range
        if n is None:
            return p.count
        return min(n, p.count) if p.count is not None else n

    async def items(self, worker: int) -> AsyncIterator[Any]:
        limit = self.params.count
        for i, record in enumerate(self._records()):
            if limit is not None and i >= limit:
                return
            yield record


def _read_records(path: Path) -> Iterable[Any]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            if path.suffix in (".jsonl", ".ndjson"):
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{number}: not valid JSON: {exc.msg}") from None
            else:
                yield line


@node_type("input")
class ExternalInput(Node):
    """Items the embedding program submits (``Run.submit`` / ``Run.feed``), in order."""

    inputs: ClassVar = {}
    outputs: ClassVar = {"out": Port(object)}
    worker_rule = WorkerRule.fixed(1)
    external_input = True

    async def run(self, io: WorkerIO) -> None:
        async for item in io.feed():
            await io.out.send(item)
