"""The torch backend on the CPU: the same ONNX weights must give the same answers as ONNX Runtime.
(Its CUDA paths — streams, CUDA graphs, fp16 — are tested in tests/gpu on the device.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="the torch backend needs PyTorch (flowgraph[gpu]; CPU torch works too)"
)

from graph_text import with_collector  # noqa: E402

from flowgraph import Graph  # noqa: E402
from flowgraph.nodes.inference.onnx_to_torch import onnx_module  # noqa: E402


def test_onnx_graph_as_torch_matches_onnxruntime(pruned_model):
    import onnxruntime as ort

    x = np.random.default_rng(0).standard_normal((3, 3, 224, 224)).astype(np.float32) * 50
    expected = ort.InferenceSession(str(pruned_model), providers=["CPUExecutionProvider"]).run(
        None, {"input_tensor": x}
    )[0]
    with torch.inference_mode():
        got = onnx_module(pruned_model)(torch.from_numpy(x)).numpy()
    assert np.abs(got - expected).max() < 1e-3 * max(1.0, np.abs(expected).max())
    assert (got.argmax(1) == expected.argmax(1)).all()


def test_unsupported_operator_is_named(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Sin", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "sin.onnx")
    )
    with pytest.raises(ValueError, match=r"cannot run ONNX operators \['Sin'\]"):
        onnx_module(tmp_path / "sin.onnx")


def test_torch_backend_in_the_graph_agrees_with_onnxruntime(dataset, pruned_model, tmp_path):
    text = with_collector(Path("graphs/resnet50_offline.yaml").read_text())
    base = {"dataset.path": str(dataset), "model.path": str(pruned_model), "count": 12, "batch_size": 4}
    ort_run = Graph.from_text(text, base).run_sync(cache_dir=tmp_path)
    torch_run = Graph.from_text(text, {**base, "inference.backend": "torch", "engine_num": 2}).run_sync(
        cache_dir=tmp_path
    )
    by_id = {p.sample_id: p.top1 for p in ort_run.results}
    assert {p.sample_id: p.top1 for p in torch_run.results} == by_id
    # two batches in flight per engine (launch, then collect later): the same answers
    pipelined = Graph.from_text(
        text, {**base, "inference.backend": "torch", "inference.in_flight": 2, "max_wait_us": 0}
    ).run_sync(cache_dir=tmp_path)
    assert {p.sample_id: p.top1 for p in pipelined.results} == by_id
    assert torch_run.summaries["postprocess"]["backend"] == "torch"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.compile's imports use torch.jit (2.13)
@pytest.mark.parametrize(
    ("shapes", "variants_per_engine"),
    [("auto", 3), ("static", 19)],  # auto: first size, dynamic, bs 1; static: each of 19 Server buckets
)
def test_compiled_engines_leave_dynamo_room_for_every_engines_variants(
    pruned_model, tmp_path, shapes, variants_per_engine
):
    # Dynamo's compiled variants are counted per code object, shared by all engines' modules; at the
    # default limit (8) a second compiled engine's later batch sizes silently ran eager on the H100.
    from flowgraph.nodes.inference.node import InferenceParams
    from flowgraph.nodes.inference.torch_backend import TorchEngine, graph_sizes

    class Ctx:
        cache_dir = tmp_path

        @staticmethod
        async def offload(fn, *args):
            return fn(*args)

    config = torch._dynamo.config
    before = config.recompile_limit
    try:
        config.recompile_limit = 8
        params = InferenceParams(
            backend="torch",
            model=str(pruned_model),
            compile=True,
            compile_shapes=shapes,
            engine_num=3,
            batch_sizes=[128],
            batch_step=8,
        )
        assert len(graph_sizes([128], 8)) == 19
        for index in range(3):
            TorchEngine(pruned_model, params, index, Ctx())  # compiles lazily: nothing runs here
        assert config.recompile_limit >= 3 * variants_per_engine + 1
    finally:
        config.recompile_limit = before
