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
import contextlib
import datetime
import faulthandler
import functools
import gc
import json
import os
import platform
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest.mock import patch

import numpy as np

from flowgraph import Outbox, node_type, run_event_loop
from flowgraph.load import parse_override
from flowgraph.loadgen import Bridge, LoadgenOptions, run_loadgen
from flowgraph.nodes.inference.node import Inference
from flowgraph.nodes.inference.torch_backend import TorchParams, bucket_for, graph_sizes
from flowgraph.nodes.payloads import Batch

H100_REPLAY_MS = {1: 0.645, 8: 0.984, 64: 5.314, 128: 10.585, 256: 20.852}
"""Bare replay of the fp16 eager CUDA graph per batch size on the H100 (RESULTS.md section 1, run 2)."""


GPU_SLOWDOWN = [1.0]
"""--simulate's GPU runs this many times slower than the H100: on a 2-core machine, a few thousand QPS
then forms batches as large as the H100's at 15-20k QPS, so per-batch costs weigh per query as they do there."""


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

    def __init__(self, params: TorchParams, index: int, offload: Any, gpu: list[float]) -> None:
        self.name, self.precision = f"simulated[{index}]", params.precision
        self.sizes = graph_sizes(params.batch_sizes, params.batch_step)
        self._offload, self._gpu = offload, gpu

    def bucket(self, n: int) -> int:
        return bucket_for(n, self.sizes)

    async def launch(self, batch: Batch) -> tuple[int, float]:
        now = time.perf_counter()
        seconds = replay_ms(self.bucket(len(batch.sample_ids))) / 1e3 * GPU_SLOWDOWN[0]
        self._gpu[0] = max(now, self._gpu[0]) + seconds
        return len(batch.sample_ids), self._gpu[0]

    async def collect(self, handle: tuple[int, float]) -> Any:
        n, end = handle
        await self._offload(time.sleep, max(0.0, end - time.perf_counter()))
        return np.zeros((n, 1000), np.float32)

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


class DeviceTrace:
    """Per batch, when its host→device copy and its engine work ran on the GPU (CUDA events on the
    copy's and the engine's streams, read after the run), beside the host times of the threads that
    queued them, and every garbage collection: enough to tell a slow GPU from a late host in a stall."""

    def __init__(self) -> None:
        self.copies: list[tuple[int, int, float, float, Any, Any]] = []  # key, n, host t0, t1, ev0, ev1
        self.launches: list[tuple[int, int, float, float, Any, Any]] = []
        self.collections: list[tuple[int, float, float]] = []  # generation, start, end
        self.base: tuple[Any, float] | None = None  # (event, perf_counter when it had run)
        self._gc_start = 0.0

    def _events(self, stream: Any) -> Any:
        import cupy

        if self.base is None:
            base = cupy.cuda.Event()
            base.record(stream)
            base.synchronize()
            self.base = (base, time.perf_counter())
        event = cupy.cuda.Event()
        event.record(stream)
        return event

    def host_time(self, event: Any) -> float:
        """The perf_counter time at which ``event`` ran on the GPU."""
        import cupy

        assert self.base is not None
        base, base_host = self.base
        return base_host + cupy.cuda.get_elapsed_time(base, event) / 1e3

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            self.collections.append((info["generation"], self._gc_start, time.perf_counter()))

    @contextmanager
    def installed(self) -> Iterator[None]:
        from flowgraph.nodes.gpu import HostToDevice
        from flowgraph.nodes.inference.torch_backend import TorchEngine

        trace = self

        def timed(original: Any, records: list[Any], stream: str) -> Any:
            """``original`` (whose last argument is the batch), with host and GPU times around it."""

            def wrapper(self: Any, *args: Any) -> Any:
                batch, t0 = args[-1], time.perf_counter()
                start = trace._events(getattr(self, stream))
                out = original(self, *args)
                end = trace._events(getattr(self, stream))
                records.append(
                    (batch.sample_ids[0], len(batch.sample_ids), t0, time.perf_counter(), start, end)
                )
                return out

            return wrapper

        stage = timed(HostToDevice._stage, self.copies, "stream")
        launch = timed(TorchEngine._launch, self.launches, "cupy_stream")
        gc.callbacks.append(self._on_gc)
        try:
            with patch.object(HostToDevice, "_stage", stage), patch.object(TorchEngine, "_launch", launch):
                yield
        finally:
            gc.callbacks.remove(self._on_gc)

    @functools.cached_property
    def rows(self) -> dict[int, dict[str, float]]:
        """Per batch key: copy/launch host and GPU times (perf_counter seconds); read once, after the run."""
        out: dict[int, dict[str, float]] = defaultdict(dict)
        for name, records in (("copy", self.copies), ("launch", self.launches)):
            for key, n, t0, t1, ev0, ev1 in records:
                row = out[key]
                row["n"] = n
                row[f"{name}_host0"], row[f"{name}_host1"] = t0, t1
                row[f"{name}_gpu0"], row[f"{name}_gpu1"] = self.host_time(ev0), self.host_time(ev1)
        return out


