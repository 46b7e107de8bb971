"""Shards on GPUs: the same answers as one process, each shard on the device it was given, and LoadGen
with every shard's QSL in its GPU's memory. With one GPU, two shards share it (devices: [0, 0])."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

cupy = pytest.importorskip("cupy")

from graph_text import with_collector  # noqa: E402

from flowgraph import Graph, run_event_loop  # noqa: E402
from flowgraph.shards.run import run_sharded  # noqa: E402

GRAPH = Path("graphs/resnet50_offline_gpu.yaml").resolve()
SETS = {
    "dataset.synthetic_count": 64,
    "engine_num": 1,
    "batch_size": 16,
    "model.path": "builtin:resnet50-pruned",
}


def devices() -> list[int]:
    count = cupy.cuda.runtime.getDeviceCount()
    return list(range(count)) if count > 1 else [0, 0]


def test_gpu_shards_answer_as_one_process_each_on_its_own_device(tmp_path):
    one = Graph.from_text(with_collector(GRAPH.read_text()), SETS).run_sync(cache_dir=tmp_path)
    expected = {p.sample_id: p.top1 for p in one.results}
    used = devices()
    report = run_event_loop(
        run_sharded(GRAPH, {**SETS, "shards.devices": used, "shards.batch": 8}, print, tmp_path)
    )
    assert {p.sample_id: p.top1 for p in report.results} == expected
    shards = report.summaries["shards"]
    for index, device in enumerate(used):
        assert shards[f"s{index}"]["pci_bus_id"] == cupy.cuda.Device(device).pci_bus_id
    assert len({info["pid"] for info in shards.values()}) == len(used)


def test_loadgen_over_gpu_shards_with_the_qsl_in_gpu_memory(tmp_path):
    pytest.importorskip("mlperf_loadgen")
    from flowgraph.loadgen import LoadgenOptions, run_loadgen

    def answers(extra: dict, name: str) -> dict[int, str]:
        sets = {**SETS, "loadgen.start_from_device": True, **extra}
        options = LoadgenOptions(scenario="Offline", mode="accuracy", output=tmp_path / name)
        run_event_loop(run_loadgen(GRAPH, sets, options, print, tmp_path))
        return {
            e["qsl_idx"]: e["data"]
            for e in json.loads((tmp_path / name / "mlperf_log_accuracy.json").read_text())
        }

    assert answers({"shards.devices": devices()}, "sharded") == answers({}, "one")
