"""A plain run of a sharded graph: the same answers as one process, failures that name the shard and
end the run at once, and nothing left behind (processes, sockets)."""

from __future__ import annotations

import multiprocessing
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime", reason="the ResNet50 pipeline needs flowgraph[cpu]")

from graph_text import with_collector  # noqa: E402
from tiny_models import constant_class_model  # noqa: E402

from flowgraph import Graph, run_event_loop  # noqa: E402
from flowgraph.cli import main  # noqa: E402
from flowgraph.shards.pool import ShardFailure  # noqa: E402
from flowgraph.shards.run import run_sharded  # noqa: E402

GRAPH = Path("graphs/resnet50_offline.yaml").resolve()


def leftovers() -> tuple[list[str], list[str]]:
    children = [p.name for p in multiprocessing.active_children()]
    folders = [p.name for p in Path(tempfile.gettempdir()).glob("flowgraph-shards-*")]
    return children, folders


@pytest.fixture
def no_leftovers():
    before = leftovers()
    yield
    assert leftovers() == before


def answers(report) -> dict[int, int]:
    return {p.sample_id: p.top1 for p in report.results}


@pytest.mark.slow
def test_two_and_four_shards_answer_as_one_process_does(tmp_path, dataset, pruned_model, no_leftovers):
    sets = {"model.path": str(pruned_model), "dataset.path": str(dataset)}
    one = Graph.from_text(with_collector(GRAPH.read_text()), sets).run_sync(cache_dir=tmp_path)
    expected = answers(one)
    assert len(expected) == 24 and len(set(expected.values())) > 1  # answers that tell samples apart
    for shards in (2, 4):
        report = run_event_loop(
            run_sharded(
                GRAPH, {**sets, "shards.devices": shards, "shards.batch": 5}, lambda m: None, tmp_path
            )
        )
        assert answers(report) == expected
        assert report.samples == {"entered": 24, "completed": 24, "failed": 0, "dropped": 0}
        used = {
            n["node"].split(".")[0] for n in report.nodes if n["node"].endswith("inference") and n["items_in"]
        }
        assert len(used) == shards  # every shard ran batches (5 batches of 5 for 24 samples)


def test_a_node_that_raises_in_a_shard_fails_the_run_naming_shard_device_and_node(
    tmp_path, dataset, no_leftovers
):
    sevens = constant_class_model(tmp_path / "sevens.onnx", answer=3, batch=7)  # takes batches of 7 only
    sets = {"model.path": str(sevens), "dataset.path": str(dataset), "shards.devices": 2}
    t0 = time.perf_counter()
    with pytest.raises(ShardFailure) as caught:
        run_event_loop(run_sharded(GRAPH, sets, lambda m: None, tmp_path))
    assert caught.value.node == "inference" and caught.value.device is None
    assert (
        "shard" in str(caught.value)
        and "(cpu)" in str(caught.value)
        and "fixed batch size of 7" in str(caught.value)
    )
    assert time.perf_counter() - t0 < 30


def sharded_chain(path: Path, dataset: Path, name: str, node: str, shards: str) -> Path:
    """A graph file: the dataset's samples -> node ``name`` (``node``, its YAML mapping) -> collect,
    split into shards as ``shards`` (the YAML of its ``shards:`` section) says."""
    path.write_text(
        f"""
nodes:
  init: {{type: imagenet, params: {{path: "{dataset}"}}}}
  {name}: {node}
  out: {{type: collect}}
edges:
  - {{from: init, to: {name}}}
  - {{from: {name}, to: out}}
shards: {shards}
"""
    )
    return path


def die_graph(tmp_path: Path, dataset: Path, how: str) -> Path:
    node = f'{{type: "fixture_nodes:DieOnSample", params: {{sample: 13, how: {how}}}}}'
    return sharded_chain(tmp_path / "die.yaml", dataset, "die", node, "{devices: 2, batch: 4}")


def test_a_shard_whose_process_dies_fails_the_run_at_once(tmp_path, dataset, no_leftovers):
    t0 = time.perf_counter()
    with pytest.raises(ShardFailure, match=r"process died \(exit code 7\)"):
        run_event_loop(run_sharded(die_graph(tmp_path, dataset, "exit"), {}, lambda m: None, tmp_path))
    assert time.perf_counter() - t0 < 30


