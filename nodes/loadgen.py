"""MLPerf LoadGen drives a flowgraph graph: the QSL loads samples through the front of the graph, the
SUT feeds queries to the rest, and the ``loadgen_complete`` sink answers them.

The graph file names its split in ``params.loadgen``: ``qsl`` lists the nodes that load a sample into
memory (init, preprocess), ``complete_after`` the node whose predictions answer queries. The harness
cuts the graph there: the front runs on LoadGen's ``load_samples_to_ram``; the back gets an ``input``
node where the front was and a ``loadgen_complete`` sink after ``complete_after``.

Threads: LoadGen runs its test on a thread of ours (``StartTest`` on the event loop's thread hangs).
Its callbacks hand work to the loop with ``call_soon_threadsafe`` and never block it. Queries LoadGen
has issued wait in LoadGen's own lists until the graph's bounded input takes them: no queue of ours grows.
Every query is answered exactly once; if the graph fails, the rest are answered empty at once so LoadGen
can finish, and the failure is raised (and written beside LoadGen's logs).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from flowgraph import (
    DependencyMissing,
    Graph,
    GraphFileError,
    Issue,
    LoadedGraph,
    Node,
    Port,
    Report,
    WorkerIO,
    WorkerRule,
    load_graph,
    node_type,
    validate,
)
from flowgraph.spec import EdgeSpec, NodeSpec, PortRef

from .accuracy import AccuracyResult, top1_from_mlperf_log
from .loadgen_conf import check_conf
from .payloads import Answers, Flush, Image, Prediction, Predictions

__all__ = ["LoadgenComplete", "LoadgenOptions", "LoadgenResult", "run_loadgen", "split_for_loadgen"]

ISSUE, COMPLETE, QSL_OUT = "loadgen_issue", "loadgen_complete", "qsl_collect"
BRIDGE_KEY = "loadgen.bridge"


def import_loadgen() -> Any:
    try:
        import mlperf_loadgen
    except ImportError as exc:
        raise DependencyMissing(
            "LoadGen scenarios need mlcommons-loadgen: pip install 'flowgraph[loadgen]'"
        ) from exc
    return mlperf_loadgen


@dataclass
class LoadgenOptions:
    """What ``flowgraph run --scenario`` passes; every field maps to a LoadGen setting or our harness."""

    scenario: str = "Offline"
    mode: str = "performance"
    target_qps: float | None = None
    target_latency_ms: float | None = None
    count: int | None = None
    time_s: float | None = None
    mlperf_conf: Path | None = None
    user_conf: Path | None = None
    output: Path | None = None
    performance_sample_count: int | None = None
    coalesce_queries: bool = True
    """Server: LoadGen hands every query already due in one ``issue_queries`` call (its
    ``server_coalesce_queries``, which NVIDIA's harness also turns on), instead of one call per query.
    Why: each call takes the GIL from the event loop; when LoadGen's thread falls behind, the queries
    it owes then cost one hand-over instead of one each. A conf file's ``coalesce_queries`` still wins."""
    freeze_gc: bool = True
    """Move everything alive once the graph is set up out of the collector's reach for the test
    (``gc.freeze``): with torch and a model loaded a full collection walks millions of objects, and one
    stopped a Server run on the H100 for 89 ms (bench/RESULTS.md 4e). Collections still run; they walk
    only what the test itself creates."""


@dataclass
class LoadgenResult:
    scenario: str
    mode: str
    valid: bool | None
    metrics: dict[str, str]
    reasons: list[str]
    log_dir: Path
    report: Report | None = None
    accuracy: AccuracyResult | None = None
    settings_note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def latency_ms(self, percentile: float) -> float:
        """A latency percentile from the summary's additional stats (50 and 99 are read), NaN if absent."""
        return float(self.metrics.get(f"{percentile:.2f} percentile latency (ns)", "nan")) / 1e6


# --- the completion sink ------------------------------------------------------------------------------


@node_type("loadgen_complete")
class LoadgenComplete(Node):
    """Answers LoadGen's queries with each ``Prediction``'s top-1 class, batched: every prediction that
    is already queued goes into one ``QuerySamplesComplete`` call."""

    inputs: ClassVar = {"in": Port(Answers)}
    outputs: ClassVar = {}
    worker_rule = WorkerRule.fixed(1)

    async def run(self, io: WorkerIO) -> None:
        bridge = self.context.shared[BRIDGE_KEY]
        async for first in io.inbox:
            bridge.complete([first, *io.inbox.take_ready(1023)])


# --- the bridge between LoadGen's threads and the loop -------------------------------------------------


class _Bridge:
    def __init__(
        self,
        lg: Any,
        loop: asyncio.AbstractEventLoop,
        labels: list[int],
        load: Callable[[list[int]], Any],
        flushable: bool,
    ) -> None:
        import numpy as np

        self.lg, self.loop, self.labels = lg, loop, labels
        self._load = load
        self.images: dict[int, Any] = {}
        self.flushable = flushable
        self.outstanding: set[int] = set()
        self.issued: deque[Any] = deque()  # LoadGen's thread appends, the loop drains (deque is atomic)
        self._drain_scheduled = False
        self.pending: deque[Any] = deque()  # accepted, waiting for room in the graph's input
        self._submit_nowait: Callable[[Any], bool] | None = None
        self._put_threadsafe: Callable[[Any], bool] | None = None
        self._pumping = False  # the pump holds accepted queries not yet in the graph
        self.wake = asyncio.Event()
        self.closed = False
        self.failure: BaseException | None = None
        self.answered = 0
        self.warmup_left = 0
        self.warmup_done = asyncio.Event()
        self._np = np

    # LoadGen's threads ------------------------------------------------------------------------------
    def issue_queries(self, samples: list[Any]) -> None:
        """Put the queries straight into the graph's input from LoadGen's thread while it has room;
        the rest go to the loop. Why: in Server this runs once per query, holding the GIL anyway; a
        put here wakes the loop only if the graph's reader is idle, so queries that arrive while the
        batcher waits for the GPU cost the loop nothing until it takes them as a batch."""
        put = self._put_threadsafe
        if put is None or self.issued or self.pending or self._pumping or self.failure is not None:
            self._hand_over(samples)  # behind queries the loop holds: keep first in, first in
            return
        self.outstanding.update([q.id for q in samples])
        try:
            rest = self._put_while_room(samples, put)
        except Exception as exc:  # a sample not loaded: fail the run (on the loop), answer LoadGen
            self.loop.call_soon_threadsafe(self.fail, exc)
            return
        if rest:
            self._hand_over(rest)

    def flush_queries(self) -> None:
        self._hand_over(None)

    def _hand_over(self, samples: list[Any] | None) -> None:
        """Queue for the loop, waking it only if no drain is already on its way.

        Why: in Server LoadGen calls once per query; at 20k QPS a loop callback each (and the GIL it
        takes) was a large share of the loop's work. Append first, then look at the flag; the loop clears
        the flag before draining: an item is never left without a drain to take it."""
        self.issued.append(samples)
        if not self._drain_scheduled:
            self._drain_scheduled = True
            self.loop.call_soon_threadsafe(self._drain)

    def load_samples(self, indices: list[int]) -> None:
        if self.failure is not None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._load(indices), self.loop).result()
        except BaseException as exc:  # LoadGen cannot take an exception: remember it, answer empty
            self.loop.call_soon_threadsafe(self.fail, exc)

    def unload_samples(self, indices: list[int]) -> None:
        for index in indices:
            self.images.pop(index, None)

    # the loop ---------------------------------------------------------------------------------------
    def _drain(self) -> None:
        self._drain_scheduled = False
        issued = self.issued
        while issued:
            self._accept(issued.popleft())

    def _accept(self, samples: list[Any] | None) -> None:
        if samples is None:
            if self.flushable:
                self.pending.append(None)
                self.wake.set()
            return
        if self.failure is not None:
            self._answer_empty([q.id for q in samples])
            return
        self.outstanding.update([q.id for q in samples])
        if not self.pending and not self._pumping and self._submit_nowait is not None:
            # Straight into the graph while its input has room: no hop through the pump's task.
            try:
                samples = self._put_while_room(samples, self._submit_nowait)
            except Exception as exc:  # a sample not loaded: fail the run, answer LoadGen
                self.fail(exc)
                return
            if not samples:
                return
        self.pending.append(samples)
        self.wake.set()

    def _put_while_room(self, samples: list[Any], put: Callable[[Any], bool]) -> list[Any]:
        """Put queries into the graph with ``put`` until it refuses one; the queries left (none if all
        went in). Raises ``KeyError`` for a sample not loaded."""
        for k, q in enumerate(samples):
            if not put(self._item(q.id, q.index)):
                return samples[k:]
        return []

    async def pump(
        self,
        submit: Callable[[Any], Any],
        submit_nowait: Callable[[Any], bool] | None = None,
        put_threadsafe: Callable[[Any], bool] | None = None,
    ) -> None:
        """Move issued queries into the graph at the pace its input queue allows. With
        ``submit_nowait``, queries that find room go in as they are accepted; the pump takes the rest.
        With ``put_threadsafe``, LoadGen's thread puts them in itself while there is room."""
        self._submit_nowait = submit_nowait
        self._put_threadsafe = put_threadsafe
        try:
            while True:
                await self.wake.wait()
                self.wake.clear()
                self._pumping = True  # queries accepted meanwhile queue behind these: first in, first in
                while self.pending:
                    samples = self.pending.popleft()
                    if samples is None:
                        await submit(Flush())
                        continue
                    for q in samples:
                        if self.failure is not None:
                            break
                        await submit(self._item(q.id, q.index))
                self._pumping = False
                if self.closed and not self.pending:
                    return
        except Exception as exc:  # answer LoadGen rather than leave its test waiting on us
            self.fail(exc)
            raise
        finally:
            self._submit_nowait = self._put_threadsafe = None

    def _item(self, sample_id: int, index: int) -> Any:
        image = self.images.get(index)
        if image is None:
            raise KeyError(f"LoadGen issued sample {index}, which is not loaded")
        return Image(sample_id, self.labels[index], image, time.perf_counter())

    def complete(self, answers_in: list[Prediction | Predictions]) -> None:
        pairs: list[tuple[int, int]] = []
        for a in answers_in:
            if isinstance(a, Predictions):
                pairs.extend(zip(a.sample_ids, a.top1, strict=True))
            else:
                pairs.append((a.sample_id, a.top1))
        warm = sum(1 for qid, _ in pairs if qid < 0)
        if warm:
            self.warmup_left -= warm
            if self.warmup_left <= 0:
                self.warmup_done.set()
        pairs = [(qid, top1) for qid, top1 in pairs if qid in self.outstanding]
        if not pairs:
            return
        ids = [qid for qid, _ in pairs]
        answers = self._np.array([float(top1) for _, top1 in pairs], "<f4")
        base = answers.ctypes.data
        responses = [self.lg.QuerySampleResponse(qid, base + 4 * i, 4) for i, qid in enumerate(ids)]
        self.lg.QuerySamplesComplete(responses)  # LoadGen copies the bytes during the call
        self.outstanding.difference_update(ids)
        self.answered += len(ids)

    def _answer_empty(self, ids: list[int]) -> None:
        if ids:
            self.lg.QuerySamplesComplete([self.lg.QuerySampleResponse(qid, 0, 0) for qid in ids])
            self.outstanding.difference_update(ids)

    def fail(self, error: BaseException) -> None:
        """The graph failed: answer everything outstanding now, and every later query at once."""
        if self.failure is None:
            self.failure = error
        self.pending.clear()
        self._answer_empty(list(self.outstanding))
        self.wake.set()


