"""Rules over a loaded graph, checked before anything runs.

Each rule is a small function that returns the issues it finds; ``validate`` runs them in order and
raises one ``GraphValidationError`` listing every issue, each with file:line, node and fix. Later rules
only run once the earlier ones they rely on (types resolved, params parsed) have passed.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import networkx as nx
from pydantic import BaseModel, ValidationError

from .derive import derive_from_neighbours
from .errors import GraphValidationError, Issue, RegistryError, did_you_mean
from .load import LoadedGraph, SourceMap
from .node import Node
from .registry import resolve
from .shards.plan import check_shards
from .trust import UntrustedCode

__all__ = ["CheckedEdge", "CheckedGraph", "CheckedNode", "validate"]


@dataclass(frozen=True)
class CheckedNode:
    """A node whose type resolved, params parsed and worker count agreed with its rule."""

    name: str
    cls: type[Node]
    params: BaseModel
    workers: int
    on_error: str
    timeout: float | None = None
    """Seconds one item, or one blocking call in the node's threads, may take; None: no limit."""


@dataclass(frozen=True)
class CheckedEdge:
    """An edge with both ports named explicitly."""

    source: str
    source_port: str
    target: str
    target_port: str
    capacity: int


@dataclass(frozen=True)
class CheckedGraph:
    """A graph that passed every rule: what ``runtime.build`` accepts."""

    loaded: LoadedGraph
    nodes: dict[str, CheckedNode]
    edges: list[CheckedEdge]
    digraph: nx.MultiDiGraph
    warnings: list[Issue] = field(default_factory=list)
    """What is allowed but unchecked (an ``object`` output feeding a typed input): shown, not refused."""

    @property
    def name(self) -> str:
        return self.loaded.spec.name or "graph"

    def topological_order(self) -> list[str]:
        return list(nx.topological_sort(self.digraph))

    def with_params(self, node: str, params: Mapping[str, Any]) -> CheckedGraph:
        """This graph with ``params`` merged into ``node``'s (checked by its ``Params``; the spec follows)."""
        old = self.nodes[node]
        merged = {**old.params.model_dump(), **params}
        checked = replace(old, params=type(old.params).model_validate(merged))
        spec = self.loaded.spec
        node_spec = spec.nodes[node].model_copy(update={"params": {**spec.nodes[node].params, **params}})
        loaded = replace(self.loaded, spec=spec.model_copy(update={"nodes": {**spec.nodes, node: node_spec}}))
        return replace(self, loaded=loaded, nodes={**self.nodes, node: checked})


def validate(
    loaded: LoadedGraph, *, check_environment: bool = True, known: Mapping[str, CheckedNode] | None = None
) -> CheckedGraph:
    """Check every rule; return the checked graph or raise ``GraphValidationError`` listing all issues.

    ``known``: nodes already checked as part of a larger graph (a harness cutting a checked graph in
    two): those with the same type and params are taken as they are, so only the structure and the
    new nodes are checked again."""
    src = loaded.source
    reuse = {
        name: node
        for name, node in (known or {}).items()
        if name in loaded.spec.nodes and _same_node(loaded, name, node)
    }
    # Every rule that can run does, so one pass names every problem: a node whose type did not resolve
    # is left out of the rules about its params and ports, not allowed to hide the other nodes' issues.
    classes, issues = _resolve_types(loaded, src, reuse)
    unresolved = set(loaded.spec.nodes) - set(classes)
    params_ok, param_issues = _parse_params_and_workers(loaded, classes, src, reuse)
    nodes = params_ok
    issues += param_issues
    edges, edge_issues = _resolve_edges(loaded, classes, src, unresolved)
    issues += edge_issues
    issues += _check_port_types(edges, classes, loaded, src)
    if not edge_issues and not unresolved:
        issues += _check_connections(edges, classes, src)
    graph = _digraph(loaded, edges)
    issues += _check_cycles(graph, src)
    if not issues:
        issues += check_shards(loaded, graph, classes, src)
    if not issues:
        issues += derive_from_neighbours(loaded, nodes, graph, src)
    if check_environment and not issues:
        issues += _check_environment({n: c for n, c in nodes.items() if n not in reuse}, src)
    if issues:
        raise GraphValidationError(sorted(issues, key=lambda i: (i.file, i.line or 0)))  # in file order
    return CheckedGraph(loaded, nodes, edges, graph, _untyped_feeds(edges, classes, loaded, src))