class Timeline:
    """Per batch (its first sample id), when each node sent it on; and the loop's wake-up lateness."""

    def __init__(self) -> None:
        self.sent: dict[int, dict[str, float]] = defaultdict(dict)
        self.first_arrival: dict[int, float] = {}
        self.sizes: dict[int, int] = {}
        self.lateness: list[float] = []
        self.lateness_at: list[float] = []
        self.issued: dict[int, float] = {}  # query id: when LoadGen's thread handed it to us
        self.entered: dict[int, float] = {}  # query id: when the pump submitted it (its t_start)
        self.answered: dict[int, float] = {}  # query id: when QuerySamplesComplete was called for it
        # CPU seconds (the loop's thread, the whole process) at the test's first query and its last answer
        self.cpu_first: tuple[float, float] | None = None
        self.cpu_last: tuple[float, float] | None = None
        self.loop_clock: int | None = None  # the loop thread's CPU clock, readable from any thread

    def loop_cpu(self) -> float:
        """CPU seconds of the loop's thread so far (the bridge's calls run on LoadGen's thread too)."""
        assert self.loop_clock is not None, "watch_loop sets it on the loop"
        return time.clock_gettime(self.loop_clock)

    @contextmanager
    def installed(self) -> Iterator[None]:
        """Time ``Outbox.send`` and the LoadGen bridge's calls while inside; the originals come back after."""
        timeline = self
        send_on, bridge_issue, bridge_item, bridge_complete = (
            Outbox.send,
            Bridge.issue_queries,
            Bridge._item,
            Bridge.complete,
        )

        def issue_queries(self: Bridge, samples: list[Any]) -> None:
            now = time.perf_counter()
            for q in samples:
                timeline.issued[q.id] = now
            bridge_issue(self, samples)

        def item(self: Bridge, sample_id: int, index: int) -> Any:
            if timeline.cpu_first is None and sample_id >= 0:  # on LoadGen's thread or the loop
                timeline.cpu_first = (timeline.loop_cpu(), time.process_time())
            image = bridge_item(self, sample_id, index)
            timeline.entered[sample_id] = image.t_start
            return image

        def complete(self: Bridge, answers: list[Any]) -> None:
            now = time.perf_counter()
            for a in answers:
                for qid in getattr(a, "sample_ids", None) or [a.sample_id]:
                    timeline.answered[qid] = now
            bridge_complete(self, answers)
            timeline.cpu_last = (timeline.loop_cpu(), time.process_time())

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
            patch.object(Bridge, "issue_queries", issue_queries),
            patch.object(Bridge, "_item", item),
            patch.object(Bridge, "complete", complete),
        ):
            yield

    async def watch_loop(self, period_s: float = 0.001, stall_s: float = 0.0, stall_file: Any = None) -> None:
        """Sample the loop's lateness; with ``stall_s``, every thread's stack is written to ``stall_file``
        whenever the loop has not come back for that long (faulthandler's watchdog needs no GIL, so it
        also catches a stall in which some thread holds the GIL)."""
        self.loop_clock = time.pthread_getcpuclockid(threading.get_ident())
        try:
            while True:
                if stall_s and self.issued:  # from LoadGen's first query on (not setup's imports)
                    faulthandler.dump_traceback_later(stall_s, file=stall_file)
                t0 = time.perf_counter()
                await asyncio.sleep(period_s)
                if self.issued:  # the test's lateness, not setup's (sample loading runs on the loop)
                    self.lateness.append(time.perf_counter() - t0 - period_s)
                    self.lateness_at.append(t0)
        finally:
            if stall_s:
                faulthandler.cancel_dump_traceback_later()

    def table(
        self, stages: list[str], extra: list[tuple[str, list[float]]] | None = None
    ) -> list[tuple[str, float, float, float]]:
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
        if self.cpu_first and self.cpu_last and len(entered) > 1:
            # Not percentiles: one figure each, in ms per query (shown in all three columns).
            per_query = [
                (last - first) / len(entered)
                for first, last in zip(self.cpu_first, self.cpu_last, strict=True)
            ]
            rows.append(("CPU per query: the loop's thread (mean)", [per_query[0]]))
            rows.append(("CPU per query: the whole process (mean)", [per_query[1]]))
        rows += extra or []
        return [
            (name, float(np.percentile(v, 50)) * 1e3, float(np.percentile(v, 99)) * 1e3, max(v) * 1e3)
            for name, v in rows
            if v
        ]


