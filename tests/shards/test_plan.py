"""The shards: section: what the validator accepts and refuses, --set, the cut and the devices."""

from __future__ import annotations

import pytest

from flowgraph import GraphFileError, load_graph, load_graph_text, validate
from flowgraph.shards.plan import LOADER_OUT, SHARD_IN, SHARD_OUT, cut_for_shards, resolve_devices

GRAPH = "graphs/resnet50_offline.yaml"


def sharded(extra: str) -> str:
    return f"extends: ../graphs/resnet50_offline.yaml\nname: s\n{extra}"


def check(tmp_path, text: str):
    (tmp_path / "graphs").mkdir(exist_ok=True)
    path = tmp_path / "graphs" / "g.yaml"
    path.write_text(text.replace("../graphs/", f"{__import__('os').getcwd()}/graphs/"))
    return validate(load_graph(path))


def test_a_sharded_graph_is_the_graph_plus_its_shards(tmp_path):
    checked = check(tmp_path, sharded("shards: {devices: [0, 1], begin: preprocess}\n"))
    assert checked.loaded.spec.shards.devices == [0, 1]
    assert set(checked.nodes) == set(validate(load_graph(GRAPH)).nodes)  # one-device graphs are unchanged


@pytest.mark.parametrize(
    ("shards", "message"),
    [
        ("{begin: nowhere}", "no node named 'nowhere'"),
        ("{begin: init}", "is a source"),
        ("{devices: []}", "non-empty list"),
        ("{devices: 0}", "1 or more"),
        ("{devcies: 2}", "devcies"),
    ],
)
def test_bad_shards_are_refused_with_the_file_and_a_fix(tmp_path, shards, message):
    with pytest.raises(GraphFileError, match=message) as caught:
        check(tmp_path, sharded(f"shards: {shards}\n"))
    assert "g.yaml" in str(caught.value)


def test_a_source_that_cannot_load_by_index_cannot_be_sharded():
    text = """
nodes:
  numbers: {type: source, params: {range: 10}}
  double: {type: map, params: {fn: "operator:neg"}}
  out: {type: collect}
edges:
  - {from: numbers, to: double}
  - {from: double, to: out}
shards: {devices: 2}
"""
    with pytest.raises(GraphFileError, match="cannot load samples by index"):
        validate(load_graph_text(text))


def test_set_shards_devices_from_the_command_line():
    loaded = load_graph(GRAPH, {"shards.devices": [0, 1, 2]})
    assert loaded.spec.shards.devices == [0, 1, 2]
    assert load_graph(GRAPH, {"shards.devices": 3}).spec.shards.devices == 3


def test_the_cut_gives_each_shard_a_loader_and_the_rest_with_its_answers_collected():
    loaded = load_graph(GRAPH, {"shards.devices": 2})
    validate(loaded)
    cut = cut_for_shards(loaded)
    assert cut.begin == "preprocess" and cut.source == "init"
    assert set(cut.loader.spec.nodes) == {"init", LOADER_OUT}
    assert {SHARD_IN, SHARD_OUT, "preprocess", "postprocess"} <= set(cut.shard.spec.nodes)
    assert any(e.source.node == "postprocess" and e.target.node == SHARD_OUT for e in cut.shard.spec.edges)
    assert cut.shard.spec.shards is None and cut.loader.spec.shards is None
    validate(cut.loader)
    validate(cut.shard)


def test_devices_resolve_to_one_entry_per_shard(monkeypatch):
    from flowgraph.shards import plan
    from flowgraph.spec import ShardSpec

    assert resolve_devices(ShardSpec(devices=[0, 0, 1])) == [0, 0, 1]
    assert resolve_devices(ShardSpec(devices=3)) == [None, None, None]
    monkeypatch.setattr(plan, "_visible_gpus", lambda: 0)
    assert resolve_devices(ShardSpec()) == [None] * len(__import__("os").sched_getaffinity(0))
    monkeypatch.setattr(plan, "_visible_gpus", lambda: 2)
    assert resolve_devices(ShardSpec()) == [0, 1]