# --- cutting the graph ----------------------------------------------------------------------------------


def split_for_loadgen(loaded: LoadedGraph) -> tuple[LoadedGraph, LoadedGraph, str]:
    """(front, back, first SUT node): the QSL part ending in a collector, and the SUT part fed by an
    input node and ending in ``loadgen_complete``."""
    spec, src = loaded.spec, loaded.source
    config = spec.params.get("loadgen") or {}
    qsl = set(config.get("qsl") or [])
    after = config.get("complete_after")
    problems = [n for n in qsl | {after} if n not in spec.nodes]
    if not qsl or not after or problems:
        raise GraphFileError(
            [
                src.issue(
                    ("params", "loadgen"),
                    "LoadGen needs params.loadgen with 'qsl' (nodes that load a sample) and "
                    "'complete_after' (the node whose predictions answer queries)"
                    + (f"; unknown nodes: {problems}" if problems else ""),
                    fix="e.g. loadgen: {qsl: [init, preprocess], complete_after: postprocess}",
                )
            ]
        )
    crossing = [e for e in spec.edges if e.source.node in qsl and e.target.node not in qsl]
    if len(crossing) != 1 or any(e.target.node in qsl and e.source.node not in qsl for e in spec.edges):
        raise GraphFileError(
            [
                src.issue(
                    ("params", "loadgen", "qsl"),
                    f"the qsl nodes must feed the rest through exactly one edge (found {len(crossing)})",
                )
            ]
        )
    cut = crossing[0]
    front_nodes = {n: s for n, s in spec.nodes.items() if n in qsl}
    front_nodes[QSL_OUT] = NodeSpec(type="collect")
    front_edges = [e for e in spec.edges if e.source.node in qsl and e.target.node in qsl]
    front_edges.append(
        EdgeSpec(**{"from": cut.source, "to": PortRef(node=QSL_OUT), "capacity": cut.capacity})
    )
    back_nodes = {n: s for n, s in spec.nodes.items() if n not in qsl}
    back_nodes[ISSUE] = NodeSpec(type="input")
    back_nodes[COMPLETE] = NodeSpec(type="loadgen_complete")
    back_edges = [e for e in spec.edges if e.source.node not in qsl]
    back_edges.append(EdgeSpec(**{"from": PortRef(node=ISSUE), "to": cut.target, "capacity": cut.capacity}))
    back_edges.append(
        EdgeSpec(**{"from": PortRef(node=after), "to": PortRef(node=COMPLETE), "capacity": 1024})
    )
    front = spec.model_copy(update={"nodes": front_nodes, "edges": front_edges, "name": f"{spec.name}-qsl"})
    back = spec.model_copy(update={"nodes": back_nodes, "edges": back_edges})
    return LoadedGraph(front, src, loaded.scenario), LoadedGraph(back, src, loaded.scenario), cut.target.node