# --- rules ------------------------------------------------------------------------------------------


def _same_node(loaded: LoadedGraph, name: str, known: CheckedNode) -> bool:
    spec = loaded.spec.nodes[name]
    return (
        spec.on_error == known.on_error
        and spec.workers in (None, known.workers)
        and (spec.type == known.cls.kind or spec.type == f"{known.cls.__module__}:{known.cls.__qualname__}")
    )


def _resolve_types(
    loaded: LoadedGraph, src: SourceMap, reuse: Mapping[str, CheckedNode]
) -> tuple[dict[str, type[Node]], list[Issue]]:
    classes: dict[str, type[Node]] = {name: node.cls for name, node in reuse.items()}
    issues = []
    for name, node in loaded.spec.nodes.items():
        if name in reuse:
            continue
        try:
            cls = resolve(node.type)
        except UntrustedCode as exc:
            top = node.type.partition(":")[0].split(".")[0]
            issues.append(
                src.issue(
                    ("nodes", name, "type"),
                    str(exc),
                    node=name,
                    fix=f"if you trust {top}, allow it: --allow-module {top} (see the README's trust model)",
                )
            )
            continue
        except RegistryError as exc:
            issues.append(
                src.issue(
                    ("nodes", name, "type"),
                    str(exc),
                    node=name,
                    fix="run `flowgraph nodes` to list the registered types",
                )
            )
            continue
        not_async = _not_async(cls)
        if not_async:
            issues.append(
                src.issue(
                    ("nodes", name, "type"),
                    f"{cls.__qualname__}.{not_async[0]} is a plain function, but the engine awaits it "
                    f"(not async: {', '.join(not_async)})",
                    node=name,
                    fix=f"write `async def {not_async[0]}(...)`; put blocking work in "
                    "`await self.offload(fn, *args)` so it runs in the node's threads",
                )
            )
            continue
        classes[name] = cls
    return classes, issues


AWAITED_METHODS = ("process", "run", "setup", "teardown")
"""Node methods the engine awaits: a plain ``def`` there fails only when the first item arrives."""


def _not_async(cls: type[Node]) -> list[str]:
    return [
        method for method in AWAITED_METHODS if not inspect.iscoroutinefunction(getattr(cls, method, None))
    ]


def _parse_params_and_workers(
    loaded: LoadedGraph, classes: dict[str, type[Node]], src: SourceMap, reuse: Mapping[str, CheckedNode]
) -> tuple[dict[str, CheckedNode], list[Issue]]:
    nodes: dict[str, CheckedNode] = dict(reuse)
    issues: list[Issue] = []
    for name, node in loaded.spec.nodes.items():
        if name in reuse or name not in classes:  # a type that did not resolve is already reported
            continue
        cls = classes[name]
        try:
            model = cls.params_model(node.params)
        except (ValueError, RegistryError) as exc:
            issues.append(src.issue(("nodes", name, "params"), str(exc), node=name))
            continue
        takes = (
            f"{node.type} ({model.model_config['title']})" if model.model_config.get("title") else node.type
        )
        try:
            params = model.model_validate(node.params)
        except ValidationError as exc:
            for err in exc.errors():
                loc = tuple(err["loc"])
                key = ".".join(str(p) for p in loc)
                if err["type"] == "extra_forbidden":
                    fix = (
                        did_you_mean(str(loc[-1]), model.model_fields)
                        or f"{takes} takes: {', '.join(model.model_fields) or 'no params'}"
                    )
                    issues.append(
                        src.issue(
                            ("nodes", name, "params", *loc), f"unknown param {key!r}", node=name, fix=fix
                        )
                    )
                elif err["type"] == "missing":
                    issues.append(
                        src.issue(
                            ("nodes", name),
                            f"missing required param {key!r}",
                            node=name,
                            fix=f"add params: {{{key}: ...}} (see `flowgraph nodes {node.type}`)",
                        )
                    )
                else:
                    issues.append(
                        src.issue(
                            ("nodes", name, "params", *loc),
                            f"param {key!r}: {err['msg']} (got {err.get('input')!r})",
                            node=name,
                        )
                    )
            continue
        if node.on_error == "skip" and not cls.honours_skip():
            issues.append(
                src.issue(
                    ("nodes", name, "on_error"),
                    f"{node.type} does not skip failed samples (it handles several at once, in its own "
                    "loop): on_error: skip would be ignored",
                    node=name,
                    fix="remove on_error: skip here and set it on the node that fails (a per-sample node)",
                )
            )
            continue
        rule = cls.worker_rule
        expected = rule.expected(params)
        workers = node.workers if node.workers is not None else rule.default(params)
        if expected is not None and workers != expected:
            if rule.kind == "equals":
                msg = f"workers is {workers} but {cls.kind} needs one worker per engine: {rule.value} is {expected}"
                fix = f"set workers: {expected} (or remove 'workers'; it defaults to {rule.value})"
            else:
                msg = f"workers is {workers} but {cls.kind} runs with exactly {expected}"
                fix = f"set workers: {expected} or remove 'workers'"
            issues.append(src.issue(("nodes", name, "workers"), msg, node=name, fix=fix))
            continue
        nodes[name] = CheckedNode(name, cls, params, workers, node.on_error, node.timeout)
    return nodes, issues