def device_table(trace: DeviceTrace) -> list[tuple[str, list[float]]]:
    """Steps inside the copy and the engine, from the trace: host work, GPU work, and the GPU's idle gaps."""
    rows = trace.rows
    launched = sorted((r for r in rows.values() if "launch_gpu0" in r), key=lambda r: r["launch_gpu0"])
    steps: dict[str, list[float]] = defaultdict(list)
    for r in rows.values():
        if "copy_host0" in r:
            steps["copy: stack + queue (host thread)"].append(r["copy_host1"] - r["copy_host0"])
            # its start event ran when recorded (before the stack) if the stream was idle: count from queueing
            steps["copy: on the GPU"].append(max(0.0, r["copy_gpu1"] - max(r["copy_gpu0"], r["copy_host1"])))
        if "launch_host0" in r:
            steps["engine: launch (host thread)"].append(r["launch_host1"] - r["launch_host0"])
    for prev, r in zip(launched, launched[1:], strict=False):
        steps["engine: GPU busy per batch"].append(
            r["launch_gpu1"] - max(r["launch_gpu0"], prev["launch_gpu1"])
        )
        steps["engine: GPU idle before a batch"].append(max(0.0, r["launch_gpu0"] - prev["launch_gpu1"]))
    return list(steps.items())


def episode(timeline: Timeline, trace: DeviceTrace | None, before_s: float = 0.12) -> str:
    """The batches behind the slowest query: every batch sealed in the ``before_s`` before its answer,
    each step's time in ms from the window's start, with the collections and loop stalls in it."""
    done = [q for q in timeline.answered if q in timeline.issued]
    if not done:
        return ""
    worst = max(done, key=lambda q: timeline.answered[q] - timeline.issued[q])
    end = timeline.answered[worst]
    start = end - before_s
    rows = trace.rows if trace is not None else {}
    cols = [
        "n",
        "first",
        "sealed",
        "copy_host0",
        "copy_host1",
        "copy_gpu0",
        "copy_gpu1",
        "launch_host0",
        "launch_host1",
        "launch_gpu0",
        "launch_gpu1",
        "answered",
    ]
    lines = [
        f"slowest query {worst}: {1e3 * (end - timeline.issued[worst]):.1f} ms; batches sealed in the "
        f"{1e3 * before_s:.0f} ms before its answer (ms from {1e3 * before_s:.0f} ms before it):",
        "| key | " + " | ".join(cols) + " |",
        "|" + "---|" * (len(cols) + 1),
    ]
    for key in sorted(timeline.sent, key=lambda k: timeline.sent[k].get("batch_merge", 0.0)):
        sent = timeline.sent[key]
        if key < 0 or not start <= sent.get("batch_merge", 0.0) <= end:
            continue
        values = {
            **rows.get(key, {}),
            "first": timeline.first_arrival.get(key, 0.0),
            "sealed": sent.get("batch_merge", 0.0),
            "answered": sent.get("inference", 0.0),
        }
        cells = [f"{values.get('n', timeline.sizes.get(key, 0)):.0f}"] + [
            f"{1e3 * (values[c] - start):.2f}" if c in values else "" for c in cols[1:]
        ]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    if trace is not None:
        for generation, t0, t1 in trace.collections:
            if start <= t0 <= end:
                lines.append(
                    f"gc gen {generation} at {1e3 * (t0 - start):.2f} ms took {1e3 * (t1 - t0):.2f} ms"
                )
    for t0, late in zip(timeline.lateness_at, timeline.lateness, strict=False):
        if start <= t0 <= end and late > 0.002:
            lines.append(f"loop late {1e3 * late:.2f} ms at {1e3 * (t0 - start):.2f} ms")
    return "\n".join(lines)


def numpy_stack(parts: list[Any], out: Any = None) -> Any:
    """The stacking before ``stack_parts``: np.stack, which releases the GIL once per part."""
    return np.stack(parts, out=out)


