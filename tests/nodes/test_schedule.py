"""gpu_schedule: a batch goes to an engine that wants one, and waits upstream while none does."""

from __future__ import annotations

import asyncio
import uuid

import fixture_nodes
import numpy as np

from flowgraph import Graph
from flowgraph.nodes.payloads import Batch, Image

GRAPH = """
nodes:
  i: {{type: input}}
  s: {{type: gpu_schedule}}
  e: {{type: "fixture_nodes:GatedEngine", params: {{engine_num: 2, gate: {gate}}}}}
  c: {{type: collect}}
edges: [{{from: i, to: s}}, {{from: s, to: e, capacity: 0}}, {{from: e, to: c}}]
"""


def batch(k: int) -> Batch:
    return Batch([k], [0], np.zeros((1, 2), np.uint8), [0.0])


async def test_batches_go_to_the_idle_engine_and_wait_upstream_while_none_is():
    gate = f"engine-{uuid.uuid4().hex}"
    gates = [asyncio.Semaphore(0), asyncio.Semaphore(0)]
    for worker, semaphore in enumerate(gates):
        fixture_nodes.GATES[f"{gate}{worker}"] = semaphore
    graph = Graph.from_text(GRAPH.format(gate=gate))
    async with graph.start() as run:
        results = run.results()
        for k in range(3):
            await run.submit(batch(k))
            await asyncio.sleep(0.01)
        # Both engines hold a batch; the third waits before the scheduler, which took nothing more.
        in_flight = run.runtime.in_flight()
        assert in_flight["s"] == 1 and in_flight["e"] == 2
        gates[1].release()
        engine, first = await asyncio.wait_for(anext(results), 2)
        await asyncio.sleep(0.01)
        gates[1].release()  # engine 1 finished first, so it asked first and got batch 2
        engine2, second = await asyncio.wait_for(anext(results), 2)
        gates[0].release()
        engine3, third = await asyncio.wait_for(anext(results), 2)
        await run.close()
    assert {engine, engine3} == {0, 1} and engine == 1
    assert (engine2, second.sample_ids) == (1, [2])
    assert third.sample_ids == [0] and engine3 == 0


PULL_CHAIN = """
nodes:
  i: {{type: input}}
  m: {{type: batch_merge, params: {{max_batch: 4, max_wait_us: 0}}}}
  c: {{type: memory_copy}}  # one copy worker per engine: derived from e
  s: {{type: gpu_schedule}}
  e: {{type: "fixture_nodes:PerEngineQueue", params: {{engine_num: {engines}}}}}
  r: {{type: collect}}
edges:
  - {{from: i, to: m}}
  - {{from: m, to: c, capacity: 0}}
  - {{from: c, to: s, capacity: 0}}
  - {{from: s, to: e, capacity: 0}}
  - {{from: e, to: r}}
"""


async def test_a_pull_chain_delivers_every_image_and_ends():
    # Several copy workers each promise the scheduler a batch; at end of stream the ones left without
    # a batch must give their promise back, or a sibling holding the last batch waits forever.
    for engines in (1, 2, 3):
        images = [Image(k, 0, np.zeros((2, 2, 3), np.uint8)) for k in range(23)]
        graph = Graph.from_text(PULL_CHAIN.format(engines=engines))
        assert graph.nodes["c"].workers == engines
        report = await asyncio.wait_for(graph.run(images), 5)
        assert sorted(i for b in report.results for i in b.sample_ids) == list(range(23))


async def test_memory_copy_feeding_engines_directly_sends_to_the_engine_that_asked():
    # SingleStream bypasses gpu_schedule; with several engines, memory_copy's batch must go to the idle
    # engine it was promised to, not to the first queue (whose engine is busy).
    gate = f"copy-{uuid.uuid4().hex}"
    gates = [asyncio.Semaphore(0), asyncio.Semaphore(0)]
    for worker, semaphore in enumerate(gates):
        fixture_nodes.GATES[f"{gate}{worker}"] = semaphore
    graph = Graph.from_text(
        f"""
nodes:
  i: {{type: input}}
  c: {{type: memory_copy}}
  e: {{type: "fixture_nodes:GatedEngine", params: {{engine_num: 2, gate: {gate}}}}}
  r: {{type: collect}}
edges: [{{from: i, to: c}}, {{from: c, to: e, capacity: 0}}, {{from: e, to: r}}]
"""
    )
    async with graph.start() as run:
        results = run.results()
        await run.submit(batch(0))
        await asyncio.sleep(0.01)
        assert run.runtime.in_flight()["e"] == 1  # one engine holds batch 0
        await run.submit(batch(1))
        await asyncio.sleep(0.01)
        assert run.runtime.in_flight()["e"] == 2  # the other engine took batch 1
        for semaphore in gates:
            semaphore.release()
        got = {(await asyncio.wait_for(anext(results), 2))[0] for _ in range(2)}
        await run.close()
    assert got == {0, 1}  # each engine answered one batch
