"""Where a Server batch's time goes: LoadGen Server on a GPU graph, every batch's timeline stage by stage.

    python bench/server_timeline.py [--graph graphs/resnet50_server_gpu.yaml] [--qps 4000 8000]
        [--seconds 6] [--set KEY=VALUE ...] [--simulate]

For each batch it records when each node sent it on (``Outbox.send``, keyed by the batch's first sample)
and prints, per target QPS, the p50 / p99 of each step: the first image's wait until batch_merge sealed
the batch, the copy, the schedule, the engine, the answer; the engine's idle gap between batches; and
how late the event loop wakes (a 1 ms sleep's overshoot), which is what every hand-off waits on.

``--simulate`` replaces the GPU by a model of it (no CUDA needed): the inference node's engines wait, in
their threads, the time a bare CUDA-graph replay of the batch's bucket took on the H100 (bench/RESULTS.md
section 1, interpolated), one batch at a time on one shared "GPU". The batching dynamics (how big
batches get, how long images wait) can then be studied on a laptop; the GPU's own overheads are not in it.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import faulthandler
import os
import platform
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest.mock import patch

import numpy as np

from flowgraph import node_type, run_event_loop
from flowgraph.load import parse_override
from flowgraph.nodes.inference.node import Inference, InferenceParams
from flowgraph.nodes.inference.torch_backend import _bucket, graph_sizes
from flowgraph.nodes.loadgen import LoadgenOptions, _Bridge, run_loadgen
from flowgraph.nodes.payloads import Batch
from flowgraph.runtime import Outbox

H100_REPLAY_MS = {1: 0.645, 8: 0.984, 64: 5.314, 128: 10.585, 256: 20.852}
"""Bare replay of the fp16 eager CUDA graph per batch size on the H100 (RESULTS.md section 1, run 2)."""


def replay_ms(size: int) -> float:
    """The H100 replay time for a bucket of ``size``, interpolated linearly between the measured sizes."""
    known = sorted(H100_REPLAY_MS)
    for low, high in zip(known, known[1:], strict=False):
        if size <= high:
            share = (size - low) / (high - low)
            return H100_REPLAY_MS[low] + (H100_REPLAY_MS[high] - H100_REPLAY_MS[low]) * share
    return H100_REPLAY_MS[known[-1]] * size / known[-1]


class SimulatedGpuEngine:
    """A torch engine's launch/collect, with the GPU replaced by its H100 replay times: ``launch`` stacks
    the batch in a thread (as the real launch does) and books the shared GPU; ``collect`` sleeps in a
    thread until the booked end (as the real completion wait blocks in one)."""

    def __init__(self, params: InferenceParams, index: int, offload: Any, gpu: list[float]) -> None:
        self.name, self.precision = f"simulated[{index}]", params.precision
        self.sizes = graph_sizes(params.batch_sizes, params.batch_step)
        self._offload, self._gpu = offload, gpu

    def bucket(self, n: int) -> int:
        return _bucket(n, self.sizes)

    async def launch(self, batch: Batch) -> tuple[int, float]:
        await self._offload(batch.host_array)
        now = time.perf_counter()
        self._gpu[0] = max(now, self._gpu[0]) + replay_ms(self.bucket(len(batch.sample_ids))) / 1e3
        return len(batch.sample_ids), self._gpu[0]

    async def collect(self, handle: tuple[int, float]) -> Any:
        n, end = handle
        await self._offload(time.sleep, max(0.0, end - time.perf_counter()))
        return np.zeros((n, 1000), np.float32)

    async def infer(self, batch: Batch) -> Any:
        return await self.collect(await self.launch(batch))

    def close(self) -> None:
        pass


@node_type("bench-simulated-gpu")
class SimulatedGpuInference(Inference):
    """The inference node with simulated engines sharing one simulated GPU."""

    @classmethod
    def check_environment(cls, params: Any) -> str | None:
        return None  # no CUDA needed

    async def setup(self) -> None:
        gpu = [0.0]
        self.engines = [
            SimulatedGpuEngine(self.params, k, self.offload, gpu) for k in range(self.params.engine_num)
        ]


class Timeline:
    """Per batch (its first sample id), when each node sent it on; and the loop's wake-up lateness."""

    def __init__(self) -> None:
        self.sent: dict[int, dict[str, float]] = defaultdict(dict)
        self.first_arrival: dict[int, float] = {}
        self.sizes: dict[int, int] = {}
        self.lateness: list[float] = []
        self.issued: dict[int, float] = {}  # query id: when LoadGen's thread handed it to us
        self.entered: dict[int, float] = {}  # query id: when the pump submitted it (its t_start)
        self.answered: dict[int, float] = {}  # query id: when QuerySamplesComplete was called for it

    @contextmanager
    def installed(self) -> Iterator[None]:
        """Time ``Outbox.send`` and the LoadGen bridge's calls while inside; the originals come back after."""
        timeline = self
        send_on, bridge_issue, bridge_item, bridge_complete = (
            Outbox.send,
            _Bridge.issue_queries,
            _Bridge._item,
            _Bridge.complete,
        )

        def issue_queries(self: _Bridge, samples: list[Any]) -> None:
            now = time.perf_counter()
            for q in samples:
                timeline.issued[q.id] = now
            bridge_issue(self, samples)

        def item(self: _Bridge, sample_id: int, index: int) -> Any:
            image = bridge_item(self, sample_id, index)
            timeline.entered[sample_id] = image.t_start
            return image

        def complete(self: _Bridge, answers: list[Any]) -> None:
            now = time.perf_counter()
            for a in answers:
                for qid in getattr(a, "sample_ids", None) or [a.sample_id]:
                    timeline.answered[qid] = now
            bridge_complete(self, answers)

        async def send(
            self: Outbox, item: Any, port: str | None = None, partition: int | None = None
        ) -> None:
            ids = getattr(item, "sample_ids", None)
            if ids:
                key = ids[0]
                timeline.sent[key][self._m.name] = time.perf_counter()
                starts = getattr(item, "t_starts", None)
                if starts:
                    timeline.first_arrival[key] = min(starts)
                timeline.sizes[key] = len(ids)
            await send_on(self, item, port, partition)

        with (
            patch.object(Outbox, "send", send),
            patch.object(_Bridge, "issue_queries", issue_queries),
            patch.object(_Bridge, "_item", item),
            patch.object(_Bridge, "complete", complete),
        ):
            yield

    async def watch_loop(self, period_s: float = 0.001, stall_s: float = 0.0, stall_file: Any = None) -> None:
        """Sample the loop's lateness; with ``stall_s``, every thread's stack is written to ``stall_file``
        whenever the loop has not come back for that long (faulthandler's watchdog needs no GIL, so it
        also catches a stall in which some thread holds the GIL)."""
        try:
            while True:
                if stall_s and self.issued:  # from LoadGen's first query on (not setup's imports)
                    faulthandler.dump_traceback_later(stall_s, file=stall_file)
                t0 = time.perf_counter()
                await asyncio.sleep(period_s)
                self.lateness.append(time.perf_counter() - t0 - period_s)
        finally:
            if stall_s:
                faulthandler.cancel_dump_traceback_later()

    def table(self, stages: list[str]) -> list[tuple[str, float, float, float]]:
        """(step, p50 ms, p99 ms, max ms) for arrival → first stage and each stage → the next."""
        rows: list[tuple[str, list[float]]] = [("first image → " + stages[0], [])]
        rows += [(f"{a} → {b}", []) for a, b in zip(stages, stages[1:], strict=False)]
        for key, sent in self.sent.items():
            if key < 0 or not all(s in sent for s in stages) or key not in self.first_arrival:
                continue
            rows[0][1].append(sent[stages[0]] - self.first_arrival[key])
            for k, (a, b) in enumerate(zip(stages, stages[1:], strict=False), start=1):
                rows[k][1].append(sent[b] - sent[a])
        engine = [k for k in self.sent if "inference" in self.sent[k]]
        engine.sort(key=lambda k: self.sent[k]["inference"])
        gaps = [
            self.sent[b]["inference"] - self.sent[a]["inference"]
            for a, b in zip(engine, engine[1:], strict=False)
        ]
        rows.append(("engine: one batch's end → the next's", gaps))
        entered = [q for q in self.entered if q in self.issued and q in self.answered]
        rows.append(
            ("query: LoadGen's call → in the graph", [self.entered[q] - self.issued[q] for q in entered])
        )
        rows.append(("query: in the graph → answered", [self.answered[q] - self.entered[q] for q in entered]))
        rows.append(
            ("query: LoadGen's call → answered", [self.answered[q] - self.issued[q] for q in entered])
        )
        rows.append(("event loop: a 1 ms sleep's lateness", self.lateness))
        return [
            (name, float(np.percentile(v, 50)) * 1e3, float(np.percentile(v, 99)) * 1e3, max(v) * 1e3)
            for name, v in rows
            if v
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graph", type=Path, default=Path("graphs/resnet50_server_gpu.yaml"))
    parser.add_argument("--qps", type=float, nargs="+", default=[4000, 8000])
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--latency-ms", type=float, default=15)
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--simulate", action="store_true", help="model the GPU: runs without CUDA")
    parser.add_argument(
        "--switch-interval-ms", type=float, default=None, help="sys.setswitchinterval for the run (default 5)"
    )
    parser.add_argument(
        "--stall-ms",
        type=float,
        default=0,
        help="write every thread's stack to /tmp/server-timeline/stalls-QPS.txt when the loop stalls this long",
    )
    args = parser.parse_args()
    if args.switch_interval_ms is not None:
        sys.setswitchinterval(args.switch_interval_ms / 1e3)
    overrides: dict[str, Any] = dict(parse_override(text) for text in args.set)
    if args.simulate:
        overrides = {
            "inference.type": "bench-simulated-gpu",
            "memory_copy.device": "cpu",
            "preprocess_workers": 2,
            "dataset.synthetic_count": 256,
            **overrides,
        }
    print(
        f"# {datetime.date.today()} {platform.node()} python {platform.python_version()}, {os.cpu_count()} cores: "
        f"python bench/server_timeline.py --graph {args.graph} --qps {' '.join(f'{q:g}' for q in args.qps)} "
        f"--seconds {args.seconds:g} {' '.join('--set ' + s for s in args.set)}"
        + (" --simulate" if args.simulate else "")
        + (f" --stall-ms {args.stall_ms:g}" if args.stall_ms else "")
        + (
            f" --switch-interval-ms {args.switch_interval_ms:g}"
            if args.switch_interval_ms is not None
            else ""
        )
    )
    for qps in args.qps:
        timeline = Timeline()
        options = LoadgenOptions(
            scenario="Server",
            target_qps=qps,
            target_latency_ms=args.latency_ms,
            time_s=args.seconds,
            output=Path(f"/tmp/server-timeline/{qps:g}"),
        )

        stall_path = Path(f"/tmp/server-timeline/stalls-{qps:g}.txt")
        stall_path.parent.mkdir(parents=True, exist_ok=True)
        stall_file = stall_path.open("w") if args.stall_ms else None

        async def measured(
            timeline: Timeline = timeline, options: LoadgenOptions = options, stall_file: Any = stall_file
        ) -> Any:
            watcher = asyncio.create_task(timeline.watch_loop(0.001, args.stall_ms / 1e3, stall_file))
            try:
                return await run_loadgen(args.graph, overrides, options, announce=lambda m: None)
            finally:
                watcher.cancel()

        try:
            with timeline.installed():
                result = run_event_loop(measured())
        finally:
            if stall_file is not None:
                stall_file.close()
                dumps = stall_path.read_text().count("Timeout (")
                print(f"{dumps} loop stalls of {args.stall_ms:g} ms or more: stacks in {stall_path}")
        stages = [
            s
            for s in ("batch_merge", "memory_copy", "gpu_schedule", "inference", "postprocess")
            if any(s in sent for sent in timeline.sent.values())
        ]
        sizes = [n for key, n in timeline.sizes.items() if key >= 0]
        print(
            f"\n{qps:g} QPS target: {result.metrics.get('Completed samples per second')} completed, "
            f"p50 {result.latency_ms(50):.2f} ms, p99 {result.latency_ms(99):.2f} ms, VALID {result.valid}, "
            f"mean batch {np.mean(sizes):.1f}\n"
        )
        print("| step | p50 ms | p99 ms | max ms |\n|---|---|---|---|")
        for name, p50, p99, most in timeline.table(stages):
            print(f"| {name} | {p50:.3f} | {p99:.3f} | {most:.1f} |", flush=True)


if __name__ == "__main__":
    main()
