"""batch_merge: deadlines, no-wait mode, flush markers; memory_copy: the stacking it was spared."""

from __future__ import annotations

import asyncio
import uuid

import fixture_nodes
import numpy as np

from flowgraph import Graph
from flowgraph.nodes.payloads import Flush, Image

GRAPH = """
nodes:
  i: {{type: input}}
  m: {{type: batch_merge, params: {{max_batch: 4, max_wait_us: {wait}}}}}
  c: {{type: collect}}
edges: [{{from: i, to: m}}, {{from: m, to: c}}]
"""


def images(n):
    return [Image(k, k % 3, np.full((2, 2, 3), k, np.uint8)) for k in range(n)]


async def test_full_batches_then_the_partial_one_at_end_of_stream_referencing_not_copying():
    sent = images(10)
    report = await Graph.from_text(GRAPH.format(wait=1_000_000)).run(sent)
    assert [b.sample_ids for b in report.results] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    last = report.results[2]
    assert [a is image.array for a, image in zip(last.arrays, sent[8:], strict=True)] == [True, True]


async def test_flush_marker_sends_the_partial_batch_and_is_not_an_image():
    items = [*images(2), Flush(), *images(3)[2:]]
    for wait in (1_000_000, 0):
        report = await Graph.from_text(GRAPH.format(wait=wait)).run(items)
        ids = [i for b in report.results for i in b.sample_ids]
        assert ids == [0, 1, 2]
        if wait:
            assert report.results[0].sample_ids == [0, 1]  # the flush cut the batch


async def test_deadline_sends_a_partial_batch_without_end_of_stream():
    graph = Graph.from_text(GRAPH.format(wait=20_000))
    async with graph.start() as run:
        for image in images(2):
            await run.submit(image)
        first = await anext(run.results())
        assert first.sample_ids == [0, 1]


DEMAND_GRAPH = """
nodes:
  i: {{type: input}}
  m: {{type: batch_merge, params: {{max_batch: 100, max_wait_us: 0}}}}
  g: {{type: "fixture_nodes:Gated", params: {{name: {gate}}}}}
  c: {{type: collect}}
edges: [{{from: i, to: m}}, {{from: m, to: g, capacity: {capacity}}}, {{from: g, to: c}}]
"""


async def batches_while_the_next_stage_is_busy(capacity: int) -> list[list[int]]:
    """Image 0 goes to a held gate; images 1-3 arrive while it is busy; then the gate opens twice."""
    gate = f"merge-{uuid.uuid4().hex}"
    fixture_nodes.GATES[gate] = asyncio.Semaphore(0)
    graph = Graph.from_text(DEMAND_GRAPH.format(gate=gate, capacity=capacity))
    async with graph.start() as run:
        results = run.results()
        await run.submit(images(1)[0])
        await asyncio.sleep(0.02)  # image 0 is in the gate now
        for image in images(4)[1:]:
            await run.submit(image)
            await asyncio.sleep(0.005)  # one at a time, as a Server's queries come
        batches = []
        for _ in range(2):
            fixture_nodes.GATES[gate].release()
            batches.append((await asyncio.wait_for(anext(results), 2)).sample_ids)
        for _ in range(4):  # let whatever is left through
            fixture_nodes.GATES[gate].release()
        await run.close()
    return batches


async def test_a_capacity_zero_edge_forms_the_batch_when_the_next_stage_asks():
    assert await batches_while_the_next_stage_is_busy(0) == [[0], [1, 2, 3]]
    # With a queue of one, the batch is sealed as soon as there is room, before the others arrive.
    assert (await batches_while_the_next_stage_is_busy(1))[1] == [1]


STACK_GRAPH = """
nodes:
  i: {type: input}
  m: {type: batch_merge, params: {max_batch: 4, max_wait_us: 1000000}}
  c: {type: memory_copy}
  r: {type: collect}
edges: [{from: i, to: m}, {from: m, to: c}, {from: c, to: r}]
"""


async def test_memory_copy_stacks_images_into_one_contiguous_batch():
    sent = images(6)
    report = await Graph.from_text(STACK_GRAPH).run(sent)
    assert [b.sample_ids for b in report.results] == [[0, 1, 2, 3], [4, 5]]
    for batch in report.results:
        assert batch.array.flags.c_contiguous and batch.ready is None
        expected = np.stack([sent[k].array for k in batch.sample_ids])
        np.testing.assert_array_equal(batch.array, expected)
        assert batch.labels == [k % 3 for k in batch.sample_ids]


async def test_memory_copy_makes_a_single_image_a_batch_of_one():
    text = STACK_GRAPH.replace("  m: {type: batch_merge, params: {max_batch: 4, max_wait_us: 1000000}}\n", "")
    text = text.replace("{from: i, to: m}, {from: m, to: c}", "{from: i, to: c}")
    report = await Graph.from_text(text).run(images(2))
    assert [(b.sample_ids, b.array.shape) for b in report.results] == [
        ([0], (1, 2, 2, 3)),
        ([1], (1, 2, 2, 3)),
    ]
