from __future__ import annotations

import asyncio

import pytest

from flowgraph import Graph, NodeFailure

F = "fixture_nodes"


async def test_submit_close_and_read_results():
    graph = Graph.from_yaml("graphs/hello_embedded.yaml")
    async with graph.start() as run:
        for i in range(5):
            await run.submit(i)
        await run.close()
        got = [r async for r in run.results()]
    assert sorted(got) == [-4, -3, -2, -1, 0]
    assert run.report.samples["completed"] == 5


async def test_feed_more_than_the_queues_hold_while_reading_results():
    graph = Graph.from_yaml("graphs/hello_embedded.yaml")
    async with graph.start(results_capacity=4) as run:
        run.feed(range(1000))
        total = 0
        async for r in run.results():
            total += r
    assert total == -sum(range(1000))


async def test_leaving_the_block_closes_input_and_keeps_unread_results():
    graph = Graph.from_yaml("graphs/hello_embedded.yaml")
    async with graph.start() as run:
        await run.submit(7)
    assert run.report.results == [-7]


async def test_results_iterator_raises_the_node_failure():
    graph = Graph.from_text(
        f"nodes:\n  i: {{type: input}}\n  f: {{type: '{F}:FailsOn', params: {{bad: 2}}}}\n"
        "  c: {type: collect}\nedges: [{from: i, to: f}, {from: f, to: c}]\n"
    )
    with pytest.raises(NodeFailure, match="node 'f'"):
        async with graph.start() as run:
            run.feed(range(10))
            async for _ in run.results():
                pass


async def test_submit_does_not_hang_after_the_graph_failed():
    graph = Graph.from_text(
        f"nodes:\n  i: {{type: input}}\n  f: {{type: '{F}:FailsOn', params: {{bad: 0}}}}\n"
        "  c: {type: collect}\nedges: [{from: i, to: f, capacity: 1}, {from: f, to: c}]\n"
    )
    with pytest.raises(NodeFailure):
        async with graph.start(results_capacity=1) as run:
            for i in range(100):
                await asyncio.wait_for(run.submit(i), 2)


def test_run_sync_returns_the_report():
    report = Graph.from_yaml("graphs/hello.yaml", overrides={"count": 6}).run_sync()
    assert sorted(report.results) == [1, 1, 2, 6, 24, 120]
    assert report.ok


async def test_run_with_items_feeds_them_all_even_past_every_capacity():
    report = await Graph.from_yaml("graphs/hello_embedded.yaml").run(range(5000), results_capacity=8)
    assert sorted(report.results) == sorted(-i for i in range(5000))


async def test_started_waits_for_setup_and_raises_its_failure():
    import time as _time

    from flowgraph import Node, node_type

    @node_type("test-slow-setup")
    class SlowSetup(Node):
        async def setup(self):
            await asyncio.sleep(0.2)

        async def process(self, item):
            return item

    graph = Graph.from_text(
        "nodes:\n  i: {type: input}\n  s: {type: test-slow-setup}\n  c: {type: collect}\n"
        "edges: [{from: i, to: s}, {from: s, to: c}]\n"
    )
    async with graph.start() as run:
        t0 = _time.perf_counter()
        await run.started()
        assert _time.perf_counter() - t0 >= 0.15 and run.runtime.ready.is_set()

    @node_type("test-bad-setup")
    class BadSetup(Node):
        async def setup(self):
            raise OSError("no engine")

    bad = Graph.from_text(
        "nodes:\n  i: {type: input}\n  s: {type: test-bad-setup}\n  c: {type: collect}\n"
        "edges: [{from: i, to: s}, {from: s, to: c}]\n"
    )
    with pytest.raises(NodeFailure, match="no engine"):
        async with bad.start() as run:
            await run.started()


async def test_an_input_node_waiting_for_submissions_is_not_reported_busy():
    graph = Graph.from_yaml("graphs/hello_embedded.yaml")
    async with graph.start() as run:
        await run.submit(1)
        await asyncio.sleep(0.2)  # the program is slow to submit: the input node waits
        await run.submit(2)
        await run.close()
    assert run.report is not None
    node = next(n for n in run.report.nodes if n["type"] == "input")
    assert node["wait_in_s"] >= 0.15 and node["utilization"] < 0.5


async def test_submit_nowait_takes_items_while_there_is_room_and_says_when_there_is_none():
    # For callbacks on the loop (the LoadGen bridge): nothing runs between these calls, so the graph's
    # input fills up and submit_nowait says so instead of waiting.
    graph = Graph.from_yaml("graphs/hello_embedded.yaml")
    async with graph.start() as run:
        taken = 0
        while run.submit_nowait(taken):
            taken += 1
            assert taken < 10_000, "an input queue without a bound"
        await run.submit(taken)  # the waiting way still works once the graph has made room
        await run.close()
        got = sorted([r async for r in run.results()])
    assert taken >= 1
    assert got == sorted(-i for i in range(taken + 1))