def _pick_port(
    ports: Mapping[str, object],
    given: str | None,
    node: str,
    side: str,
    path: tuple,
    src: SourceMap,
    issues: list[Issue],
) -> str | None:
    if given is not None:
        if given in ports:
            return given
        have = ", ".join(ports) or "none"
        fix = (
            did_you_mean(given, ports, n=1, show=lambda p: f"{node}.{p}") or f"{side} ports of {node}: {have}"
        )
        issues.append(src.issue(path, f"{node} has no {side} port {given!r}", node=node, fix=fix))
        return None
    if len(ports) == 1:
        return next(iter(ports))
    if not ports:
        issues.append(
            src.issue(
                path,
                f"{node} has no {side} ports",
                node=node,
                fix="a source has no inputs and a sink no outputs; check the edge's direction",
            )
        )
    else:
        issues.append(
            src.issue(
                path,
                f"{node} has several {side} ports; say which",
                node=node,
                fix=f"write one of: {', '.join(f'{node}.{p}' for p in ports)}",
            )
        )
    return None


def _resolve_edges(
    loaded: LoadedGraph,
    classes: dict[str, type[Node]],
    src: SourceMap,
    unresolved: set[str] = frozenset(),  # type: ignore[assignment]
) -> tuple[list[CheckedEdge], list[Issue]]:
    """``unresolved``: nodes whose type failed (already reported): their edges are skipped quietly."""
    edges: list[CheckedEdge] = []
    issues: list[Issue] = []
    names = list(loaded.spec.nodes)
    for i, edge in enumerate(loaded.spec.edges):
        ends: list[str | None] = []
        for key, ref, side in (("from", edge.source, "output"), ("to", edge.target, "input")):
            path = ("edges", i, key)
            if ref.node in unresolved:
                ends.append(None)
                continue
            if ref.node not in classes:
                fix = (
                    did_you_mean(ref.node, names, n=1, show=repr)
                    or f"nodes in this graph: {', '.join(names)}"
                )
                issues.append(src.issue(path, f"edge {key} unknown node {ref.node!r}", fix=fix))
                ends.append(None)
                continue
            cls = classes[ref.node]
            ports = dict(cls.outputs if side == "output" else cls.inputs)
            ends.append(_pick_port(ports, ref.port, ref.node, side, path, src, issues))
        if None not in ends:
            edges.append(
                CheckedEdge(edge.source.node, str(ends[0]), edge.target.node, str(ends[1]), edge.capacity)
            )
    return edges, issues


def _edge_index(loaded: LoadedGraph, edge: CheckedEdge) -> int:
    for i, spec_edge in enumerate(loaded.spec.edges):
        if spec_edge.source.node == edge.source and spec_edge.target.node == edge.target:
            return i
    return -1


