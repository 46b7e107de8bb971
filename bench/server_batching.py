"""Server batching policies side by side: queue-ahead with a derived deadline vs pull.

    python bench/server_batching.py [--graph graphs/resnet50_server.yaml] [--qps 20 25] [--seconds 30]
        [--latency-ms 2000] [--set model.path=builtin:resnet50-pruned]

For each target QPS it runs LoadGen Server twice in one process, alternating the policies:
- "queue-ahead": the graph's own queues (batches formed ahead of the engines) and the ``max_wait_us`` the
  harness derives from the latency bound;
- "pull": ``batch_queue=0, engine_queue=1`` (batch_merge → gpu_schedule hand-over edges, one batch
  waiting per engine), so a batch is formed when the engine starts the previous one.
Runs on the CPU with the graph's ONNX Runtime engine; on a GPU pass a GPU graph.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
from pathlib import Path
from typing import Any

from flowgraph import run_event_loop
from flowgraph.load import parse_override
from flowgraph.loadgen import LoadgenOptions, run_loadgen

POLICIES: dict[str, dict[str, Any]] = {
    "queue-ahead": {},
    "pull": {"batch_queue": 0, "engine_queue": 1, "max_wait_us": 0},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graph", type=Path, default=Path("graphs/resnet50_server.yaml"))
    parser.add_argument("--qps", type=float, nargs="+", default=[20, 25])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--latency-ms", type=float, default=2000)
    parser.add_argument("--set", action="append", default=["model.path=builtin:resnet50-pruned"])
    parser.add_argument(
        "--pull-wait-us", type=float, nargs="*", default=[], help="also: pull, each batch waiting this long"
    )
    args = parser.parse_args()
    for wait in args.pull_wait_us:
        POLICIES[f"pull + {wait:g} us deadline"] = {**POLICIES["pull"], "max_wait_us": wait}
    overrides: dict[str, Any] = dict(parse_override(text) for text in args.set)
    print(
        f"# {datetime.date.today()} {platform.node()} python {platform.python_version()}, "
        f"{os.cpu_count()} cores: python bench/server_batching.py --graph {args.graph} "
        f"--qps {' '.join(f'{q:g}' for q in args.qps)} --seconds {args.seconds:g} "
        f"--latency-ms {args.latency_ms:g} {' '.join('--set ' + s for s in args.set)}"
        + (f" --pull-wait-us {' '.join(f'{w:g}' for w in args.pull_wait_us)}" if args.pull_wait_us else "")
    )
    print("| target QPS | policy | completed QPS | p50 ms | p99 ms | VALID | mean batch | max_wait_us |")
    print("|---|---|---|---|---|---|---|---|")
    for qps in args.qps:
        for policy, extra in POLICIES.items():
            options = LoadgenOptions(
                scenario="Server",
                target_qps=qps,
                target_latency_ms=args.latency_ms,
                time_s=args.seconds,
                output=Path(f"/tmp/server-batching/{policy}-{qps:g}"),
            )
            result = run_event_loop(
                run_loadgen(args.graph, {**overrides, **extra}, options, announce=lambda m: None)
            )
            p50, p99 = result.latency_ms(50), result.latency_ms(99)
            summary = result.report.summaries.get("postprocess", {}) if result.report else {}
            wait = result.extra.get("max_wait_us", extra.get("max_wait_us"))
            print(
                f"| {qps:g} | {policy} | {result.metrics.get('Completed samples per second', '?')} "
                f"| {p50:.1f} | {p99:.1f} | {result.valid} | {summary.get('batch_mean', '?')} "
                f"| {wait if wait is None else round(wait)} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
