from __future__ import annotations

import asyncio
import sys
import time

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


async def test_put_threadsafe_wakes_the_loop_only_for_a_waiting_reader():
    import threading
    from unittest import mock

    loop = asyncio.get_running_loop()
    ch = Channel(4)
    wakes: list[object] = []
    real = loop.call_soon_threadsafe
    with mock.patch.object(loop, "call_soon_threadsafe", lambda *a: (wakes.append(a[0]), real(*a))):
        putter = threading.Thread(target=lambda: [ch.put_threadsafe(k, loop) for k in range(3)])
        putter.start()
        putter.join()
        assert wakes == []  # nobody was reading: the items wait, the loop is left alone
        assert [ch.get_nowait() for _ in range(3)] == [0, 1, 2]
        reader = asyncio.ensure_future(ch.get())
        await asyncio.sleep(0)  # the reader now waits on the empty channel
        putter = threading.Thread(target=lambda: [ch.put_threadsafe(k, loop) for k in (3, 4)])
        putter.start()
        putter.join()
        assert await asyncio.wait_for(reader, 5) == 3
        assert len(wakes) == 1  # one wake-up for the waiting reader, not one per item


async def test_put_threadsafe_refuses_when_full_closed_or_failed():
    loop = asyncio.get_running_loop()
    ch = Channel(2)
    assert [ch.put_threadsafe(k, loop) for k in range(3)] == [True, True, False]
    ch.close()
    assert ch.get_nowait() == 0 and not ch.put_threadsafe(9, loop)
    failed = Channel(2)
    failed.fail(RuntimeError("boom"))
    assert not failed.put_threadsafe(1, loop)


async def test_items_put_from_a_thread_all_arrive_while_the_reader_comes_and_goes():
    # One item at a time: the thread puts the next only once the reader took the last, so the reader
    # is forever about to wait on an empty channel as the thread puts. With threads switched as
    # often as possible, a put lands between the reader's empty check and its registering to wait
    # again and again; a lost wake-up would leave the reader waiting with the item queued.
    import threading

    loop = asyncio.get_running_loop()
    ch = Channel(8)
    n = 3000
    taken = [0]

    def put_one_at_a_time() -> None:
        for item in range(n):
            assert ch.put_threadsafe(item, loop)
            deadline = time.monotonic() + 5
            while taken[0] <= item and time.monotonic() < deadline:
                time.sleep(0)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    putter = threading.Thread(target=put_one_at_a_time)
    putter.start()
    got = []
    try:
        for _ in range(n):
            got.append(await asyncio.wait_for(ch.get(), 2))
            taken[0] += 1
    finally:
        putter.join()
        sys.setswitchinterval(interval)
    assert got == list(range(n))
