"""Leaving a run early never hangs and leaves nothing behind, whatever the feeder was doing."""

from __future__ import annotations

import asyncio

import pytest

from flowgraph import Graph
from flowgraph.testing import assert_cleaned_up

SLOW = """
nodes:
  i: {type: input}
  s: {type: "fixture_nodes:Slow", params: {seconds: 0.5}}
  r: {type: collect}
edges: [{from: i, to: s, capacity: 1}, {from: s, to: r}]
"""


async def _feeding_blocked(run) -> None:
    run.feed(range(1000))  # far more than the capacity-1 input takes: the feeder blocks on a full queue
    await asyncio.sleep(0.05)


async def test_an_error_in_the_block_while_the_feeder_waits_for_room_ends_promptly():
    async with assert_cleaned_up():
        with pytest.raises(RuntimeError, match="the caller's own error"):
            async with asyncio.timeout(3), Graph.from_text(SLOW).start() as run:
                await _feeding_blocked(run)
                raise RuntimeError("the caller's own error")


async def test_stopping_without_drain_while_the_feeder_waits_for_room_ends_promptly():
    async with assert_cleaned_up():
        async with asyncio.timeout(3):
            async with Graph.from_text(SLOW).start() as run:
                await _feeding_blocked(run)
                run.stop(drain=False)
            assert run.report is not None and run.report.stopped is not None


async def test_cancelling_the_owner_while_the_exit_waits_ends_the_graph_too():
    entered = asyncio.Event()

    async def owner() -> None:
        async with Graph.from_text(SLOW).start() as run:
            await _feeding_blocked(run)
            entered.set()
        # the block ended: the exit now waits for 1000 half-second items

    async with assert_cleaned_up():
        task = asyncio.create_task(owner())
        await entered.wait()
        await asyncio.sleep(0.1)  # inside __aexit__'s wait
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            async with asyncio.timeout(3):
                await task
