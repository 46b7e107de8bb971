"""MLPerf compliance tests: the audit.config files, the verification rules (MLCommons' verify_accuracy.py
and verify_performance.py, re-implemented here from their published behaviour), and ``--audit`` end to
end on the CPU pipeline."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("mlperf_loadgen", reason="LoadGen scenarios need flowgraph[loadgen]")

from tiny_models import constant_class_model  # noqa: E402

from flowgraph import GraphFileError  # noqa: E402
from flowgraph.cli import main  # noqa: E402
from flowgraph.loadgen import check_conf  # noqa: E402
from flowgraph.loadgen.audit import (  # noqa: E402
    AUDIT_TESTS,
    audit_config_text,
    read_detail_log,
    verify_accuracy,
    verify_performance,
)

GRAPH = "graphs/resnet50_offline.yaml"


# --- what the official scripts compute, computed here independently ---------------------------------


def official_accuracy_rule(reference: list[dict], tested: list[dict], dtype: str) -> bool:
    """MLCommons' TEST01 rule as its README states it: first occurrence of each sample in the accuracy
    log; each logged sample of the performance run must carry the same first value; one match at least."""
    import numpy as np

    kinds = {"float32": "<f4", "int32": "<i4", "int64": "<i8"}
    first = {}
    for e in reference:
        first.setdefault(e["qsl_idx"], e["data"])
    matched = 0
    for e in tested:
        if e["qsl_idx"] not in first:
            continue
        matched += 1
        a = np.frombuffer(bytes.fromhex(first[e["qsl_idx"]]), kinds[dtype])
        b = np.frombuffer(bytes.fromhex(e["data"]), kinds[dtype])
        if (a.size == 0) != (b.size == 0) or (a.size and a[0] != b[0]):
            return False
    return matched > 0


def entry(index: int, value: float | None, dtype: str = "float32") -> dict:
    import numpy as np

    kinds = {"float32": "<f4", "int32": "<i4", "int64": "<i8"}
    data = b"" if value is None else np.array([value], kinds[dtype]).tobytes()
    return {"seq_id": index, "qsl_idx": index, "data": data.hex().upper()}


@pytest.mark.parametrize("dtype", ["float32", "int32", "int64"])
@pytest.mark.parametrize(
    ("reference", "tested"),
    [
        ([(0, 3), (1, 5), (2, 7)], [(1, 5), (2, 7)]),  # a subset, all equal
        ([(0, 3), (1, 5)], [(1, 6)]),  # one answer differs
        ([(0, 3), (0, 9), (1, 5)], [(0, 3)]),  # the first occurrence counts
        ([(0, 3)], [(4, 3)]),  # no sample in common
        ([(0, None), (1, 2)], [(0, None), (1, 2)]),  # empty equals empty
        ([(0, None)], [(0, 4)]),  # empty against an answer
    ],
)
def test_test01_accuracy_agrees_with_the_official_rule(tmp_path, dtype, reference, tested):
    ref = [entry(i, v, dtype) for i, v in reference]
    got = [entry(i, v, dtype) for i, v in tested]
    (tmp_path / "ref.json").write_text(json.dumps(ref))
    (tmp_path / "test.json").write_text(json.dumps(got))
    check = verify_accuracy(tmp_path / "ref.json", tmp_path / "test.json", dtype)
    assert check.passed == official_accuracy_rule(ref, got, dtype)
    assert ("TEST PASS" in check.text()) == check.passed


def test_a_mismatch_names_the_sample_and_both_answers(tmp_path):
    (tmp_path / "r.json").write_text(json.dumps([entry(4, 3)]))
    (tmp_path / "t.json").write_text(json.dumps([entry(4, 8)]))
    check = verify_accuracy(tmp_path / "r.json", tmp_path / "t.json")
    assert not check.passed and "sample 4" in check.reason and "3.0" in check.reason and "8.0" in check.reason


def detail_log(path: Path, scenario: str, score: float, valid: bool = True, latency_ns: int = 0) -> Path:
    key = {
        "Offline": "result_samples_per_second",
        "Server": "result_completed_samples_per_sec",
        "SingleStream": "early_stopping_latency_ss",
        "MultiStream": "early_stopping_latency_ms",
    }[scenario]
    pairs = [
        ("effective_scenario", scenario),
        ("effective_target_latency_ns", latency_ns),
        ("result_validity", "VALID" if valid else "INVALID"),
        (key, score),
    ]
    path.write_text("".join(f":::MLLOG {json.dumps({'key': k, 'value': v})}\n" for k, v in pairs))
    return path


@pytest.mark.parametrize(
    ("test", "scenario", "reference", "tested", "passes"),
    [
        ("TEST01", "Offline", 1000, 1095, True),
        ("TEST01", "Offline", 1000, 905, True),
        ("TEST01", "Offline", 1000, 1110, False),  # faster is outside the bound too
        ("TEST01", "Offline", 1000, 880, False),
        ("TEST05", "Server", 1000, 1050, True),
        ("TEST05", "Server", 1000, 850, False),
        ("TEST01", "SingleStream", 150_000, 178_000, True),  # short latencies: 20%
        ("TEST01", "SingleStream", 900_000, 1_000_000, False),  # 11% slower at 0.9 ms: 10%
        ("TEST04", "Offline", 1000, 1095, True),
        ("TEST04", "Offline", 1000, 1150, False),  # same-sample run much faster: caching
        ("TEST04", "Offline", 1000, 500, True),  # slower is fine
        ("TEST04", "SingleStream", 1_000_000, 700_000, False),  # 1e9/latency is 43% higher
        ("TEST04", "SingleStream", 1_000_000, 900_000, True),  # 11% higher, under the stream's 20%
    ],
)
def test_performance_rules(tmp_path, test, scenario, reference, tested, passes):
    ref = detail_log(tmp_path / "ref.txt", scenario, reference)
    got = detail_log(tmp_path / "test.txt", scenario, tested)
    check = verify_performance(test, ref, got)
    assert check.passed is passes, check.reason


def test_an_invalid_run_or_another_latency_bound_fails(tmp_path):
    ref = detail_log(tmp_path / "ref.txt", "Server", 1000, latency_ns=15_000_000)
    invalid = detail_log(tmp_path / "a.txt", "Server", 1000, valid=False, latency_ns=15_000_000)
    bound = detail_log(tmp_path / "b.txt", "Server", 1000, latency_ns=100_000_000)
    assert "INVALID" in verify_performance("TEST01", ref, invalid).reason
    assert "latency bound" in verify_performance("TEST04", ref, bound).reason


def test_a_detail_log_cut_short_keeps_the_keys_before_the_cut(tmp_path):
    path = detail_log(tmp_path / "d.txt", "Offline", 12.5)
    path.write_text(path.read_text() + ':::MLLOG {"key": "result_vali')
    assert read_detail_log(path)["result_samples_per_second"] == 12.5


@pytest.mark.parametrize("test", AUDIT_TESTS)
def test_each_audit_config_passes_the_conf_check_for_the_model_loadgen_reads_it_for(tmp_path, test):
    path = tmp_path / "audit.config"
    path.write_text(audit_config_text(test))
    keys = {line.key for line in check_conf(path, "*", user=True)}
    assert "mode" in keys


def test_an_audit_config_naming_a_model_is_refused_because_loadgen_would_ignore_it(tmp_path):
    path = tmp_path / "audit.config"
    path.write_text("resnet50.Offline.performance_issue_same = 1\n")
    with pytest.raises(GraphFileError, match=r"audit.config for the model '\*' only") as caught:
        check_conf(path, "*", user=True)
    assert "*.Offline.performance_issue_same" in str(caught.value)


# --- --audit end to end ------------------------------------------------------------------------------


def audit(tmp_path, dataset, model, test, *extra: str) -> tuple[int, str]:
    return main(
        [
            "run",
            GRAPH,
            "--audit",
            test,
            "--scenario",
            "Offline",
            "--count",
            "300",
            "--output",
            str(tmp_path / "Offline"),
            "--set",
            f"model.path={model}",
            "--set",
            f"dataset.path={dataset}",
            "--quiet",
            *extra,
        ]
    )


@pytest.mark.slow
def test_test01_and_test04_pass_on_the_cpu_pipeline_and_are_laid_out_for_the_checker(
    tmp_path, dataset, pruned_model, capsys
):
    """The pruned ResNet50 (compute-bound like the real model, so a same-sample run gains nothing from
    the cache); the references are run by the first audit and reused by the second."""
    root = tmp_path / "Offline"
    for attempt in (1, 2):
        # A run's speed on a shared 2-core machine can swing past the 10% bound when something else runs
        # (it did once in CI, beside another test process): a performance-only FAIL is retried once from
        # fresh references. The accuracy check is never retried.
        outcomes = []
        for test in ("TEST01", "TEST04"):
            code = audit(tmp_path, dataset, pruned_model, test)
            outcomes.append((test, code, capsys.readouterr().out))
        if all(code == 0 for _, code, _ in outcomes) or attempt == 2:
            break
        assert all("accuracy: fail" not in out for _, _, out in outcomes), outcomes
        shutil.rmtree(root)
    for test, code, out in outcomes:
        assert code == 0 and f"{test} Offline: PASS" in out, out
    for path in (
        "performance/run_1/mlperf_log_detail.txt",
        "accuracy/mlperf_log_accuracy.json",
        "TEST01/verify_accuracy.txt",
        "TEST01/verify_performance.txt",
        "TEST01/accuracy/mlperf_log_accuracy.json",
        "TEST01/accuracy/accuracy.txt",
        "TEST01/accuracy/baseline_accuracy.txt",
        "TEST01/performance/run_1/mlperf_log_detail.txt",
        "TEST04/verify_performance.txt",
        "TEST04/performance/run_1/mlperf_log_summary.txt",
    ):
        assert (root / path).is_file(), path
    assert "TEST PASS" in (root / "TEST01/verify_accuracy.txt").read_text().splitlines()
    same = read_detail_log(root / "audit/TEST04/mlperf_log_detail.txt")
    assert same["effective_performance_issue_same"] == 1  # LoadGen applied the audit.config


def test_test01_fails_when_performance_mode_answers_differ_from_the_accuracy_run(tmp_path, dataset, capsys):
    three = constant_class_model(tmp_path / "three.onnx", answer=3)
    seven = constant_class_model(tmp_path / "seven.onnx", answer=7)
    reference = tmp_path / "Offline"
    assert audit(tmp_path, dataset, three, "TEST01") in (0, 1)  # makes the reference runs (answer 3)
    capsys.readouterr()
    code = main(
        [
            "run",
            GRAPH,
            "--audit",
            "TEST01",
            "--scenario",
            "Offline",
            "--count",
            "300",
            "--output",
            str(tmp_path / "other"),
            "--reference",
            str(reference),
            "--set",
            f"model.path={seven}",
            "--set",
            f"dataset.path={dataset}",
            "--quiet",
        ]
    )
    out = capsys.readouterr().out
    assert code == 1 and "TEST01 Offline: FAIL" in out and "answers differ from the accuracy run" in out
    verdict = (tmp_path / "other/TEST01/verify_accuracy.txt").read_text()
    assert "TEST FAIL" in verdict and "TEST PASS" not in verdict


def test_test05_runs_with_other_seeds(tmp_path, dataset):
    model = constant_class_model(tmp_path / "c.onnx", answer=3)
    audit(tmp_path, dataset, model, "TEST05")  # its verdict depends on this machine's noise
    test = read_detail_log(tmp_path / "Offline/audit/TEST05/mlperf_log_detail.txt")
    reference = read_detail_log(tmp_path / "Offline/performance/run_1/mlperf_log_detail.txt")
    assert test["effective_qsl_rng_seed"] != reference["effective_qsl_rng_seed"]
    assert (tmp_path / "Offline/TEST05/verify_performance.txt").is_file()


def test_a_stray_audit_config_in_the_current_folder_is_not_applied(tmp_path, dataset, monkeypatch):
    """LoadGen's default reads ./audit.config into any run; a submission run must not pick one up."""
    model = constant_class_model(tmp_path / "c.onnx", answer=3)
    graph = Path(GRAPH).resolve()
    work = tmp_path / "work"
    work.mkdir()
    (work / "audit.config").write_text(audit_config_text("TEST04"))
    monkeypatch.chdir(work)
    code = main(
        [
            "run",
            str(graph),
            "--scenario",
            "Offline",
            "--count",
            "100",
            "--output",
            str(tmp_path / "plain"),
            "--set",
            f"model.path={model}",
            "--set",
            f"dataset.path={dataset}",
            "--quiet",
        ]
    )
    assert code == 0
    assert read_detail_log(tmp_path / "plain/mlperf_log_detail.txt")["effective_performance_issue_same"] == 0
    assert os.path.exists(work / "audit.config")
