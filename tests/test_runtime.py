from __future__ import annotations

import asyncio
import time
from collections import Counter

import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowgraph import Graph, NodeFailure, run_event_loop

F = "fixture_nodes"


def chain(*middle: str, source: str = "{type: source, params: {range: 50}}", capacity: int = 4) -> Graph:
    """source -> middle[0] -> ... -> collect, every edge with ``capacity``."""
    names = ["src"] + [f"n{i}" for i in range(len(middle))] + ["sink"]
    nodes = (
        [f"  src: {source}"] + [f"  n{i}: {m}" for i, m in enumerate(middle)] + ["  sink: {type: collect}"]
    )
    edges = [
        f"  - {{from: {a}, to: {b}, capacity: {capacity}}}" for a, b in zip(names, names[1:], strict=False)
    ]
    return Graph.from_text("nodes:\n" + "\n".join(nodes) + "\nedges:\n" + "\n".join(edges) + "\n")


async def test_items_flow_through_and_end_of_stream_ends_the_run():
    report = await chain("{type: map, params: {fn: 'operator:neg'}, workers: 3}").run()
    assert sorted(report.results) == sorted(-i for i in range(50))
    assert report.samples == {"entered": 50, "completed": 50, "failed": 0, "dropped": 0}


async def test_fan_out_through_tee_and_fan_in_on_one_port():
    graph = Graph.from_text("""\
nodes:
  src: {type: source, params: {range: 20}}
  tee: {type: tee}
  neg: {type: map, params: {fn: "operator:neg"}, workers: 2}
  pos: {type: map, params: {fn: "operator:pos"}}
  sink: {type: collect}
edges:
  - {from: src, to: tee}
  - {from: tee, to: neg}
  - {from: tee, to: pos}
  - {from: neg, to: sink, capacity: 2}
  - {from: pos, to: sink, capacity: 2}
""")
    report = await graph.run()
    assert Counter(report.results) == Counter(list(range(20)) + [-i for i in range(20)])


async def test_backpressure_bounds_every_queue_and_stalls_the_source():
    report = await chain(f"{{type: '{F}:Slow', params: {{seconds: 0.002}}}}", capacity=3).run()
    assert all(e["high_water"] <= e["capacity"] for e in report.edges)
    assert report.edges[0]["high_water"] == 3  # the slow node's queue filled up ...
    source = next(n for n in report.nodes if n["node"] == "src")
    assert source["wait_out_s"] > 0.01  # ... and the source waited on it instead of running ahead


async def test_failing_node_stops_the_graph_and_names_node_worker_and_sample(no_leaks):
    graph = chain(
        f"{{type: '{F}:FailsOn', params: {{bad: 3}}}}",
        f"{{type: '{F}:Slow'}}",
        source=f"{{type: source, params: {{iterable: '{F}:ten_tagged'}}}}",
        capacity=1,
    )
    t0 = time.perf_counter()
    with pytest.raises(NodeFailure) as err:
        await graph.run()
    assert time.perf_counter() - t0 < 1.0
    assert err.value.node == "n0" and err.value.worker == 0 and err.value.sample == 3
    assert "node 'n0' (worker 0) failed on sample 3: ValueError: cannot handle 3" in str(err.value)
    assert isinstance(err.value.__cause__, ValueError)


async def test_failure_with_every_queue_full_does_not_hang():
    # A huge source, capacity 1 everywhere and a slow stage: every put upstream is blocked when n2 fails.
    graph = chain(
        f"{{type: '{F}:Slow', params: {{seconds: 0.001}}}}",
        "{type: map, params: {fn: 'operator:pos'}}",
        f"{{type: '{F}:FailsOn', params: {{bad: 20}}}}",
        source="{type: source, params: {range: 1000000}}",
        capacity=1,
    )
    with pytest.raises(NodeFailure, match="node 'n2'"):
        await asyncio.wait_for(graph.run(), timeout=5)
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


async def test_on_error_skip_reports_the_sample_as_failed_and_keeps_going():
    graph = chain(
        f"{{type: '{F}:FailsOn', params: {{bad: 4}}, on_error: skip}}",
        source=f"{{type: source, params: {{iterable: '{F}:ten_tagged'}}}}",
    )
    report = await graph.run()
    assert [f.sample for f in report.failures] == [4]
    assert "ValueError: cannot handle 4" in report.failures[0].error
    assert report.samples == {"entered": 10, "completed": 9, "failed": 1, "dropped": 0}
    assert 4 not in [r.sample_id for r in report.results]