# --- settings -------------------------------------------------------------------------------------------


def build_settings(lg: Any, options: LoadgenOptions, model: str) -> tuple[Any, str]:
    """TestSettings: LoadGen's built-in mlperf.conf, then --mlperf-conf, --user-conf, then the flags."""
    scenario = options.scenario
    if options.mlperf_conf:
        check_conf(options.mlperf_conf, model, user=False)
    if options.user_conf:
        check_conf(options.user_conf, model, user=True)
    settings = lg.TestSettings()
    # The built-in mlperf.conf is applied only by the first FromConfig of a process unless asked for
    # explicitly like this (FACTS.md), so ask every time.
    settings.FromConfig("", model, scenario, 0)
    settings.server_coalesce_queries = options.coalesce_queries  # before the conf files: they may override
    for path in (options.mlperf_conf, options.user_conf):
        if path is not None and settings.FromConfig(str(path), model, scenario, 1) != 0:
            raise GraphFileError([Issue(str(path), None, None, "LoadGen could not read this conf file")])
    settings.scenario = getattr(lg.TestScenario, scenario)
    settings.mode = lg.TestMode.AccuracyOnly if options.mode == "accuracy" else lg.TestMode.PerformanceOnly
    if options.target_qps is not None:
        if scenario == "Server":
            settings.server_target_qps = options.target_qps
        settings.offline_expected_qps = options.target_qps
    if options.target_latency_ms is not None:
        ns = int(options.target_latency_ms * 1e6)
        settings.server_target_latency_ns = ns
        settings.single_stream_expected_latency_ns = ns
        settings.multi_stream_expected_latency_ns = ns
    notes = []
    if options.time_s is not None:
        settings.min_duration_ms = int(options.time_s * 1000)
        notes.append(f"min_duration {options.time_s:g} s")
    if options.count is not None:
        settings.min_query_count = options.count
        settings.max_query_count = options.count
        if options.time_s is None:
            settings.min_duration_ms = 0
        notes.append(f"{options.count} queries")
    if options.performance_sample_count is not None:
        settings.performance_sample_count_override = options.performance_sample_count
    note = f"quick run ({', '.join(notes)}): not a submission-length run" if notes else ""
    return settings, note


