"""The ResNet50 graph end to end on the CPU: predictions, accuracy, failures, caching."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from graph_text import with_collector
from tiny_models import constant_class_model

from flowgraph import Graph, NodeFailure

GRAPH = "graphs/resnet50_offline.yaml"


def direct_predictions(dataset, model) -> dict[int, list[int]]:
    """Top-5 per sample from a plain ONNX Runtime session, one image at a time: the reference."""
    import numpy as np
    import onnxruntime as ort

    from flowgraph.nodes.dataset import read_val_map
    from flowgraph.nodes.postprocess import top_k
    from flowgraph.nodes.preprocess import decode, preprocess_image

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    out = {}
    for index, path, _ in read_val_map(dataset / "val_map.txt", dataset):
        x = preprocess_image(decode(path.read_bytes(), path))[None]
        out[index] = top_k(session.run(None, {"input_tensor": x.astype(np.float32)})[0][0], 5)
    return out


def run_graph(dataset, model, tmp_path, **overrides):
    graph = Graph.from_yaml(GRAPH, {"dataset.path": str(dataset), "model.path": str(model), **overrides})
    return graph.run_sync(cache_dir=tmp_path)


@pytest.mark.parametrize(
    ("batch_size", "engine_num", "preprocess_workers"), [(1, 1, 1), (5, 2, 3), (8, 3, 2)]
)
def test_graph_predictions_equal_a_direct_onnxruntime_run(
    dataset, pruned_model, tmp_path, batch_size, engine_num, preprocess_workers
):
    expected = direct_predictions(dataset, pruned_model)
    assert len({p[0] for p in expected.values()}) > 3, (
        "the model must tell samples apart for this test to mean much"
    )
    graph = Graph.from_text(
        with_collector(Path(GRAPH).read_text()),
        {
            "dataset.path": str(dataset),
            "model.path": str(pruned_model),
            "batch_size": batch_size,
            "engine_num": engine_num,
            "preprocess_workers": preprocess_workers,
            "threads": 1,
        },
    )
    report = graph.run_sync(cache_dir=tmp_path)
    got = {p.sample_id: list(p.top5) for p in report.results}
    assert got.keys() == expected.keys()
    assert {k: v[0] for k, v in got.items()} == {k: v[0] for k, v in expected.items()}
    assert report.samples == {"entered": 24, "completed": 24, "failed": 0, "dropped": 0}
    if engine_num > 1:
        assert all(n > 0 for n in report.summaries["gpu_schedule"]["batches per engine"])


def test_count_limits_the_run(dataset, pruned_model, tmp_path):
    report = run_graph(dataset, pruned_model, tmp_path, count=5)
    assert report.samples["completed"] == 5 and report.summaries["postprocess"]["labelled"] == 5


def test_accuracy_reaches_100_and_0_percent_on_a_model_with_a_known_answer(dataset, tmp_path):
    from flowgraph.nodes.dataset import read_val_map

    labels = [label for _, _, label in read_val_map(dataset / "val_map.txt", dataset)]
    answer = labels[0]
    model = constant_class_model(tmp_path / "const.onnx", answer)
    all_right = tmp_path / "right"
    shutil.copytree(dataset, all_right)
    lines = (all_right / "val_map.txt").read_text().splitlines()
    (all_right / "val_map.txt").write_text("".join(f"{line.split()[0]} {answer}\n" for line in lines))
    summary = run_graph(all_right, model, tmp_path).summaries["postprocess"]
    assert summary["top1"] == 1.0 and summary["top5"] == 1.0
    summary = run_graph(all_right, model, tmp_path, label_offset=-1).summaries["postprocess"]
    assert summary["top1"] == 0.0 and summary["top5"] == 1.0  # the runner-up shifted onto the label
    (all_right / "val_map.txt").write_text(
        "".join(f"{line.split()[0]} {(answer + 7) % 1000}\n" for line in lines)
    )
    summary = run_graph(all_right, model, tmp_path).summaries["postprocess"]
    assert summary["top1"] == 0.0 and summary["top5"] == 0.0


def test_flagperf_metrics_are_reported(dataset, pruned_model, tmp_path):
    summary = run_graph(dataset, pruned_model, tmp_path, batch_size=4).summaries["postprocess"]
    assert summary["precision"] == "fp32" and summary["batch_size"] == 4 and summary["images"] == 24
    assert 0 < summary["p_infer_whole"] <= summary["p_infer_core"]
    assert 0 < summary["latency_ms_p50"] <= summary["latency_ms_p99"]
    assert summary["host_peak_memory_mb"] > 0


def test_missing_dataset_folder_is_named(pruned_model, tmp_path):
    with pytest.raises(NodeFailure, match=r"node 'init'.*dataset folder .*nowhere does not exist"):
        run_graph(tmp_path / "nowhere", pruned_model, tmp_path)


def test_malformed_val_map_line_names_file_and_line(dataset, pruned_model, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(dataset, broken)
    lines = (broken / "val_map.txt").read_text().splitlines()
    lines[2] = lines[2].split()[0] + " cat"
    (broken / "val_map.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(NodeFailure, match=r"val_map.txt:3: expected '<file name> <integer label>'"):
        run_graph(broken, pruned_model, tmp_path)
    report = run_graph(broken, pruned_model, tmp_path, **{"init.on_error": "skip"})
    assert report.samples["completed"] == 23 and len(report.failures) == 1
    assert str(report.failures[0].sample).endswith("val_map.txt:3")


def test_file_that_is_not_an_image_fails_naming_it_or_is_skipped(dataset, pruned_model, tmp_path):
    broken = tmp_path / "notjpeg"
    shutil.copytree(dataset, broken)
    victim = sorted(broken.glob("*.JPEG"))[4]
    victim.write_bytes(b"this is not a jpeg")
    with pytest.raises(
        NodeFailure, match=rf"node 'preprocess'.*on sample 4.*{victim.name}: not a decodable image"
    ):
        run_graph(broken, pruned_model, tmp_path)
    report = run_graph(broken, pruned_model, tmp_path, **{"preprocess.on_error": "skip"})
    assert [f.sample for f in report.failures] == [4]
    assert report.samples == {"entered": 24, "completed": 23, "failed": 1, "dropped": 0}


def test_preprocessed_cache_is_reused(dataset, pruned_model, tmp_path):
    first = run_graph(dataset, pruned_model, tmp_path, **{"preprocess.cache": True})
    cached = list((tmp_path / "preprocessed").glob("*.npy"))
    assert len(cached) == 24
    stamps = {p: p.stat().st_mtime_ns for p in cached}
    second = run_graph(dataset, pruned_model, tmp_path, **{"preprocess.cache": True})
    assert {p: p.stat().st_mtime_ns for p in cached} == stamps  # read, not rewritten
    assert first.summaries["postprocess"]["top1"] == second.summaries["postprocess"]["top1"]


def test_cuda_inference_without_cupy_or_gpu_is_a_validation_error(monkeypatch):
    from flowgraph import GraphValidationError
    from flowgraph.nodes import gpu

    monkeypatch.setattr(
        gpu, "cuda_problem", lambda what: f"{what} needs a CUDA GPU, and this machine has none"
    )
    with pytest.raises(
        GraphValidationError, match=r"node 'inference': inference backend torch on cuda needs a CUDA GPU"
    ):
        Graph.from_yaml(GRAPH, {"inference.backend": "torch", "inference.device": "cuda"})


def test_gpu_graph_fails_validation_on_a_machine_without_a_gpu():
    from flowgraph import GraphValidationError
    from flowgraph.nodes.gpu import cuda_problem

    if cuda_problem("x") is None:
        pytest.skip("this machine has a usable GPU")
    with pytest.raises(GraphValidationError) as err:
        Graph.from_yaml("graphs/resnet50_offline_gpu.yaml")
    assert "node 'memory_copy': memory_copy to cuda needs" in str(err.value)
    assert "node 'inference': inference backend torch on cuda needs" in str(err.value)


def test_postprocess_on_whole_batches_matches_the_per_sample_path(dataset, pruned_model, tmp_path):
    base = {"dataset.path": str(dataset), "model.path": str(pruned_model), "batch_size": 4}
    text = with_collector(Path(GRAPH).read_text())
    per_sample = Graph.from_text(text, base).run_sync(cache_dir=tmp_path)
    bypassed = text.replace("scenarios:\n", "scenarios:\n  Fast: {bypass: [batch_split]}\n")
    batched = Graph.from_text(bypassed, base, scenario="Fast").run_sync(cache_dir=tmp_path)
    top1 = {}
    for predictions in batched.results:  # one Predictions per batch
        top1.update(zip(predictions.sample_ids, predictions.top1, strict=True))
    assert top1 == {p.sample_id: p.top1 for p in per_sample.results}
    assert batched.summaries["postprocess"]["top1"] == per_sample.summaries["postprocess"]["top1"]
    assert batched.samples["completed"] == 24


def test_ranking_on_the_device_is_refused_for_a_backend_that_sends_scores():
    from flowgraph import GraphFileError

    with pytest.raises(GraphFileError) as info:
        Graph.from_text(Path(GRAPH).read_text(), {"inference.top_k": 5}, file=GRAPH)
    message = str(info.value)
    assert GRAPH in message and "inference" in message and "top_k" in message and "onnxruntime" in message


def test_copy_and_postprocess_run_one_worker_per_inference_engine():
    graph = Graph.from_yaml(GRAPH, {"engine_num": 3})
    assert [graph.nodes[n].workers for n in ("memory_copy", "inference", "postprocess")] == [3, 3, 3]
    assert [graph.nodes[n].workers for n in ("batch_merge", "gpu_schedule", "batch_split")] == [1, 1, 1]


def test_memory_copy_sized_for_other_engines_than_inference_is_rejected():
    from flowgraph import GraphValidationError

    text = (
        Path(GRAPH)
        .read_text()
        .replace("    type: memory_copy\n", "    type: memory_copy\n    workers: 2\n", 1)
    )
    with pytest.raises(GraphValidationError) as err:
        Graph.from_text(text, {"engine_num": 3}, file=GRAPH)
    message = str(err.value)
    assert f"{GRAPH}:38: node 'memory_copy': workers is 2" in message
    assert "one worker per engine of 'inference', which has 3" in message


@pytest.mark.parametrize("shape", [[1, 10], None])
def test_a_model_that_does_not_take_images_fails_at_setup_saying_what_it_expects(tmp_path, shape):
    import onnx
    from onnx import TensorProto, helper

    inputs = (
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)]
        if shape
        else [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3, 4, 4]) for n in ("a", "b")]
    )
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    node = helper.make_node("Identity", [inputs[0].name], ["y"])
    model = helper.make_model(helper.make_graph([node], "g", inputs, [out]))
    path = tmp_path / "odd.onnx"
    onnx.save(model, path)
    graph = Graph.from_yaml(GRAPH, {"model.path": str(path), "count": 4})
    with pytest.raises(NodeFailure, match="node 'inference'") as err:
        graph.run_sync(announce=lambda m: None)
    assert ("takes 2 inputs (a, b)" if shape is None else "the pipeline sends images as") in str(err.value)
    assert err.value.report is not None and err.value.report.samples["completed"] == 0  # nothing ran
