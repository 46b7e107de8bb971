"""``Run.call``: one answer per request, each request's own error, and no caller left waiting."""

from __future__ import annotations

import asyncio
import random

import pytest
from fixture_nodes import Tagged

from flowgraph import FlowgraphError, Graph, NodeFailure, SampleError

F = "fixture_nodes"


def graph(on_error: str = "fail", *, sink: str = "collect", slow: float = 0.0) -> Graph:
    return Graph.from_text(f"""\
nodes:
  requests: {{type: input}}
  slow: {{type: "{F}:Slow", params: {{seconds: {slow}}}, workers: 3}}
  check: {{type: "{F}:FailsOn", params: {{bad: 13}}, on_error: {on_error}, workers: 2}}
  out: {{type: {sink}}}
edges:
  - {{from: requests, to: slow}}
  - {{from: slow, to: check}}
  - {{from: check, to: out}}
""")


async def test_concurrent_calls_each_get_their_own_answer_out_of_order():
    async with graph(slow=0.002).start() as run:

        async def one(i: int) -> Tagged:
            await asyncio.sleep(random.random() / 100)
            return await run.call(Tagged(i, i * 10))

        answers = await asyncio.gather(*(one(i) for i in range(40)))
    assert [(a.sample_id, a.value) for a in answers] == [(i, i * 10) for i in range(40)]
    assert run.report is not None and run.report.samples["completed"] == 40


async def test_a_failing_sample_raises_to_its_caller_only_and_the_graph_goes_on():
    async with graph(on_error="skip").start() as run:
        results = await asyncio.gather(*(run.call(Tagged(i, i)) for i in range(20)), return_exceptions=True)
        after = await run.call(Tagged(99, 99))  # still serving
    bad = results[13]
    assert isinstance(bad, SampleError) and bad.node == "check" and bad.sample == 13
    assert "ValueError: cannot handle 13" in str(bad)
    assert all(r.sample_id == i for i, r in enumerate(results) if i != 13)
    assert after.value == 99
    assert run.report.samples == {"entered": 21, "completed": 20, "failed": 1, "dropped": 0}


async def test_with_on_error_skip_turns_a_failing_graph_into_a_serving_one():
    async with graph(on_error="fail").with_on_error("skip").start() as run:
        with pytest.raises(SampleError):
            await run.call(Tagged(13, 13))
        assert (await run.call(Tagged(1, 1))).value == 1


async def test_under_on_error_fail_every_waiting_call_gets_the_graph_failure():
    with pytest.raises(NodeFailure):
        async with graph(on_error="fail", slow=0.01).start() as run:
            calls = [asyncio.ensure_future(run.call(Tagged(i, i))) for i in (13, 1, 2, 3)]
            outcomes = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(o, FlowgraphError) for o in outcomes), outcomes
    assert isinstance(outcomes[0], NodeFailure | SampleError)


async def test_a_call_after_the_graph_stopped_says_so_instead_of_waiting():
    async with graph().start() as run:
        run.stop(drain=False)
        with pytest.raises(FlowgraphError, match="takes no more calls"):
            await asyncio.wait_for(run.call(Tagged(5, 5)), 5)


async def test_a_call_s_timeout_bounds_its_wait_and_the_graph_goes_on():
    async with graph(slow=0.5).start() as run:
        with pytest.raises(TimeoutError):
            await run.call(Tagged(1, 1), timeout=0.05)
        assert (await run.call(Tagged(2, 2), timeout=5)).value == 2
    assert [r.sample_id for r in run.report.results] == [1]  # the late answer nobody waited for is kept


async def test_call_refuses_what_it_cannot_route():
    async with graph().start() as run:
        with pytest.raises(ValueError, match="needs an item that names one sample"):
            await run.call(7)
        first = asyncio.ensure_future(run.call(Tagged(1, 1)))
        await asyncio.sleep(0)
        with pytest.raises(ValueError, match="already in flight"):
            await run.call(Tagged(1, 2))
        await first
        with pytest.raises(RuntimeError, match="answers call"):
            async for _ in run.results():
                pass
    async with graph(sink="discard").start() as run:
        with pytest.raises(ValueError, match="needs a collecting sink"):
            await run.call(Tagged(1, 1))


async def test_typed_input_refuses_the_wrong_type_at_the_call(pruned_model, dataset):
    pytest.importorskip("cv2")
    from pathlib import Path

    serve = Graph.from_yaml(
        Path(__file__).parent.parent / "graphs" / "resnet50_serve.yaml", {"model.path": str(pruned_model)}
    )
    from flowgraph.nodes import Sample

    jpeg = next(dataset.glob("**/*.JPEG")).read_bytes()
    async with serve.start(announce=lambda m: None) as run:
        with pytest.raises(TypeError, match="takes Sample, not dict"):
            await run.call({"id": 1})
        answer = await run.call(Sample(1, None, -1, jpeg))
        with pytest.raises(SampleError, match="preprocess"):
            await run.call(Sample(2, None, -1, b"not a jpeg"))
        again = await run.call(Sample(3, None, -1, jpeg))
    assert answer.sample_id == 1 and again.top1 == answer.top1 and len(answer.top5) == 5
