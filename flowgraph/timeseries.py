"""``flowgraph run --metrics FILE``: the run's figures as a time series, one JSON line per interval.

Each line holds, since the previous one, every node's items and samples per second and busy % (of its
workers' time), the queue in front of it, and every edge's queue fill against its capacity
(``live.Sampler``); the last line, written when the run ends, adds each node's latency histogram. JSON
lines, so a long run can be followed with ``tail -f``, drawn by ``flowgraph plot``, and read by anything.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import IO, Any

from .live import Sampler, Watched

__all__ = ["MetricsWriter", "latency_histogram"]

HISTOGRAM_BINS = 40


def latency_histogram(values: list[float], bins: int = HISTOGRAM_BINS) -> dict[str, list[float]]:
    """Counts of ``values`` (seconds) in ``bins`` equal bins, edges in ms: what ``flowgraph plot`` draws."""
    if not values:
        return {"edges_ms": [], "counts": []}
    low, high = min(values), max(values)
    width = (high - low) / bins or 1e-9
    counts: list[float] = [0] * bins
    for v in values:
        counts[min(bins - 1, int((v - low) / width))] += 1
    return {"edges_ms": [round((low + i * width) * 1e3, 6) for i in range(bins + 1)], "counts": counts}


class MetricsWriter:
    """Samples ``runtime`` every ``every_s`` seconds into ``path`` (one JSON object per line)."""

    def __init__(self, runtime: Watched, path: Path, every_s: float = 1.0) -> None:
        if not every_s > 0:
            raise ValueError("--metrics-every must be above 0 seconds")
        self.runtime, self.path, self.every_s = runtime, path, every_s
        self.sampler = Sampler(runtime)
        self.lines = 0

    def sample(self) -> dict[str, Any]:
        return self.sampler.sample()

    def _write(self, out: IO[str], line: dict[str, Any]) -> None:
        out.write(json.dumps(line) + "\n")
        out.flush()
        self.lines += 1

    def last(self) -> dict[str, Any]:
        """The closing line: the last interval, plus each node's latency histogram over the run."""
        line = self.sample()
        line["final"] = True
        line["latency"] = {
            m.name: latency_histogram(m.latency.values) for m in self.runtime.metrics if m.latency.values
        }
        return line

    async def run(self) -> None:
        """Write a line every ``every_s`` until cancelled, and a last one then."""
        with self.path.open("w") as out:
            try:
                while True:
                    await asyncio.sleep(self.every_s)
                    self._write(out, self.sample())
            finally:
                self._write(out, self.last())