def _check_port_types(
    edges: list[CheckedEdge], classes: dict[str, type[Node]], loaded: LoadedGraph, src: SourceMap
) -> list[Issue]:
    issues = []
    for edge in edges:
        produced = classes[edge.source].outputs[edge.source_port].type
        accepted = classes[edge.target].inputs[edge.target_port].type
        if accepted is object or produced is object or issubclass(produced, accepted):
            continue
        issues.append(
            src.issue(
                ("edges", _edge_index(loaded, edge)),
                f"type mismatch: {edge.source}.{edge.source_port} produces {produced.__name__} but "
                f"{edge.target}.{edge.target_port} accepts {accepted.__name__}",
                node=edge.target,
                fix=f"put a node that turns {produced.__name__} into {accepted.__name__} between them",
            )
        )
    return issues


def _untyped_feeds(
    edges: list[CheckedEdge], classes: dict[str, type[Node]], loaded: LoadedGraph, src: SourceMap
) -> list[Issue]:
    """Edges the type check had to let through: an output declared ``object`` (anything) feeding an
    input that wants a type. Allowed, since the output may well produce it, but unchecked until a
    wrong item reaches the node at run time."""
    warnings = []
    for edge in edges:
        produced = classes[edge.source].outputs[edge.source_port].type
        accepted = classes[edge.target].inputs[edge.target_port].type
        if produced is object and accepted is not object:
            warnings.append(
                src.issue(
                    ("edges", _edge_index(loaded, edge)),
                    f"unchecked: {edge.source}.{edge.source_port} is typed object (anything) but "
                    f"{edge.target}.{edge.target_port} accepts only {accepted.__name__}; a wrong item "
                    "fails only when it arrives",
                    node=edge.source,
                    fix=f"put a node that makes {accepted.__name__} between them; or, if "
                    f"{classes[edge.source].__qualname__} is yours and produces {accepted.__name__}, declare "
                    f"it: outputs = {{{edge.source_port!r}: Port({accepted.__name__})}}",
                )
            )
    return warnings


def _check_connections(
    edges: list[CheckedEdge], classes: dict[str, type[Node]], src: SourceMap
) -> list[Issue]:
    issues = []
    for name, cls in classes.items():
        for port_name, port in cls.inputs.items():
            feeding = [e for e in edges if e.target == name and e.target_port == port_name]
            if port.required and not feeding:
                issues.append(
                    src.issue(
                        ("nodes", name),
                        f"input port {name}.{port_name} is not connected",
                        node=name,
                        fix=f"add an edge {{from: <node>, to: {name}.{port_name}}}",
                    )
                )
        for port_name, port in cls.outputs.items():
            fed = [e for e in edges if e.source == name and e.source_port == port_name]
            if port.required and not fed:
                issues.append(
                    src.issue(
                        ("nodes", name),
                        f"output port {name}.{port_name} is not connected (its items would be lost)",
                        node=name,
                        fix=f"add an edge {{from: {name}.{port_name}, to: <node>}}",
                    )
                )
            if len(fed) > 1 and not port.multi:
                issues.append(
                    src.issue(
                        ("nodes", name),
                        f"output port {name}.{port_name} feeds {len(fed)} edges",
                        node=name,
                        fix="put a 'tee' node after it to send each item to every branch",
                    )
                )
    return issues


def _digraph(loaded: LoadedGraph, edges: list[CheckedEdge]) -> nx.MultiDiGraph:
    graph = nx.MultiDiGraph()
    for name, node in loaded.spec.nodes.items():
        graph.add_node(name, type=node.type)
    for edge in edges:
        graph.add_edge(
            edge.source,
            edge.target,
            source_port=edge.source_port,
            target_port=edge.target_port,
            capacity=edge.capacity,
        )
    return graph


def _check_cycles(graph: nx.MultiDiGraph, src: SourceMap) -> list[Issue]:
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        return []
    path = [edge[0] for edge in cycle] + [cycle[0][0]]
    return [
        src.issue(
            ("nodes", path[0]),
            f"cycle: {' -> '.join(path)}",
            node=path[0],
            fix="a flowgraph graph is a DAG; remove one of these edges",
        )
    ]


def _check_environment(nodes: dict[str, CheckedNode], src: SourceMap) -> list[Issue]:
    issues = []
    for name, node in nodes.items():
        needs = node.cls.needs
        problem = (needs and needs.problem(f"{node.cls.kind}")) or node.cls.check_environment(node.params)
        if problem:
            issues.append(src.issue(("nodes", name), problem, node=name))
    return issues
