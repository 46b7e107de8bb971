"""Per-node and per-edge counters collected while a graph runs.

Cheap enough for the hot path: plain attribute increments and two ``perf_counter`` calls per item.
Latencies are kept in a bounded reservoir so a long run cannot grow memory without bound.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import cast

__all__ = ["EdgeMetrics", "Failure", "NodeMetrics", "Reservoir", "percentile"]


@dataclass(frozen=True, slots=True)
class Failure:
    """A sample that did not complete, and why (recorded under ``on_error: skip``)."""

    node: str
    worker: int
    sample: object | None
    error: str
    samples: int = 1


class Reservoir:
    """A uniform sample of at most ``size`` values (Vitter's algorithm R): bounded memory, fair percentiles."""

    __slots__ = ("_rng", "count", "size", "values")

    def __init__(self, size: int = 50_000, seed: int = 0) -> None:
        self.size = size
        self.count = 0
        self.values: list[float] = []
        self._rng = random.Random(seed)

    def add(self, value: float) -> None:
        self.count += 1
        if len(self.values) < self.size:
            self.values.append(value)
        else:
            slot = self._rng.randrange(self.count)
            if slot < self.size:
                self.values[slot] = value

    def percentiles(self, *qs: float) -> dict[str, float]:
        ordered = sorted(self.values)
        return {f"p{q:g}": percentile(ordered, q) for q in qs}


def percentile(ordered: list[float], q: float) -> float:
    """The q-th percentile of sorted values by nearest rank (as MLPerf reports them); 0.0 when empty."""
    if not ordered:
        return 0.0
    rank = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


SUMMED = ("items_in", "items_out", "samples_in", "samples_out", "failed", "wait_in_s", "wait_out_s")
"""``NodeMetrics`` counters that add up over copies of a node (``counters``, ``add``)."""


@dataclass(slots=True, eq=False)
class NodeMetrics:
    """What one node did: items in and out, where its workers' time went, and per-item latency."""

    name: str
    type: str
    workers: int
    items_in: int = 0
    items_out: int = 0
    samples_in: int = 0
    samples_out: int = 0
    failed: int = 0
    copies: int = 0
    """Extra sample paths this node made by sending an item down several edges (a fan-out)."""
    busy_s: float = 0.0
    """Worker-seconds inside the node's own code (summed over workers)."""
    wait_in_s: float = 0.0
    """Worker-seconds blocked on an empty input: upstream is the bottleneck."""
    wait_out_s: float = 0.0
    """Worker-seconds blocked on a full output: downstream is the bottleneck."""
    worker_s: float = 0.0
    """Worker-seconds alive, of workers that ended; for nodes with their own ``run``, busy = alive -
    waiting."""
    running: int = 0
    """Workers alive now, and the sum of their start times: their alive time so far, for figures read
    while the run goes on (a live view, a scrape)."""
    running_since: float = 0.0
    waiting: int = 0
    """Waits in progress now (input or output), and the sum of their start times."""
    waiting_since: float = 0.0
    started: float = 0.0
    finished: float = 0.0
    latency: Reservoir = field(default_factory=Reservoir)

    @property
    def busy(self) -> float:
        """Measured per item for ``process`` nodes; derived from alive minus waiting for the others,
        counting the workers still alive and the waits still in progress while the run goes on."""
        if self.busy_s:
            return self.busy_s
        alive, waiting = self.worker_s, self.wait_in_s + self.wait_out_s
        if self.running:
            now = time.perf_counter()
            alive += self.running * now - self.running_since
            waiting += self.waiting * now - self.waiting_since
        return max(0.0, alive - waiting)

    @property
    def samples(self) -> int:
        """Samples through the node: what it took, or for a source (which takes none) what it sent."""
        return self.samples_in or self.samples_out

    def counters(self) -> dict[str, object]:
        """What can be summed over copies of this node (a shard each), for ``add`` in another process."""
        return {
            "name": self.name,
            "type": self.type,
            "workers": self.workers,
            "busy_s": self.busy,
            **{key: getattr(self, key) for key in SUMMED},
        }

    def add(self, counters: Mapping[str, object]) -> None:
        """Add another copy's ``counters`` to these (its workers, counts and seconds)."""
        self.workers += cast(int, counters["workers"])
        self.busy_s += cast(float, counters["busy_s"])
        for key in SUMMED:
            setattr(self, key, getattr(self, key) + counters[key])

    def wait_begins(self) -> float:
        """Mark a wait (input or output) as in progress; its start time, for ``wait_ends``."""
        t0 = time.perf_counter()
        self.waiting += 1
        self.waiting_since += t0
        return t0

    def wait_ends(self, t0: float, output: bool = False) -> None:
        """The wait begun at ``t0`` is over: count it as waiting on the input (or on the output)."""
        dt = time.perf_counter() - t0
        self.waiting -= 1
        self.waiting_since -= t0
        if output:
            self.wait_out_s += dt
        else:
            self.wait_in_s += dt

    def as_dict(self) -> dict[str, object]:
        span = max(self.finished - self.started, 1e-9)
        lat = self.latency.percentiles(50, 90, 99)
        return {
            "node": self.name,
            "type": self.type,
            "workers": self.workers,
            "items_in": self.items_in,
            "items_out": self.items_out,
            "failed": self.failed,
            "busy_s": round(self.busy, 6),
            "wait_in_s": round(self.wait_in_s, 6),
            "wait_out_s": round(self.wait_out_s, 6),
            "utilization": round(self.busy / (span * self.workers), 4) if self.finished else 0.0,
            "items_per_s": round(self.items_out / span, 2) if self.finished else 0.0,
            "samples_in": self.samples_in,
            # samples per second through the node, whatever its items are (a batch node's are batches)
            "rate_per_s": round(self.samples / span, 2) if self.finished else 0.0,
            "latency_ms": {k: round(v * 1e3, 4) for k, v in lat.items()},
            "latency_n": self.latency.count,
        }


@dataclass(slots=True, eq=False)
class EdgeMetrics:
    """One edge's queue: its capacity and the most items it ever held."""

    label: str
    capacity: int
    high_water: int = 0
    target: str = ""
    """The node whose input this queue is."""

    def as_dict(self) -> dict[str, object]:
        return {"edge": self.label, "capacity": self.capacity, "high_water": self.high_water}
