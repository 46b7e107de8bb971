"""Pictures of a run and of a graph with matplotlib (``flowgraph[plot]``), for a person to look at.

``plot_metrics``: ``flowgraph plot run.jsonl`` turns a ``--metrics`` time series into one PNG: samples/s
and busy % per node over time, each queue's fill against its capacity, and each node's per-item latency
histogram (from the series' last line). ``draw_graph``: ``flowgraph viz --format png`` without Graphviz
lays the graph out top to bottom, one row per topological generation.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import DependencyMissing, GraphFileError, Issue

__all__ = ["draw_graph", "plot_metrics", "read_series"]

INSTALL = "pip install 'flowgraph[plot]'"


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise DependencyMissing(f"drawing needs matplotlib, not installed here: {INSTALL}") from None
    matplotlib.use("Agg")  # files only: no display, no GUI thread
    import matplotlib.pyplot as plt

    return plt


def read_series(path: Path) -> list[dict[str, Any]]:
    """The lines of a ``--metrics`` file; a line that is not one names the file and line."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise GraphFileError([Issue(str(path), None, None, f"cannot read: {exc.strerror}")]) from exc
    series = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise GraphFileError([Issue(str(path), number, None, f"not a JSON line: {exc.msg}")]) from None
        if not isinstance(entry, dict) or "nodes" not in entry or "t_s" not in entry:
            raise GraphFileError(
                [
                    Issue(
                        str(path),
                        number,
                        None,
                        "not a --metrics line (no 't_s' and 'nodes')",
                        "write one with flowgraph run --metrics FILE",
                    )
                ]
            )
        series.append(entry)
    if not series:
        raise GraphFileError([Issue(str(path), None, None, "empty: no --metrics lines to draw")])
    return series


def plot_metrics(series: list[dict[str, Any]], title: str = "") -> bytes:
    """One PNG of a run's time series (``read_series``)."""
    plt = _pyplot()
    t = [entry["t_s"] for entry in series]
    nodes = list(series[-1]["nodes"])
    edges = list(series[-1].get("edges", {}))
    fig, axes = plt.subplots(2, 2, figsize=(12, 8), constrained_layout=True)
    rate, busy, queues, latency = axes[0][0], axes[0][1], axes[1][0], axes[1][1]
    for name in nodes:
        key = "samples_per_s" if "samples_per_s" in series[-1]["nodes"][name] else "items_per_s"
        rate.plot(t, [e["nodes"].get(name, {}).get(key, 0.0) for e in series], label=name)
        busy.plot(t, [e["nodes"].get(name, {}).get("busy_pct", 0.0) for e in series], label=name)
    for label in edges:

        def fill(entry: dict[str, Any], label: str = label) -> float:
            edge = entry.get("edges", {}).get(label)
            return 100 * edge["queued"] / edge["capacity"] if edge and edge["capacity"] else 0.0

        queues.plot(t, [fill(e) for e in series], label=label)
    rate.set(title="samples/s per node", xlabel="s", ylabel="samples/s")
    busy.set(title="busy % per node (of its workers' time)", xlabel="s", ylabel="%", ylim=(0, 105))
    queues.set(title="queue fill % of capacity", xlabel="s", ylabel="%", ylim=(0, 105))
    histograms = series[-1].get("latency", {})
    for name, hist in histograms.items():
        if hist.get("counts"):
            latency.stairs(hist["counts"], hist["edges_ms"], label=name)
    latency.set(title="per-item latency per node", xlabel="ms", ylabel="items")
    if not histograms:
        latency.text(
            0.5, 0.5, "no latency histogram\n(the series has no closing line)", ha="center", va="center"
        )
    for ax in (rate, busy, queues, latency):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title)
    return _png(plt, fig)


def draw_graph(
    graph: Any, figures: Mapping[str, Mapping[str, float]] | None = None, fmt: str = "png"
) -> bytes:
    """The graph drawn top to bottom (a ``CheckedGraph``), labelled and coloured as ``export`` does."""
    import networkx as nx

    from .export import _edge_type, _fill, _node_lines

    plt = _pyplot()
    g = graph.digraph
    rows = list(nx.topological_generations(g))
    width = max(len(row) for row in rows)
    position = {
        name: ((i - (len(row) - 1) / 2) * 3.2, -j * 1.6)
        for j, row in enumerate(rows)
        for i, name in enumerate(row)
    }
    fig, ax = plt.subplots(figsize=(max(5.0, 3.2 * width), max(3.0, 1.6 * len(rows))))
    ax.set_axis_off()
    for e in graph.edges:
        (x0, y0), (x1, y1) = position[e.source], position[e.target]
        ax.annotate(
            "", xy=(x1, y1 + 0.45), xytext=(x0, y0 - 0.45), arrowprops={"arrowstyle": "->", "color": "#555"}
        )
        ax.text(
            (x0 + x1) / 2 + 0.1,
            (y0 + y1) / 2,
            f"{_edge_type(graph, e)} cap {e.capacity}",
            fontsize=7,
            color="#333",
        )
    for name, (x, y) in position.items():
        ax.text(
            x,
            y,
            "\n".join(_node_lines(graph, name, figures)),
            ha="center",
            va="center",
            fontsize=8,
            bbox={"boxstyle": "round,pad=0.4", "facecolor": _fill(name, figures), "edgecolor": "#345"},
        )
    xs = [x for x, _ in position.values()]
    ax.set_xlim(min(xs) - 1.8, max(xs) + 1.8)
    ax.set_ylim(-1.6 * (len(rows) - 1) - 0.8, 0.8)
    return _png(plt, fig, fmt)


def _png(plt: Any, fig: Any, fmt: str = "png") -> bytes:
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format=fmt, dpi=100)
    finally:
        plt.close(fig)
    return buffer.getvalue()