def write_trace(path: Path, timeline: Timeline, trace: DeviceTrace | None) -> None:
    """Everything recorded, as JSON (perf_counter seconds), for a look after the device is gone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "sent": timeline.sent,
        "first_arrival": timeline.first_arrival,
        "sizes": timeline.sizes,
        "issued": timeline.issued,
        "entered": timeline.entered,
        "answered": timeline.answered,
        "lateness": list(zip(timeline.lateness_at, timeline.lateness, strict=False)),
        "device": trace.rows if trace is not None else {},
        "collections": trace.collections if trace is not None else [],
    }
    path.write_text(json.dumps(data))


def cpu_steal_s() -> float | None:
    """Seconds of CPU (all cores together) the hypervisor gave to others so far: /proc/stat's steal
    column. A run's share of it says whether a stall was the VM's, not the process's."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graph", type=Path, default=Path("graphs/resnet50_server_gpu.yaml"))
    parser.add_argument("--qps", type=float, nargs="+", default=[4000, 8000])
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--latency-ms", type=float, default=15)
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--simulate", action="store_true", help="model the GPU: runs without CUDA")
    parser.add_argument(
        "--gpu-slowdown",
        type=float,
        default=1.0,
        help="--simulate: the modelled GPU is this many times slower",
    )
    parser.add_argument(
        "--switch-interval-ms", type=float, default=None, help="sys.setswitchinterval for the run (default 5)"
    )
    parser.add_argument(
        "--stall-ms",
        type=float,
        default=0,
        help="write every thread's stack to /tmp/server-timeline/stalls-QPS.txt when the loop stalls this long",
    )
    parser.add_argument(
        "--stack",
        choices=("default", "numpy"),
        default="default",
        help="numpy: batches stacked by np.stack (one GIL release per image), as before stack_parts",
    )
    parser.add_argument(
        "--gc",
        choices=("freeze", "default"),
        default="freeze",
        help="default: leave the collector as it is during the test (LoadgenOptions.freeze_gc off)",
    )
    parser.add_argument(
        "--no-coalesce",
        action="store_true",
        help="LoadGen calls issue_queries once per query even when it is behind (LoadgenOptions.coalesce_queries off)",
    )
    parser.add_argument(
        "--trace",
        type=Path,
        default=None,
        help="time each batch's copy and engine work on the GPU (CUDA events) and every GC; print the "
        "slowest query's batches and write the whole trace to DIR/trace-QPS.json",
    )
    args = parser.parse_args()
    GPU_SLOWDOWN[0] = args.gpu_slowdown
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
        + (f" --gpu-slowdown {args.gpu_slowdown:g}" if args.gpu_slowdown != 1 else "")
        + (f" --stall-ms {args.stall_ms:g}" if args.stall_ms else "")
        + (f" --trace {args.trace}" if args.trace else "")
        + (f" --stack {args.stack}" if args.stack != "default" else "")
        + (f" --gc {args.gc}" if args.gc != "freeze" else "")
        + (" --no-coalesce" if args.no_coalesce else "")
        + (
            f" --switch-interval-ms {args.switch_interval_ms:g}"
            if args.switch_interval_ms is not None
            else ""
        )
    )
    for qps in args.qps:
        timeline = Timeline()
        trace = DeviceTrace() if args.trace and not args.simulate else None
        options = LoadgenOptions(
            scenario="Server",
            target_qps=qps,
            target_latency_ms=args.latency_ms,
            time_s=args.seconds,
            output=Path(f"/tmp/server-timeline/{qps:g}"),
            freeze_gc=args.gc == "freeze",
            coalesce_queries=not args.no_coalesce,
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

        stacking = (
            patch.object(sys.modules[Batch.__module__], "stack_parts", numpy_stack)
            if args.stack == "numpy"
            else contextlib.nullcontext()
        )
        steal_before = cpu_steal_s()
        try:
            with (
                timeline.installed(),
                trace.installed() if trace is not None else contextlib.nullcontext(),
                stacking,
            ):
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
        steal_after = cpu_steal_s()
        if steal_before is not None and steal_after is not None:
            print(
                f"CPU steal during this run (setup included), all cores: {steal_after - steal_before:.2f} s\n"
            )
        print("| step | p50 ms | p99 ms | max ms |\n|---|---|---|---|")
        extra = device_table(trace) if trace is not None else []
        for name, p50, p99, most in timeline.table(stages, extra):
            print(f"| {name} | {p50:.3f} | {p99:.3f} | {most:.1f} |", flush=True)
        if args.trace:
            print("\n" + episode(timeline, trace), flush=True)
            write_trace(args.trace / f"trace-{qps:g}.json", timeline, trace)


if __name__ == "__main__":
    main()
