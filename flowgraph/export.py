"""The graph as a picture: DOT, Mermaid, networkx node-link JSON, and SVG/PNG through Graphviz.

SVG/PNG come from Graphviz where its ``dot`` is installed, else from matplotlib (``plot.draw_graph``).
Laid out top to bottom, so a pipeline of eight stages reads as a column, not a 2000-pixel strip. Labels
show what a reader needs to reason about throughput: type, workers and the params set in the file
(batch size, engine count) on the nodes; the data type and queue capacity on the edges. Given a run's
report (``flowgraph run --report``), each node also shows its samples/s and busy %, and is coloured by
busy %: the bottleneck is the hottest box.
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
from .validate import CheckedEdge, CheckedGraph

__all__ = ["FORMATS", "busy_colour", "export", "figures_from_report", "to_dot", "to_json", "to_mermaid"]

FORMATS = ("dot", "mermaid", "json", "svg", "png")

Figures = Mapping[str, Mapping[str, float]]
"""Per node: ``rate_per_s`` (samples/s) and ``utilization`` (busy, 0..1), as a report's nodes hold them."""

IDLE_FILL = "#eef3fb"
_KEY_PARAMS = 4
_VALUE_CHARS = 22


def figures_from_report(report: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """The figures ``export`` draws, from a report's JSON (``Report.to_dict``)."""
    if not isinstance(report, Mapping) or not isinstance(report.get("nodes"), list):
        raise ValueError("it has no 'nodes' list")
    return {
        n["node"]: {
            "rate_per_s": float(n.get("rate_per_s", n.get("items_per_s", 0.0))),
            "utilization": float(n.get("utilization", 0.0)),
        }
        for n in report.get("nodes", [])
    }


def busy_colour(utilization: float) -> str:
    """Green (idle) through yellow to red (busy all the time): the fill for a node this busy."""
    u = min(max(utilization, 0.0), 1.0)
    red = int(255 * min(1.0, 2 * u))
    green = int(255 * min(1.0, 2 * (1 - u)))
    # pastel, so black text stays readable
    return "#{:02x}{:02x}{:02x}".format(*(int(c + (255 - c) * 0.45) for c in (red, green, 64)))


def key_params(graph: CheckedGraph, name: str) -> list[str]:
    """The params the graph file set for this node (what makes it this node), shortened: at most
    four, each value cut to fit a box."""
    written = graph.loaded.spec.nodes[name].params
    params = graph.nodes[name].params.model_dump()
    shown = []
    for key in written:
        value = params.get(key)
        if value is None or isinstance(value, dict | list):
            continue
        text = f"{value:g}" if isinstance(value, float) else str(value)
        if len(text) > _VALUE_CHARS:
            text = "…" + text[-(_VALUE_CHARS - 1) :]
        shown.append(f"{key}={text}")
    return shown[:_KEY_PARAMS]


def _node_lines(graph: CheckedGraph, name: str, figures: Figures | None) -> list[str]:
    node = graph.nodes[name]
    kind = "" if node.cls.kind == name else f"{node.cls.kind} "  # a node named after its type says it once
    lines = [name, f"{kind}×{node.workers}", *key_params(graph, name)]
    if figures and name in figures:
        f = figures[name]
        lines.append(f"{f['rate_per_s']:,.0f} samples/s, {100 * f['utilization']:.0f}% busy")
    return lines


def _edge_type(graph: CheckedGraph, e: CheckedEdge) -> str:
    produced = graph.nodes[e.source].cls.outputs[e.source_port].type
    return "any" if produced is object else produced.__name__


def _fill(name: str, figures: Figures | None) -> str:
    if figures and name in figures:
        return busy_colour(figures[name]["utilization"])
    return IDLE_FILL


def _shards(graph: CheckedGraph) -> tuple[set[str], str] | None:
    return shard_members(graph.loaded.spec, graph.digraph)


def _placement(graph: CheckedGraph) -> tuple[list[str], list[str], str | None]:
    """The nodes in topological order: those drawn outside the shards' box, those inside it, and the
    box's caption (None: the graph has no shards, and every node is outside)."""
    order = graph.topological_order()
    shards = _shards(graph)
    if shards is None:
        return order, [], None
    members, caption = shards
    return [n for n in order if n not in members], [n for n in order if n in members], caption


def _edge_text(graph: CheckedGraph, e: CheckedEdge, sep: str) -> str:
    """An edge's label: its ports when not the plain out -> in, the data type, the queue's capacity."""
    ports = [f"{e.source_port}→{e.target_port}"] if (e.source_port, e.target_port) != ("out", "in") else []
    return sep.join([*ports, _edge_type(graph, e), f"cap {e.capacity}"])


_DOT_BREAK = "\\n"
"""A line break inside a DOT label (backslash n, written as such in the file)."""


def _dot_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def to_dot(graph: CheckedGraph, figures: Figures | None = None) -> str:
    lines = [
        f'digraph "{graph.name}" {{',
        "  rankdir=TB;",
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]

    def node_line(name: str, indent: str) -> str:
        label = _DOT_BREAK.join(_dot_text(line) for line in _node_lines(graph, name, figures))
        return f'{indent}"{name}" [label="{label}", fillcolor="{_fill(name, figures)}"];'

    outside, inside, caption = _placement(graph)
    lines += [node_line(name, "  ") for name in outside]
    if caption is not None:
        lines.append(f'  subgraph cluster_shards {{\n    label="{caption}";\n    style=dashed;')
        lines += [node_line(name, "    ") for name in inside]
        lines.append("  }")
    for e in graph.edges:
        lines.append(f'  "{e.source}" -> "{e.target}" [label="{_edge_text(graph, e, _DOT_BREAK)}"];')
    if figures:
        lines.append('  label="fill: busy % (green idle, red busy)"; labelloc=b; fontsize=10;')
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(graph: CheckedGraph, figures: Figures | None = None) -> str:
    def ident(name: str) -> str:
        return name.replace("-", "_")

    def node_line(name: str, indent: str) -> str:
        label = "<br/>".join(line.replace('"', "#quot;") for line in _node_lines(graph, name, figures))
        return f'{indent}{ident(name)}["{label}"]'

    lines = ["flowchart TB"]
    outside, inside, caption = _placement(graph)
    lines += [node_line(name, "    ") for name in outside]
    if caption is not None:
        lines.append(f'    subgraph shards["{caption}"]')
        lines += [node_line(name, "        ") for name in inside]
        lines.append("    end")
    for e in graph.edges:
        lines.append(f'    {ident(e.source)} -->|"{_edge_text(graph, e, " ")}"| {ident(e.target)}')
    if figures:
        lines += [
            f"    style {ident(name)} fill:{_fill(name, figures)}" for name in graph.topological_order()
        ]
    return "\n".join(lines) + "\n"


def to_json(graph: CheckedGraph, figures: Figures | None = None) -> str:
    g = nx.MultiDiGraph()
    shards = _shards(graph)
    if shards is not None:
        g.graph["shards"] = shards[1]
    for name, node in graph.nodes.items():
        attrs: dict[str, Any] = {
            "type": node.cls.kind,
            "workers": node.workers,
            "params": key_params(graph, name),
        }
        if figures and name in figures:
            attrs.update(figures[name])
        if shards is not None:
            attrs["in_shards"] = name in shards[0]
        g.add_node(name, **attrs)
    for e in graph.edges:
        g.add_edge(
            e.source,
            e.target,
            source_port=e.source_port,
            target_port=e.target_port,
            capacity=e.capacity,
            data_type=_edge_type(graph, e),
        )
    return json.dumps(nx.node_link_data(g, edges="edges"), indent=2) + "\n"


def export(graph: CheckedGraph, fmt: str, figures: Figures | None = None) -> str | bytes:
    """Text for dot/mermaid/json; rendered bytes for svg/png (needs Graphviz's ``dot`` on PATH).
    ``figures``: a run's per-node figures (``figures_from_report``), to label and colour the nodes."""
    if fmt == "dot":
        return to_dot(graph, figures)
    if fmt == "mermaid":
        return to_mermaid(graph, figures)
    if fmt == "json":
        return to_json(graph, figures)
    if fmt in ("svg", "png"):
        dot = shutil.which("dot")
        if dot is None:
            try:
                from .plot import draw_graph

                return draw_graph(graph, figures, fmt)  # matplotlib's layout when Graphviz is absent
            except DependencyMissing:
                raise DependencyMissing(
                    f"rendering {fmt} needs Graphviz's `dot` program (apt-get install graphviz / brew install "
                    "graphviz) or matplotlib (pip install 'flowgraph[plot]'); `--format dot` or `--format "
                    "mermaid` work without either"
                ) from None
        done = subprocess.run(
            [dot, f"-T{fmt}"],
            input=to_dot(graph, figures).encode(),
            capture_output=True,
            check=False,
            timeout=60,
        )
        if done.returncode != 0:
            raise RuntimeError(f"dot failed: {done.stderr.decode(errors='replace')}")
        return done.stdout
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
