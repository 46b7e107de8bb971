"""Figures read while a run goes on (the live view, --metrics, Prometheus) are right mid-run too."""

from __future__ import annotations

import asyncio

from flowgraph import Graph
from flowgraph.live import Sampler, node_line, node_view

F = "fixture_nodes"


async def test_mid_run_busy_counts_workers_still_alive_and_waits_still_going():
    graph = Graph.from_text(f"""
nodes:
  src: {{type: source, params: {{range: 1000}}}}
  loop: {{type: "{F}:SlowLoop", params: {{seconds: 0.005}}}}
  idle: {{type: collect}}
edges: [{{from: src, to: loop, capacity: 4}}, {{from: loop, to: idle}}]
""")
    async with graph.start() as run:
        await run.started()
        sampler = Sampler(run.runtime)
        await asyncio.sleep(0.4)
        now = sampler.sample()
        run.stop(drain=False)
    nodes = now["nodes"]
    # its own loop: busy is its alive time less its waits, including the ones not over yet
    assert nodes["loop"]["busy_pct"] > 80, nodes
    assert nodes["idle"]["busy_pct"] < 30, nodes  # a sink waiting on it most of the time
    assert nodes["src"]["queued"] == 0 and nodes["loop"]["queued"] <= nodes["loop"]["capacity"] == 4
    assert 100 < nodes["loop"]["samples_per_s"] <= 210  # one item per 5 ms at most
    assert "loop 9" in node_line(now) or "loop 10" in node_line(now)
    assert node_view(now).row_count == 3