def read_summary(log_dir: Path) -> tuple[bool | None, dict[str, str], list[str]]:
    """VALID/INVALID, the result metrics and LoadGen's reasons, from mlperf_log_summary.txt.

    The headline metric sits between 'Mode' and 'Result is'; the reasons follow 'Result is' up to the
    first blank line; median and tail latency come from 'Additional Stats'."""
    path = log_dir / "mlperf_log_summary.txt"
    if not path.exists():
        return None, {}, []
    valid: bool | None = None
    metrics: dict[str, str] = {}
    reasons: list[str] = []
    section = "head"
    for line in path.read_text().splitlines():
        if line.startswith("Mode"):
            section = "metric"
        elif line.startswith("Result is"):
            valid = line.split(":", 1)[1].strip() == "VALID"
            section = "reasons"
        elif section == "reasons":
            if not line.strip():
                section = "rest"
            else:
                reasons.append(line.strip())
        elif (
            section == "metric"
            and ":" in line
            or section == "rest"
            and ":" in line
            and line.split(":")[0].strip()
            in ("50.00 percentile latency (ns)", "99.00 percentile latency (ns)", "QPS w/o loadgen overhead")
        ):
            key, _, value = line.partition(":")
            metrics[key.strip()] = value.strip()
    return valid, metrics, reasons


