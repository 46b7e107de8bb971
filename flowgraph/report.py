"""What a finished run tells: per-node metrics, edge high-water marks, sample accounting, failures.

A sample is what a source emits and a sink completes; an item stands for the samples it names in
``sample_ids`` (a batch, or a ``batch`` node's group), else for one. So a node that folds many samples
into one item (an aggregate) passes them on by naming them there; an item that names none counts as one
sample and the rest show as dropped, at the node where the per-node sample count falls.

Every sample that entered the graph is accounted for, per path: ``entered + copies = completed + failed
+ dropped``. ``entered`` counts samples a source emitted or reported failed; ``copies`` the extra paths a
fan-out made (a sample sent down two edges travels two paths, each ending once); ``completed`` arrivals
at sinks; ``failed`` failure records (node and error); ``dropped`` what a node filtered (``SKIP``) or a
stop left in flight. ``dropped`` is not clamped: negative would mean double counting, shown, not hidden.
The table and JSON come from one dict.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich import box
from rich.table import Table

from .metrics import Failure
from .runtime import Runtime

__all__ = ["Report"]


@dataclass
class Report:
    """The outcome of one run."""

    graph: str
    wall_s: float
    """From the first worker's start to the last one's end (setup excluded)."""
    nodes: list[dict[str, Any]]
    edges: list[dict[str, Any]]
    failures: list[Failure]
    samples: dict[str, int]
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)
    stopped: dict[str, int] | None = None
    """In-flight counts per node at the moment of a stop; None when the run ended by itself."""
    results: list[Any] = field(default_factory=list, repr=False)
    setup_s: float = 0.0
    """Time in the nodes' setup (building models, generating data) before any item moved."""

    @classmethod
    def from_runtime(cls, runtime: Runtime, results: list[Any]) -> Report:
        metrics = {m.name: m for m in runtime.metrics}
        entered = sum(metrics[name].samples_out for name in runtime.sources())
        copies = sum(m.copies for m in metrics.values())
        completed = sum(metrics[name].samples_in for name in runtime.sinks())
        failed = sum(f.samples for f in runtime.failures)
        accounting = {"entered": entered, "completed": completed, "failed": failed}
        if copies:
            accounting["copies"] = copies
        # Not clamped at 0: a negative count would show double counting instead of hiding a loss.
        accounting["dropped"] = entered + copies - completed - failed
        summaries = {name: dict(node.summary()) for name, node in runtime.nodes.items()}
        return cls(
            graph=runtime.graph.name,
            wall_s=runtime.finished - runtime.started,
            nodes=[m.as_dict() for m in metrics.values()],
            edges=[e.as_dict() for e in runtime.edges],
            failures=list(runtime.failures),
            samples=accounting,
            summaries={k: v for k, v in summaries.items() if v},
            stopped=runtime.stopped.in_flight if runtime.stopped else None,
            results=results,
            setup_s=runtime.setup_s,
        )

    def node(self, name: str) -> dict[str, Any]:
        """One node's figures (``nodes``' entry for ``name``)."""
        for entry in self.nodes:
            if entry["node"] == name:
                return entry
        raise KeyError(f"no node {name!r} in this report; nodes: {[n['node'] for n in self.nodes]}")

    @property
    def ok(self) -> bool:
        return not self.failures and self.stopped is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "graph": self.graph,
            "wall_s": round(self.wall_s, 6),
            "setup_s": round(self.setup_s, 6),
            "samples": self.samples,
            "nodes": self.nodes,
            "edges": self.edges,
            "summaries": self.summaries,
            "failures": [asdict(f) for f in self.failures],
            "stopped": self.stopped,
        }

    def write_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n")

    def tables(self) -> list[Table]:
        """The per-node table, the edges' high-water marks, then one table per node summary (what
        ``flowgraph run`` prints)."""
        tables = [self.node_table()]
        if self.edges:
            tables.append(self.edge_table())
        for name, summary in self.summaries.items():
            table = Table(title=f"{name}", show_header=False)
            table.add_column("metric")
            table.add_column("value", justify="right")
            for key, value in summary.items():
                shown = (
                    f"{value:,}"
                    if isinstance(value, int | float) and not isinstance(value, bool)
                    else str(value)
                )
                table.add_row(key, shown)
            tables.append(table)
        return tables

    def edge_table(self) -> Table:
        """Each edge's queue at its fullest against its capacity: a queue that stayed full is where a
        pipeline waited for the stage after it."""
        table = Table(title="queues", box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False)
        for col in ("edge", "high water", "capacity"):
            table.add_column(col, justify="left" if col == "edge" else "right")
        for edge in self.edges:
            capacity = edge["capacity"]
            full = " full" if capacity and edge["high_water"] >= capacity else ""
            table.add_row(edge["edge"], f"{edge['high_water']}{full}", str(capacity))
        return table

    def node_table(self) -> Table:
        """Where the time went, per node: the first place to look when a pipeline is slow.

        Sized for an 80-column terminal: no vertical rules, numbers to three significant digits, the
        worker count beside the name, short headers explained in the caption, and waits per worker
        (summed over workers they could exceed the wall time). Node types are in the JSON report."""
        s = self.samples
        failed = any(n["failed"] for n in self.nodes)
        table = Table(
            title=f"{self.graph}: {self.wall_s:.3f} s (+{self.setup_s:.2f} s setup)\nsamples: "
            f"{s['entered']} entered, {s['completed']} completed, {s['failed']} failed, {s['dropped']} dropped",
            box=box.SIMPLE_HEAD,
            padding=(0, 1),
            pad_edge=False,
            caption="in/out: items taken and sent (a batch is one item); rate: samples/s taken (a source: sent); "
            "busy: % of the workers' time; wait in/out: s per worker blocked on an empty input / a full "
            "output; p50/p99: ms per item (—: the node times none)",
        )
        columns = ["node", "in", "out", *(["failed"] if failed else [])]
        columns += ["rate", "busy", "wait in", "wait out", "p50", "p99"]
        for col in columns:
            table.add_column(col, justify="left" if col == "node" else "right", no_wrap=True)
        for n in self.nodes:
            lat, workers = n["latency_ms"], max(1, int(n["workers"]))
            name = n["node"] + (f" ×{workers}" if workers > 1 else "")
            row = [name, str(n["items_in"]), str(n["items_out"])]
            row += [str(n["failed"])] if failed else []
            row += [
                _short(n["rate_per_s"]),
                f"{100 * n['utilization']:.0f}",
                _short(n["wait_in_s"] / workers),
                _short(n["wait_out_s"] / workers),
                *((_short(lat["p50"]), _short(lat["p99"])) if n.get("latency_n", 1) else ("—", "—")),
            ]
            table.add_row(*row)
        return table


def _short(value: float) -> str:
    """At most 7 characters: 4,568 / 12.3 / 0.05 / <0.01 / 0 (the table must fit 80 columns)."""
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.3g}"
    return f"{value:.2f}" if abs(value) >= 0.01 else "<0.01"
