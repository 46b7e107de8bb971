"""The torch backend on the CPU: the same ONNX weights must give the same answers as ONNX Runtime.
(Its CUDA paths — streams, CUDA graphs, fp16 — are tested in tests/gpu on the device.)"""

from __future__ import annotations

import gc
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
    # ranked by the engine (top_k), then split per sample: the same top-5 as ranking the scores here
    ranked = Graph.from_text(text, {**base, "inference.backend": "torch", "inference.top_k": 5}).run_sync(
        cache_dir=tmp_path
    )
    assert {p.sample_id: p.top5 for p in ranked.results} == {p.sample_id: p.top5 for p in ort_run.results}
    assert torch_run.summaries["postprocess"]["backend"] == "torch"


def _context(cache_dir):
    class Ctx:
        @staticmethod
        async def offload(fn, *args):
            return fn(*args)

    Ctx.cache_dir = cache_dir
    return Ctx()


def test_engines_of_a_node_share_one_module_and_a_later_graph_builds_its_own(pruned_model, tmp_path):
    from flowgraph.nodes.inference.torch_backend import TorchEngine, TorchParams

    params = TorchParams(backend="torch", model=str(pruned_model), engine_num=2)
    engines = [TorchEngine(pruned_model, params, index, _context(tmp_path)) for index in range(2)]
    assert engines[1].module is engines[0].module
    assert [engine.shared for engine in engines] == [False, True]
    bf16 = TorchEngine(pruned_model, params.model_copy(update={"precision": "bf16"}), 0, _context(tmp_path))
    assert not bf16.shared and bf16.module is not engines[0].module
    del engines, bf16
    gc.collect()
    later = TorchEngine(pruned_model, params, 0, _context(tmp_path))
    assert not later.shared  # the first engines are gone, and their module with them
    x = torch.zeros((1, 3, 224, 224))
    with torch.inference_mode():
        assert later.module(x).shape == (1, 1000)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.compile's imports use torch.jit (2.13)
@pytest.mark.parametrize(
    ("shapes", "variants_per_module"),
    [("auto", 3), ("static", 19)],  # auto: first size, dynamic, bs 1; static: each of 19 Server buckets
)
def test_each_compiled_module_leaves_dynamo_room_for_its_variants(
    pruned_model, tmp_path, shapes, variants_per_module
):
    # Dynamo counts compiled variants per code object, and every module built in a process shares its
    # forward's code; at the default limit (8) a second compiled module's later batch sizes silently
    # ran eager on the H100. Three graphs run one after another in one process (as the benches do).
    from flowgraph.nodes.inference.torch_backend import TorchEngine, TorchParams, graph_sizes

    config = torch._dynamo.config
    before = config.recompile_limit
    try:
        config.recompile_limit = 8
        params = TorchParams(
            backend="torch",
            model=str(pruned_model),
            compile=True,
            compile_shapes=shapes,
            batch_sizes=[128],
            batch_step=8,
        )
        assert len(graph_sizes([128], 8)) == 19
        for _ in range(3):
            engine = TorchEngine(pruned_model, params, 0, _context(tmp_path))  # compiles lazily
            assert not engine.shared
            del engine
            gc.collect()
        assert config.recompile_limit >= 3 * variants_per_module + 1
    finally:
        config.recompile_limit = before


def test_the_engine_ranks_as_postprocess_does_ties_included(pruned_model, tmp_path):
    from flowgraph.nodes.inference.torch_backend import TorchEngine, TorchParams
    from flowgraph.nodes.postprocess import rank_top

    params = TorchParams(backend="torch", model=str(pruned_model), top_k=5)
    engine = TorchEngine(pruned_model, params, 0, _context(tmp_path))
    scores = torch.randn(16, 1000)
    scores[3, [10, 20, 30]] = 100.0  # a three-way tie at the top: lower class first, as on the host
    ranked = engine._rank_top(scores)
    assert ranked.dtype == torch.int32
    assert ranked.tolist() == rank_top(scores.numpy(), 5).tolist()
    assert ranked[3, :3].tolist() == [10, 20, 30]
