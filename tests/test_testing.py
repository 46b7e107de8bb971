"""flowgraph.testing: the helpers node authors use must themselves catch what they promise to."""

from __future__ import annotations

import asyncio
import threading

import pytest

from flowgraph import all_node_types
from flowgraph.testing import LeakError, assert_cleaned_up, installed_package, run_text

NEGATE = """
nodes:
  i: {type: input}
  n: {type: map, params: {fn: "operator:neg"}, workers: 2}
  r: {type: collect}
edges: [{from: i, to: n}, {from: n, to: r}]
"""


async def test_run_text_runs_a_graph_written_inline_and_leaves_nothing_behind():
    async with assert_cleaned_up():
        report = await run_text(NEGATE, items=range(4))
    assert sorted(report.results) == [-3, -2, -1, 0]


async def test_assert_cleaned_up_catches_a_leaked_task():
    never = asyncio.Event()
    with pytest.raises(LeakError, match="tasks \\['leaky'\\]"):
        async with assert_cleaned_up(grace_s=0.05):
            leaky = asyncio.create_task(never.wait(), name="leaky")
    leaky.cancel()
    await asyncio.gather(leaky, return_exceptions=True)


async def test_assert_cleaned_up_catches_a_leaked_thread():
    stop = threading.Event()
    with pytest.raises(LeakError, match="threads \\['leaky-thread'\\]"):
        async with assert_cleaned_up(grace_s=0.05):
            threading.Thread(target=stop.wait, name="leaky-thread").start()
    stop.set()


def test_a_node_type_from_a_separate_package_registers_through_its_entry_point(tmp_path):
    source = """
from flowgraph import Node, node_type

@node_type("testing-triple")
class Triple(Node):
    async def process(self, item):
        return 3 * item
"""
    graph = NEGATE.replace('{type: map, params: {fn: "operator:neg"}, workers: 2}', "{type: testing-triple}")
    with installed_package(
        tmp_path, "tripler", {"tripler.py": source}, {"flowgraph.nodes": {"tripler": "tripler"}}
    ):
        assert "testing-triple" in all_node_types()
        report = asyncio.run(run_text(graph, items=[1, 2]))
    assert sorted(report.results) == [3, 6]
