"""CPU pipeline benchmark, two parts, one process:

1. Inference overhead: the same preprocessed batches through the graph's inference path
   (input → memory_copy → gpu_schedule → inference → discard) against a plain ``session.run`` loop,
   alternating, per batch size. The ratio is what the engine costs around ONNX Runtime.
2. The whole pipeline from JPEG files (graphs/resnet50_offline.yaml) with the per-node table.

    python bench/cpu_pipeline.py [--model full|pruned] [--batch-sizes 1 8 32] [--images 64] [--count 128]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
from pathlib import Path

import numpy as np

from flowgraph import Graph, run_event_loop
from flowgraph.nodes.inference.node import resolve_model
from flowgraph.nodes.payloads import Batch

CACHE = Path.home() / ".cache" / "flowgraph"

INFERENCE_ONLY = """
nodes:
  batches: {{type: input}}
  memory_copy: {{type: memory_copy}}
  gpu_schedule: {{type: gpu_schedule}}
  inference: {{type: inference, params: {{model: "{model}", threads: {threads}}}}}
  sink: {{type: discard}}
edges:
  - {{from: batches, to: memory_copy, capacity: 4}}
  - {{from: memory_copy, to: gpu_schedule, capacity: 4}}
  - {{from: gpu_schedule, to: inference, capacity: 2}}
  - {{from: inference, to: sink}}
"""


def plain_loop(session, batches) -> float:
    t0 = time.perf_counter()
    for b in batches:
        session.run(None, {"input_tensor": b.array})
    return time.perf_counter() - t0


def graph_run(graph: Graph, batches) -> float:
    t0 = time.perf_counter()
    report = run_event_loop(graph.run(batches, cache_dir=CACHE, announce=lambda m: None))
    assert report.samples["completed"] == sum(len(b.sample_ids) for b in batches)
    return time.perf_counter() - t0 - report.setup_s


def inference_overhead(model: Path, batch_sizes: list[int], images: int, threads: int) -> None:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    graph = Graph.from_text(INFERENCE_ONLY.format(model=model, threads=threads))
    rng = np.random.default_rng(0)
    print("| batch size | plain session.run img/s | graph img/s | ratio |")
    print("|---|---|---|---|")
    for bs in batch_sizes:
        n = max(1, images // bs)
        arrays = [rng.standard_normal((bs, 3, 224, 224)).astype(np.float32) for _ in range(n)]
        batches = [Batch(list(range(i * bs, (i + 1) * bs)), [0] * bs, a) for i, a in enumerate(arrays)]
        session.run(None, {"input_tensor": arrays[0]})  # warm up
        plain, flow = [], []
        for _ in range(2):  # alternate, keep the best of each
            plain.append(plain_loop(session, batches))
            flow.append(graph_run(graph, [Batch(b.sample_ids, b.labels, b.array) for b in batches]))
        p, f = n * bs / min(plain), n * bs / min(flow)
        print(f"| {bs} | {p:.1f} | {f:.1f} | {f / p:.3f} |")


def whole_pipeline(variant: str, count: int, batch_size: int) -> None:
    from rich.console import Console

    model = "builtin:resnet50" if variant == "full" else "builtin:resnet50-pruned"
    graph = Graph.from_yaml(
        "graphs/resnet50_offline.yaml", {"count": count, "model.path": model, "batch_size": batch_size}
    )
    report = graph.run_sync(announce=print)
    Console().print(*report.tables())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("full", "pruned"), default="full")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--images", type=int, default=64, help="images per batch size in part 1")
    parser.add_argument("--count", type=int, default=128, help="JPEGs in part 2")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    print(
        f"# {datetime.date.today()} {platform.node()} {os.cpu_count()} cores, python {platform.python_version()}, "
        f"model {args.model}, {args.threads} intra-op threads"
    )
    model = resolve_model(f"builtin:resnet50{'-pruned' if args.model == 'pruned' else ''}", CACHE, print)
    print("\n## 1. Inference: graph vs plain loop, same batches\n")
    inference_overhead(model, args.batch_sizes, args.images, args.threads)
    print(f"\n## 2. Whole pipeline from JPEG, {args.count} images, batch 8\n")
    whole_pipeline(args.model, args.count, 8)


if __name__ == "__main__":
    main()