# --- the run --------------------------------------------------------------------------------------------


async def run_loadgen(
    graph_file: Path,
    overrides: dict[str, Any],
    options: LoadgenOptions,
    announce: Callable[[str], None] = print,
    cache_dir: Path | None = None,
) -> LoadgenResult:
    """Run one LoadGen test of ``graph_file`` and return its result; raises ``NodeFailure`` if a node failed."""
    lg = import_loadgen()
    loaded = load_graph(graph_file, overrides, options.scenario)
    # The whole graph first, as the scenario runs it: cut in two, the SUT's half starts at an input that
    # takes anything, so a type mismatch across the cut (a bypass that sends an Image where a Batch is
    # wanted) would otherwise surface only when the first query fails.
    validate(loaded)
    front_loaded, back_loaded, first_sut_node = split_for_loadgen(loaded)
    front, back = Graph(validate(front_loaded)), Graph(validate(back_loaded))
    model = str((loaded.spec.params.get("loadgen") or {}).get("model", "resnet50"))
    settings, note = build_settings(lg, options, model)
    name = loaded.spec.name or graph_file.stem
    log_dir = options.output or Path("results") / name / options.scenario / options.mode
    log_dir.mkdir(parents=True, exist_ok=True)
    start_kw: dict[str, Any] = {"announce": announce}
    if cache_dir is not None:
        start_kw["cache_dir"] = cache_dir

    # The front once with no samples: sets the dataset up (synthetic data is made here) and reads its labels.
    source_name = next(
        n
        for n, s in front_loaded.spec.nodes.items()
        if not any(e.target.node == n for e in front_loaded.spec.edges)
    )
    probe = front_loaded.spec.nodes[source_name]
    labels_graph = _with_params(front, source_name, probe, {"indices": []})
    async with labels_graph.start(**start_kw) as probe_run:
        pass
    source_node = probe_run.runtime.nodes[source_name]
    labels: list[int] = list(getattr(source_node, "labels", []))
    val_map = getattr(source_node, "val_map", None)
    if not labels:
        raise GraphFileError([Issue(str(graph_file), None, source_name, "the dataset has no samples")])

    loop = asyncio.get_running_loop()

    on_device = bool((loaded.spec.params.get("loadgen") or {}).get("start_from_device", False))

    async def load(indices: list[int]) -> None:
        loader = _with_params(front, source_name, probe, {"indices": sorted(indices), "count": None})
        report = await loader.run(**start_kw)
        if on_device and report.results:  # as NVIDIA's harness does: Offline and Server then measure
            import cupy  # inference, not PCIe
            import numpy as np

            # One array, each sample a row of it: a batch is then gathered by one take (Batch.stacked).
            library = cupy.asarray(np.stack([image.array for image in report.results]))
            for row, image in enumerate(report.results):
                bridge.images[image.sample_id] = library[row]
            cupy.cuda.runtime.deviceSynchronize()
            return
        for image in report.results:
            bridge.images[image.sample_id] = image.array
        if report.failures:
            raise RuntimeError(f"loading samples failed: {report.failures[0]}")

    first_cls = back.nodes[first_sut_node].cls
    bridge = _Bridge(lg, loop, labels, load, flushable=first_cls.kind == "batch_merge")
    total = len(labels)
    performance_count = min(total, options.performance_sample_count or 1024)
    sut = lg.ConstructSUT(bridge.issue_queries, bridge.flush_queries)
    qsl = lg.ConstructQSL(total, performance_count, bridge.load_samples, bridge.unload_samples)
    log_settings = lg.LogSettings()
    log_settings.log_output.outdir = str(log_dir)
    log_settings.log_output.copy_summary_to_stdout = False
    log_settings.enable_trace = False  # on by default: 10 MB for a 1 s run (FACTS.md)

    run = back.start(**start_kw)
    run.runtime.shared[BRIDGE_KEY] = bridge
    extra: dict[str, Any] = {}
    error: BaseException | None = None
    try:
        async with run:
            await (
                run.started()
            )  # LoadGen's clock must not run through our setup (CUDA-graph capture: seconds)
            feed = run.input()
            pump = asyncio.create_task(
                bridge.pump(feed.put, feed.put_nowait, feed.put_threadsafe), name="loadgen:pump"
            )
            watcher = asyncio.create_task(_watch(run, bridge), name="loadgen:watch")
            try:
                chosen = any(key in overrides for key in ("max_wait_us", f"{first_sut_node}.max_wait_us"))
                # A batch_merge that pulls (capacity-0 edges out) batches what waited while the engines
                # were busy: no deadline to derive.
                pulls = all(e.capacity == 0 for e in back.checked.edges if e.source == first_sut_node)
                if (
                    options.scenario == "Server"
                    and first_cls.kind == "batch_merge"
                    and not chosen
                    and not pulls
                ):
                    extra["max_wait_us"] = await _tune_server_wait(
                        run, bridge, first_sut_node, settings, announce
                    )
                with _frozen_gc(options.freeze_gc):
                    await asyncio.to_thread(lg.StartTestWithLogSettings, sut, qsl, settings, log_settings)
            finally:
                bridge.closed = True
                bridge.wake.set()
                await asyncio.gather(pump, return_exceptions=True)
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)
            if bridge.failure is not None:
                raise bridge.failure
    except BaseException as exc:
        error = exc
        (log_dir / "flowgraph_error.txt").write_text(f"{type(exc).__name__}: {exc}\n")
    finally:
        lg.DestroyQSL(qsl)
        lg.DestroySUT(sut)
    if error is not None:
        raise error
    valid, metrics, reasons = read_summary(log_dir)
    result = LoadgenResult(
        options.scenario,
        options.mode,
        valid,
        metrics,
        reasons,
        log_dir,
        run.report,
        settings_note=note,
        extra=extra,
    )
    if options.mode == "accuracy" and val_map is not None:
        offset = 0  # postprocess already applied the graph's label offset to what we logged
        result.accuracy = top1_from_mlperf_log(log_dir / "mlperf_log_accuracy.json", val_map, offset)
    return result


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


