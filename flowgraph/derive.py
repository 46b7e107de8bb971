"""What a node's place in the graph decides: worker counts that follow the engines, params that follow
an upstream node. Run by ``validate`` once the graph's structure is known to be sound.

Why a rule of its own: these are the invariants that ``${}`` substitution used to tie together by
convention (a copy stage's worker count, the batch size written into three nodes). Declared once and
derived, they cannot drift; written twice and different, they are an error with file:line and a fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

import networkx as nx

from .errors import Issue
from .load import LoadedGraph, SourceMap
from .node import Follows

if TYPE_CHECKING:
    from .validate import CheckedNode

__all__ = ["derive_from_neighbours"]


def derive_from_neighbours(
    loaded: LoadedGraph, nodes: dict[str, CheckedNode], graph: nx.MultiDiGraph, src: SourceMap
) -> list[Issue]:
    """Worker counts that follow the engines (``WorkerRule.per_partition``) and params that follow an
    upstream node (``Node.follows``): filled in where left unset, an issue where they disagree.
    Updates ``nodes`` in place, in topological order so a derived value passes on downstream."""
    issues: list[Issue] = []
    for name in nx.topological_sort(graph):
        node = nodes[name]
        if node.cls.worker_rule.kind == "per_partition":
            found = _nearest_partitioned(graph, nodes, name)
            if found is not None:
                engines, count = found
                written = loaded.spec.nodes[name].workers
                if written is not None and written != count:
                    issues.append(
                        src.issue(
                            ("nodes", name, "workers"),
                            f"workers is {written} but {node.cls.kind} runs one worker per engine of "
                            f"'{engines}', which has {count}",
                            node=name,
                            fix=f"remove 'workers' (it follows {engines}) or set workers: {count}",
                        )
                    )
                    continue
                node = nodes[name] = replace(node, workers=count)
        for rule in node.cls.follows:
            issue = _follow(graph, nodes, name, rule, src)
            if issue is not None:
                issues.append(issue)
    return issues


def _nearest_partitioned(
    graph: nx.MultiDiGraph, nodes: Mapping[str, CheckedNode], name: str
) -> tuple[str, int] | None:
    """(node, workers) of the nearest node with a partitioned input: downstream first, then upstream."""
    for upstream in (False, True):
        for other in _nearest_first(graph, name, upstream):
            if any(port.partitioned for port in nodes[other].cls.inputs.values()):
                return other, nodes[other].workers
    return None


def _nearest_first(graph: nx.MultiDiGraph, name: str, upstream: bool) -> list[str]:
    """The nodes ``name`` reaches (downstream) or is reached from (upstream), nearest first: one
    breadth-first walk, which lists them in order of distance."""
    walk = graph.reverse(copy=False) if upstream else graph
    return [other for other in nx.single_source_shortest_path_length(walk, name) if other != name]


def _follow(
    graph: nx.MultiDiGraph, nodes: dict[str, CheckedNode], name: str, rule: Follows, src: SourceMap
) -> Issue | None:
    node = nodes[name]
    if rule.param not in type(node.params).model_fields:
        return None  # this node's params model (e.g. one backend's) has no such param
    source = rule.source or rule.param
    upstream = _nearest_first(graph, name, upstream=True)
    origin = next((other for other in upstream if source in type(nodes[other].params).model_fields), None)
    if origin is None:
        return None
    value = getattr(nodes[origin].params, source)
    if value in (None, 0):
        return None  # unset upstream too: nothing to follow
    own = getattr(node.params, rule.param)
    if own in (None, 0, [], ()):
        derived = [value] if isinstance(own, list) else value
        params = type(node.params).model_validate({**node.params.model_dump(), rule.param: derived})
        nodes[name] = replace(node, params=params)
        return None
    agrees = value in own if isinstance(own, list | tuple) else own == value
    if agrees:
        return None
    return src.issue(
        ("nodes", name, "params", rule.param),
        f"{rule.param} is {own!r} but {origin}.{source} is {value!r}: they describe the same batches",
        node=name,
        fix=f"remove {name}'s {rule.param} (it follows {origin}.{source}) or make them agree",
    )
