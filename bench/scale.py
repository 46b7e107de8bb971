"""Sharded graphs: what the transport costs, what the parent spends per query, and what shards gain.

    python bench/scale.py transport [--batches 3000] [--size 256]     # µs per index batch, round trip
    python bench/scale.py parent [--qps 2000]                          # the parent's CPU per LoadGen query
    python bench/scale.py cpu [--count 600] [--repeat 2]               # LoadGen Offline: 1 process vs 2 shards
    python bench/scale.py gpu [--shards 1 2 4] [--qps 30000]           # one GPU: 1, 2, 4 shards, compiled
    python bench/scale.py gpu --one-gpu-each --shards 1 2 4 8 --qps 240000   # N GPUs: a shard on each

Every part prints a markdown table with the machine and the command; ``cpu`` and ``gpu`` alternate
the configurations in one process, so their ratios are side by side.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from flowgraph import run_event_loop
from flowgraph.shards.pool import ProcessShardPool
from flowgraph.shards.run import shard_job

CACHE = Path(os.environ.get("FLOWGRAPH_CACHE", "/tmp/flowgraph-cache"))
CPU_GRAPH = Path("graphs/resnet50_offline.yaml")
GPU_GRAPH = Path("graphs/resnet50_offline_gpu.yaml")


def header(part: str) -> None:
    print(
        f"\n{part}: {platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{datetime.date.today()}, `python bench/scale.py {' '.join(sys.argv[1:])}`\n",
        flush=True,
    )


def transport(batches: int, size: int) -> None:
    """Round trips of an ``echo`` request carrying one index batch (two int64 arrays of ``size``) to one
    shard process: one at a time (latency) and with 4 in flight (throughput)."""
    header("transport")
    graph = Path("/tmp/flowgraph-bench-echo.yaml")
    graph.write_text(
        "nodes:\n  init: {type: imagenet, params: {path: synthetic, synthetic_count: 8}}\n"
        "  out: {type: collect}\nedges:\n  - {from: init, to: out}\nshards: {devices: 1}\n"
    )
    ids, indices = np.arange(size, dtype=np.int64), np.arange(size, dtype=np.int64)

    async def measure() -> None:
        async with ProcessShardPool(
            shard_job(graph, {}, [None], cache_dir=str(CACHE)), [None], 4 * size
        ) as pool:
            for _ in range(200):  # warm
                await pool.request(0, "echo", (ids, indices))
            t0 = time.perf_counter()
            for _ in range(batches):
                await pool.request(0, "echo", (ids, indices))
            one = (time.perf_counter() - t0) / batches
            import asyncio

            t0 = time.perf_counter()
            for _ in range(batches // 4):
                await asyncio.gather(*(pool.request(0, "echo", (ids, indices)) for _ in range(4)))
            four = (time.perf_counter() - t0) / (batches // 4 * 4)
        print(
            "| index batch | one at a time, µs round trip | 4 in flight, µs per batch | µs per index (4 in flight) |"
        )
        print("|---|---|---|---|")
        print(
            f"| {size} ids + {size} indices | {one * 1e6:.1f} | {four * 1e6:.1f} | {four * 1e6 / size:.3f} |"
        )

    run_event_loop(measure())


def _loadgen(graph: Path, sets: dict[str, Any], **options: Any) -> Any:
    from flowgraph.loadgen import LoadgenOptions, run_loadgen

    out = Path("/tmp/flowgraph-bench-scale") / f"{options.get('scenario')}-{sets.get('shards.devices', 1)}"
    return run_event_loop(
        run_loadgen(graph, sets, LoadgenOptions(output=out, **options), lambda m: None, CACHE)
    )


def _constant_model() -> Path:
    sys.path.insert(0, "tests/nodes")
    from tiny_models import constant_class_model

    return constant_class_model(CACHE / "bench-constant.onnx", answer=3)


def parent(qps: float) -> None:
    """The parent's CPU time during LoadGen's test (its threads included) per query, 2 CPU shards
    answering with a constant model; beside it the one-process run, whose figure includes the graph."""
    header("parent")
    sets = {"model.path": str(_constant_model()), "dataset.synthetic_count": 64}
    print("| scenario | queries | process | parent CPU µs per query | result |\n|---|---|---|---|---|")
    for scenario, options in (
        ("Offline", {"count": 20000}),
        ("Server", {"count": int(qps * 5), "target_qps": qps, "target_latency_ms": 100}),
    ):
        for label, more in (
            ("one process (graph included)", {}),
            ("parent of 2 shards", {"shards.devices": 2}),
        ):
            r = _loadgen(CPU_GRAPH, {**sets, **more}, scenario=scenario, **options)
            per = r.extra["test_cpu_s"] / options["count"] * 1e6
            metric = next(iter(r.metrics.items()))
            print(
                f"| {scenario} | {options['count']} | {label} | {per:.1f} | {metric[0]} {metric[1]}, VALID {r.valid} |",
                flush=True,
            )


def cpu(count: int, repeat: int) -> None:
    """LoadGen Offline on the pruned ResNet50: one process against 2 shards (one core each), alternating."""
    header("cpu")
    sets = {"model.path": "builtin:resnet50-pruned", "dataset.synthetic_count": 64}
    print("| run | 1 process samples/s | 2 shards samples/s | ratio |\n|---|---|---|---|")
    for k in range(repeat):
        one = float(_loadgen(CPU_GRAPH, sets, scenario="Offline", count=count).metrics["Samples per second"])
        two = float(
            _loadgen(CPU_GRAPH, {**sets, "shards.devices": 2}, scenario="Offline", count=count).metrics[
                "Samples per second"
            ]
        )
        print(f"| {k + 1} | {one:,.1f} | {two:,.1f} | {two / one:.2f} |", flush=True)


def gpu(
    shards: list[int], qps: float, server_qps: list[float], seconds: float, one_gpu_each: bool = False
) -> None:
    """Compiled fp16, bs 256, QSL in GPU memory: the compiled engine's ceiling on GPU 0, then LoadGen
    Offline, Server (p99 bound 15 ms) and SingleStream for each number of shards (1 is the unsharded
    single process), in one process. The shards share GPU 0, or with ``one_gpu_each`` shard k runs on
    GPU k: then the Offline row's scaling efficiency is N-shard samples/s / (N x the 1-process run's).
    ``parent`` is the parent's CPU during the Offline test: µs per sample, and the cores it kept busy
    (near 1.0, its event loop is the limit)."""
    header("gpu")
    sys.path.insert(0, "bench")
    import gpu as gpu_bench

    ceiling = gpu_bench.ceiling([256], ["auto"])["auto bs256"]["img_s"]
    print(f"\ncompiled ceiling bs 256: {ceiling:,.0f} img/s\n")
    base = {
        "compile": True,
        "batch_size": 256,
        "engine_num": 2,
        "dataset.synthetic_count": 2048,
        "preprocess_workers": 8,
        "loadgen.start_from_device": True,
    }
    print(
        "| shards | GPUs | Offline samples/s | / (GPUs x ceiling) | scaling | parent µs/sample, cores | "
        "Server QPS | p99 ms | VALID | SingleStream p90 ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    single = float("nan")
    for n in shards:
        devices = list(range(n)) if one_gpu_each else [0] * n
        gpus = len(set(devices))
        sets = dict(base) if n == 1 else {**base, "shards.devices": devices, "shards.credit": 4}
        off = _loadgen(GPU_GRAPH, sets, scenario="Offline", target_qps=qps, time_s=seconds)
        rate = float(off.metrics.get("Samples per second", "nan"))
        single = rate if n == 1 else single
        scaling = rate / (gpus * single) if one_gpu_each else float("nan")
        cpu_s, wall_s = off.extra["test_cpu_s"], off.extra["test_wall_s"]
        parent = f"{cpu_s / (rate * wall_s) * 1e6:.1f}, {cpu_s / wall_s:.2f}"
        rows = []
        for target in server_qps:
            srv = _loadgen(
                Path("graphs/resnet50_server_gpu.yaml"),
                {k: v for k, v in sets.items() if k != "batch_size"},
                scenario="Server",
                target_qps=target,
                target_latency_ms=15,
                time_s=seconds,
            )
            rows.append((target, srv.latency_ms(99), srv.valid))
        ss = _loadgen(
            Path("graphs/resnet50_singlestream_gpu.yaml"),
            {k: v for k, v in sets.items() if k != "batch_size"},
            scenario="SingleStream",
            time_s=seconds,
        )
        p90 = float(next((v for k, v in ss.metrics.items() if k.startswith("90")), "nan")) / 1e6
        for target, p99, valid in rows or [(float("nan"), float("nan"), None)]:
            print(
                f"| {n} | {gpus} | {rate:,.0f} | {rate / (gpus * ceiling):.2f} | {scaling:.2f} | {parent} | "
                f"{target:,.0f} | {p99:.2f} | {valid} | {p90:.3f} |",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=("transport", "parent", "cpu", "gpu"))
    parser.add_argument("--batches", type=int, default=3000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--qps", type=float, default=2000)
    parser.add_argument("--count", type=int, default=600)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--server-qps", type=float, nargs="*", default=[20000], help="none: no Server runs")
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument(
        "--one-gpu-each", action="store_true", help="gpu: shard k on GPU k (else all on GPU 0)"
    )
    args = parser.parse_args()
    if args.part == "transport":
        transport(args.batches, args.size)
    elif args.part == "parent":
        parent(args.qps)
    elif args.part == "cpu":
        cpu(args.count, args.repeat)
    else:
        gpu(args.shards, args.qps, args.server_qps, args.seconds, args.one_gpu_each)


if __name__ == "__main__":
    main()
