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


async def test_capacity_zero_hands_over_only_to_a_waiting_reader():
    ch = Channel(0)
    assert not ch.put_nowait("early")  # nobody is reading: no room
    putter = asyncio.ensure_future(ch.put("x"))
    await asyncio.sleep(0.01)
    assert not putter.done() and len(ch) == 0
    assert await asyncio.wait_for(ch.get(), 1) == "x"
    await asyncio.wait_for(putter, 1)
    assert ch.high_water == 1


async def test_wanted_promises_one_item_per_opening():
    ch = Channel(0)
    first = asyncio.ensure_future(ch.wanted())
    second = asyncio.ensure_future(ch.wanted())
    await asyncio.sleep(0.01)
    assert not first.done() and not second.done()  # no reader yet: nobody wants an item
    reader = asyncio.ensure_future(ch.get())
    await asyncio.sleep(0.01)
    assert [first.done(), second.done()].count(True) == 1  # one reader, one promise
    await ch.put("a")
    assert await asyncio.wait_for(reader, 1) == "a"
    assert ch.promised == 0  # the put kept the promise
    another = asyncio.ensure_future(ch.get())
    await asyncio.wait_for(asyncio.gather(first, second), 1)
    await ch.put("b")
    assert await asyncio.wait_for(another, 1) == "b"


async def test_wanted_counts_room_and_earlier_promises():
    ch = Channel(2)
    await asyncio.wait_for(ch.wanted(), 1)
    await asyncio.wait_for(ch.wanted(), 1)
    third = asyncio.ensure_future(ch.wanted())
    await asyncio.sleep(0.01)
    assert not third.done()  # two promised into two places
    await ch.put(1)
    await ch.put(2)
    assert await ch.get() == 1
    await asyncio.wait_for(third, 1)


async def test_fail_releases_producers_waiting_for_demand():
    ch = Channel(0)
    waiting = asyncio.ensure_future(ch.wanted())
    await asyncio.sleep(0.01)
    ch.fail(RuntimeError("boom"))
    with pytest.raises(RuntimeError, match="boom"):
        await asyncio.wait_for(waiting, 1)


async def test_cancelled_wanter_passes_its_opening_on():
    ch = Channel(1)
    await ch.put("full")
    first = asyncio.ensure_future(ch.wanted())
    second = asyncio.ensure_future(ch.wanted())
    await asyncio.sleep(0.01)
    assert await ch.get() == "full"  # one opening: wakes the first wanter ...
    first.cancel()  # ... which is cancelled before it runs
    await asyncio.wait_for(second, 1)
    assert first.cancelled()


async def test_a_withdrawn_promise_lets_another_producer_answer():
    ch = Channel(0)
    reader = asyncio.ensure_future(ch.get())
    await asyncio.sleep(0.01)
    await asyncio.wait_for(ch.wanted(), 1)  # this producer's input ends: it will not put
    other = asyncio.ensure_future(ch.wanted())
    await asyncio.sleep(0.01)
    assert not other.done()
    ch.withdraw()
    await asyncio.wait_for(other, 1)
    await ch.put("x")
    assert await asyncio.wait_for(reader, 1) == "x"
