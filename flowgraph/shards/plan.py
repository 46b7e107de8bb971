"""Where a sharded graph is cut, on which devices its shards run, and the validator's rules for it.

A shard is the graph from ``shards.begin`` to its answers. What comes before ``begin`` (the source, and
whatever else loads a sample) is the shard's *loader*: the parent only enumerates sample indices, and each
shard runs the loader for the indices it is sent. So the source must be able to load samples by index:
its params have ``indices``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import networkx as nx

from ..errors import Issue
from ..load import LoadedGraph, SourceMap
from ..registry import resolve
from ..spec import EdgeSpec, NodeSpec, PortRef, ShardSpec

__all__ = [
    "LOADER_OUT",
    "SHARD_IN",
    "SHARD_OUT",
    "ShardCut",
    "check_shards",
    "cut_at_edge",
    "cut_for_shards",
    "resolve_devices",
]

SHARD_IN, SHARD_OUT, LOADER_OUT = "shard_input", "shard_answers", "shard_loaded"


def default_begin(spec: Any, graph: nx.MultiDiGraph) -> str | None:
    """The node the source feeds (the only source's only successor), or None if that is not one node."""
    sources = [n for n in graph.nodes if graph.in_degree(n) == 0]
    if len(sources) != 1:
        return None
    after = set(graph.successors(sources[0]))
    return next(iter(after)) if len(after) == 1 else None


def check_shards(
    loaded: LoadedGraph, graph: nx.MultiDiGraph, classes: Mapping[str, type], src: SourceMap
) -> list[Issue]:
    """The ``shards:`` rules: ``begin`` names a node after the source; everything before it is one
    source that loads by index (its params have ``indices``) and what it feeds, joined to the rest by
    one edge into ``begin``."""
    shards = loaded.spec.shards
    if shards is None:
        return []
    begin = shards.begin or default_begin(loaded.spec, graph)
    where = ("shards", "begin") if shards.begin else ("shards",)
    if begin is None:
        return [
            src.issue(
                where,
                "cannot tell where the shards begin: the graph has no single source feeding one node",
                fix="name the node: shards: {begin: NODE}",
            )
        ]
    if begin not in graph:
        return [
            src.issue(
                where,
                f"shards.begin: no node named {begin!r}",
                fix=f"one of {', '.join(sorted(graph.nodes))}",
            )
        ]
    loader = nx.ancestors(graph, begin)
    if not loader:
        return [
            src.issue(
                where,
                f"shards.begin {begin!r} is a source: the parent must keep the source, which sends sample indices",
                fix="begin at the node the source feeds",
            )
        ]
    issues = []
    sources = [n for n in loader if graph.in_degree(n) == 0]
    for source in sources:
        params = getattr(classes.get(source), "Params", None)
        if params is None or "indices" not in getattr(params, "model_fields", {}):
            issues.append(
                src.issue(
                    ("nodes", source, "type"),
                    f"source {source!r} cannot load samples by index (its params have no 'indices'): a shard "
                    "loads the samples it is sent by index",
                    node=source,
                    fix="use a dataset source (e.g. imagenet), or run this graph unsharded",
                )
            )
    if len(sources) > 1:
        issues.append(
            src.issue(
                where, f"the nodes before {begin!r} have {len(sources)} sources; a shard's loader has one"
            )
        )
    crossing = [(a, b) for a, b in graph.edges() if a in loader and b not in loader]
    back = [(a, b) for a, b in graph.edges() if b in loader and a not in loader]
    if any(b != begin for _, b in crossing) or len(crossing) != 1 or back:
        issues.append(
            src.issue(
                where,
                f"the nodes before {begin!r} ({', '.join(sorted(loader))}) must feed the shard through one edge "
                f"into {begin!r} (found {', '.join(f'{a}->{b}' for a, b in crossing + back)})",
                fix="begin the shards at the node where the loaded samples enter the rest of the graph",
            )
        )
    return issues


@dataclass(frozen=True)
class ShardCut:
    """A sharded graph cut in two: the loader (source to ``begin``, ending in a collector) and the shard
    proper (fed by an input node where the loader was)."""

    loader: LoadedGraph
    shard: LoadedGraph
    source: str
    begin: str


def cut_at_edge(
    spec: Any, front_nodes: set[str], cut: EdgeSpec, collector: str, feed: str
) -> tuple[tuple[dict[str, NodeSpec], list[EdgeSpec]], tuple[dict[str, NodeSpec], list[EdgeSpec]]]:
    """A graph cut in two at edge ``cut``: (nodes, edges) of the front (``front_nodes``, ending in a
    ``collect`` node named ``collector`` where the cut edge left) and of the back (the rest, fed by an
    ``input`` node named ``feed`` where the cut edge arrived). Pure spec → spec: shards and LoadGen's
    QSL split both cut this way."""
    front = {n: s for n, s in spec.nodes.items() if n in front_nodes}
    front[collector] = NodeSpec.model_validate({"type": "collect"})
    front_edges = [e for e in spec.edges if e.source.node in front_nodes and e.target.node in front_nodes]
    front_edges.append(
        EdgeSpec.model_validate({"from": cut.source, "to": PortRef(node=collector), "capacity": cut.capacity})
    )
    back = {n: s for n, s in spec.nodes.items() if n not in front_nodes}
    back[feed] = NodeSpec.model_validate({"type": "input"})
    back_edges = [e for e in spec.edges if e.source.node not in front_nodes]
    back_edges.append(
        EdgeSpec.model_validate({"from": PortRef(node=feed), "to": cut.target, "capacity": cut.capacity})
    )
    return (front, front_edges), (back, back_edges)


def cut_for_shards(loaded: LoadedGraph, begin: str | None = None) -> ShardCut:
    """Cut at ``begin`` (default: ``shards.begin``, else the node the source feeds). Pure spec → spec;
    the whole graph is validated before, so the cut's shape is known to be right."""
    spec = loaded.spec
    graph = nx.MultiDiGraph()
    graph.add_nodes_from(spec.nodes)
    graph.add_edges_from((e.source.node, e.target.node) for e in spec.edges)
    begin = begin or (spec.shards.begin if spec.shards else None) or default_begin(spec, graph)
    assert begin is not None and begin in graph, "validate the graph before cutting it"
    loader_nodes = nx.ancestors(graph, begin)
    cut = next(e for e in spec.edges if e.source.node in loader_nodes and e.target.node == begin)
    (front, front_edges), (rest, rest_edges) = cut_at_edge(spec, loader_nodes, cut, LOADER_OUT, SHARD_IN)
    # What answers: the outputs no edge takes (a node whose results would otherwise be dropped), collected
    # so that the shard can send them back.
    # (A collect node the graph has already delivers its items; a graph without free outputs needs none.)
    taken = {(e.source.node, e.source.port) for e in rest_edges}
    free = [
        (name, port)
        for name in rest
        if name != SHARD_IN
        for port in resolve(rest[name].type).outputs
        if (name, port) not in taken and (name, None) not in taken
    ]
    if free:
        rest[SHARD_OUT] = NodeSpec.model_validate({"type": "collect"})
    for name, port in free:
        answer = {"from": PortRef(node=name, port=port), "to": PortRef(node=SHARD_OUT), "capacity": 1024}
        rest_edges.append(EdgeSpec.model_validate(answer))
    unsharded = {"shards": None}
    source = next(n for n in loader_nodes if graph.in_degree(n) == 0)
    return ShardCut(
        LoadedGraph(
            spec.model_copy(
                update={"nodes": front, "edges": front_edges, "name": f"{spec.name}-loader", **unsharded}
            ),
            loaded.source,
            loaded.scenario,
        ),
        LoadedGraph(
            spec.model_copy(update={"nodes": rest, "edges": rest_edges, **unsharded}),
            loaded.source,
            loaded.scenario,
        ),
        source,
        begin,
    )


def resolve_devices(shards: ShardSpec) -> list[int | None]:
    """One entry per shard: a GPU ordinal, or None for a CPU shard. ``auto``: every visible GPU (CuPy
    counts them, without making a CUDA context in this process), else one CPU shard per usable core."""
    if isinstance(shards.devices, list):
        return list(shards.devices)
    if isinstance(shards.devices, int):
        return [None] * shards.devices
    count = _visible_gpus()
    return list(range(count)) if count else [None] * len(os.sched_getaffinity(0))


def _visible_gpus() -> int:
    try:
        import cupy

        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # no CuPy, no driver, no GPU: the CPU then
        return 0


def shard_members(spec: Any, graph: nx.MultiDiGraph) -> tuple[set[str], str] | None:
    """The nodes every shard runs (``begin`` and what follows) and a caption naming the shards and
    their devices, for drawings; None for a graph without shards."""
    shards = spec.shards
    if shards is None:
        return None
    begin = shards.begin or default_begin(spec, graph)
    if begin is None or begin not in graph:
        return None
    members = set(graph.nodes) - nx.ancestors(graph, begin)
    devices = resolve_devices(shards)
    where = ", ".join("cpu" if d is None else f"GPU {d}" for d in devices)
    runner = "Ray actor" if shards.runner == "ray" else "process"
    return members, f"x{len(devices)} shards ({where}), one {runner} each; the parent sends sample indices"
