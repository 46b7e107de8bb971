"""Every LoadGen scenario end to end on the CPU, accuracy mode, conf checks, and failure handling.

The model is a tiny ONNX classifier with a known answer, so a test costs LoadGen's bookkeeping, not
ResNet50's arithmetic (the ResNet50 path itself is covered by test_pipeline)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
from cli_process import free_port

pytest.importorskip("mlperf_loadgen", reason="LoadGen scenarios need flowgraph[loadgen]")

from tiny_models import constant_class_model  # noqa: E402

from flowgraph import GraphFileError, NodeFailure, run_event_loop  # noqa: E402
from flowgraph.cli import main  # noqa: E402
from flowgraph.loadgen import Bridge, LoadgenOptions, check_conf, run_loadgen, top1_from_mlperf_log  # noqa: E402

GRAPH = Path("graphs/resnet50_offline.yaml")


@pytest.fixture(scope="module")
def answer_model(tmp_path_factory) -> Path:
    return constant_class_model(tmp_path_factory.mktemp("m") / "const.onnx", answer=3)


def run(tmp_path, dataset, model, options, **overrides):
    graph_overrides = {"model.path": str(model), "dataset.path": str(dataset), **overrides}
    return run_event_loop(
        run_loadgen(GRAPH, graph_overrides, options, announce=lambda m: None, cache_dir=tmp_path)
    )


@pytest.mark.parametrize(
    ("scenario", "settings"),
    [
        ("SingleStream", {"count": 100}),
        ("MultiStream", {"count": 662}),  # LoadGen's early stopping needs 662 queries at p99
        ("Server", {"count": 500, "target_qps": 400, "target_latency_ms": 200}),
        ("Offline", {"count": 200}),
    ],
)
def test_every_scenario_runs_end_to_end_and_is_valid(tmp_path, dataset, answer_model, scenario, settings):
    options = LoadgenOptions(scenario=scenario, output=tmp_path / "logs", **settings)
    result = run(tmp_path, dataset, answer_model, options)
    assert result.valid is True, result.reasons
    assert (tmp_path / "logs" / "mlperf_log_summary.txt").exists()
    assert result.metrics  # the headline metric was read
    expected = settings["count"] * (8 if scenario == "MultiStream" else 1)
    if scenario == "Offline":
        expected = max(expected, 200)
    assert result.report.samples["completed"] >= expected  # every issued sample was answered
    # the parent's CPU over the test's wall time: what bench/scale.py reports as cores kept busy
    assert (
        result.extra["test_wall_s"] > 0 and 0 < result.extra["test_cpu_s"] < 4 * result.extra["test_wall_s"]
    )


def test_single_stream_bypasses_batching(tmp_path, dataset, answer_model):
    result = run(
        tmp_path,
        dataset,
        answer_model,
        LoadgenOptions(scenario="SingleStream", count=64, output=tmp_path / "logs"),
    )
    nodes = {n["node"] for n in result.report.nodes}
    assert "batch_merge" not in nodes and "batch_split" not in nodes and "inference" in nodes


def test_a_bypass_that_breaks_types_across_the_qsl_cut_fails_validation_not_the_run(tmp_path, dataset):
    # Bypassing memory_copy too sends preprocess's Images straight to gpu_schedule, which wants Batches.
    text = GRAPH.read_text().replace(
        "SingleStream: {bypass: [batch_merge, batch_split]}",
        "SingleStream: {bypass: [batch_merge, memory_copy, batch_split]}",
    )
    assert "memory_copy, batch_split" in text
    graph = tmp_path / "bad.yaml"
    graph.write_text(text)
    options = LoadgenOptions(scenario="SingleStream", count=64, output=tmp_path / "logs")
    with pytest.raises(GraphFileError) as err:
        run_event_loop(run_loadgen(graph, {"dataset.path": str(dataset)}, options, lambda m: None, tmp_path))
    message = str(err.value)
    assert "bad.yaml" in message and "gpu_schedule" in message and "Image" in message


def test_server_derives_max_wait_from_the_latency_bound(tmp_path, dataset, answer_model):
    result = run(
        tmp_path,
        dataset,
        answer_model,
        LoadgenOptions(
            scenario="Server", count=100, target_qps=200, target_latency_ms=40, output=tmp_path / "l"
        ),
    )
    assert 0 < result.extra["max_wait_us"] < 20_000  # below half the bound


def test_accuracy_mode_top1_equals_the_direct_computation(tmp_path, dataset, answer_model):
    from flowgraph.nodes.dataset import read_val_map

    labels = [label for _, _, label in read_val_map(dataset / "val_map.txt", dataset)]
    expected = sum(label == 3 for label in labels) / len(labels)
    result = run(tmp_path, dataset, answer_model, LoadgenOptions(mode="accuracy", output=tmp_path / "acc"))
    assert result.accuracy is not None and result.accuracy.total == len(labels)
    assert result.accuracy.top1 == pytest.approx(expected)
    # and the standalone command reproduces it from the log
    again = top1_from_mlperf_log(tmp_path / "acc" / "mlperf_log_accuracy.json", dataset / "val_map.txt")
    assert (again.good, again.total) == (result.accuracy.good, result.accuracy.total)


def test_accuracy_mode_with_a_model_that_is_always_right(tmp_path, dataset):
    import shutil

    right = tmp_path / "all7"
    shutil.copytree(dataset, right)
    lines = (right / "val_map.txt").read_text().splitlines()
    (right / "val_map.txt").write_text("".join(f"{line.split()[0]} 7\n" for line in lines))
    model = constant_class_model(tmp_path / "seven.onnx", answer=7)
    result = run(tmp_path, right, model, LoadgenOptions(mode="accuracy", output=tmp_path / "acc"))
    assert result.accuracy.top1 == 1.0


def test_accuracy_command_on_a_constructed_log(tmp_path, capsys):
    import numpy as np

    (tmp_path / "val_map.txt").write_text("a.JPEG 5\nb.JPEG 9\nc.JPEG 1\nd.JPEG 2\n")
    entries = [
        {"seq_id": i, "qsl_idx": idx, "data": np.array([cls], "<f4").tobytes().hex()}
        for i, (idx, cls) in enumerate([(0, 5), (1, 8), (2, 1), (0, 4), (3, 3)])
    ]  # idx 0 twice: first counts
    (tmp_path / "log.json").write_text(json.dumps(entries))
    assert main(["accuracy", str(tmp_path / "log.json"), "--val-map", str(tmp_path / "val_map.txt")]) == 0
    assert "accuracy=50.000%, good=2, total=4" in capsys.readouterr().out


def test_a_failing_node_stops_the_run_answers_every_query_and_does_not_hang(tmp_path, dataset, answer_model):
    # no warm-up, and a model that takes batches of 7 only: the first batch of LoadGen's test fails
    options = LoadgenOptions(scenario="Offline", count=100, output=tmp_path / "fail", warm_up_batches=0)
    sevens = constant_class_model(tmp_path / "sevens.onnx", answer=3, batch=7)
    t0 = time.perf_counter()
    with pytest.raises(NodeFailure, match="node 'inference'"):
        run(tmp_path, dataset, sevens, options)
    assert time.perf_counter() - t0 < 30
    assert "NodeFailure" in (tmp_path / "fail" / "flowgraph_error.txt").read_text()
    summary = (tmp_path / "fail" / "mlperf_log_summary.txt").read_text()
    assert "Scenario : Offline" in summary  # LoadGen finished its test: every query got an answer


def test_a_node_failing_in_the_server_warm_up_fails_the_run_instead_of_hanging(
    tmp_path, dataset, answer_model
):
    options = LoadgenOptions(
        scenario="Server", count=50, target_qps=100, target_latency_ms=50, output=tmp_path / "warm"
    )
    t0 = time.perf_counter()
    with pytest.raises(NodeFailure, match="node 'inference'"):
        run(tmp_path, dataset, answer_model, options, **{"inference.output": "no_such_output"})
    assert time.perf_counter() - t0 < 30
    assert "NodeFailure" in (tmp_path / "warm" / "flowgraph_error.txt").read_text()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("resnet50.Offline.target_qsp = 100", "unknown key 'target_qsp'"),
        ("resnet.Offline.target_qps = 100", "model 'resnet' matches nothing"),
        ("resnet50.offline.target_qps = 100", "scenario 'offline' matches nothing"),
        ("resnet50.Server.target_latency = 0.015", "looks like seconds"),
        ("resnet50.*.min_duration = 60", "looks like seconds"),
        ("resnet50.*.min_query_count = 1e5", "LoadGen reads '1e5' as 1"),
        ("*.Server.target_latency_percentile = 0.99", "this is a percentage"),
        ("resnet50.Offline target_qps 100", "expected 'model.scenario.key = value'"),
        ("resnet50.Server.target_qps = nan", "must be a finite number"),
        ("resnet50.Server.target_qps = inf", "must be a finite number"),
        ("resnet50.Server.target_qps = -5", "must not be negative"),
        ("resnet50.*.min_query_count = -1", "must not be negative"),
        ("*.Server.target_latency_percentile = 990", "a percentile is below 100"),
        ("resnet50.*.min_query_count = 010", "LoadGen reads a leading 0 as octal (010 is 8)"),
        ("resnet50.*.min_query_count = 1_000", "LoadGen reads '1_000' as 1"),
    ],
)
def test_conf_mistakes_loadgen_would_ignore_are_errors_with_file_and_line(tmp_path, line, message):
    conf = tmp_path / "user.conf"
    conf.write_text(f"# comment\n*.Offline.min_duration = 1000\n{line}\n")
    with pytest.raises(GraphFileError) as err:
        check_conf(conf, "resnet50")
    assert f"{conf}:3" in str(err.value) and message in str(err.value)


def test_a_conf_that_is_not_utf8_is_an_error_with_its_line(tmp_path):
    conf = tmp_path / "user.conf"
    conf.write_bytes(b"*.Offline.min_duration = 1000\n# caf\xe9\n")
    with pytest.raises(GraphFileError) as err:
        check_conf(conf, "resnet50")
    assert f"{conf}:2" in str(err.value) and "not UTF-8" in str(err.value)


def test_a_good_conf_passes_and_is_applied(tmp_path, dataset, answer_model):
    conf = tmp_path / "user.conf"
    conf.write_text("resnet50.SingleStream.min_query_count = 70\n*.*.min_duration = 100\n")
    assert len(check_conf(conf, "resnet50")) == 2
    result = run(
        tmp_path,
        dataset,
        answer_model,
        LoadgenOptions(scenario="SingleStream", user_conf=conf, output=tmp_path / "c"),
    )
    detail = (tmp_path / "c" / "mlperf_log_detail.txt").read_text()
    assert '"effective_min_query_count", "value": 70' in detail
    assert result.report.samples["completed"] >= 70


def test_cli_runs_a_scenario_and_prints_the_verdict(tmp_path, dataset, answer_model, capsys):
    code = main(
        [
            "run",
            str(GRAPH),
            "--scenario",
            "Offline",
            "--count",
            "100",
            "--output",
            str(tmp_path / "o"),
            "--set",
            f"model.path={answer_model}",
            "--set",
            f"dataset.path={dataset}",
            "--quiet",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "Offline performance: VALID" in out and "Samples per second" in out


def test_server_with_pull_batching_needs_no_derived_wait(tmp_path, dataset, answer_model):
    result = run(
        tmp_path,
        dataset,
        answer_model,
        LoadgenOptions(
            scenario="Server", count=500, target_qps=400, target_latency_ms=200, output=tmp_path / "l"
        ),
        batch_queue=0,
        engine_queue=1,
        engine_num=2,
    )
    assert result.valid is True, result.reasons
    assert "max_wait_us" not in result.extra  # batches form when an engine asks: nothing to tune
    assert result.report.samples["completed"] >= 500 and result.report.samples["failed"] == 0


def test_result_reads_latency_percentiles_in_milliseconds(tmp_path, dataset, answer_model):
    result = run(
        tmp_path, dataset, answer_model, LoadgenOptions(scenario="Offline", count=200, output=tmp_path / "o")
    )
    p50, p99 = result.latency_ms(50), result.latency_ms(99)
    assert 0 < p50 <= p99 < 60_000
    assert p50 == float(result.metrics["50.00 percentile latency (ns)"]) / 1e6


@pytest.mark.parametrize("freeze", [True, False])
def test_the_collector_skips_setup_objects_during_the_test_only_when_asked(
    tmp_path, dataset, answer_model, monkeypatch, freeze
):
    import gc

    frozen_during: list[int] = []
    issue = Bridge.issue_queries

    def watching(self, samples):
        frozen_during.append(gc.get_freeze_count())
        issue(self, samples)

    monkeypatch.setattr(Bridge, "issue_queries", watching)
    options = LoadgenOptions(scenario="SingleStream", count=20, output=tmp_path / "f", freeze_gc=freeze)
    run(tmp_path, dataset, answer_model, options)
    assert frozen_during and (min(frozen_during) > 0) is freeze  # frozen for every query, or never
    assert gc.get_freeze_count() == 0  # and thawed once the test ends


class _FakeLoadgen:
    """The two LoadGen calls the bridge answers with."""

    def __init__(self) -> None:
        self.completed: list[int] = []

    @staticmethod
    def QuerySampleResponse(qid, data, size):  # noqa: N802 (LoadGen's names)
        return qid

    def QuerySamplesComplete(self, responses):  # noqa: N802
        self.completed.extend(responses)


def _bridge(lg: _FakeLoadgen, samples: int, loaded: range) -> Bridge:
    library = SimpleNamespace(labels=[0] * samples, images={i: object() for i in loaded})
    return Bridge(lg, asyncio.get_running_loop(), library, flushable=False)


async def _issue_one_query_per_call_from_a_thread(bridge: Bridge, queries: int) -> list[object]:
    """LoadGen's Server: issue_queries once per query, from its own thread, while the loop is blocked
    (joining that thread). Returns the callbacks handed to the loop meanwhile."""
    loop = asyncio.get_running_loop()
    wakes: list[object] = []
    real = loop.call_soon_threadsafe
    with mock.patch.object(loop, "call_soon_threadsafe", lambda *a: (wakes.append(a[0]), real(*a))):
        issuer = threading.Thread(
            target=lambda: [bridge.issue_queries([SimpleNamespace(id=i, index=i)]) for i in range(queries)]
        )
        issuer.start()
        issuer.join()  # the loop is blocked here: nothing drains until it runs again
        for _ in range(5):
            await asyncio.sleep(0)
    return wakes


async def _stop(bridge: Bridge, pump: asyncio.Task[None]) -> None:
    bridge.closed = True
    bridge.wake.set()
    await pump


async def test_queries_issued_while_the_loop_is_busy_wake_it_once_and_enter_in_order():
    # While the loop is busy queries pile up behind one wake-up; the drain puts what fits straight
    # into the graph's input and the pump the rest, in issue order.
    bridge = _bridge(_FakeLoadgen(), 10, range(10))
    entered: list[int] = []

    def submit_nowait(item):
        if len(entered) >= 6:
            return False
        entered.append(item.sample_id)
        return True

    async def submit(item):
        entered.append(item.sample_id)

    pump = asyncio.create_task(bridge.pump(submit, submit_nowait))
    await asyncio.sleep(0)
    assert await _issue_one_query_per_call_from_a_thread(bridge, 10) == [bridge._drain]
    assert entered == list(range(10))
    assert bridge.outstanding == set(range(10))
    await _stop(bridge, pump)


async def test_loadgen_thread_puts_queries_into_the_graph_itself_while_there_is_room():
    # With put_threadsafe, LoadGen's thread puts queries into the graph's input directly (the loop
    # is not woken for them); what does not fit goes to the loop, in issue order, with one wake-up.
    bridge = _bridge(_FakeLoadgen(), 10, range(10))
    entered: list[tuple[int, bool]] = []  # (sample id, put from LoadGen's thread)
    loop_thread = threading.get_ident()

    def put_threadsafe(item):
        if len(entered) >= 6:
            return False
        entered.append((item.sample_id, threading.get_ident() != loop_thread))
        return True

    def submit_nowait(item):
        entered.append((item.sample_id, threading.get_ident() != loop_thread))
        return True

    async def submit(item):
        entered.append((item.sample_id, False))

    pump = asyncio.create_task(bridge.pump(submit, submit_nowait, put_threadsafe))
    await asyncio.sleep(0)
    assert await _issue_one_query_per_call_from_a_thread(bridge, 10) == [bridge._drain]
    assert entered == [(i, i < 6) for i in range(10)]  # 6 from LoadGen's thread, then the loop's
    assert bridge.outstanding == set(range(10))
    await _stop(bridge, pump)


@pytest.mark.parametrize("from_loadgens_thread", [False, True], ids=["via-the-loop", "put-by-loadgen"])
async def test_a_query_for_a_sample_not_loaded_fails_the_run_and_is_answered(from_loadgens_thread):
    lg = _FakeLoadgen()
    bridge = _bridge(lg, 4, range(1))
    put_threadsafe = (lambda item: True) if from_loadgens_thread else None
    pump = asyncio.create_task(bridge.pump(lambda item: asyncio.sleep(0), lambda item: True, put_threadsafe))
    await asyncio.sleep(0)
    issuer = threading.Thread(
        target=bridge.issue_queries, args=([SimpleNamespace(id=7, index=0), SimpleNamespace(id=8, index=3)],)
    )
    issuer.start()
    issuer.join()
    for _ in range(3):
        await asyncio.sleep(0)
    assert isinstance(bridge.failure, KeyError) and "sample 3" in str(bridge.failure)
    assert sorted(lg.completed) == [7, 8]  # both answered (empty): LoadGen is never left waiting
    await _stop(bridge, pump)


def test_server_keeps_the_deadline_the_user_set(tmp_path, dataset, answer_model):
    options = LoadgenOptions(
        scenario="Server",
        count=50,
        target_qps=200,
        target_latency_ms=40,
        output=tmp_path / "l",
        tune_server_wait=False,
    )
    result = run(tmp_path, dataset, answer_model, options, max_wait_us=500)
    assert "max_wait_us" not in result.extra and result.report.samples["failed"] == 0


@pytest.mark.parametrize(
    ("sets", "tuned"), [([], True), (["max_wait_us=10"], False), (["batch_merge.max_wait_us=10"], False)]
)
def test_the_cli_tunes_the_server_deadline_unless_set(monkeypatch, sets, tuned):
    import flowgraph.loadgen.run as loadgen_run

    seen = []

    async def fake(graph, overrides, options, announce, **kwargs):
        seen.append(options.tune_server_wait)
        raise GraphFileError([])

    monkeypatch.setattr(loadgen_run, "run_loadgen", fake)
    argv = ["run", str(GRAPH), "--scenario", "Server", *[a for s in sets for a in ("--set", s)]]
    assert main(argv) == 2
    assert seen == [tuned]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_during_a_test_ends_it_with_complete_logs(tmp_path, dataset, answer_model, signum):
    out = tmp_path / "stopped"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flowgraph.cli",
            "run",
            str(GRAPH),
            "--scenario",
            "SingleStream",
            "--count",
            "200000",
            "--output",
            str(out),
            "--set",
            f"model.path={answer_model}",
            "--set",
            f"dataset.path={dataset}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    deadline = time.monotonic() + 60
    while not (out / "mlperf_log_detail.txt").exists():  # LoadGen's test has started
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(1.0)
    proc.send_signal(signum)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("the test did not end after one interrupt") from None
    assert proc.returncode == 1, err
    assert "answering LoadGen at once" in err and "run stopped" in err, err
    assert "GraphStopped" in (out / "flowgraph_error.txt").read_text()
    assert "Scenario : SingleStream" in (out / "mlperf_log_summary.txt").read_text()  # LoadGen finished


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--target-qps", "inf"], "--target-qps: must be a finite number above 0"),
        (["--target-qps", "nan"], "--target-qps: must be a finite number above 0"),
        (["--target-qps", "-5"], "--target-qps: must be a finite number above 0"),
        (["--target-latency-ms", "-1"], "--target-latency-ms: must be a finite number above 0"),
        (["--time", "-3"], "--time: must be a finite number above 0"),
        (["--count", "0"], "--count: must be 1 or more"),
        (["--count", "-2"], "--count: must be 1 or more"),
    ],
)
def test_values_loadgen_would_take_badly_are_refused_naming_the_flag(tmp_path, capsys, flags, named):
    argv = ["run", str(GRAPH), "--scenario", "Server", "--output", str(tmp_path / "o"), *flags]
    assert main(argv) == 2
    assert named in capsys.readouterr().err


def test_an_output_that_cannot_be_written_is_refused_before_the_run(tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("")
    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(0o500)
    cases = [a_file, a_file / "under"]
    if os.geteuid() != 0:  # root writes anywhere: the read-only cases only mean something to a user
        cases += [read_only, read_only / "sub"]
    for output in cases:
        assert main(["run", str(GRAPH), "--scenario", "Offline", "--output", str(output)]) == 2
        err = capsys.readouterr().err
        assert "--output" in err and str(output.parent if output.name in ("under", "sub") else output) in err


def test_a_report_that_cannot_be_written_is_refused_before_the_run(tmp_path, capsys):
    for report in (tmp_path, tmp_path / "missing" / "r.json"):
        assert main(["run", "graphs/hello.yaml", "--quiet", "--report", str(report)]) == 2
        assert "--report" in capsys.readouterr().err


def test_time_alone_makes_a_quick_run_not_the_conf_s_query_minimum():
    import mlperf_loadgen as lg

    from flowgraph.loadgen import build_settings

    settings, note = build_settings(lg, LoadgenOptions(scenario="Offline", time_s=2), "resnet50")
    assert settings.min_duration_ms == 2000 and settings.min_query_count == 1  # not 24,576
    assert "quick run" in note
    settings, _ = build_settings(lg, LoadgenOptions(scenario="Offline"), "resnet50")
    assert settings.min_query_count == 24576  # the built-in mlperf.conf when no quick-run flag is given


def test_a_failed_test_still_writes_its_report(tmp_path, dataset, answer_model, capsys):
    report = tmp_path / "r.json"
    argv = [
        "run",
        str(GRAPH),
        "--scenario",
        "Offline",
        "--count",
        "50",
        "--output",
        str(tmp_path / "o"),
        "--report",
        str(report),
        "--set",
        f"model.path={constant_class_model(tmp_path / 'sevens.onnx', answer=3, batch=7)}",
        "--set",
        f"dataset.path={dataset}",
    ]
    assert main(argv) == 1  # the model takes batches of 7 only: the first full batch fails
    data = json.loads(report.read_text())
    assert data["failures"][0]["node"] == "inference" and "report written" in capsys.readouterr().err


def test_stream_scenarios_name_the_early_stopping_estimate_as_the_checker_s_figure():
    from flowgraph.loadgen.cli import metric_lines

    metrics = {
        "90.0th percentile latency (ns)": "70573032",
        "early stopping 90.0th percentile estimate (ns)": "99927161",
        "QPS w/o loadgen overhead": "17.04",
    }
    lines = metric_lines("SingleStream", metrics)
    assert lines[0] == "90.0th percentile latency: 70.573 ms  (LoadGen's plain percentile)"
    assert (
        lines[1]
        == "early stopping 90.0th percentile estimate: 99.927 ms  <- the result the submission checker records"
    )
    assert "submission checker" not in "".join(metric_lines("Server", metrics))


def test_a_singlestream_run_prints_both_figures_and_accuracy_prints_its_verdict(
    tmp_path, dataset, answer_model, capsys
):
    sets = ["--set", f"model.path={answer_model}", "--set", f"dataset.path={dataset}"]
    assert (
        main(
            [
                "run",
                str(GRAPH),
                "--scenario",
                "SingleStream",
                "--count",
                "80",
                "--output",
                str(tmp_path / "s"),
                *sets,
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "early stopping 90.0th percentile estimate:" in printed and "submission checker" in printed
    assert main(["run", str(GRAPH), "--mode", "accuracy", "--output", str(tmp_path / "a"), *sets]) == 0
    printed = capsys.readouterr().out
    assert "Offline accuracy: top-1" in printed and "no summary" not in printed


def test_a_scenario_run_prints_progress_lines(tmp_path, dataset, answer_model, capsys):
    sets = ["--set", f"model.path={answer_model}", "--set", f"dataset.path={dataset}"]
    argv = ["run", str(GRAPH), "--scenario", "SingleStream", "--count", "4000", "--progress-every", "0.2"]
    assert main([*argv, "--output", str(tmp_path / "p"), *sets]) == 0
    err = capsys.readouterr().err.splitlines()
    lines = [line for line in err if "queries answered" in line]
    assert lines and lines[-1].startswith("SingleStream: ") and "/s" in lines[-1]
    views = [line for line in err if line.startswith("  nodes: ")]
    assert views and "inference" in views[-1] and "%" in views[-1]  # the graph answering, node by node


def test_a_scenario_run_is_watched_by_metrics_and_prometheus(tmp_path, dataset, answer_model, capsys):
    import json

    port = free_port()
    sets = ["--set", f"model.path={answer_model}", "--set", f"dataset.path={dataset}"]
    series = tmp_path / "m.jsonl"
    argv = [
        "run",
        str(GRAPH),
        "--scenario",
        "Offline",
        "--count",
        "2000",
        "--quiet",
        "--output",
        str(tmp_path / "o"),
    ]
    watch = ["--metrics", str(series), "--metrics-every", "0.05", "--prometheus-port", str(port)]
    assert main([*argv, *watch, *sets]) == 0
    lines = [json.loads(line) for line in series.read_text().splitlines()]
    assert lines[-1]["final"] and "inference" in lines[-1]["nodes"]
    assert lines[-1]["nodes"]["inference"]["samples"] >= 2000  # the test's samples went through it
    assert f"Prometheus: http://127.0.0.1:{port}/metrics" in capsys.readouterr().err


def test_watching_flags_are_refused_with_audit(capsys):
    assert main(["run", str(GRAPH), "--audit", "TEST01", "--metrics", "m.jsonl"]) == 2
    assert "--metrics watches one run; --audit runs several" in capsys.readouterr().err
