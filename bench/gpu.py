"""GPU benchmarks, run on the device machine, one part per call (device time is scarce):

    python bench/gpu.py ceiling   # 1. bare CUDA-graph replays, data on the device (--compile [auto] [static])
    python bench/gpu.py offline   # 2. the graph, samples preloaded in host memory, H2D included
    python bench/gpu.py jpeg      # 3. end to end from JPEG files, nvJPEG decode vs OpenCV decode
    python bench/gpu.py loadgen   # 4. Server QPS sweep under a 15 ms p99 bound; SingleStream p90
    python bench/gpu.py latency   # 4b. where a bs-1 query's time goes, layer by layer, one process

Every part prints markdown tables and writes JSON beside them (--out DIR). Part 2 prints its ratio to
part 1's ceiling measured in the same process, so it runs the ceiling for its batch sizes first.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from flowgraph import Graph, run_event_loop
from flowgraph.load import parse_override
from flowgraph.nodes.inference.backend import run_one

RESNET50_FLOP = 8.2e9  # per 224x224 image (4.1 G multiply-adds)
H100_FP16_DENSE = 989.4e12  # H100 SXM tensor-core peak, dense fp16
CACHE = Path(os.environ.get("FLOWGRAPH_CACHE", "/tmp/flowgraph-cache"))


class _Ctx:
    cache_dir = CACHE
    offload = None

    @staticmethod
    def announce(msg: str) -> None:
        print(msg, flush=True)


def model_path(variant: str = "full") -> Path:
    from flowgraph.nodes.inference.node import resolve_model

    return resolve_model("builtin:resnet50" if variant == "full" else "builtin:resnet50-pruned", CACHE, print)


def mfu(img_s: float) -> float:
    return img_s * RESNET50_FLOP / H100_FP16_DENSE


VARIANTS = {
    "eager": ("fp16 CUDA graph", {}),
    "auto": ("fp16 torch.compile (shapes auto) + CUDA graph", {"compile": True}),
    "static": (
        "fp16 torch.compile (shapes static) + CUDA graph",
        {"compile": True, "compile_shapes": "static"},
    ),
}
"""``ceiling`` variants: the engine's settings for each. 'auto' is what an engine with several buckets
gets by default (the first, largest size specialized, one dynamic-shape compile for the rest)."""


def ceiling(sizes: list[int], variants: list[str]) -> dict[str, Any]:
    """Replays of the engine's own CUDA graph (normalization + ResNet50, fp16, channels_last), one engine
    per variant, its graphs captured largest first as the engine's ``prepare`` does."""
    import torch

    from flowgraph.nodes.inference.torch_backend import TorchEngine, TorchParams

    out: dict[str, Any] = {}
    model = model_path()
    for variant in variants:
        name, settings = VARIANTS[variant]
        params = TorchParams(
            backend="torch", device="cuda", precision="fp16", model=str(model), **settings
        )  # no batch_sizes: nothing captured at construction, each size below captures its own graph
        engine = TorchEngine(model, params, 0, _Ctx())
        engine.sizes = sorted(sizes)  # each size its own bucket, as a Server engine's batch_step gives
        for bs in sorted(sizes, reverse=True):
            t0 = time.perf_counter()
            graph, static_in, _, _ = engine.graph_for(bs, torch.uint8, (224, 224, 3))
            setup_s = time.perf_counter() - t0
            static_in.copy_(torch.randint(0, 255, static_in.shape, dtype=torch.uint8, device="cuda"))
            iters = max(20, 3000 // bs)
            with torch.cuda.stream(engine.stream):
                for _ in range(5):
                    graph.replay()
                engine.stream.synchronize()
                t0 = time.perf_counter()
                for _ in range(iters):
                    graph.replay()
                engine.stream.synchronize()
            dt = (time.perf_counter() - t0) / iters
            out[f"{variant} bs{bs}"] = {
                "name": name,
                "variant": variant,
                "bs": bs,
                "ms": dt * 1e3,
                "img_s": bs / dt,
                "setup_s": setup_s,
                "mfu": mfu(bs / dt),
            }
            print(
                f"| {name} | {bs} | {dt * 1e3:.3f} | {bs / dt:,.0f} | {100 * mfu(bs / dt):.1f}% | {setup_s:.1f} |",
                flush=True,
            )
        engine.close()
        del engine
        torch.cuda.empty_cache()
    return out


# The Offline scenario's shape of graphs/resnet50_offline_gpu.yaml (batch_split bypassed), fed from memory.
OFFLINE = """
params: {{engine_num: {engines}, batch_size: {bs}}}
nodes:
  samples: {{type: input}}
  batch_merge: {{type: batch_merge, params: {{max_batch: {bs}, max_wait_us: 2000}}}}
  memory_copy: {{type: memory_copy, params: {{device: cuda}}}}
  gpu_schedule: {{type: gpu_schedule}}
  inference: {{type: inference, params: {{backend: torch, device: cuda, model: "{model}", engine_num: {engines},
              precision: fp16, batch_sizes: [{bs}], compile: {compile}}}}}
  postprocess: {{type: postprocess}}
edges:
  - {{from: samples, to: batch_merge, capacity: {cap}}}
  - {{from: batch_merge, to: memory_copy, capacity: 4}}
  - {{from: memory_copy, to: gpu_schedule, capacity: 4}}
  - {{from: gpu_schedule, to: inference, capacity: 2}}
  - {{from: inference, to: postprocess, capacity: 8}}
"""


def offline(sizes: list[int], engines_list: list[int], images: int, compiled: bool = False) -> dict[str, Any]:
    from flowgraph.nodes.payloads import Image

    model = model_path()
    print("\n| engines | bs | graph img/s | ceiling img/s (same bs, same run) | ratio | MFU |")
    print("|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    pool = [
        rng.integers(0, 256, (224, 224, 3), dtype=np.uint8) for _ in range(1024)
    ]  # the QSL, in host memory
    runs = ceiling(sizes, ["auto" if compiled else "eager"]).values()
    ceilings = {r["bs"]: r["img_s"] for r in runs}
    out = {}
    for engines in engines_list:
        for bs in sizes:
            graph = Graph.from_text(
                OFFLINE.format(engines=engines, bs=bs, model=model, cap=4 * bs, compile=str(compiled).lower())
            )

            def items():
                for i in range(images):
                    yield Image(i, -1, pool[i % len(pool)], 0.0)

            report = run_event_loop(graph.run(items(), cache_dir=CACHE, announce=lambda m: None))
            img_s = images / report.wall_s
            ratio = img_s / ceilings[bs]
            out[f"e{engines} bs{bs}"] = {
                "engines": engines,
                "bs": bs,
                "img_s": img_s,
                "ratio": ratio,
                "setup_s": report.setup_s,
                "nodes": report.nodes,
            }
            print(
                f"| {engines} | {bs} | {img_s:,.0f} | {ceilings[bs]:,.0f} | {ratio:.3f} | {100 * mfu(img_s):.1f}% |",
                flush=True,
            )
    return out


def _write_jpegs(folder: Path, count: int, repeat: int) -> Path:
    from concurrent.futures import ProcessPoolExecutor

    from flowgraph.nodes.dataset import write_synthetic_dataset

    if not (folder / "val_map.txt").exists():
        parts = os.cpu_count() or 4
        per = -(-count // parts)
        with ProcessPoolExecutor(parts) as pool:
            list(
                pool.map(
                    write_synthetic_dataset,
                    [folder / f"p{k}" for k in range(parts)],
                    [per] * parts,
                    list(range(parts)),
                )
            )
        lines = []
        for k in range(parts):
            for line in (folder / f"p{k}" / "val_map.txt").read_text().splitlines():
                lines.append(f"p{k}/{line}\n")
        (folder / "val_map.txt").write_text("".join(lines) * repeat)  # the same files, read again
    return folder


def jpeg(count: int, repeat: int, engines: int, bs: int, decode_workers: list[int]) -> dict[str, Any]:
    from rich.console import Console

    folder = _write_jpegs(Path("/tmp/flowgraph-jpegs"), count, repeat)
    out = {}
    runs = [
        (
            f"nvJPEG decode on the GPU, {w} decode workers",
            "graphs/resnet50_jpeg_gpu.yaml",
            {"decode_workers": w},
        )
        for w in decode_workers
    ]
    runs.append(
        ("OpenCV decode on 16 CPU cores", "graphs/resnet50_offline_gpu.yaml", {"preprocess_workers": 16})
    )
    for name, graph_file, extra in runs:
        graph = Graph.from_yaml(
            graph_file, {"dataset.path": str(folder), "engine_num": engines, "batch_size": bs, **extra}
        )
        report = graph.run_sync(cache_dir=CACHE, announce=lambda m: None)
        s = report.summaries["postprocess"]
        print(
            f"\n### {name}: {s['images']} images, p_infer_whole {s['p_infer_whole']:,.0f} img/s, "
            f"p_infer_core {s['p_infer_core']:,.0f} img/s, whole/core {s['p_infer_whole'] / s['p_infer_core']:.3f}\n"
        )
        Console().print(*report.tables())
        out[name] = {"summary": s, "nodes": report.nodes}
    return out


def loadgen(
    qps_list: list[float],
    seconds: float,
    waits: list[float],
    engines_list: list[int],
    engine_queues: list[int],
    singlestream: bool = True,
    on_device: bool = False,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    from flowgraph.loadgen import LoadgenOptions, run_loadgen

    out: dict[str, Any] = {"server": [], "singlestream": None}
    base: dict[str, Any] = {"dataset.synthetic_count": 1024, "preprocess_workers": 16, **(overrides or {})}
    where = "GPU memory (start_from_device)" if on_device else "host memory"
    print(
        f"\nServer, QSL in {where}:\n\n| engines | engine_queue | target QPS | completed QPS | p50 ms "
        "| p99 ms | VALID | mean batch | inference ms/batch p50 / p99 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    runs = [
        (engines, queue, qps, wait)
        for engines in engines_list
        for queue in engine_queues
        for wait in waits
        for qps in qps_list
    ]
    for engines, queue, qps, wait in runs if seconds > 0 else []:
        server = {
            **base,
            "engine_num": engines,
            "engine_queue": queue,
            "loadgen.start_from_device": on_device,
        }
        options = LoadgenOptions(
            scenario="Server",
            target_qps=qps,
            target_latency_ms=15,
            time_s=seconds,
            output=Path(f"/tmp/lg/server-{qps:g}"),
        )
        chosen = {"max_wait_us": wait} if wait >= 0 else {}  # -1: the harness derives it
        r = run_event_loop(
            run_loadgen(
                Path("graphs/resnet50_server_gpu.yaml"), {**server, **chosen}, options, lambda m: None, CACHE
            )
        )
        r.extra.setdefault("max_wait_us", wait)
        p50, p99 = r.latency_ms(50), r.latency_ms(99)
        done = r.metrics.get("Completed samples per second", "?")
        summary = r.report.summaries.get("postprocess", {}) if r.report is not None else {}
        infer = next((n for n in r.report.nodes if n["node"] == "inference"), None) if r.report else None
        lat = infer["latency_ms"] if infer else {}
        print(
            f"| {engines} | {queue} | {qps:,.0f} | {done} | {p50:.2f} | {p99:.2f} | {r.valid} "
            f"| {summary.get('batch_mean', '?')} | {lat.get('p50', float('nan')):.2f} / "
            f"{lat.get('p99', float('nan')):.2f} |",
            flush=True,
        )
        out["server"].append(
            {
                "engines": engines,
                "engine_queue": queue,
                "target_qps": qps,
                "start_from_device": on_device,
                "completed": done,
                "p50_ms": p50,
                "p99_ms": p99,
                "batch_mean": summary.get("batch_mean"),
                "valid": r.valid,
                "reasons": r.reasons,
                "max_wait_us": r.extra.get("max_wait_us"),
            }
        )
    if not singlestream:
        return out
    options = LoadgenOptions(scenario="SingleStream", count=3000, output=Path("/tmp/lg/ss"))
    r = run_event_loop(
        run_loadgen(Path("graphs/resnet50_singlestream_gpu.yaml"), base, options, lambda m: None, CACHE)
    )
    raw = bare_replay_ms(1000)
    p90 = float(next(v for k, v in r.metrics.items() if "90" in k)) / 1e6
    print(
        f"\nSingleStream: p90 {p90:.3f} ms (VALID: {r.valid}); raw bs-1 graph replay p90 {raw:.3f} ms "
        f"(replay + stream.synchronize(), one at a time); difference {p90 - raw:.3f} ms"
    )
    if r.report is not None:
        from rich.console import Console

        Console().print(*r.report.tables())
    out["singlestream"] = {"p90_ms": p90, "raw_ms": raw, "valid": r.valid, "metrics": r.metrics}
    return out


def steady_ms(seconds: list[float]) -> np.ndarray:
    """Timings in ms, the first tenth (warm-up) left out."""
    return np.array(seconds[len(seconds) // 10 :]) * 1e3


def replays_one_at_a_time(engine: Any, graph: Any, count: int) -> list[float]:
    """Seconds of each of ``count`` replays of ``graph`` on ``engine``'s stream, each waited for by
    ``stream.synchronize()`` before the next: the raw latency SingleStream is held against."""
    import torch

    times = []
    with torch.cuda.stream(engine.stream):
        for _ in range(count):
            t0 = time.perf_counter()
            graph.replay()
            engine.stream.synchronize()
            times.append(time.perf_counter() - t0)
    return times


def bare_replay_ms(count: int) -> float:
    """p90 of a bs-1 replay, one at a time (``replays_one_at_a_time``), on an engine of its own."""
    import torch

    from flowgraph.nodes.inference.torch_backend import TorchEngine, TorchParams

    params = TorchParams(backend="torch", device="cuda", precision="fp16", model=str(model_path()))
    engine = TorchEngine(model_path(), params, 0, _Ctx())
    graph, _, _, _ = engine.graph_for(1, torch.uint8, (224, 224, 3))
    times = replays_one_at_a_time(engine, graph, count)
    engine.close()
    return float(np.percentile(steady_ms(times), 90))


# SingleStream's graph (batch_merge, gpu_schedule and batch_split bypassed), fed one sample at a time.
SINGLE = """
nodes:
  samples: {{type: input}}
  memory_copy: {{type: memory_copy, params: {{device: cuda}}}}
  inference: {{type: inference, params: {{backend: torch, device: cuda, model: "{model}", engine_num: 1,
              precision: fp16, batch_sizes: [1], spin_wait: {spin}}}}}
  postprocess: {{type: postprocess}}
  results: {{type: collect}}
edges:
  - {{from: samples, to: memory_copy, capacity: 4}}
  - {{from: memory_copy, to: inference, capacity: 2}}
  - {{from: inference, to: postprocess, capacity: 8}}
  - {{from: postprocess, to: results}}
"""


def latency(count: int) -> dict[str, Any]:
    """A bs-1 query, one at a time, adding one layer per row: bare replay, + host-callback wait,
    + the engine's infer (H2D of a host image, D2H of the logits), + memory_copy, + the whole graph.
    The differences between rows are what each layer costs (SingleStream's aim: within 0.2 ms of raw)."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    import torch
    from singlestream_overhead import one_query_at_a_time  # bench/ is on the path when run as a script

    from flowgraph.nodes import gpu
    from flowgraph.nodes.inference.torch_backend import TorchEngine, TorchParams
    from flowgraph.nodes.payloads import Batch

    model = model_path()
    image = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    rows: dict[str, Any] = {}

    def record(name: str, seconds: list[float]) -> None:
        ms = steady_ms(seconds)
        rows[name] = {"p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90))}
        print(f"| {name} | {rows[name]['p50_ms']:.3f} | {rows[name]['p90_ms']:.3f} |", flush=True)

    print("\n| layer (bs 1, one at a time) | p50 ms | p90 ms |\n|---|---|---|")

    async def layers() -> None:
        loop = asyncio.get_running_loop()
        pool = ThreadPoolExecutor(1)

        class Ctx(_Ctx):
            @staticmethod
            def offload(fn: Any, *args: Any) -> Any:
                return loop.run_in_executor(pool, fn, *args)

        params = TorchParams(
            backend="torch", device="cuda", precision="fp16", model=str(model), batch_sizes=[1]
        )
        engine = TorchEngine(model, params, 0, Ctx())
        graph, static_in, _, _ = engine.graph_for(1, torch.uint8, image.shape)
        static_in.copy_(torch.from_numpy(image[None]))
        record("CUDA-graph replay, stream.synchronize()", replays_one_at_a_time(engine, graph, count))
        # "spin": thread mode, the thread spinning in the driver rather than sleeping (spin_wait)
        for mode in ("callback", "thread", "spin"):
            gpu.WAIT_MODE = "callback" if mode == "callback" else "thread"
            engine.spin_wait = spin = int(mode == "spin")
            times = []
            for _ in range(count):
                t0 = time.perf_counter()
                with torch.cuda.stream(engine.stream):
                    graph.replay()
                await gpu.stream_done(engine.cupy_stream, Ctx.offload, bool(spin))
                times.append(time.perf_counter() - t0)
            record(f"replay, awaited by {mode}", times)
            times = []
            for k in range(count):
                t0 = time.perf_counter()
                await run_one(engine, Batch([k], [0], image[None], [t0]))
                times.append(time.perf_counter() - t0)
            record(f"engine launch + collect (host image), {mode}", times)
            copier = gpu.HostToDevice(3)
            times = []
            for k in range(count):
                t0 = time.perf_counter()
                array, ready = await copier.copy(Batch([k], [0], image[None], [t0]), Ctx.offload)
                await run_one(engine, Batch([k], [0], array, [t0], ready=ready))
                times.append(time.perf_counter() - t0)
            record(f"memory_copy + engine launch + collect, {mode}", times)
            copier.close()
            pipeline = Graph.from_text(SINGLE.format(model=model, spin=spin))
            times = await one_query_at_a_time(pipeline, image, count, cache_dir=CACHE)
            record(f"the graph (submit → result), {mode}", times)
        gpu.WAIT_MODE = "callback"
        engine.close()
        pool.shutdown()

    run_event_loop(layers())
    return rows


class _NoSharing(dict):  # type: ignore[type-arg]
    """Stands in for the torch backend's module cache: every engine builds (and compiles) its own."""

    def get(self, key: Any, default: Any = None) -> Any:
        return default


def qsl_offline(
    bs: int,
    engines: int,
    target_qps: float,
    extra: dict[str, Any],
    where: str = "both",
    separate_modules: bool = False,
) -> dict[str, Any]:
    """LoadGen Offline through the real harness: samples in host memory vs kept on the GPU.
    ``extra``: more graph overrides (``--set``), e.g. ``compile=true``. ``separate_modules``: each engine
    its own model, as before engines shared one (for a side-by-side check)."""
    from unittest import mock

    from flowgraph.loadgen import LoadgenOptions, run_loadgen
    from flowgraph.nodes.inference import torch_model

    if separate_modules:
        with mock.patch.object(torch_model, "_MODULES", _NoSharing()):
            return qsl_offline(bs, engines, target_qps, extra, where)
    out = {}
    print("\n| QSL samples | LoadGen Offline samples/s | VALID |\n|---|---|---|")
    for name, on_device in (("host memory", False), ("GPU memory (start_from_device)", True)):
        if where != "both" and on_device != (where == "device"):
            continue
        overrides = {
            "dataset.synthetic_count": 1024,
            "preprocess_workers": 16,
            "batch_size": bs,
            "engine_num": engines,
            "loadgen.start_from_device": on_device,
            **extra,
        }
        options = LoadgenOptions(
            scenario="Offline", target_qps=target_qps, time_s=5, output=Path(f"/tmp/lg/off-{on_device}")
        )
        r = run_event_loop(
            run_loadgen(Path("graphs/resnet50_offline_gpu.yaml"), overrides, options, lambda m: None, CACHE)
        )
        rate = r.metrics.get("Samples per second", "?")
        print(f"| {name} | {rate} | {r.valid} |", flush=True)
        if r.report is not None and not on_device:
            from rich.console import Console

            Console().print(*r.report.tables())
        out[name] = {"samples_per_s": rate, "valid": r.valid, "reasons": r.reasons}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=("ceiling", "offline", "jpeg", "loadgen", "qsl", "latency"))
    parser.add_argument("--count", type=int, default=3000, help="latency: queries per row")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--engines", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--images", type=int, default=32768)
    parser.add_argument(
        "--compile",
        nargs="*",
        choices=("auto", "static"),
        default=None,
        help="ceiling: also torch.compile, shapes auto (the default) and/or static; offline: compiled",
    )
    parser.add_argument(
        "--qps", type=float, nargs="+", default=None, help="loadgen: Server targets; qsl: Offline's"
    )
    parser.add_argument(
        "--qsl", choices=("both", "host", "device"), default="both", help="qsl: where samples live"
    )
    parser.add_argument(
        "--set", action="append", default=[], help="qsl, loadgen: a graph override, e.g. compile=true"
    )
    parser.add_argument(
        "--separate-modules", action="store_true", help="qsl: each engine builds its own model (no sharing)"
    )
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--decode-workers", type=int, nargs="+", default=[2])
    parser.add_argument(
        "--waits", type=float, nargs="+", default=[-1], help="Server max_wait_us; -1 = derived"
    )
    parser.add_argument(
        "--engine-queues", type=int, nargs="+", default=[0], help="loadgen: Server batches queued per engine"
    )
    parser.add_argument(
        "--start-from-device", action="store_true", help="loadgen: the QSL keeps samples on the GPU"
    )
    parser.add_argument("--no-singlestream", action="store_true", help="loadgen: Server only")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")))
    args = parser.parse_args()
    import torch

    print(
        f"# {time.strftime('%Y-%m-%d')} {torch.cuda.get_device_name(0)}, torch {torch.__version__}, "
        f"python {platform.python_version()}, {os.cpu_count()} cores: python bench/gpu.py {' '.join(sys.argv[1:])}"
    )
    extra = dict(parse_override(text) for text in args.set)
    if args.part == "ceiling":
        print("| variant | bs | ms/batch | img/s | MFU | setup s |\n|---|---|---|---|---|---|")
        compiled = [] if args.compile is None else args.compile or ["auto"]  # bare --compile: auto
        result = ceiling(args.sizes, ["eager", *compiled])
    elif args.part == "offline":
        print("| variant | bs | ms/batch | img/s | MFU | setup s |\n|---|---|---|---|---|---|")
        result = offline(args.sizes, args.engines, args.images, args.compile is not None)
    elif args.part == "jpeg":
        result = jpeg(1024, 8, args.engines[0], args.sizes[0], args.decode_workers)
    elif args.part == "latency":
        result = latency(args.count)
    elif args.part == "qsl":
        result = qsl_offline(
            args.sizes[-1],
            args.engines[0],
            args.qps[0] if args.qps else 12000,
            extra,
            args.qsl,
            args.separate_modules,
        )
    else:
        result = loadgen(
            args.qps or [6000, 9000, 11000, 12500],
            args.seconds,
            args.waits,
            args.engines,
            args.engine_queues,
            not args.no_singlestream,
            args.start_from_device,
            extra,
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"gpu_{args.part}.json").write_text(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
