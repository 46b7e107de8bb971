"""batch_merge: deadlines, no-wait mode, flush markers, deferred stacking."""

from __future__ import annotations

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


async def test_full_batches_then_the_partial_one_at_end_of_stream():
    report = await Graph.from_text(GRAPH.format(wait=1_000_000)).run(images(10))
    assert [b.sample_ids for b in report.results] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    stacked = report.results[2].host_array()
    assert stacked.shape == (2, 2, 2, 3) and stacked[1, 0, 0, 0] == 9


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
