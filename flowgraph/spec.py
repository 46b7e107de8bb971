"""The graph file as pure data: pydantic models, no behaviour, no asyncio.

A spec is what the user declared. ``validate`` checks it against the node types; ``runtime`` builds
queues and tasks from the checked spec. Unknown keys are errors everywhere (``extra="forbid"``), because
a typo that is silently ignored is the most expensive kind of config bug.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["DEFAULT_CAPACITY", "EdgeSpec", "GraphSpec", "NodeSpec", "PortRef", "ScenarioSpec", "ShardSpec"]

DEFAULT_CAPACITY = 64
"""Queue capacity of an edge that names none: deep enough to hide jitter, small enough to bound memory."""

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PortRef(_Strict):
    """One end of an edge: ``node.port``; the port may be omitted when the node has exactly one."""

    node: str
    port: str | None = None

    @classmethod
    def parse(cls, text: str) -> PortRef:
        node, _, port = text.partition(".")
        return cls(node=node, port=port or None)

    def __str__(self) -> str:
        return f"{self.node}.{self.port}" if self.port else self.node


class EdgeSpec(_Strict):
    """A bounded queue from an output port to an input port."""

    source: PortRef = Field(alias="from")
    target: PortRef = Field(alias="to")
    capacity: int = Field(
        DEFAULT_CAPACITY, ge=0, le=1_000_000, description="items queued at most; 0: hand-over only (pull)"
    )

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("source", "target", mode="before")
    @classmethod
    def _parse_ref(cls, value: Any) -> Any:
        return PortRef.parse(value) if isinstance(value, str) else value


class NodeSpec(_Strict):
    """A node as declared: its registered type, params, worker count and error policy."""

    type: str
    params: dict[str, Any] = Field(default_factory=dict)
    workers: int | None = Field(None, ge=1, le=4096)
    on_error: Literal["fail", "skip"] = "fail"
    timeout: float | None = Field(None, gt=0, description="seconds one item (or one blocking call) may take")


class ScenarioSpec(_Strict):
    """How one scenario changes the graph: nodes to bypass and graph params to set."""

    bypass: list[str] = Field(default_factory=list)
    params: dict[str, Any] = Field(default_factory=dict)


class ShardSpec(_Strict):
    """The part of the graph from ``begin`` to its answers, run as identical shards, one process each.

    The parent keeps the source and sends sample indices; each shard loads its samples itself (the
    nodes before ``begin``), runs the rest, and sends the answers back."""

    devices: list[int] | int | Literal["auto"] = Field(
        "auto",
        description="GPU ordinals, one shard each (repeat one to share it); a number: that many CPU "
        "shards; auto: every visible GPU, else one shard per core",
    )
    begin: str | None = Field(
        None, description="the first node of a shard (default: the node the source feeds)"
    )
    credit: int = Field(2, ge=1, le=64, description="index batches in flight per shard (its backpressure)")
    batch: int = Field(64, ge=1, le=65536, description="samples per index batch in a plain run")
    runner: Literal["process", "ray"] = Field(
        "process", description="process: one spawned process per shard here; ray: one Ray actor per shard"
    )
    address: str | None = Field(
        None, description="ray: the cluster to join (default: RAY_ADDRESS, else a local one)"
    )

    @field_validator("devices")
    @classmethod
    def _devices(cls, value: Any) -> Any:
        if isinstance(value, list) and (not value or any(d < 0 for d in value)):
            raise ValueError("devices is a non-empty list of GPU ordinals (0, 1, ...)")
        if isinstance(value, int) and value < 1:
            raise ValueError("a number of CPU shards is 1 or more")
        return value


class GraphSpec(_Strict):
    """The whole graph file after parameter substitution."""

    name: str | None = None
    description: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    nodes: dict[str, NodeSpec]
    edges: list[EdgeSpec] = Field(default_factory=list)
    scenarios: dict[str, ScenarioSpec] = Field(default_factory=dict)
    shards: ShardSpec | None = None

    @field_validator("nodes")
    @classmethod
    def _names_are_identifiers(cls, nodes: dict[str, NodeSpec]) -> dict[str, NodeSpec]:
        for name in nodes:
            if not _NAME.match(name) or "." in name:
                raise ValueError(f"node name {name!r} must be letters, digits, '_' or '-' (no dots)")
        if not nodes:
            raise ValueError("a graph needs at least one node")
        return nodes