def _with_params(graph: Graph, node: str, spec: NodeSpec, params: dict[str, Any]) -> Graph:
    loaded = graph.checked.loaded
    nodes = dict(loaded.spec.nodes)
    nodes[node] = spec.model_copy(update={"params": {**spec.params, **params}})
    return Graph(validate(LoadedGraph(loaded.spec.model_copy(update={"nodes": nodes}), loaded.source)))


async def _watch(run: Any, bridge: _Bridge) -> None:
    """When the graph fails, answer LoadGen at once so its test can end instead of waiting for us."""
    try:
        await asyncio.shield(run.task)
    except asyncio.CancelledError:
        raise
    except BaseException as exc:
        bridge.fail(exc)


async def _tune_server_wait(
    run: Any, bridge: _Bridge, merge_node: str, settings: Any, announce: Callable[[str], None]
) -> float:
    """Measure one full batch end to end, then let a partial batch wait what the latency bound leaves:
    p99 ≈ wait + queueing + batch time, so wait = (bound - 2 x batch time) / 2, at least 0."""
    merge = run.runtime.nodes[merge_node]
    size = merge.params.max_batch
    index = next(iter(bridge.images), None)
    if index is None:  # nothing loaded yet: LoadGen loads the QSL first, so load one sample ourselves
        await bridge._load([0])
        index = 0
    batch_s = float("inf")
    for _ in range(3):  # the first batch pays for cold buffers; keep the fastest of three
        bridge.warmup_left = size
        bridge.warmup_done.clear()
        t0 = time.perf_counter()
        for k in range(size):
            await run.submit(Image(-1 - k, -1, bridge.images[index], t0))
        await bridge.warmup_done.wait()
        batch_s = min(batch_s, time.perf_counter() - t0)
    bound_s = settings.server_target_latency_ns / 1e9
    wait_us = max(0.0, (bound_s - 2 * batch_s) / 2) * 1e6
    merge.set_max_wait_us(wait_us)
    announce(
        f"Server: a batch of {size} takes {batch_s * 1e3:.1f} ms end to end; latency bound "
        f"{bound_s * 1e3:.0f} ms → max_wait_us {wait_us:.0f}"
    )
    return wait_us
