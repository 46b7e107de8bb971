"""What the SingleStream GPU graph adds around its engine, on any machine: one bs-1 query at a time
through input → memory_copy → inference → postprocess → collect (the shape of ``bench/gpu.py latency``'s
last row), with the engine replaced by one that answers at once. What is left is the graph's own cost
per query: hand-offs, batch-of-one bookkeeping, postprocess's ranking.

``--thread-wait-ms X`` makes the engine wait X ms in the node's thread pool instead, as the GPU engine
waits for its stream (X = 0.6 is a bs-1 replay on the H100), and prints where each query's time went,
step by step: the thread hand-offs that SingleStream's latency is made of show up on any machine.

    python bench/singlestream_overhead.py [--count 3000] [--repeat 3] [--thread-wait-ms 0.6]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
from collections import defaultdict
from typing import Any

import numpy as np

from flowgraph import Graph, node_type, run_event_loop
from flowgraph.nodes.inference.node import Inference
from flowgraph.nodes.payloads import Batch, Image

GRAPH = """
nodes:
  samples: {type: input}
  memory_copy: {type: memory_copy}
  inference: {type: bench-instant-inference, params: {backend: onnxruntime, model: unused.onnx, engine_num: 1}}
  postprocess: {type: postprocess}
  results: {type: collect}
edges:
  - {from: samples, to: memory_copy, capacity: 4}
  - {from: memory_copy, to: inference, capacity: 2}
  - {from: inference, to: postprocess, capacity: 8}
  - {from: postprocess, to: results}
"""


STEPS: dict[str, list[float]] = defaultdict(list)
"""perf_counter marks per step, in query order (``--thread-wait-ms`` only)."""


def _mark(step: str) -> None:
    STEPS[step].append(time.perf_counter())


class InstantEngine:
    """Answers every batch at once with zero scores: the GPU's share, taken out. With ``wait_s`` it
    first sleeps that long in the node's offload thread (the GPU engine's completion wait)."""

    name, precision = "instant", "fp32"
    wait_s = 0.0

    def __init__(self, offload: Any = None) -> None:
        self.offload = offload

    def _wait(self) -> None:
        _mark("thread starts")
        time.sleep(self.wait_s)
        _mark("thread's wait ends")

    async def launch(self, batch: Batch) -> Any:
        if self.wait_s:
            _mark("engine starts")
            await self.offload(self._wait)
            _mark("loop resumes")
        return np.zeros((len(batch.sample_ids), 1000), np.float32)

    async def collect(self, handle: Any) -> Any:
        return handle

    def bucket(self, n: int) -> int:
        return n

    def close(self) -> None:
        pass


@node_type("bench-instant-inference")
class InstantInference(Inference):
    @classmethod
    def check_environment(cls, params: Any) -> str | None:
        return None

    async def setup(self) -> None:
        self.engines = [InstantEngine(self.offload)]


def step_table(count: int) -> list[tuple[str, float, float]]:
    """(step, p50 ms, p90 ms) of each mark after the one before it, the first tenth left out."""
    order = ["submitted", *(k for k in STEPS if k not in ("submitted", "answered")), "answered"]
    rows = []
    for before, after in zip(order, order[1:], strict=False):
        gaps = (np.array(STEPS[after][:count]) - np.array(STEPS[before][:count]))[count // 10 :] * 1e3
        rows.append((f"{before} → {after}", float(np.percentile(gaps, 50)), float(np.percentile(gaps, 90))))
    return rows


async def one_query_at_a_time(graph: Graph, image: np.ndarray, count: int, **start: Any) -> list[float]:
    """Seconds from submitting each of ``count`` images to its result, the next submitted only then
    (SingleStream's pattern). Also used by ``bench/gpu.py latency`` for its whole-graph row."""
    async with graph.start(announce=lambda m: None, **start) as run:
        await run.started()
        results = run.results()
        times = []
        for k in range(count):
            t0 = time.perf_counter()
            if InstantEngine.wait_s:
                STEPS["submitted"].append(t0)
            await run.submit(Image(k, 0, image, t0))
            await anext(results)
            times.append(time.perf_counter() - t0)
            if InstantEngine.wait_s:
                _mark("answered")
        await run.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--thread-wait-ms", type=float, default=0.0, help="the engine waits this long in a thread"
    )
    args = parser.parse_args()
    InstantEngine.wait_s = args.thread_wait_ms / 1e3
    print(
        f"# {datetime.date.today()} {platform.node()} python {platform.python_version()}, {os.cpu_count()} cores: "
        f"python bench/singlestream_overhead.py --count {args.count} --repeat {args.repeat}"
        + (f" --thread-wait-ms {args.thread_wait_ms:g}" if args.thread_wait_ms else "")
    )
    print("| run | p50 ms | p90 ms |\n|---|---|---|")
    for r in range(1, args.repeat + 1):
        STEPS.clear()
        image = np.zeros((224, 224, 3), np.uint8)
        times = run_event_loop(one_query_at_a_time(Graph.from_text(GRAPH), image, args.count))
        ms = np.array(times[args.count // 10 :]) * 1e3  # the first tenth warms up
        print(f"| {r} | {np.percentile(ms, 50):.3f} | {np.percentile(ms, 90):.3f} |", flush=True)
        if InstantEngine.wait_s:
            print("\n| step | p50 ms | p90 ms |\n|---|---|---|")
            for step, p50, p90 in step_table(args.count):
                print(f"| {step} | {p50:.3f} | {p90:.3f} |")
            print()


if __name__ == "__main__":
    main()
