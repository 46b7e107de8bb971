"""What a run is doing now, per node: the figures behind the live view, ``--metrics`` and Prometheus.

``Sampler`` turns the runtime's cumulative counters into rates over the last interval: each node's
samples/s and busy % (of its workers' time), and how full the queue in front of it is. The live view
draws that as a table under the progress bar in a terminal, and as one line per interval in a log.
"""

from __future__ import annotations

from typing import Any, Protocol

from rich import box
from rich.table import Table

from .metrics import NodeMetrics

__all__ = ["Sampler", "Watched", "node_line", "node_view"]

HOT_BUSY_PCT = 90.0
"""Busy % at which a node is shown as the likely bottleneck."""


class Watched(Protocol):
    """What the watchers read: a ``Runtime``, or ``shards.view.ShardsView`` for a sharded run."""

    @property
    def name(self) -> str: ...

    @property
    def metrics(self) -> list[NodeMetrics]: ...

    def live_metrics(self) -> list[NodeMetrics]: ...

    def queue_fill(self) -> dict[str, tuple[int, int]]: ...

    def queue_before(self) -> dict[str, tuple[int, int]]: ...

    def now(self) -> float: ...


class Sampler:
    """Samples ``runtime``: each call to ``sample`` covers the time since the previous one (by the
    runtime's clock: a sharded run's figures are as of their last snapshot)."""

    def __init__(self, runtime: Watched) -> None:
        self.runtime = runtime
        self._t0 = self._last_t = runtime.now()
        self._last: dict[str, tuple[int, int, float]] = {}

    def sample(self) -> dict[str, Any]:
        now = self.runtime.now()
        dt = now - self._last_t
        if dt <= 0:  # no new snapshot since the last sample: nothing moved that we know of
            dt = 1e-9
        before = self.runtime.queue_before()
        nodes = {}
        for m in self.runtime.metrics:
            out_before, samples_before, busy_before = self._last.get(m.name, (0, 0, 0.0))
            samples = m.samples
            queued, capacity = before.get(m.name, (0, 0))
            nodes[m.name] = {
                "items_in": m.items_in,
                "items_out": m.items_out,
                "samples": samples,
                "items_per_s": round((m.items_out - out_before) / dt, 2),
                "samples_per_s": round((samples - samples_before) / dt, 2),
                "busy_pct": round(min(100.0, 100 * (m.busy - busy_before) / (dt * m.workers)), 1),
                "queued": queued,
                "capacity": capacity,
            }
            self._last[m.name] = (m.items_out, samples, m.busy)
        self._last_t = now
        edges = {label: {"queued": q, "capacity": c} for label, (q, c) in self.runtime.queue_fill().items()}
        return {"t_s": round(now - self._t0, 3), "nodes": nodes, "edges": edges}


def node_view(sample: dict[str, Any]) -> Table:
    """The live per-node table: samples/s, busy % and the queue in front of each node (fits 80 columns)."""
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, show_edge=False)
    for col in ("node", "samples/s", "busy %", "queue in"):
        table.add_column(col, justify="left" if col == "node" else "right", no_wrap=True)
    for name, n in sample["nodes"].items():
        hot = n["busy_pct"] >= HOT_BUSY_PCT
        busy = f"[bold red]{n['busy_pct']:.0f}[/bold red]" if hot else f"{n['busy_pct']:.0f}"
        queue = f"{n['queued']}/{n['capacity']}" if n["capacity"] else "—"
        table.add_row(name, f"{n['samples_per_s']:,.0f}", busy, queue)
    return table


def node_line(sample: dict[str, Any]) -> str:
    """The same figures on one line, for a log: ``name busy% rate/s [queued/capacity]`` per node."""
    parts = []
    for name, n in sample["nodes"].items():
        queue = f" q{n['queued']}/{n['capacity']}" if n["capacity"] else ""
        parts.append(f"{name} {n['busy_pct']:.0f}% {n['samples_per_s']:,.0f}/s{queue}")
    return "  nodes: " + " · ".join(parts)
