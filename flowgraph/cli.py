"""``flowgraph``: a thin shell over the public API.

Exit codes: 0 success, 1 a failure while running (or a stopped run), 2 invalid input (graph, flags).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .errors import (
    DependencyMissing,
    FlowgraphError,
    GraphFileError,
    GraphStopped,
    NodeFailure,
    RegistryError,
)
from .export import FORMATS, export
from .graph import Graph, Run, run_event_loop
from .load import parse_override
from .registry import all_node_types, resolve
from .report import Report

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2
SCENARIOS = ("SingleStream", "MultiStream", "Server", "Offline")

console = Console(stderr=True, soft_wrap=True)  # messages are greppable: never wrapped
out = Console()
if not out.is_terminal:  # piped into a file or CI log: don't squeeze tables into 80 columns
    out = Console(width=180)


def _graph_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("graph", type=Path, help="graph YAML file")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a graph parameter (engine_num=2) or a node param (inference.threads=1)",
    )


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return dict(parse_override(text) for text in args.overrides)


def _load(args: argparse.Namespace, scenario: str | None = None, check_environment: bool = True) -> Graph:
    return Graph.from_yaml(
        args.graph, _overrides(args), scenario=scenario, check_environment=check_environment
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowgraph", description=__doc__.splitlines()[0] if __doc__ else None
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check a graph file without running it")
    _graph_args(p)
    p.add_argument("--scenario", choices=SCENARIOS)

    p = sub.add_parser("run", help="run a graph (under MLPerf LoadGen when --scenario is given)")
    _graph_args(p)
    p.add_argument("--report", type=Path, help="write the run's report as JSON here")
    p.add_argument("--quiet", action="store_true", help="no progress bar or tables")
    lg = p.add_argument_group("MLPerf LoadGen (needs flowgraph[loadgen])")
    lg.add_argument("--scenario", choices=SCENARIOS)
    lg.add_argument("--mode", choices=("performance", "accuracy"), default=None)
    lg.add_argument("--target-qps", type=float, help="Server target / Offline expected QPS")
    lg.add_argument("--target-latency-ms", type=float, help="Server latency bound / stream expected latency")
    lg.add_argument("--count", type=int, help="limit the query/sample count for a quick run")
    lg.add_argument("--time", type=float, help="min_duration in seconds for a quick run")
    lg.add_argument("--mlperf-conf", type=Path, help="mlperf.conf (default: LoadGen's built-in)")
    lg.add_argument("--user-conf", type=Path, help="user.conf with this system's settings")
    lg.add_argument(
        "--output", type=Path, help="LoadGen log folder (default results/<graph>/<scenario>/<mode>)"
    )

    p = sub.add_parser("viz", help="export the graph as DOT, Mermaid, JSON, SVG or PNG")
    _graph_args(p)
    p.add_argument("--format", choices=FORMATS, default="mermaid")
    p.add_argument("-o", "--output", type=Path, help="file to write (default: stdout for text formats)")
    p.add_argument("--scenario", choices=SCENARIOS, help="show the graph as this scenario runs it")
    p.add_argument("--report", type=Path, help="a run's --report JSON, to label nodes with their throughput")

    p = sub.add_parser("nodes", help="list registered node types, their ports, params and worker rules")
    p.add_argument("name", nargs="?", help="show one type in full")

    p = sub.add_parser("data", help="datasets")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    s = data_sub.add_parser("synth", help="write a synthetic ImageNet-style folder of JPEGs with val_map.txt")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--count", type=int, default=64)
    s.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("model", help="models")
    model_sub = p.add_subparsers(dest="model_command", required=True)
    b = model_sub.add_parser("build", help="write a ResNet50 ONNX model with deterministic random weights")
    b.add_argument("arch", choices=("resnet50",))
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--variant", choices=("full", "pruned"), default="full")
    b.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("accuracy", help="top-1 from an MLPerf mlperf_log_accuracy.json")
    p.add_argument("log", type=Path)
    p.add_argument("--val-map", type=Path, required=True)
    p.add_argument(
        "--label-offset",
        type=int,
        default=0,
        help="added to the logged class before comparing (MLPerf's resnet50_v1.onnx: -1)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except GraphFileError as exc:
        console.print(f"[red]invalid graph[/red]\n{escape(str(exc))}", highlight=False)
        return EXIT_INVALID
    except (RegistryError, DependencyMissing) as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        return EXIT_INVALID
    except NodeFailure as exc:
        console.print(f"[red]run failed:[/red] {escape(str(exc))}", highlight=False)
        return EXIT_FAILED
    except GraphStopped as exc:
        console.print(f"[yellow]{escape(str(exc))}[/yellow]", highlight=False)
        return EXIT_FAILED
    except FlowgraphError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        return EXIT_FAILED
    except (ValueError, FileNotFoundError) as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        return EXIT_INVALID


# --- commands ---------------------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    graph = _load(args, args.scenario)
    c = graph.checked
    out.print(
        f"{args.graph}: ok — {len(c.nodes)} nodes, {len(c.edges)} edges: "
        + " → ".join(c.topological_order()),
        highlight=False,
        soft_wrap=True,
    )
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    if args.scenario or args.mode:
        return cmd_run_loadgen(args)
    graph = _load(args)
    report = run_event_loop(_run_with_progress(graph, quiet=args.quiet))
    if not args.quiet:
        print_report(report)
    if args.report:
        report.write_json(args.report)
        console.print(f"report written to {args.report}")
    if report.results and not args.quiet:
        shown = ", ".join(repr(r) for r in report.results[:8])
        out.print(
            f"{len(report.results)} results: {shown}{' …' if len(report.results) > 8 else ''}",
            highlight=False,
        )
    if report.stopped is not None:
        busy = ", ".join(f"{k}: {v}" for k, v in report.stopped.items() if v) or "nothing"
        console.print(f"[yellow]stopped by Ctrl-C; in flight at the stop: {busy}[/yellow]", highlight=False)
        return EXIT_FAILED
    if report.failures:
        console.print(f"[red]{report.samples['failed']} samples failed[/red]; first: {report.failures[0]}")
        return EXIT_FAILED
    return EXIT_OK


def cmd_run_loadgen(args: argparse.Namespace) -> int:
    """``run --scenario``: MLPerf LoadGen drives the graph (the harness lives with the node types)."""
    from flowgraph.nodes.loadgen import LoadgenOptions, run_loadgen

    options = LoadgenOptions(
        scenario=args.scenario or "Offline",
        mode=args.mode or "performance",
        target_qps=args.target_qps,
        target_latency_ms=args.target_latency_ms,
        count=args.count,
        time_s=args.time,
        mlperf_conf=args.mlperf_conf,
        user_conf=args.user_conf,
        output=args.output,
    )
    announce = (
        (lambda msg: None) if args.quiet else (lambda msg: console.print(msg, highlight=False, markup=False))
    )
    result = run_event_loop(run_loadgen(args.graph, _overrides(args), options, announce))
    verdict = {True: "[green]VALID[/green]", False: "[red]INVALID[/red]", None: "[yellow]no summary[/yellow]"}
    out.print(f"[bold]{result.scenario}[/bold] {result.mode}: {verdict[result.valid]}", highlight=False)
    for key, value in result.metrics.items():
        out.print(f"  {key}: {value}", highlight=False)
    if result.valid is False:
        for reason in result.reasons:
            out.print(f"  {reason}", highlight=False)
    if result.accuracy is not None:
        a = result.accuracy
        out.print(f"  accuracy: top-1 {100 * a.top1:.3f}% ({a.good}/{a.total})", highlight=False)
    if result.settings_note:
        out.print(f"  note: {result.settings_note}", highlight=False)
    out.print(f"  logs: {result.log_dir}", highlight=False)
    if args.report and result.report is not None:
        result.report.write_json(args.report)
    return EXIT_FAILED if result.valid is False else EXIT_OK


def print_report(report: Report) -> None:
    from rich.table import Table

    out.print(report.node_table())
    for name, summary in report.summaries.items():
        table = Table(title=f"{name}", show_header=False)
        table.add_column("metric")
        table.add_column("value", justify="right")
        for key, value in summary.items():
            table.add_row(
                key,
                f"{value:,}"
                if isinstance(value, int | float) and not isinstance(value, bool)
                else str(value),
            )
        out.print(table)


def install_interrupt(run: Run) -> None:
    """First Ctrl-C drains (sources stop, in-flight items finish); a second one cancels everything."""
    loop = asyncio.get_running_loop()
    presses = 0

    def on_sigint() -> None:
        nonlocal presses
        presses += 1
        in_flight = {k: v for k, v in run.runtime.in_flight().items() if v}
        if presses == 1:
            console.print(
                f"\n[yellow]Ctrl-C: draining (in flight: {in_flight or 'nothing'}); "
                "press again to cancel[/yellow]",
                highlight=False,
            )
            run.stop(drain=True)
        else:
            console.print("\n[yellow]Ctrl-C again: cancelling[/yellow]")
            run.stop(drain=False)

    with contextlib.suppress(NotImplementedError, RuntimeError):  # not on the main thread, or Windows
        loop.add_signal_handler(signal.SIGINT, on_sigint)


async def _run_with_progress(graph: Graph, quiet: bool) -> Report:
    async with graph.start(announce=lambda msg: console.print(msg, highlight=False, markup=False)) as run:
        install_interrupt(run)
        if quiet or not console.is_terminal:
            return await run.wait()
        nodes, metrics = run.runtime.nodes, {m.name: m for m in run.runtime.metrics}
        sources = [nodes[name] for name in run.runtime.sources()]
        sinks = [metrics[name] for name in run.runtime.sinks()]
        expected = [s.expected_items() for s in sources]
        total = sum(e for e in expected if e is not None) if all(e is not None for e in expected) else None
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task(graph.name, total=total, rate="")
            waiter = asyncio.ensure_future(run.wait())
            try:
                while not waiter.done():
                    done = sum(m.samples_in for m in sinks)
                    started = run.runtime.started  # 0 until every node's setup is done
                    elapsed = time.perf_counter() - started if started else 0.0
                    progress.update(
                        task, completed=done, rate=f"{done / elapsed:,.1f}/s" if elapsed > 0 else ""
                    )
                    await asyncio.wait({waiter}, timeout=0.25)
            finally:
                if not waiter.done():
                    waiter.cancel()
            return await waiter
    raise AssertionError("unreachable")  # pragma: no cover


def cmd_viz(args: argparse.Namespace) -> int:
    graph = _load(args, args.scenario, check_environment=False)
    throughput = None
    if args.report:
        import json

        data = json.loads(args.report.read_text())
        throughput = {n["node"]: n["items_per_s"] for n in data.get("nodes", [])}
    rendered = export(graph.checked, args.format, throughput)
    if args.output:
        if isinstance(rendered, bytes):
            args.output.write_bytes(rendered)
        else:
            args.output.write_text(rendered)
        console.print(f"wrote {args.output}")
    elif isinstance(rendered, bytes):
        console.print("[red]binary formats need -o FILE[/red]")
        return EXIT_INVALID
    else:
        sys.stdout.write(rendered)
    return EXIT_OK


def cmd_nodes(args: argparse.Namespace) -> int:
    from rich.table import Table

    types = {args.name: resolve(args.name)} if args.name else all_node_types()
    table = Table(title="flowgraph node types")
    for col in ("type", "inputs", "outputs", "workers", "params"):
        table.add_column(col)
    for name, cls in types.items():
        ins = (
            ", ".join(
                f"{p}: {port.type.__name__}{' (per worker)' if port.partitioned else ''}"
                for p, port in cls.inputs.items()
            )
            or "—"
        )
        outs = ", ".join(f"{p}: {port.type.__name__}" for p, port in cls.outputs.items()) or "—"
        fields = []
        for fname, field in cls.Params.model_fields.items():
            if field.is_required():
                default = "required"
            elif field.default_factory is not None:
                default = f"= {field.default_factory()!r}"  # type: ignore[call-arg]
            else:
                default = f"= {field.default!r}"
            line = f"{fname} {default}"
            if args.name and field.description:
                line += f"  — {field.description}"
            fields.append(line)
        table.add_row(name, ins, outs, str(cls.worker_rule), "\n".join(fields) or "—")
        if args.name:
            doc = (cls.__doc__ or "").strip()
            if doc:
                out.print(f"[bold]{name}[/bold]: {doc}", highlight=False)
    out.print(table)
    return EXIT_OK


def cmd_data(args: argparse.Namespace) -> int:
    from flowgraph.nodes.dataset import write_synthetic_dataset

    folder = write_synthetic_dataset(args.out, args.count, seed=args.seed, progress=lambda i, n: None)
    console.print(f"wrote {args.count} JPEGs and val_map.txt to {folder}")
    return EXIT_OK


def cmd_model(args: argparse.Namespace) -> int:
    from flowgraph.nodes.inference.resnet50_onnx import build_resnet50

    path = build_resnet50(args.out, variant=args.variant, seed=args.seed)
    console.print(f"wrote ResNet50 ({args.variant}) to {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return EXIT_OK


def cmd_accuracy(args: argparse.Namespace) -> int:
    from flowgraph.nodes.accuracy import top1_from_mlperf_log

    result = top1_from_mlperf_log(args.log, args.val_map, label_offset=args.label_offset)
    out.print(f"accuracy={100 * result.top1:.3f}%, good={result.good}, total={result.total}")
    return EXIT_OK


COMMANDS = {
    "validate": cmd_validate,
    "run": cmd_run,
    "viz": cmd_viz,
    "nodes": cmd_nodes,
    "data": cmd_data,
    "model": cmd_model,
    "accuracy": cmd_accuracy,
}

if __name__ == "__main__":
    raise SystemExit(main())
