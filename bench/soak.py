"""Soak: the CPU pipeline run again and again for minutes with faults injected, under ``on_error: skip``.

Every ``--every`` samples a fault node between init and preprocess does one of three things, in turn:
raises, stalls past its ``timeout`` (``NodeTimeout``), or replaces the JPEG with garbage bytes (which
preprocess then fails to decode). Each run must account for every sample (entered = completed + failed
+ dropped, with exactly the injected faults failed); between runs the process's RSS, threads and
asyncio tasks are sampled, and must not grow.

    python bench/soak.py [--minutes 10] [--every 25] [--count 200]             # a run per pass
    python bench/soak.py --one-run [--minutes 10] [--every 25] [--count 200]   # one long run

Prints one row per sample time and a verdict; exits 1 if any run's accounting is off or if RSS,
threads or tasks grow from the first tenth of the soak to the last.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from flowgraph import Graph, Node, Port, node_type, run_event_loop
from flowgraph.nodes.payloads import Sample

GRAPH = Path(__file__).resolve().parent.parent / "graphs" / "resnet50_offline.yaml"


class FaultParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    every: int = 25


@node_type("bench-fault")
class Fault(Node):
    """Every ``every``-th sample: raise, stall past the node's timeout, or garble the JPEG, in turn."""

    Params = FaultParams
    params: FaultParams
    inputs: ClassVar = {"in": Port(Sample)}
    outputs: ClassVar = {"out": Port(Sample)}

    def __init__(self, params: FaultParams, context: Any) -> None:
        super().__init__(params, context)
        self.seen = 0

    async def process(self, sample: Sample) -> Sample:
        self.seen += 1
        if self.seen % self.params.every:
            return sample
        kind = (self.seen // self.params.every) % 3
        if kind == 0:
            raise RuntimeError(f"injected fault on sample {sample.sample_id}")
        if kind == 1:
            await asyncio.sleep(5)  # past the node's timeout: NodeTimeout
            return sample
        sample.data = b"garbage, not a JPEG"  # preprocess fails it
        sample.path = None
        return sample


def soak_graph(count: int, every: int, fed: bool = False) -> Graph:
    """The CPU pipeline with the fault node before preprocess; ``fed``: its init is an ``input`` node
    the soak feeds (one long run) instead of the dataset (a run per pass over it)."""
    text = GRAPH.read_text()
    if fed:
        text = text.replace(
            '    type: imagenet\n    params: {path: "${dataset.path}", synthetic_count: "${dataset.synthetic_count}", '
            'count: "${count}"}\n',
            "    type: input\n",
            1,
        )
    text = text.replace(
        "  preprocess:\n",
        f"  fault:\n    type: bench-fault\n    params: {{every: {every}}}\n    timeout: 0.2\n"
        "    on_error: skip\n  preprocess:\n",
        1,
    )
    text = text.replace(
        "    params: {variant: mlperf, layout: NCHW}\n",
        "    params: {variant: mlperf, layout: NCHW}\n    on_error: skip\n",
        1,
    )
    text = text.replace("{from: init, to: preprocess", "{from: init, to: fault", 1)
    text = text.replace("edges:\n", "edges:\n  - {from: fault, to: preprocess, capacity: 64}\n", 1)
    overrides: dict[str, Any] = {"model.path": "builtin:resnet50-pruned"}
    if not fed:
        overrides.update({"count": count, "init.read_bytes": True, "dataset.synthetic_count": count})
    return Graph.from_text(text, overrides, file=str(GRAPH))


async def soak_one_run(minutes: float, every: int, count: int, out: Path | None) -> bool:
    """One run fed for ``minutes`` (the dataset's JPEGs over and over): growth inside a run, where a
    long benchmark lives, without a new engine per pass."""
    from flowgraph.nodes.dataset import read_val_map, synthetic_dataset_dir, write_synthetic_dataset

    cache = Path.home() / ".cache" / "flowgraph"
    folder = synthetic_dataset_dir(cache, count, 0)
    if not (folder / "val_map.txt").exists():
        write_synthetic_dataset(folder, count, 0)
    entries = [e for e in read_val_map(folder / "val_map.txt", folder) if isinstance(e, tuple)]
    jpegs = [(path.read_bytes(), label) for _, path, label in entries]
    graph = soak_graph(count, every, fed=True)
    end = time.monotonic() + minutes * 60
    fed = 0

    async def samples() -> Any:
        nonlocal fed
        while time.monotonic() < end:
            data, label = jpegs[fed % len(jpegs)]
            fed += 1
            yield Sample(fed, None, label, data, time.perf_counter())

    rows: list[tuple[float, float, int, int, int, int, int]] = []
    print("| minute | samples fed | completed | RSS MB | threads | tasks |\n|---|---|---|---|---|---|")
    t0 = time.monotonic()
    async with graph.start(announce=lambda m: None) as run:
        run.feed(samples())
        sinks = [m for m in run.runtime.metrics if m.name == "postprocess"]
        while not run.task.done():
            await asyncio.wait({run.task}, timeout=10)
            done = sum(m.samples_in for m in sinks)
            row = sample_row(t0, fed, done, 0)
            rows.append(row)
            if len(rows) % 6 == 1:
                print(f"| {row[0]:.1f} | {fed} | {done} | {row[1]:.0f} | {row[2]} | {row[3]} |", flush=True)
    s = run.report.samples if run.report else {}
    expected_failures = fed // every
    ok = accounted(s, fed, expected_failures)
    return verdict(
        f"one run, {fed} samples fed: {s} ({expected_failures} faults injected)", rows, ok, True, out
    )


def accounted(samples: dict[str, int], entered: int, failures: int) -> bool:
    """Every sample accounted for: all that entered, exactly the injected faults failed, none dropped."""
    s = samples
    return (
        s.get("entered") == entered
        and s["entered"] == s["completed"] + s["failed"] + s["dropped"]
        and s["failed"] == failures
        and s["dropped"] == 0
    )


def sample_row(t0: float, a: int, b: int, c: int) -> tuple[float, float, int, int, int, int, int]:
    """(minutes since ``t0``, RSS MB, threads, asyncio tasks, and the soak's three counts a, b, c)."""
    return (
        (time.monotonic() - t0) / 60,
        rss_mb(),
        threading.active_count(),
        len(asyncio.all_tasks()),
        a,
        b,
        c,
    )


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def soak(minutes: float, every: int, count: int, out: Path | None = None) -> bool:
    graph = soak_graph(count, every)
    injected_per_run = count // every
    end = time.monotonic() + minutes * 60
    rows: list[tuple[float, float, int, int, int, int, int]] = []
    ok = True
    t0 = time.monotonic()
    runs = entered = failed = 0
    print(
        "| minute | runs | samples | failed (injected) | RSS MB | threads | tasks |\n|---|---|---|---|---|---|---|"
    )
    while time.monotonic() < end:
        report = await graph.run(announce=lambda m: None)
        runs += 1
        s = report.samples
        entered += s["entered"]
        failed += s["failed"]
        if not accounted(s, count, injected_per_run):
            ok = False
            print(f"run {runs}: accounting off: {s}, expected {injected_per_run} failures")
        row = sample_row(t0, runs, entered, failed)
        rows.append(row)
        if runs == 1 or runs % 10 == 0:
            print(
                f"| {row[0]:.1f} | {runs} | {entered} | {failed} | {row[1]:.0f} | {row[2]} | {row[3]} |",
                flush=True,
            )
    headline = f"{runs} runs, {entered} samples, {failed} failed ({injected_per_run} injected per run)"
    return verdict(headline, rows, ok, False, out)


def verdict(headline: str, rows: list[Any], ok: bool, within_run: bool, out: Path | None) -> bool:
    """Print the soak's last line (and write every row to ``out``); True when nothing grew and every
    sample was accounted for."""
    trend, grew = memory_trend(rows, within_run)
    print(f"\n{headline}; {trend}; accounting {'ok' if ok else 'OFF'}")
    if out is not None:
        out.write_text(json.dumps({"rows": rows, "ok": ok, "grew": grew}, indent=1))
    return ok and not grew


def memory_trend(
    rows: list[tuple[float, float, int, int, int, int, int]], within_run: bool
) -> tuple[str, bool]:
    """(what RSS, threads and tasks did, whether any grew). RSS moves by tens of MB between samples
    (ONNX Runtime's arena, the allocator): compare the medians of the first and last fifth (the first
    sample left out: setup) and fit a line. Threads and tasks may not grow at all between runs; inside
    a run they are the run's own, compared likewise."""
    later = rows[1:] or rows
    fifth = max(1, len(later) // 5)
    first, last = later[:fifth], later[-fifth:]
    rss_first, rss_last = statistics.median(r[1] for r in first), statistics.median(r[1] for r in last)
    slope = _slope([r[0] for r in later], [r[1] for r in later])
    threads = max(r[2] for r in first), max(r[2] for r in last)
    tasks = max(r[3] for r in first), max(r[3] for r in last)
    grew = rss_last > rss_first * 1.10 + 20 or threads[1] > threads[0] or tasks[1] > tasks[0]
    where = "inside the run" if within_run else "between runs"
    return (
        f"RSS median {rss_first:.0f} → {rss_last:.0f} MB (first and last fifth; fitted {slope:+.1f} MB/min, "
        f"min {min(r[1] for r in later):.0f}, max {max(r[1] for r in later):.0f}), threads {threads[0]} → "
        f"{threads[1]}, tasks {tasks[0]} → {tasks[1]} {where}: {'GROWTH' if grew else 'no growth'}",
        grew,
    )


def _slope(xs: list[float], ys: list[float]) -> float:
    if len(xs) < 2:
        return 0.0
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--every", type=int, default=25)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--out", type=Path, help="write every run's row as JSON here")
    parser.add_argument(
        "--one-run",
        action="store_true",
        help="one long run fed the dataset over and over, not a run per pass",
    )
    args = parser.parse_args()
    print(
        f"# {time.strftime('%Y-%m-%d')} {platform.node()} {os.cpu_count()} cores, Python "
        f"{platform.python_version()}: python bench/soak.py --minutes {args.minutes:g} --every {args.every} "
        f"--count {args.count}"
    )
    soaking = soak_one_run if args.one_run else soak
    raise SystemExit(0 if run_event_loop(soaking(args.minutes, args.every, args.count, args.out)) else 1)


if __name__ == "__main__":
    main()
