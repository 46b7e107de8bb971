"""Engine overhead: items/s through 8 pass-through nodes, against the same chain written by hand.

Both run in one process, alternating, on asyncio and on uvloop, so the ratio is measured side by side:

    python bench/engine_overhead.py [--items 200000] [--stages 8] [--capacity 64] [--repeat 3]
    python bench/engine_overhead.py --round-trip [--stages 3]   # one item at a time: latency, not rate

The hand-written chain is the floor: one coroutine per stage, ``asyncio.Queue(capacity)`` between
them, a sentinel for the end. flowgraph adds metrics, end-of-stream bookkeeping and error routing.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import time
from typing import Any

from flowgraph import Graph, Node, node_type

_END = object()


@node_type("bench-pass")
class PassThrough(Node):
    """Returns its input: all that is measured is the engine."""

    async def process(self, item: Any) -> Any:
        return item


async def hand_written(items: int, stages: int, capacity: int) -> float:
    queues = [asyncio.Queue(capacity) for _ in range(stages + 1)]

    async def produce() -> None:
        for i in range(items):
            await queues[0].put(i)
        await queues[0].put(_END)

    async def stage(q_in: asyncio.Queue, q_out: asyncio.Queue) -> None:
        while (item := await q_in.get()) is not _END:
            await q_out.put(item)
        await q_out.put(_END)

    async def consume() -> None:
        while await queues[-1].get() is not _END:
            pass

    t0 = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(produce())
        for k in range(stages):
            tg.create_task(stage(queues[k], queues[k + 1]))
        tg.create_task(consume())
    return time.perf_counter() - t0


def chain_graph(items: int, stages: int, capacity: int) -> Graph:
    nodes = [f"  src: {{type: source, params: {{range: {items}}}}}"]
    nodes += [f"  p{k}: {{type: bench-pass}}" for k in range(stages)]
    nodes += ["  sink: {type: discard}"]
    names = ["src"] + [f"p{k}" for k in range(stages)] + ["sink"]
    edges = [
        f"  - {{from: {a}, to: {b}, capacity: {capacity}}}" for a, b in zip(names, names[1:], strict=False)
    ]
    return Graph.from_text("nodes:\n" + "\n".join(nodes) + "\nedges:\n" + "\n".join(edges) + "\n")


async def flowgraph_chain(graph: Graph) -> float:
    t0 = time.perf_counter()
    await graph.run()
    return time.perf_counter() - t0


def measure(loop_name: str, items: int, stages: int, capacity: int, repeat: int) -> dict[str, float]:
    graph = chain_graph(items, stages, capacity)
    runner: Any
    if loop_name == "uvloop":
        import uvloop

        runner = uvloop.run
    else:
        runner = asyncio.run
    best_hand, best_fg = float("inf"), float("inf")
    for _ in range(repeat):  # alternate so drift in machine load hits both alike
        best_hand = min(best_hand, runner(hand_written(items, stages, capacity)))
        best_fg = min(best_fg, runner(flowgraph_chain(graph)))
    hops = stages + 1
    return {
        "hand_items_s": items / best_hand,
        "flowgraph_items_s": items / best_fg,
        "ratio": best_hand / best_fg,
        "hand_us_per_hop": best_hand / items / hops * 1e6,
        "flowgraph_us_per_hop": best_fg / items / hops * 1e6,
    }


async def round_trips(stages: int, count: int) -> list[float]:
    """submit one item, await its result, repeat: what the engine adds to a SingleStream query."""
    nodes = ["  in: {type: input}"] + [f"  p{k}: {{type: bench-pass}}" for k in range(stages)]
    names = ["in"] + [f"p{k}" for k in range(stages)] + ["out"]
    text = (
        "nodes:\n"
        + "\n".join([*nodes, "  out: {type: collect}"])
        + "\nedges:\n"
        + "\n".join(f"  - {{from: {a}, to: {b}}}" for a, b in zip(names, names[1:], strict=False))
        + "\n"
    )
    seconds = []
    async with Graph.from_text(text).start() as run:
        results = run.results()
        for k in range(count):
            t0 = time.perf_counter()
            await run.submit(k)
            await anext(results)
            seconds.append(time.perf_counter() - t0)
        await run.close()
    return seconds[count // 10 :]  # the first tenth warms up


def print_round_trips(stages: int, count: int) -> None:
    import statistics

    import uvloop

    print(f"| loop | nodes (input + {stages} + collect) | p50 µs | p90 µs |\n|---|---|---|---|")
    for name, runner in (("asyncio", asyncio.run), ("uvloop", uvloop.run)):
        us = sorted(t * 1e6 for t in runner(round_trips(stages, count)))
        p90 = us[int(len(us) * 0.9)]
        print(f"| {name} | {stages + 2} | {statistics.median(us):.1f} | {p90:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--stages", type=int, default=8)
    parser.add_argument("--capacity", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--round-trip", action="store_true", help="latency of one item at a time")
    args = parser.parse_args()
    if args.round_trip:
        print(f"# {platform.node()} python {platform.python_version()}: engine_overhead.py --round-trip")
        print_round_trips(args.stages, 5000)
        return
    print(
        f"# {platform.node()} python {platform.python_version()} items={args.items} stages={args.stages} "
        f"capacity={args.capacity} repeat={args.repeat} (best of)"
    )
    print("| loop | hand-written items/s | flowgraph items/s | ratio | µs/hop hand | µs/hop flowgraph |")
    print("|---|---|---|---|---|---|")
    loops = ["asyncio"]
    try:
        import uvloop  # noqa: F401

        loops.append("uvloop")
    except ImportError:
        pass
    for loop_name in loops:
        r = measure(loop_name, args.items, args.stages, args.capacity, args.repeat)
        print(
            f"| {loop_name} | {r['hand_items_s']:,.0f} | {r['flowgraph_items_s']:,.0f} | {r['ratio']:.2f} | "
            f"{r['hand_us_per_hop']:.2f} | {r['flowgraph_us_per_hop']:.2f} |"
        )


if __name__ == "__main__":
    main()
