"""``flowgraph run --metrics FILE``: the run's figures as a time series, one JSON line per interval.

Each line holds, since the previous one, every node's items per second and busy % (of its workers'
time), and every edge's queue fill against its capacity; the last line is written when the run ends.
JSON lines, so a long run can be followed with ``tail -f`` and read by anything (``flowgraph plot`` is
for a later issue).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import IO, Any

from .runtime import Runtime

__all__ = ["MetricsWriter"]


class MetricsWriter:
    """Samples ``runtime`` every ``every_s`` seconds into ``path`` (one JSON object per line)."""

    def __init__(self, runtime: Runtime, path: Path, every_s: float = 1.0) -> None:
        if not every_s > 0:
            raise ValueError("--metrics-every must be above 0 seconds")
        self.runtime, self.path, self.every_s = runtime, path, every_s
        self._t0 = time.perf_counter()
        self._last: dict[str, tuple[int, float]] = {}
        self._last_t = self._t0
        self.lines = 0

    def sample(self) -> dict[str, Any]:
        now = time.perf_counter()
        dt = max(now - self._last_t, 1e-9)
        nodes = {}
        for m in self.runtime.metrics:
            out_before, busy_before = self._last.get(m.name, (0, 0.0))
            nodes[m.name] = {
                "items_in": m.items_in,
                "items_out": m.items_out,
                "items_per_s": round((m.items_out - out_before) / dt, 2),
                "busy_pct": round(100 * (m.busy - busy_before) / (dt * m.workers), 1),
            }
            self._last[m.name] = (m.items_out, m.busy)
        self._last_t = now
        edges = {label: {"queued": q, "capacity": c} for label, (q, c) in self.runtime.queue_fill().items()}
        return {"t_s": round(now - self._t0, 3), "nodes": nodes, "edges": edges}

    def _write(self, out: IO[str]) -> None:
        out.write(json.dumps(self.sample()) + "\n")
        out.flush()
        self.lines += 1

    async def run(self) -> None:
        """Write a line every ``every_s`` until cancelled, and a last one then."""
        with self.path.open("w") as out:
            try:
                while True:
                    await asyncio.sleep(self.every_s)
                    self._write(out)
            finally:
                self._write(out)