def test_a_sharded_run_from_the_command_line(tmp_path, dataset, capsys, no_leftovers):
    code = main(["run", str(die_graph(tmp_path, dataset, "none")), "--set", "shards.devices=3"])
    captured = capsys.readouterr()
    assert code == 0 and "24 results" in captured.out and "s2.die" in captured.out  # the third shard ran
    assert "3 shards on cpu, cpu, cpu" in captured.err


def test_the_command_line_names_the_failing_shard(tmp_path, dataset, capsys, no_leftovers):
    code = main(["run", str(die_graph(tmp_path, dataset, "raise")), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "node 'die'" in err and "told to fail on sample 13" in err


def slow_sharded_graph(tmp_path: Path, dataset: Path, seconds: float) -> Path:
    """Two CPU shards, two samples a batch, each sample taking ``seconds`` in a ``Slow`` node."""
    node = f'{{type: "fixture_nodes:Slow", params: {{seconds: {seconds}}}}}'
    return sharded_chain(tmp_path / "slow.yaml", dataset, "slow", node, "{devices: 2, batch: 2, credit: 1}")


def test_ctrl_c_stops_sending_lets_the_shards_finish_and_leaves_nothing(tmp_path, dataset):
    import signal

    from cli_process import start_cli

    graph = slow_sharded_graph(tmp_path, dataset, 0.2)
    before = set(Path(tempfile.gettempdir()).glob("flowgraph-shards-*"))
    proc = start_cli("run", str(graph), "--progress-every", "0.1")
    try:
        deadline = time.monotonic() + 60
        line = ""
        while "samples answered" not in line and time.monotonic() < deadline:
            line = proc.stderr.readline()  # the first batches came back: the shards are running
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 1, err
    assert "no more batches sent" in err and "stopped by Ctrl-C" in err
    assert "not sent" in err  # what was never sent is said, not lost
    assert set(Path(tempfile.gettempdir()).glob("flowgraph-shards-*")) == before


def test_a_sharded_run_is_watched_summed_over_its_shards(tmp_path, dataset, no_leftovers):
    import json

    from cli_process import free_port, start_cli

    graph = slow_sharded_graph(tmp_path, dataset, 0.05)
    series, port = tmp_path / "m.jsonl", free_port()
    proc = start_cli(
        "run",
        str(graph),
        "--progress-every",
        "0.2",
        "--metrics",
        str(series),
        "--metrics-every",
        "0.2",
        "--prometheus-port",
        str(port),
    )
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in series.read_text().splitlines()]
    last = lines[-1]
    assert last["final"] and last["nodes"]["slow"]["samples"] == 24  # both shards' samples, summed
    assert any(line["nodes"].get("slow", {}).get("busy_pct", 0) > 50 for line in lines)  # mid-run figures
    assert any("slow" in line["nodes"] and line["nodes"]["slow"]["samples"] < 24 for line in lines)
    views = [line for line in err.splitlines() if line.startswith("  nodes: ")]
    assert views and "slow" in views[-1], err
    assert f"Prometheus: http://127.0.0.1:{port}/metrics" in err and "ETA" in err


def test_a_sharded_loadgen_test_is_watched_summed_over_its_shards(tmp_path, dataset, capsys):
    import json

    pytest.importorskip("mlperf_loadgen")
    model = constant_class_model(tmp_path / "const.onnx", answer=3)
    series = tmp_path / "m.jsonl"
    argv = ["run", str(GRAPH), "--scenario", "Offline", "--count", "400", "--output", str(tmp_path / "o")]
    sets = ["--set", f"model.path={model}", "--set", f"dataset.path={dataset}", "--set", "shards.devices=2"]
    watch = ["--metrics", str(series), "--metrics-every", "0.1", "--progress-every", "0.1"]
    assert main([*argv, *sets, *watch]) == 0
    last = json.loads(series.read_text().splitlines()[-1])
    assert last["final"] and last["nodes"]["inference"]["samples"] >= 400  # both shards' samples, summed
    err = capsys.readouterr().err
    assert any(line.startswith("  nodes: ") and "inference" in line for line in err.splitlines()), err
