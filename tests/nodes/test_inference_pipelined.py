"""The inference node with batches in flight (``in_flight: 2``): order, bounds, pacing, failures."""

from __future__ import annotations

import asyncio
import time
import uuid

import fixture_nodes
import numpy as np
import pytest

from flowgraph import Graph, NodeFailure
from flowgraph.nodes.payloads import Image

GRAPH = """
params: {{device_key: {key}}}
nodes:
  i: {{type: input}}
  m: {{type: batch_merge, params: {{max_batch: 64, max_wait_us: 0}}}}
  s: {{type: memory_copy}}
  e: {{type: "fixture_nodes:FakeDeviceInference", params: {{in_flight: {in_flight}}}}}
  c: {{type: collect}}
edges: [{{from: i, to: m}}, {{from: m, to: s, capacity: 0}}, {{from: s, to: e, capacity: 0}}, {{from: e, to: c}}]
"""


def graph(device_s: float, in_flight: int = 2, fail_on: int | None = None) -> tuple[Graph, str]:
    key = uuid.uuid4().hex
    fixture_nodes.FAKE_DEVICE[key] = (device_s, fail_on)
    return Graph.from_text(GRAPH.format(key=key, in_flight=in_flight)), key


async def feed_steadily(run, count: int, every_s: float, answered: dict[int, float]) -> dict[int, float]:
    """Submit one image every ``every_s`` while reading results; returns each sample's latency."""
    entered: dict[int, float] = {}

    async def read() -> None:
        async for logits in run.results():
            for sample in logits.sample_ids:
                answered[sample] = time.perf_counter()

    reader = asyncio.create_task(read())
    try:
        for k in range(count):
            entered[k] = time.perf_counter()
            await run.submit(Image(k, 0, np.zeros((2, 2, 3), np.uint8), entered[k]))
            await asyncio.sleep(every_s)
        await run.close()
        await asyncio.wait_for(reader, 10)
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    return {k: answered[k] - entered[k] for k in entered}


async def test_every_sample_comes_back_once_in_order_with_at_most_in_flight_batches():
    g, key = graph(0.01)
    answered: dict[int, float] = {}
    async with g.start() as run:
        latency = await feed_steadily(run, 60, 0.001, answered)
    assert sorted(latency) == list(range(60))
    assert list(answered) == sorted(answered)  # answers left in launch (= arrival) order
    engine = fixture_nodes.ENGINES[key][0]
    assert engine.most_in_flight == 2 and engine.in_flight == 0


async def test_the_next_batch_is_asked_for_just_before_the_device_frees_up():
    # Images arrive every 4 ms; the device takes 80 ms a batch. Asking as soon as a batch is launched
    # (no pacing) seals the next batch at once, so it waits a whole device time queued behind the
    # running one: a typical image then waits ~half a cycle + 2 device times (~200 ms). Asked for just
    # before the device frees up, it waits ~half a cycle + 1 device time (~120 ms).
    g, _ = graph(0.08)
    async with g.start() as run:
        latency = await feed_steadily(run, 100, 0.004, {})
    settled = [latency[k] for k in range(40, 100)]  # after the pacer has measured the device
    assert float(np.median(settled)) < 0.16


async def test_a_failing_batch_names_its_samples_and_stops_the_graph():
    g, _ = graph(0.005, fail_on=7)
    with pytest.raises(NodeFailure) as info:
        async with g.start() as run:
            await asyncio.wait_for(feed_steadily(run, 40, 0.001, {}), 10)
    assert info.value.node == "e" and 7 in info.value.sample