async def test_blocking_work_runs_in_threads_that_are_gone_afterwards(no_leaks):
    graph = chain(
        f"{{type: '{F}:BlockingSlow', params: {{seconds: 0.01}}, workers: 4}}",
        source="{type: source, params: {range: 40}}",
    )
    t0 = time.perf_counter()
    report = await graph.run()
    assert len(report.results) == 40
    assert time.perf_counter() - t0 < 40 * 0.01 * 0.75  # four threads overlap the sleeps


async def test_stop_with_drain_finishes_in_flight_items_and_accounts_for_all():
    graph = chain(
        f"{{type: '{F}:Slow', params: {{seconds: 0.005}}}}", source="{type: source, params: {range: 100000}}"
    )
    async with graph.start() as run:
        await asyncio.sleep(0.1)
        run.stop(drain=True)
    report = run.report
    assert report.stopped is not None and 0 < report.samples["completed"] < 100000
    assert report.samples["entered"] == report.samples["completed"]


async def test_stop_without_drain_cancels_promptly():
    graph = chain(
        f"{{type: '{F}:Slow', params: {{seconds: 10}}}}", source="{type: source, params: {range: 10}}"
    )
    t0 = time.perf_counter()
    async with graph.start() as run:
        await asyncio.sleep(0.05)
        run.stop(drain=False)
    assert time.perf_counter() - t0 < 1.0
    assert run.report.stopped == {"src": 0, "n0": 5, "sink": 0}  # 4 queued + 1 held by the worker
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


async def test_setup_and_teardown_bracket_the_workers():
    events: list[str] = []

    from flowgraph import Node, node_type

    @node_type("test-lifecycle")
    class Lifecycle(Node):
        async def setup(self):
            events.append("setup")

        async def process(self, item):
            events.append("item")
            return item

        async def teardown(self):
            events.append("teardown")

    graph = Graph.from_text(
        "nodes:\n  s: {type: source, params: {range: 2}}\n  l: {type: test-lifecycle}\n"
        "  c: {type: collect}\nedges: [{from: s, to: l}, {from: l, to: c}]\n"
    )
    await graph.run()
    assert events == ["setup", "item", "item", "teardown"]


@st.composite
def random_dags(draw):
    n = draw(st.integers(3, 8))
    g = nx.DiGraph()
    g.add_nodes_from(range(n))
    for j in range(1, n):
        parents = draw(st.sets(st.integers(0, j - 1), min_size=0, max_size=min(3, j)))
        g.add_edges_from((i, j) for i in parents)
    while True:  # a source feeds exactly one node (trimming can make new sources, so repeat)
        wide = [v for v in g if g.in_degree(v) == 0 and g.out_degree(v) > 1]
        if not wide:
            break
        for s in wide:
            g.remove_edges_from([(s, t) for t in list(g.successors(s))[1:]])
    sinks = [v for v in g if g.out_degree(v) == 0 and g.in_degree(v) > 0]
    if not sinks:
        return None
    workers = {v: draw(st.integers(1, 3)) for v in g}
    capacity = draw(st.integers(0, 4))  # 0: hand-over edges must not deadlock either
    items = {v: draw(st.integers(0, 30)) for v in g}
    return g, workers, capacity, items


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_dags())
def test_random_dags_deliver_every_item_once_per_path(case):
    if case is None:
        return
    g, workers, capacity, counts = case
    lines, sources = ["nodes:"], []
    for v in g:
        if g.in_degree(v) == 0:
            if g.out_degree(v) == 0:
                continue
            sources.append(v)
            lines.append(
                f"  n{v}: {{type: source, params: {{items: {[v * 1000 + k for k in range(counts[v])]}}}}}"
            )
        elif g.out_degree(v) == 0:
            lines.append(f"  n{v}: {{type: collect}}")
        elif g.out_degree(v) > 1:
            lines.append(f"  n{v}: {{type: tee, workers: {workers[v]}}}")
        else:
            lines.append(f"  n{v}: {{type: map, params: {{fn: 'operator:pos'}}, workers: {workers[v]}}}")
    lines.append("edges:")
    lines += [f"  - {{from: n{a}, to: n{b}, capacity: {capacity}}}" for a, b in g.edges]
    report = run_event_loop(Graph.from_text("\n".join(lines) + "\n").run())
    sinks = [v for v in g if g.out_degree(v) == 0 and g.in_degree(v) > 0]
    expected: Counter[int] = Counter()
    for s in sources:
        paths = sum(len(list(nx.all_simple_paths(g, s, t))) for t in sinks)
        for k in range(counts[s]):
            expected[s * 1000 + k] += paths
    assert Counter(report.results) == expected
