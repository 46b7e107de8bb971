"""How fast the LoadGen harness itself can go: LoadGen Offline through the real QSL/SUT bridge with the
inference node replaced by one that answers at once (no model), so what is measured is LoadGen's hand-off,
the graph's hops, batch_merge / batch_split / postprocess, and the batched QuerySamplesComplete.

    python bench/loadgen_bridge.py [--qps 20000] [--seconds 2] [--batch 256] [--graph graphs/resnet50_offline.yaml]

If a full run is much slower than this on the same machine, the engine path (or its interplay with
LoadGen's threads) is the bottleneck, not the harness.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from flowgraph import Node, Port, WorkerIO, WorkerRule, node_type, run_event_loop
from flowgraph.loadgen import LoadgenOptions, run_loadgen
from flowgraph.nodes.inference.onnxruntime_backend import OnnxRuntimeParams
from flowgraph.nodes.payloads import Batch, Logits

_SCORES = np.zeros((4096, 1000), np.float32)


@node_type("bench-null-inference")
class NullInference(Node):
    """Takes the inference node's params and answers every batch at once with zero scores."""

    Params = OnnxRuntimeParams  # the CPU graph's inference params, taken as they are
    inputs: ClassVar = {"in": Port(Batch, partitioned=True)}
    outputs: ClassVar = {"out": Port(Logits)}
    worker_rule = WorkerRule.equals("engine_num")

    async def run(self, io: WorkerIO) -> None:
        async for batch in io.inbox:
            n = len(batch.sample_ids)
            await io.out.send(Logits(batch.sample_ids, batch.labels, _SCORES[:n], batch.t_starts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qps", type=float, default=20000)
    parser.add_argument("--seconds", type=float, default=2)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--graph", type=Path, default=Path("graphs/resnet50_offline.yaml"))
    args = parser.parse_args()
    overrides: dict[str, Any] = {
        "dataset.synthetic_count": 64,
        "preprocess.cache": True,
        "batch_size": args.batch,
        "inference.type": "bench-null-inference",
    }
    options = LoadgenOptions(
        scenario="Offline",
        target_qps=args.qps,
        time_s=args.seconds,
        output=Path("results/bench-loadgen-bridge"),
    )
    result = run_event_loop(run_loadgen(args.graph, overrides, options, announce=lambda m: None))
    print(
        f"# {datetime.date.today()} {platform.node()} {os.cpu_count()} cores, python {platform.python_version()}: "
        f"python bench/loadgen_bridge.py --qps {args.qps:g} --seconds {args.seconds:g} --batch {args.batch}"
    )
    print(
        f"LoadGen Offline, no model: {result.metrics.get('Samples per second')} samples/s, VALID={result.valid}, "
        f"samples {result.report.samples if result.report else '?'}"
    )


if __name__ == "__main__":
    main()
