"""The CUDA path on a real GPU: streams, pinned copies, CUDA graphs, fp16, nvJPEG, non-blocking waits."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from graph_text import with_collector

from flowgraph import Graph
from flowgraph.nodes.inference.backend import run_one

GPU_GRAPH = "graphs/resnet50_offline_gpu.yaml"


@pytest.fixture(scope="module")
def pruned(tmp_path_factory) -> Path:
    from flowgraph.nodes.inference.resnet50_onnx import build_resnet50

    return build_resnet50(tmp_path_factory.mktemp("m") / "pruned.onnx", "pruned")


@pytest.fixture(scope="module")
def jpegs(tmp_path_factory) -> Path:
    from flowgraph.nodes.dataset import write_synthetic_dataset

    return write_synthetic_dataset(tmp_path_factory.mktemp("d"), 40, seed=2)


def cuda_torch_engine(model: Path, cache_dir: Path, **params: Any) -> Any:
    """A torch engine on the GPU whose offload runs inline: the test drives it from one task."""
    from flowgraph.nodes.inference.torch_backend import TorchEngine, TorchParams

    async def inline(fn: Any, *args: Any) -> Any:
        return fn(*args)

    params = TorchParams(backend="torch", device="cuda", model=str(model), **params)
    return TorchEngine(model, params, 0, SimpleNamespace(cache_dir=cache_dir, offload=inline))


def reference_top1(dataset: Path, model: Path) -> dict[int, int]:
    import onnxruntime as ort

    from flowgraph.nodes.dataset import read_val_map
    from flowgraph.nodes.preprocess import decode, preprocess_image

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    out = {}
    for index, path, _ in read_val_map(dataset / "val_map.txt", dataset):
        x = preprocess_image(decode(path.read_bytes(), path))[None]
        out[index] = int(session.run(None, {"input_tensor": x})[0][0].argmax())
    return out


@pytest.mark.parametrize(
    ("precision", "engines", "batch", "in_flight"),
    [("fp32", 1, 8, 1), ("fp32", 2, 5, 1), ("fp16", 2, 16, 1), ("fp16", 1, 8, 2)],
)
def test_gpu_graph_agrees_with_onnxruntime_on_the_cpu(
    jpegs, pruned, tmp_path, precision, engines, batch, in_flight
):
    expected = reference_top1(jpegs, pruned)
    graph = Graph.from_text(
        with_collector(Path(GPU_GRAPH).read_text()),
        {
            "dataset.path": str(jpegs),
            "model.path": str(pruned),
            "precision": precision,
            "engine_num": engines,
            "batch_size": batch,
            "preprocess_workers": 2,
            "in_flight": in_flight,
        },
    )
    report = graph.run_sync(cache_dir=tmp_path)
    got = {p.sample_id: p.top1 for p in report.results}
    assert got.keys() == expected.keys()
    agree = sum(got[k] == expected[k] for k in got) / len(got)
    # fp32 on the GPU (TF32 convolutions allowed) and fp16 may flip near-ties; most answers must agree.
    assert agree >= (0.9 if precision == "fp32" else 0.8), agree
    if engines > 1:
        assert all(n > 0 for n in report.summaries["gpu_schedule"]["batches per engine"])
    assert report.summaries["postprocess"]["precision"] == precision


def test_cuda_graphbucket_fors_match_eager(pruned, tmp_path):
    import torch

    from flowgraph.nodes.inference.torch_backend import TorchEngine, TorchParams
    from flowgraph.nodes.payloads import Batch

    class Ctx:
        cache_dir = tmp_path
        offload = None

    params = TorchParams(backend="torch", device="cuda", precision="fp32", model=str(pruned))
    graphed = TorchEngine(pruned, params, 0, Ctx())
    eager = TorchEngine(pruned, params.model_copy(update={"cuda_graphs": False}), 1, Ctx())
    x = np.random.default_rng(0).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    a = graphed._launch(Batch([0, 1, 2], [0, 0, 0], x))  # bucket 4, padded
    torch.cuda.synchronize()
    a = a.copy()
    b = eager._launch(Batch([0, 1, 2], [0, 0, 0], x))
    torch.cuda.synchronize()
    assert np.allclose(a, b, atol=1e-2, rtol=1e-2)
    assert (4, torch.uint8, (224, 224, 3)) in graphed.graphs


async def test_batches_launched_before_either_is_collected_keep_their_own_results(pruned, tmp_path):
    # in_flight 2: the second batch is queued on the stream before the first's result is read, so each
    # needs its own pinned result buffer; with one shared buffer both would read the second's scores.
    from flowgraph.nodes.payloads import Batch

    engine = cuda_torch_engine(pruned, tmp_path, precision="fp32", batch_sizes=[4], in_flight=2)
    pinned = [buffer.data_ptr() for buffer in engine._host_out]  # pinned at setup, one per batch in flight
    assert len(set(pinned)) == 2 and all(buffer.is_pinned() for buffer in engine._host_out)
    rng = np.random.default_rng(1)
    xs = [rng.integers(0, 256, (4, 224, 224, 3), dtype=np.uint8) for _ in range(2)]
    alone = [await run_one(engine, Batch([0, 1, 2, 3], [0] * 4, x)) for x in xs]
    assert not np.allclose(alone[0], alone[1])
    handles = [await engine.launch(Batch([0, 1, 2, 3], [0] * 4, x)) for x in xs]
    together = [await engine.collect(h) for h in handles]
    for a, b in zip(alone, together, strict=True):
        assert np.allclose(a, b, atol=1e-3, rtol=1e-3)
    assert [buffer.data_ptr() for buffer in engine._host_out] == pinned  # none pinned during the run
    engine.close()


@pytest.mark.parametrize("way", ["callback", "thread", "spinning thread"])
async def test_waiting_for_the_gpu_does_not_block_the_event_loop(way):
    from concurrent.futures import ThreadPoolExecutor

    import cupy

    from flowgraph.nodes.gpu import new_stream, stream_done

    stream = new_stream()
    a = cupy.random.random((4096, 4096), dtype=cupy.float32)
    with stream:
        for _ in range(40):  # a few hundred ms of GPU work
            a = a @ a
            a /= cupy.linalg.norm(a)
        work_done = cupy.cuda.Event(disable_timing=True)
        work_done.record(stream)
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.001)
            ticks += 1

    pool = ThreadPoolExecutor(1)

    def offload(fn, *args):
        return asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    t = asyncio.ensure_future(ticker())
    t0 = time.perf_counter()
    if way == "callback":
        await stream_done(stream)
    else:
        await stream_done(stream, offload, spin=way == "spinning thread")
    waited = time.perf_counter() - t0
    t.cancel()
    pool.shutdown()
    assert work_done.done  # (the stream itself may still be inside the host function that woke us)
    assert ticks >= waited / 0.001 * 0.3  # the loop kept running while the GPU worked


async def test_memory_copy_uses_pinned_buffers_and_marks_readiness():
    from flowgraph.nodes.gpu import INLINE_BYTES, HostToDevice
    from flowgraph.nodes.payloads import Batch, Images

    async def inline(fn, *args):
        return fn(*args)

    copier = HostToDevice(2)
    x = np.arange(8 * 224 * 224 * 3, dtype=np.uint8).reshape(8, 224, 224, 3)
    assert x.nbytes > INLINE_BYTES  # the pinned path
    array, ready = await copier.copy(Batch(list(range(8)), [0] * 8, x), inline)
    ready.synchronize()
    assert type(array).__module__.startswith("cupy") and np.array_equal(array.get(), x)
    again, _ = await copier.copy(Batch(list(range(8)), [0] * 8, x + 1), inline)
    assert np.array_equal(again.get(), x + 1)
    # a smaller batch after a bigger one reuses the bigger pinned buffer; images stack into it
    small, ready = await copier.copy(Images([4], [0], [x[1] + 2]), inline)
    ready.synchronize()
    assert np.array_equal(small.get(), (x[1] + 2)[None])
    copier.close()


async def test_memory_copy_pins_its_buffers_at_setup_and_copies_through_them():
    from flowgraph.nodes.gpu import HostToDevice
    from flowgraph.nodes.payloads import Images

    async def inline(fn, *args):
        return fn(*args)

    copier = HostToDevice(2, reserve_bytes=8 * 224 * 224 * 3)
    held = [copier.free.get_nowait() for _ in range(2)]
    assert all(host is not None and host.nbytes >= 8 * 224 * 224 * 3 for host, _ in held)
    before = {host.ctypes.data for host, _ in held}
    for item in held:
        copier.free.put_nowait(item)
    parts = [np.full((224, 224, 3), k, np.uint8) for k in range(8)]
    array, ready = await copier.copy(Images(list(range(8)), [0] * 8, parts), inline)
    ready.synchronize()
    assert np.array_equal(array.get(), np.stack(parts))
    after = {copier.free.get_nowait()[0].ctypes.data for _ in range(2)}
    assert after == before  # the batch went through a buffer pinned at setup; none was pinned anew
    copier.close()


@pytest.mark.parametrize("library", [False, True], ids=["separate-arrays", "rows-of-one-array"])
async def test_device_images_are_gathered_by_memory_copy_for_the_engine(pruned, tmp_path, library):
    # start_from_device: batch_merge only references device images (no CUDA call on the loop);
    # memory_copy gathers them on its own stream and the engine waits for that on the GPU. Scores must
    # match the same images stacked on the host, both for a gather in a thread (> 8 images) and on the
    # loop (a small batch), with each image its own array or a row of one array (the LoadGen QSL's
    # layout: one take).
    import cupy

    from flowgraph.nodes.batching import _Open
    from flowgraph.nodes.gpu import HostToDevice
    from flowgraph.nodes.payloads import Batch, Image

    offloaded = []

    async def offload(fn, *args):
        offloaded.append(fn.__name__)
        return fn(*args)

    engine = cuda_torch_engine(pruned, tmp_path, precision="fp32", batch_sizes=[16], batch_step=8)
    rng = np.random.default_rng(3)
    host = rng.integers(0, 256, (12, 224, 224, 3), dtype=np.uint8)
    if library:
        rows = cupy.asarray(host[::-1].copy())  # rows in reverse: the gather must pick each by number
        images = [rows[11 - k] for k in range(12)]
    else:
        images = [cupy.asarray(x) for x in host]
    cupy.cuda.runtime.deviceSynchronize()  # the contract: a device image is complete when sent
    copier = HostToDevice(1)
    for n in (12, 3):
        building = _Open()
        for k in range(n):
            building.append(Image(k, 0, images[k]))
        merged = building.seal()
        assert len(merged.arrays) == n and merged.arrays[0] is images[0]  # referenced, not copied
        offloaded.clear()
        array, ready = await copier.copy(merged, offload)
        assert offloaded == (["_gather"] if n > 8 else [])
        gathered = await run_one(engine, Batch(merged.sample_ids, merged.labels, array, ready=ready))
        stacked = await run_one(engine, Batch(list(range(n)), [0] * n, host[:n]))
        assert np.allclose(gathered, stacked, atol=1e-4, rtol=1e-4)
        assert not np.allclose(gathered[0], gathered[1])
    copier.close()
    engine.close()


async def test_an_engine_whose_only_graph_is_batch_one_builds_and_gathers(pruned, tmp_path):
    # SingleStream's engine captures a bs-1 graph alone, and takes a device row as well as a host one.
    import cupy

    from flowgraph.nodes.payloads import Batch

    engine = cuda_torch_engine(pruned, tmp_path, precision="fp32", batch_sizes=[1])
    library = cupy.asarray(np.random.default_rng(5).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8))
    gathered = await run_one(engine, Batch([0], [0], library[2:3]))
    stacked = await run_one(engine, Batch([0], [0], library[2:].get()))
    assert np.allclose(gathered, stacked, atol=1e-4, rtol=1e-4)
    engine.close()


@pytest.mark.parametrize("form", ["host", "cupy", "cupy-strided", "torch"])
async def test_a_batch_reaches_the_graph_input_the_same_however_it_is_held(pruned, tmp_path, form):
    # The launch fills the graph's input through CuPy: from host memory, a device copy (or a strided
    # one's kernel), or torch's copy for a torch tensor; each must replay on the same images, and leave
    # the thread's current torch stream as it found it.
    import cupy
    import torch

    from flowgraph.nodes.payloads import Batch

    engine = cuda_torch_engine(pruned, tmp_path, precision="fp32", batch_sizes=[4])
    host = np.random.default_rng(7).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    expected = await run_one(engine, Batch([0, 1, 2], [0] * 3, host.copy()))
    held = {
        "host": lambda: host,
        "cupy": lambda: cupy.asarray(host),
        "cupy-strided": lambda: cupy.asarray(np.concatenate([host, host], axis=2))[:, :, :224],
        "torch": lambda: torch.from_numpy(host).cuda(),
    }[form]()
    assert form != "cupy-strided" or not held.flags.c_contiguous
    got = await run_one(engine, Batch([0, 1, 2], [0] * 3, held))
    assert np.allclose(got, expected, atol=1e-4, rtol=1e-4)
    assert not np.allclose(got[0], got[1])
    assert torch.cuda.current_stream() == torch.cuda.default_stream()
    engine.close()


async def test_only_batches_up_to_spin_wait_are_waited_for_by_a_spinning_thread(
    pruned, tmp_path, monkeypatch
):
    from flowgraph.nodes import gpu
    from flowgraph.nodes.payloads import Batch

    spins = []
    real = gpu.stream_done

    def recording(stream, offload=None, spin=False):
        spins.append(spin)
        return real(stream, offload, spin)

    monkeypatch.setattr(gpu, "stream_done", recording)
    engine = cuda_torch_engine(pruned, tmp_path, precision="fp32", batch_sizes=[4], spin_wait=1)
    host = np.zeros((3, 224, 224, 3), np.uint8)
    for n in (1, 3):
        await run_one(engine, Batch(list(range(n)), [0] * n, host[:n]))
    assert spins == [True, False]
    engine.close()


@pytest.mark.parametrize("layout", ["separate", "rows", "rows-and-one-separate"])
def test_device_parts_stack_on_the_current_stream_into_the_given_buffer(layout):
    import cupy

    from flowgraph.nodes.payloads import _rows_of_one_array, stack_device_parts

    order = [3, 0, 7, 1, 9, 2, 8, 4, 6, 5]
    library = cupy.stack([cupy.full((4, 5, 3), k, cupy.uint8) for k in range(10)])
    if layout == "separate":
        parts = [cupy.full((4, 5, 3), k, cupy.uint8) for k in order]
    else:
        parts = [library[k] for k in order]
    if layout == "rows-and-one-separate":
        parts[4] = cupy.full((4, 5, 3), order[4], cupy.uint8)
    assert (_rows_of_one_array(parts) is not None) == (layout == "rows")  # one take, or cupy.stack
    out = cupy.zeros((12, 4, 5, 3), cupy.uint8)
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        stacked = stack_device_parts(parts, out=out[:10])
    stream.synchronize()
    assert stacked.data.ptr == out.data.ptr
    assert [int(v) for v in out[:, 0, 0, 0].get()] == [*order, 0, 0]


async def test_memory_copy_passes_a_device_batch_on_and_gathers_few_device_images_on_the_loop():
    import cupy

    from flowgraph.nodes.gpu import HostToDevice
    from flowgraph.nodes.payloads import Batch, Images

    async def offload(fn, *args):
        raise AssertionError("a device batch, or a few device images, need no thread")

    parts = [cupy.full((224, 224, 3), k, cupy.uint8) for k in range(3)]
    copier = HostToDevice(1)
    on_device = Batch([0, 1, 2], [0] * 3, cupy.stack(parts))
    assert await copier.copy(on_device, offload) == (on_device.array, None)
    array, ready = await copier.copy(Images([0, 1, 2], [0] * 3, parts), offload)
    ready.synchronize()
    assert [int(v) for v in array[:, 0, 0, 0].get()] == [0, 1, 2]
    copier.close()


async def test_a_small_batch_copies_from_pageable_memory_that_may_be_reused_at_once():
    from flowgraph.nodes.gpu import HostToDevice
    from flowgraph.nodes.payloads import Batch

    async def inline(fn, *args):
        return fn(*args)

    copier = HostToDevice(2)
    image = np.full((1, 224, 224, 3), 7, np.uint8)
    array, ready = await copier.copy(Batch([0], [0], image), inline)
    image[...] = 9  # overwritten before the copy is known to have run: the driver staged it already
    ready.synchronize()
    assert int(array.get().max()) == 7 and int(array.get().min()) == 7
    copier.close()


def test_gpu_jpeg_decode_is_close_to_the_cpu_reference(jpegs, tmp_path):
    from flowgraph import NodeContext
    from flowgraph.nodes.dataset import read_val_map
    from flowgraph.nodes.payloads import Sample
    from flowgraph.nodes.preprocess import decode, preprocess_image
    from flowgraph.nodes.preprocess_gpu import PreprocessGpu, PreprocessGpuParams

    node = PreprocessGpu(PreprocessGpuParams(), NodeContext("p", 1))
    asyncio.run(node.setup())
    samples = [Sample(i, p, label) for i, p, label in read_val_map(jpegs / "val_map.txt", jpegs)][:8]
    array, ready = node._decode(samples, 0)
    ready.synchronize()
    gpu = array.cpu().numpy().astype(np.float32)
    cpu = np.stack([preprocess_image(decode(s.path.read_bytes(), s.path), "uint8") for s in samples]).astype(
        np.float32
    )
    assert gpu.shape == cpu.shape
    assert np.abs(gpu - cpu).mean() < 4.0  # bilinear+antialias vs INTER_AREA, and nvJPEG vs libjpeg


async def test_an_engine_that_ranks_on_the_device_sends_the_top_classes_of_its_scores(pruned, tmp_path):
    from flowgraph.nodes.payloads import Batch

    scoring = cuda_torch_engine(pruned, tmp_path, precision="fp32", batch_sizes=[8])
    ranking = cuda_torch_engine(pruned, tmp_path, precision="fp32", batch_sizes=[8], top_k=5)
    assert ranking.module is scoring.module  # one set of weights: only the graphs' last step differs
    x = np.random.default_rng(4).integers(0, 256, (6, 224, 224, 3), dtype=np.uint8)
    scores = await run_one(scoring, Batch(list(range(6)), [0] * 6, x))
    top = await run_one(ranking, Batch(list(range(6)), [0] * 6, x))
    assert top.shape == (6, 5) and top.dtype == np.int32
    assert top[:, 0].tolist() == scores.argmax(1).tolist()
    for row, ranked in zip(scores, top, strict=True):
        assert np.all(np.diff(row[ranked]) <= 0)  # best first
        assert row[ranked[-1]] >= np.sort(row)[-5]  # and no better class left out


@pytest.mark.parametrize("scenario", ["Server", "Offline"])
def test_loadgen_answers_the_same_with_the_samples_kept_on_the_gpu(pruned, jpegs, tmp_path, scenario):
    # start_from_device keeps the QSL as rows of one device array and gathers each batch by row
    # number: every query must get the answer it gets with the QSL in host memory.
    import json

    pytest.importorskip("mlperf_loadgen", reason="LoadGen runs need flowgraph[loadgen]")
    from flowgraph import run_event_loop
    from flowgraph.loadgen import LoadgenOptions, run_loadgen

    answers = {}
    for on_device in (False, True):
        logs = tmp_path / f"logs-{on_device}"
        options = LoadgenOptions(scenario=scenario, mode="accuracy", target_qps=400, output=logs)
        overrides = {
            "model.path": str(pruned),
            "dataset.path": str(jpegs),
            "precision": "fp32",
            "batch_size": 16,
            "preprocess_workers": 2,
            "loadgen.start_from_device": on_device,
        }
        result = run_event_loop(
            run_loadgen(Path("graphs/resnet50_server_gpu.yaml"), overrides, options, lambda m: None, tmp_path)
        )
        assert result.report is not None and result.report.samples["failed"] == 0
        logged = json.loads((logs / "mlperf_log_accuracy.json").read_text())
        answers[on_device] = {entry["qsl_idx"]: entry["data"] for entry in logged}
    assert len(answers[True]) == 40
    assert answers[True] == answers[False]
    assert len(set(answers[True].values())) > 1  # not one constant answer for every image
