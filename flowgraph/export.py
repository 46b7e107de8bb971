"""The graph as a picture: DOT, Mermaid, networkx node-link JSON, and SVG/PNG through Graphviz.

Labels show what a reader needs to reason about throughput: type, workers, queue capacity, and after a
run each node's items per second.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping
from typing import Any

import networkx as nx

from .errors import DependencyMissing
from .shards.plan import shard_members
from .validate import CheckedGraph

__all__ = ["FORMATS", "export", "to_dot", "to_json", "to_mermaid"]

FORMATS = ("dot", "mermaid", "json", "svg", "png")


def _node_label(graph: CheckedGraph, name: str, throughput: Mapping[str, float] | None) -> str:
    node = graph.nodes[name]
    label = f"{name}\\n{node.cls.kind} x{node.workers}"
    if throughput and name in throughput:
        label += f"\\n{throughput[name]:,.1f} items/s"
    return label


def _shards(graph: CheckedGraph) -> tuple[set[str], str] | None:
    return shard_members(graph.loaded.spec, graph.digraph)


def to_dot(graph: CheckedGraph, throughput: Mapping[str, float] | None = None) -> str:
    lines = [
        f'digraph "{graph.name}" {{',
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fillcolor="#eef3fb"];',
    ]
    shards = _shards(graph)
    for name in graph.topological_order():
        if shards is None or name not in shards[0]:
            lines.append(f'  "{name}" [label="{_node_label(graph, name, throughput)}"];')
    if shards is not None:
        lines.append(f'  subgraph cluster_shards {{\n    label="{shards[1]}";\n    style=dashed;')
        lines += [
            f'    "{name}" [label="{_node_label(graph, name, throughput)}"];'
            for name in graph.topological_order()
            if name in shards[0]
        ]
        lines.append("  }")
    for e in graph.edges:
        lines.append(
            f'  "{e.source}" -> "{e.target}" [label="{e.source_port}->{e.target_port}\\ncap {e.capacity}"];'
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(graph: CheckedGraph, throughput: Mapping[str, float] | None = None) -> str:
    def ident(name: str) -> str:
        return name.replace("-", "_")

    lines = ["flowchart LR"]
    shards = _shards(graph)
    for name in graph.topological_order():
        if shards is None or name not in shards[0]:
            label = _node_label(graph, name, throughput).replace("\\n", "<br/>")
            lines.append(f'    {ident(name)}["{label}"]')
    if shards is not None:
        lines.append(f'    subgraph shards["{shards[1]}"]')
        for name in graph.topological_order():
            if name in shards[0]:
                label = _node_label(graph, name, throughput).replace("\\n", "<br/>")
                lines.append(f'        {ident(name)}["{label}"]')
        lines.append("    end")
    for e in graph.edges:
        lines.append(
            f'    {ident(e.source)} -->|"{e.source_port}→{e.target_port} cap {e.capacity}"| {ident(e.target)}'
        )
    return "\n".join(lines) + "\n"


def to_json(graph: CheckedGraph, throughput: Mapping[str, float] | None = None) -> str:
    g = nx.MultiDiGraph()
    shards = _shards(graph)
    if shards is not None:
        g.graph["shards"] = shards[1]
    for name, node in graph.nodes.items():
        attrs: dict[str, Any] = {"type": node.cls.kind, "workers": node.workers}
        if throughput and name in throughput:
            attrs["items_per_s"] = throughput[name]
        if shards is not None:
            attrs["in_shards"] = name in shards[0]
        g.add_node(name, **attrs)
    for e in graph.edges:
        g.add_edge(
            e.source, e.target, source_port=e.source_port, target_port=e.target_port, capacity=e.capacity
        )
    return json.dumps(nx.node_link_data(g, edges="edges"), indent=2) + "\n"


def export(graph: CheckedGraph, fmt: str, throughput: Mapping[str, float] | None = None) -> str | bytes:
    """Text for dot/mermaid/json; rendered bytes for svg/png (needs Graphviz's ``dot`` on PATH)."""
    if fmt == "dot":
        return to_dot(graph, throughput)
    if fmt == "mermaid":
        return to_mermaid(graph, throughput)
    if fmt == "json":
        return to_json(graph, throughput)
    if fmt in ("svg", "png"):
        dot = shutil.which("dot")
        if dot is None:
            raise DependencyMissing(
                f"rendering {fmt} needs Graphviz's `dot` program (apt-get install graphviz / brew install graphviz);"
                " `--format dot` or `--format mermaid` work without it"
            )
        done = subprocess.run(
            [dot, f"-T{fmt}"],
            input=to_dot(graph, throughput).encode(),
            capture_output=True,
            check=False,
            timeout=60,
        )
        if done.returncode != 0:
            raise RuntimeError(f"dot failed: {done.stderr.decode(errors='replace')}")
        return done.stdout
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
