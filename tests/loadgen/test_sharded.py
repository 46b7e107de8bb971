"""LoadGen over a sharded graph: the same answers as one process in every scenario, VALID runs, and a
shard's failure answering every query and naming the shard."""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

import pytest

pytest.importorskip("mlperf_loadgen", reason="LoadGen scenarios need flowgraph[loadgen]")

from tiny_models import constant_class_model  # noqa: E402

from flowgraph import run_event_loop  # noqa: E402
from flowgraph.loadgen import LoadgenOptions, run_loadgen  # noqa: E402
from flowgraph.shards.pool import ShardFailure  # noqa: E402

GRAPH = Path("graphs/resnet50_offline.yaml")
SCENARIOS = ("SingleStream", "MultiStream", "Server", "Offline")


def run(tmp_path, sets, **options):
    return run_event_loop(
        run_loadgen(GRAPH, sets, LoadgenOptions(**options), announce=lambda m: None, cache_dir=tmp_path)
    )


def logged_answers(folder: Path) -> dict[int, str]:
    entries = json.loads((folder / "mlperf_log_accuracy.json").read_text())
    answers: dict[int, set[str]] = {}
    for e in entries:
        answers.setdefault(e["qsl_idx"], set()).add(e["data"])
    assert all(len(v) == 1 for v in answers.values()), "one sample answered two ways in one run"
    return {k: next(iter(v)) for k, v in answers.items()}


@pytest.mark.slow
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_two_and_four_shards_answer_every_sample_as_one_process_does(
    tmp_path, dataset, pruned_model, scenario
):
    """Accuracy mode: LoadGen issues every sample as the scenario issues queries; the pruned ResNet50
    gives answers that tell samples apart."""
    sets = {"model.path": str(pruned_model), "dataset.path": str(dataset)}
    extra = {"target_qps": 50, "target_latency_ms": 1000} if scenario == "Server" else {}
    run(tmp_path, sets, scenario=scenario, mode="accuracy", output=tmp_path / "one", **extra)
    expected = logged_answers(tmp_path / "one")
    assert len(expected) == 24 and len(set(expected.values())) > 1
    for shards in (2, 4):
        out = tmp_path / f"shards{shards}"
        result = run(
            tmp_path,
            {**sets, "shards.devices": shards},
            scenario=scenario,
            mode="accuracy",
            output=out,
            **extra,
        )
        assert logged_answers(out) == expected
        assert result.extra["shards"] == shards


@pytest.mark.parametrize(
    ("scenario", "settings"),
    [
        ("SingleStream", {"count": 100}),
        ("MultiStream", {"count": 662}),
        ("Server", {"count": 500, "target_qps": 300, "target_latency_ms": 200}),
        ("Offline", {"count": 1000}),
    ],
)
def test_every_scenario_is_valid_on_two_shards(tmp_path, dataset, scenario, settings):
    model = constant_class_model(tmp_path / "c.onnx", answer=3)
    sets = {"model.path": str(model), "dataset.path": str(dataset), "shards.devices": 2}
    result = run(tmp_path, sets, scenario=scenario, output=tmp_path / "o", **settings)
    assert result.valid is True, result.reasons
    assert not multiprocessing.active_children()


def test_a_failing_shard_fails_the_test_answers_every_query_and_names_itself(tmp_path, dataset):
    sevens = constant_class_model(tmp_path / "sevens.onnx", answer=3, batch=7)  # batches of 7 only
    sets = {"model.path": str(sevens), "dataset.path": str(dataset), "shards.devices": 2}
    t0 = time.perf_counter()
    with pytest.raises(ShardFailure, match=r"shard \d \(cpu\), node 'inference'") as caught:
        run(tmp_path, sets, scenario="Offline", count=200, output=tmp_path / "f", warm_up_batches=0)
    assert time.perf_counter() - t0 < 30
    assert "ShardFailure" in (tmp_path / "f" / "flowgraph_error.txt").read_text()
    assert "Scenario : Offline" in (tmp_path / "f" / "mlperf_log_summary.txt").read_text()  # LoadGen ended
    assert caught.value.node == "inference"
    assert not multiprocessing.active_children()
