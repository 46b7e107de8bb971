from __future__ import annotations

import asyncio

import pytest

from flowgraph import END
from flowgraph.channel import Channel, ChannelClosed


async def test_put_waits_while_full_and_never_exceeds_capacity():
    ch = Channel(2)
    await ch.put(1)
    await ch.put(2)
    blocked = asyncio.ensure_future(ch.put(3))
    await asyncio.sleep(0.01)
    assert not blocked.done() and len(ch) == 2
    assert await ch.get() == 1
    await asyncio.wait_for(blocked, 1)
    assert ch.high_water == 2


async def test_end_of_stream_after_every_producer_closed():
    ch = Channel(4, producers=2)
    await ch.put("a")
    ch.close()
    assert await ch.get() == "a"
    waiting = asyncio.ensure_future(ch.get())
    await asyncio.sleep(0.01)
    assert not waiting.done()  # one producer still open
    ch.close()
    assert await asyncio.wait_for(waiting, 1) is END
    assert await ch.get() is END  # every later reader sees it too
    with pytest.raises(ChannelClosed):
        await ch.put("late")


async def test_fail_releases_blocked_putters_and_getters():
    full, empty = Channel(1), Channel(1)
    await full.put(0)
    putter = asyncio.ensure_future(full.put(1))
    getter = asyncio.ensure_future(empty.get())
    await asyncio.sleep(0.01)
    boom = RuntimeError("boom")
    full.fail(boom)
    empty.fail(boom)
    for fut in (putter, getter):
        with pytest.raises(RuntimeError, match="boom"):
            await asyncio.wait_for(fut, 1)


async def test_cancelled_getter_does_not_swallow_a_wakeup():
    ch = Channel(1)
    first = asyncio.ensure_future(ch.get())
    second = asyncio.ensure_future(ch.get())
    await asyncio.sleep(0.01)
    await ch.put("x")
    first.cancel()
    results = await asyncio.gather(first, second, return_exceptions=True)
    assert "x" in results
