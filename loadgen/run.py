"""One LoadGen test of a graph: cut it at the QSL, start the SUT half, hand both to LoadGen, read back.

Every query is answered exactly once; if the graph fails, the rest are answered empty at once so
LoadGen can finish, and the failure is raised (and written beside LoadGen's logs).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from flowgraph import (
    FlowgraphError,
    Graph,
    GraphFileError,
    GraphStopped,
    Issue,
    Run,
    load_graph,
    validate,
)
from flowgraph.errors import first_failure
from flowgraph.nodes.payloads import Image

from .accuracy import accuracy_line, top1_from_mlperf_log, write_sidecar
from .bridge import BRIDGE_KEY, Bridge
from .options import LoadgenOptions, LoadgenResult, import_loadgen, unwritable_folder
from .qsl import SampleLibrary
from .settings import build_settings, read_summary
from .split import split_for_loadgen

__all__ = ["LoadgenControl", "default_log_dir", "results_root", "run_loadgen"]


class LoadgenControl:
    """Stops a running test from outside (the CLI's Ctrl-C and SIGTERM).

    LoadGen has no call that ends a test early: it issues its whole schedule. So a stop answers every
    outstanding and later query at once (empty) and drains the graph; LoadGen then runs through the rest
    of its schedule without waiting for us, and writes complete logs. A Server or SingleStream test with
    a long ``min_duration`` still takes that long; a second interrupt ends the process (the CLI)."""

    def __init__(self) -> None:
        self._bridge: Bridge | None = None
        self._run: Run | None = None
        self._shards: Any = None
        self.stopped = False
        self.attached = asyncio.Event()
        """Set once the test's graph (``runtime``) or its shards run: a watcher starts then."""
        self._view: Any = None
        self.view_every_s = 1.0
        """How often a sharded test's ``ShardsView`` asks the shards for their counters."""

    def attach(self, bridge: Bridge, run: Run) -> None:
        self._bridge, self._run = bridge, run
        self.attached.set()

    @property
    def runtime(self) -> Any:
        """What the watchers read: the running graph LoadGen's queries go through, or for a sharded
        test the ``ShardsView`` over its shards (None before either starts)."""
        return self._view if self._run is None else self._run.runtime

    def attach_shards(self, bridge: Any, view: Any = None) -> None:
        """A sharded test: a stop answers LoadGen at once; the shards end with the pool."""
        self._shards, self._view = bridge, view
        self.attached.set()

    @property
    def answered(self) -> int | None:
        """Queries answered so far, or None before the test has started."""
        bridge = self._shards or self._bridge
        return None if bridge is None else bridge.answered

    def stop(self, drain: bool = True) -> None:
        """First: answer LoadGen at once from now on and drain the graph; ``drain=False``: cancel it."""
        self.stopped = True
        if self._shards is not None:
            self._shards.stop()
            return
        if self._bridge is None or self._run is None:
            return
        if self._bridge.failure is None:
            self._bridge.fail(GraphStopped(self._run.runtime.in_flight()))
        self._run.stop(drain=drain)

    def still_running(self) -> str:
        if self._run is None:
            return "the harness, before the graph started"
        return f"{self._run.runtime.still_running()}; LoadGen's test thread runs its schedule to the end"


async def run_loadgen(
    graph_file: Path,
    overrides: dict[str, Any],
    options: LoadgenOptions,
    announce: Callable[[str], None] = print,
    cache_dir: Path | None = None,
    control: LoadgenControl | None = None,
) -> LoadgenResult:
    """Run one LoadGen test of ``graph_file`` and return its result; raises ``NodeFailure`` if a node failed."""
    lg = import_loadgen()
    loaded = load_graph(graph_file, overrides, options.scenario)
    # The whole graph, as the scenario runs it, is checked once: cut in two, the SUT's half starts at an
    # input that takes anything, so a type mismatch across the cut (a bypass that sends an Image where a
    # Batch is wanted) would otherwise surface only when the first query fails. The halves reuse its
    # checked nodes: only their structure and the harness's own nodes are checked again.
    whole = validate(loaded)
    split = split_for_loadgen(loaded)
    front = Graph(validate(split.front, known=whole.nodes))
    back = Graph(validate(split.back, known=whole.nodes))
    config = loaded.spec.params.get("loadgen") or {}
    settings, note = build_settings(lg, options, str(config.get("model", "resnet50")))
    log_dir = options.output or default_log_dir(
        results_root(loaded, graph_file, options.scenario), options.mode
    )
    problem = unwritable_folder(log_dir)
    if problem:
        raise GraphFileError([Issue("--output", None, None, problem)])
    answering = whole.nodes.get(str(config.get("complete_after")))
    made = {
        "command": ["flowgraph", *sys.argv[1:]] if Path(sys.argv[0]).name == "flowgraph" else None,
        "graph": str(graph_file),
        "overrides": {key: str(value) for key, value in overrides.items()},
        "scenario": options.scenario,
        "mode": options.mode,
        "mlperf_conf": str(options.mlperf_conf) if options.mlperf_conf else None,
        "user_conf": str(options.user_conf) if options.user_conf else None,
        "audit_config": str(options.audit_config) if options.audit_config else None,
    }
    label_offset = int(getattr(answering.params, "label_offset", 0)) if answering else 0
    write_sidecar(log_dir, label_offset, run=made)
    start: dict[str, Any] = {"announce": announce}
    if cache_dir is not None:
        start["cache_dir"] = cache_dir

    if loaded.spec.shards is not None:
        from .sharded import test_sharded

        report, extra, val_map = await test_sharded(
            lg,
            graph_file,
            overrides,
            options,
            loaded,
            split,
            back,
            settings,
            log_dir,
            announce,
            cache_dir,
            control,
        )
    else:
        report, extra, val_map = await _test_in_process(
            lg, graph_file, front, back, split, config, options, settings, log_dir, start, announce, control
        )
    valid, metrics, reasons = read_summary(log_dir)
    result = LoadgenResult(
        options.scenario,
        options.mode,
        valid,
        metrics,
        reasons,
        log_dir,
        report,
        settings_note=note,
        extra=extra,
        val_map=val_map,
    )
    if options.mode == "accuracy" and val_map is not None:
        # the sidecar says what was applied: the offset is not applied a second time
        result.accuracy = top1_from_mlperf_log(log_dir / "mlperf_log_accuracy.json", val_map)
        # what MLPerf's accuracy script prints, where the submission layout keeps it
        (log_dir / "accuracy.txt").write_text(accuracy_line(result.accuracy) + "\n")
    return result


async def _test_in_process(
    lg: Any,
    graph_file: Path,
    front: Graph,
    back: Graph,
    split: Any,
    config: dict[str, Any],
    options: LoadgenOptions,
    settings: Any,
    log_dir: Path,
    start: dict[str, Any],
    announce: Callable[[str], None],
    control: LoadgenControl | None,
) -> tuple[Any, dict[str, Any], Path | None]:
    """The test with the QSL and the SUT in this process: (the SUT's report, extra figures, val_map)."""
    library = SampleLibrary(
        front, split.source, start, on_device=bool(config.get("start_from_device", False))
    )
    await library.open(str(graph_file))
    first = back.nodes[split.first_sut_node]
    bridge = Bridge(lg, asyncio.get_running_loop(), library, flushable=first.cls.kind == "batch_merge")
    total = len(library.labels)
    performance_count = min(total, options.performance_sample_count or 1024)
    sut = lg.ConstructSUT(bridge.issue_queries, bridge.flush_queries)
    qsl = lg.ConstructQSL(total, performance_count, bridge.load_samples, bridge.unload_samples)
    log_settings, audit = log_settings_for(lg, log_dir, options)
    run = back.start(**start)
    run.runtime.shared[BRIDGE_KEY] = bridge
    if control is not None:
        control.attach(bridge, run)
        if control.stopped:  # interrupted while setting up
            control.stop()
    extra: dict[str, Any] = {}
    error: BaseException | None = None
    try:
        async with run, asyncio.TaskGroup() as helpers:
            # LoadGen's clock must not run through our setup (CUDA-graph capture: seconds).
            await run.started()
            feed = run.input()
            pump = helpers.create_task(_pump(bridge, feed), name="loadgen:pump")
            watcher = helpers.create_task(_watch(run, bridge), name="loadgen:watch")
            try:
                size, tune = sut_batching(back, split.first_sut_node, options)

                async def tune_wait(wait_us: float) -> None:
                    run.tune(split.first_sut_node, max_wait_us=wait_us)

                await warm_up_and_tune(
                    lambda rounds: _warm_up(run, bridge, size, rounds),
                    tune_wait if tune else None,
                    size,
                    options,
                    settings,
                    announce,
                    extra,
                )
                await timed_test(lg, (sut, qsl, settings, log_settings, audit), options, extra)
            finally:
                await stop_helpers(bridge, pump, watcher)
            if bridge.failure is not None:
                raise bridge.failure
    except BaseException as exc:
        error = first_failure(exc)
        if isinstance(error, FlowgraphError) and error.report is None:
            error.report = run.report  # the SUT's counts and failures, written by --report even now
        (log_dir / "flowgraph_error.txt").write_text(f"{type(error).__name__}: {error}\n")
    finally:
        lg.DestroyQSL(qsl)
        lg.DestroySUT(sut)
    if error is not None:
        raise error
    return run.report, extra, library.val_map


async def timed_test(lg: Any, test: tuple[Any, ...], options: LoadgenOptions, extra: dict[str, Any]) -> None:
    """LoadGen's test (``StartTestWithLogSettings(*test)``) in its own thread, the collector frozen
    around it, and the parent's CPU during it (LoadGen's threads included) in ``extra["test_cpu_s"]``, over
    ``extra["test_wall_s"]`` seconds (their ratio: the cores the parent kept busy)."""
    cpu_before, wall_before = time.process_time(), time.perf_counter()
    with _frozen_gc(options.freeze_gc):
        await asyncio.to_thread(lg.StartTestWithLogSettings, *test)
    extra["test_cpu_s"] = time.process_time() - cpu_before
    extra["test_wall_s"] = time.perf_counter() - wall_before


async def stop_helpers(bridge: Any, pump: asyncio.Task[Any], watcher: asyncio.Task[Any]) -> None:
    """After the test: the pump sends what it still holds and ends; the watcher is no longer needed."""
    bridge.closed = True
    bridge.wake.set()
    await asyncio.gather(pump, return_exceptions=True)
    watcher.cancel()


def log_settings_for(lg: Any, log_dir: Path, options: LoadgenOptions) -> tuple[Any, str]:
    """LoadGen's log settings (into ``log_dir``, no trace) and the audit.config to pass: "" names no
    file (LoadGen's default would read ./audit.config, see ``LoadgenOptions.audit_config``)."""
    log_settings = lg.LogSettings()
    log_settings.log_output.outdir = str(log_dir)
    log_settings.log_output.copy_summary_to_stdout = False
    log_settings.enable_trace = False  # on by default: 10 MB for a 1 s run (FACTS.md)
    return log_settings, str(options.audit_config) if options.audit_config else ""


def results_root(loaded: Any, graph_file: Path, scenario: str) -> Path:
    """Where a scenario's runs go by default: ``results/<graph>/<scenario>``."""
    return Path("results") / (loaded.spec.name or graph_file.stem) / scenario


def default_log_dir(root: Path, mode: str) -> Path:
    """A run's logs under a scenario's folder, as the submission checker lays them out:
    ``performance/run_1`` and ``accuracy``."""
    return root / "performance" / "run_1" if mode == "performance" else root / mode


async def _pump(bridge: Bridge, feed: Any) -> None:
    """The bridge's pump, whose failure is kept as ``bridge.failure`` (and LoadGen answered) rather than
    raised into the task group: that would cancel the wait on LoadGen's thread while its test runs."""
    with contextlib.suppress(Exception):
        await bridge.pump(feed.put, feed.put_nowait, feed.put_threadsafe)


@contextlib.contextmanager
def _frozen_gc(freeze: bool) -> Iterator[None]:
    """Collect once, then freeze what survives for the block (see ``LoadgenOptions.freeze_gc``)."""
    if not freeze:
        yield
        return
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


async def _watch(run: Run, bridge: Bridge) -> None:
    """When the graph fails, answer LoadGen at once so its test can end instead of waiting for us."""
    try:
        await asyncio.shield(run.task)
    except asyncio.CancelledError:
        raise
    except BaseException as exc:
        bridge.fail(exc)


async def _until_set_or_failed(event: asyncio.Event, run: Run) -> None:
    """Wait for ``event``, or raise the graph's failure if it fails first (a warm-up batch that never
    comes back must not leave the harness waiting forever)."""
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiter, run.task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if not event.is_set():
        await run.task  # raises the failure
        raise RuntimeError("the graph ended during the Server warm-up")


async def _warm_up(run: Run, bridge: Bridge, size: int, rounds: int) -> float:
    """Send ``rounds`` full batches through the SUT before LoadGen's clock starts, and return the fastest
    one's end-to-end time. MLPerf allows untimed warm-up; without it a short test's first batches pay
    for cold buffers and thread pools (40% of a 300-sample Offline run on the CPU), which also made a
    compliance test's reference run look slow against the test."""
    index = next(iter(bridge.images), None)
    if index is None:  # nothing loaded yet: LoadGen loads the QSL first, so load one sample ourselves
        await bridge.library.load([0])
        index = 0
    batch_s = float("inf")
    for _ in range(rounds):
        bridge.warmup_left = size
        bridge.warmup_done.clear()
        t0 = time.perf_counter()
        for k in range(size):
            await run.submit(Image(-1 - k, -1, bridge.images[index], t0))
        await _until_set_or_failed(bridge.warmup_done, run)
        batch_s = min(batch_s, time.perf_counter() - t0)
    return batch_s


async def warm_up_and_tune(
    warm: Callable[[int], Awaitable[float]],
    tune: Callable[[float], Awaitable[None]] | None,
    size: int,
    options: LoadgenOptions,
    settings: Any,
    announce: Callable[[str], None],
    extra: dict[str, Any],
) -> None:
    """Before LoadGen's clock: ``warm(rounds)`` full batches (returning the fastest one's time), then,
    if ``tune`` is given (a Server batcher with a deadline), the derived deadline handed to it."""
    rounds = max(options.warm_up_batches, 1 if tune else 0)
    if not rounds:
        return
    batch_s = await warm(rounds)
    if tune is not None:
        wait_us = server_wait_us(size, batch_s, settings, announce)
        await tune(wait_us)
        extra["max_wait_us"] = wait_us


def server_wait_us(size: int, batch_s: float, settings: Any, announce: Callable[[str], None]) -> float:
    """Let a partial batch wait what the latency bound leaves after one full batch's measured time:
    p99 ≈ wait + queueing + batch time, so wait = (bound - 2 x batch time) / 2, at least 0."""
    bound_s = settings.server_target_latency_ns / 1e9
    wait_us = max(0.0, (bound_s - 2 * batch_s) / 2) * 1e6
    why = (
        " (a full batch takes more than half the bound: no time is left to wait; a pulling batch_merge, as in "
        "graphs/resnet50_server_gpu.yaml, forms batches when an engine is free instead)"
        if wait_us == 0
        else ""
    )
    announce(
        f"Server: a batch of {size} takes {batch_s * 1e3:.1f} ms end to end; latency bound "
        f"{bound_s * 1e3:.0f} ms → max_wait_us {wait_us:.0f}{why}"
    )
    return wait_us


def sut_batching(back: Any, first_node: str, options: LoadgenOptions) -> tuple[int, bool]:
    """(the SUT's batch size, whether the harness derives its Server deadline): a batch_merge that
    pulls (capacity-0 edges out) batches what waited while the engines were busy, so it has none."""
    first = back.nodes[first_node]
    size = int(getattr(first.params, "max_batch", 1)) if first.cls.kind == "batch_merge" else 1
    pulls = all(e.capacity == 0 for e in back.checked.edges if e.source == first_node)
    tune = (
        options.scenario == "Server"
        and first.cls.kind == "batch_merge"
        and options.tune_server_wait
        and not pulls
    )
    return size, tune
