"""The shards as Ray actors, on a local Ray cluster of two nodes made here (Ray's own cluster utilities):
the same answers as one process, the actors spread over both nodes, a dead actor named."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="shards on Ray need flowgraph[ray]")
pytest.importorskip("onnxruntime", reason="the ResNet50 pipeline needs flowgraph[cpu]")

from graph_text import with_collector  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from flowgraph import Graph, run_event_loop  # noqa: E402
from flowgraph.shards.pool import ShardFailure  # noqa: E402
from flowgraph.shards.run import run_sharded  # noqa: E402

GRAPH = Path("graphs/resnet50_offline.yaml").resolve()
TESTS = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cluster():
    """Two Ray nodes on this machine, one CPU each; their workers import what these tests import."""
    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    nodes.add_node(num_cpus=1)
    env = {
        "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS / "nodes")]),
        "FLOWGRAPH_ALLOW_MODULES": os.environ.get("FLOWGRAPH_ALLOW_MODULES", ""),
    }
    ray.init(address=nodes.address, runtime_env={"env_vars": env}, log_to_driver=False)
    yield nodes
    ray.shutdown()
    nodes.shutdown()


@pytest.mark.slow
def test_ray_shards_answer_as_one_process_does_from_both_nodes(cluster, tmp_path, dataset, pruned_model):
    sets = {"model.path": str(pruned_model), "dataset.path": str(dataset)}
    one = Graph.from_text(with_collector(GRAPH.read_text()), sets).run_sync(cache_dir=tmp_path)
    expected = {p.sample_id: p.top1 for p in one.results}
    ray_sets = {**sets, "shards.devices": 2, "shards.runner": "ray", "shards.batch": 4}
    report = run_event_loop(run_sharded(GRAPH, ray_sets, lambda m: None, tmp_path))
    assert {p.sample_id: p.top1 for p in report.results} == expected
    placed = {info["node_id"] for info in report.summaries["shards"].values()}
    assert len(placed) == 2  # one actor on each node of the cluster
    # the actors are gone: each held one CPU of the cluster's two
    assert _eventually(lambda: ray.available_resources().get("CPU") == 2.0)


def _eventually(condition, seconds: float = 10.0) -> bool:
    import time

    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_a_ray_shard_that_dies_fails_the_run_naming_it(cluster, tmp_path, dataset):
    graph = tmp_path / "die.yaml"
    graph.write_text(
        f"""
nodes:
  init: {{type: imagenet, params: {{path: "{dataset}"}}}}
  die: {{type: "fixture_nodes:DieOnSample", params: {{sample: 5, how: exit}}}}
  out: {{type: collect}}
edges:
  - {{from: init, to: die}}
  - {{from: die, to: out}}
shards: {{devices: 2, runner: ray, batch: 4}}
"""
    )
    with pytest.raises(ShardFailure, match=r"shard \d \(cpu\): the shard's actor died"):
        run_event_loop(run_sharded(graph, {}, lambda m: None, tmp_path))


@pytest.mark.slow
def test_loadgen_over_ray_shards_answers_as_over_processes(cluster, tmp_path, dataset, pruned_model):
    pytest.importorskip("mlperf_loadgen", reason="LoadGen scenarios need flowgraph[loadgen]")
    import json

    from flowgraph.loadgen import LoadgenOptions, run_loadgen

    def answers(runner: str) -> dict[int, str]:
        sets = {"model.path": str(pruned_model), "dataset.path": str(dataset), "shards.devices": 2}
        options = LoadgenOptions(scenario="Offline", mode="accuracy", output=tmp_path / runner)
        run_event_loop(
            run_loadgen(GRAPH, {**sets, "shards.runner": runner}, options, lambda m: None, tmp_path)
        )
        return {
            e["qsl_idx"]: e["data"]
            for e in json.loads((tmp_path / runner / "mlperf_log_accuracy.json").read_text())
        }

    assert answers("ray") == answers("process")
