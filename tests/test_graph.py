from __future__ import annotations

import asyncio
import time
from pathlib import Path

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


@pytest.mark.parametrize(
    ("text", "through"),
    [
        (Path("graphs/hello_embedded.yaml").read_text(), True),  # one edge: wired straight through
        (
            "nodes:\n  i: {type: input}\n  c: {type: collect}\nedges: [{from: i, to: c, capacity: 0}]\n",
            False,  # a hand-over edge holds no queue to put into: the input node's worker waits to hand over
        ),
    ],
)
async def test_an_input_node_waiting_for_submissions_is_not_reported_busy(text, through):
    graph = Graph.from_text(text)
    async with graph.start() as run:
        assert run.input().through is through
        await run.submit(1)
        await asyncio.sleep(0.2)  # the program is slow to submit: the input node waits
        await run.submit(2)
        await run.close()
    assert run.report is not None
    node = next(n for n in run.report.nodes if n["type"] == "input")
    assert node["utilization"] < 0.5 and node["items_out"] == 2
    assert run.report.samples["entered"] == 2
    if not through:
        assert node["wait_in_s"] >= 0.15


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


async def test_items_put_from_another_thread_are_processed_and_counted():
    import threading

    graph = Graph.from_yaml("graphs/hello_embedded.yaml")
    async with graph.start() as run:
        await run.started()
        feed = run.input()

        def put_all() -> None:
            for k in range(500):
                while not feed.put_threadsafe(k):
                    time.sleep(0.0005)  # full: wait for the graph, as a server thread would

        putter = threading.Thread(target=put_all)
        putter.start()
        await asyncio.to_thread(putter.join)
        await run.close()
    assert run.report is not None
    assert sorted(run.report.results) == sorted(-k for k in range(500))
    assert run.report.samples["entered"] == 500 and run.report.samples["dropped"] == 0


async def test_put_threadsafe_before_the_run_starts_says_so():
    graph = Graph.from_yaml("graphs/hello_embedded.yaml")
    run = graph.start()
    with pytest.raises(RuntimeError, match="has not started"):
        run.input().put_threadsafe(1)


def test_the_node_table_reads_in_80_columns():
    from rich.console import Console

    report = Graph.from_yaml("graphs/hello.yaml", overrides={"count": 50}).run_sync()
    console = Console(width=80, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(report.node_table())
    text = console.export_text()
    console.file.close()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    assert "factorial ×2" in text and "wait in" in text and "s per worker" in text


def test_the_report_shows_each_queue_s_high_water_mark_against_its_capacity():
    from rich.console import Console

    report = Graph.from_yaml("graphs/hello.yaml", overrides={"count": 50}).run_sync()
    console = Console(width=100, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(*report.tables())
    text = console.export_text()
    console.file.close()
    assert "queues" in text and "high water" in text
    for edge in report.edges:
        assert edge["edge"] in text and 0 <= edge["high_water"] <= edge["capacity"]


def test_a_sink_s_rate_is_what_it_took_not_the_nothing_it_sent():
    report = Graph.from_yaml("graphs/hello.yaml", overrides={"count": 200}).run_sync()
    sink = report.node("results")
    assert sink["items_per_s"] == 0 and sink["rate_per_s"] > 0
    assert report.node("factorial")["rate_per_s"] == report.node("factorial")["items_per_s"]


def test_a_batch_node_s_rate_counts_samples_not_batches_and_untimed_nodes_show_a_dash():
    from rich.console import Console

    report = Graph.from_text("""
nodes:
  s: {type: source, params: {range: 400}}
  group: {type: batch, params: {size: 8}}
  flat: {type: unbatch}
  r: {type: collect}
edges: [{from: s, to: group}, {from: group, to: flat}, {from: flat, to: r}]
""").run_sync()
    flat = report.node("flat")
    assert flat["items_in"] == 50 and flat["samples_in"] == 400
    # the rate is samples/s: the group node sent 50 batches of 8 over the same span it took 400 samples
    group = report.node("group")
    assert group["rate_per_s"] == pytest.approx(8 * group["items_per_s"], rel=1e-3)
    console = Console(width=80, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(report.node_table())
    text = console.export_text()
    console.file.close()
    row = next(line for line in text.splitlines() if line.split()[:1] == ["group"])
    assert row.split()[-2:] == ["—", "—"]  # its own loop times no item: no fake 0.000
