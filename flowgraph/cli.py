"""``flowgraph``: a thin shell over the public API.

Exit codes: 0 success, 1 a failure while running (or a stopped run), 2 invalid input (graph, flags).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from .errors import (
    DependencyMissing,
    FlowgraphError,
    GraphFileError,
    GraphStopped,
    Issue,
    NodeFailure,
    RegistryError,
)
from .export import FORMATS, export
from .graph import Graph, Run, run_event_loop
from .interrupts import Interrupts
from .load import parse_override
from .plugins import Harness, command_registrars, harnesses
from .registry import all_node_types, resolve
from .report import Report
from .trust import allow_modules

__all__ = [
    "EXIT_FAILED",
    "EXIT_INVALID",
    "EXIT_OK",
    "announcer",
    "build_parser",
    "check_report_path",
    "console",
    "interrupts",
    "main",
    "monitoring",
    "out",
    "overrides",
    "print_report",
    "report_kept_on_failure",
    "shard_view_every_s",
    "tick_until_done",
    "watching",
]

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2
LIVE_VIEW_EVERY_S = 1.0
"""How often the terminal's per-node view is recomputed (rates over shorter spans only flicker)."""
T = TypeVar("T")

console = Console(stderr=True, soft_wrap=True)  # messages are greppable: never wrapped
out = Console()
if not out.is_terminal:  # piped into a file or CI log: don't squeeze tables into 80 columns
    out = Console(width=180)


def graph_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("graph", type=Path, help="graph YAML file")
    parser.add_argument(
        "--allow-module",
        dest="allow_modules",
        action="append",
        default=[],
        metavar="PKG",
        help="let the graph name code in this package (module:Class types, map fn, source iterable); "
        "see the README's trust model",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a graph parameter (engine_num=2) or a node param (inference.threads=1)",
    )


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--set KEY=VALUE`` options as a dict."""
    return dict(parse_override(text) for text in args.overrides)


def load(args: argparse.Namespace, scenario: str | None = None, check_environment: bool = True) -> Graph:
    """The graph, validated; what validation allowed but could not check is printed as warnings."""
    graph = Graph.from_yaml(
        args.graph, overrides(args), scenario=scenario, check_environment=check_environment
    )
    for warning in graph.checked.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(str(warning))}", highlight=False)
    return graph


def build_parser(harnesses: Sequence[Harness] | None = None) -> argparse.ArgumentParser:
    """The CLI's parser: the engine's own commands, then what installed extensions add (``plugins``)."""
    harnesses = installed_harnesses() if harnesses is None else harnesses
    scenarios = sorted({s for h in harnesses for s in h.scenarios}) or None
    parser = argparse.ArgumentParser(
        prog="flowgraph", description=__doc__.splitlines()[0] if __doc__ else None
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check a graph file without running it")
    graph_args(p)
    p.add_argument("--scenario", choices=scenarios, help="check the graph as this scenario runs it")
    p.set_defaults(handler=cmd_validate)

    p = sub.add_parser("run", help="run a graph (or hand it to a harness, e.g. MLPerf LoadGen)")
    graph_args(p)
    p.add_argument("--report", type=Path, help="write the run's report as JSON here")
    p.add_argument("--quiet", action="store_true", help="no progress bar or tables")
    p.add_argument(
        "--progress-every",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="when stderr is not a terminal (piped, nohup, CI): a progress line this often (0: none)",
    )
    p.add_argument("--metrics", type=Path, help="write the run's figures as JSON lines here, as it runs")
    p.add_argument("--metrics-every", type=float, default=1.0, metavar="SECONDS", help="--metrics interval")
    p.add_argument(
        "--prometheus-port",
        type=int,
        metavar="PORT",
        help="serve the run's counters for Prometheus at http://ADDR:PORT/metrics (flowgraph[monitor])",
    )
    p.add_argument(
        "--prometheus-addr", default="127.0.0.1", metavar="ADDR", help="--prometheus-port's address"
    )
    for harness in harnesses:
        harness.add_arguments(p.add_argument_group(harness.name))
    p.set_defaults(handler=functools.partial(cmd_run, harnesses=harnesses))

    p = sub.add_parser("viz", help="export the graph as DOT, Mermaid, JSON, SVG or PNG")
    graph_args(p)
    p.add_argument("--format", choices=FORMATS, default="mermaid")
    p.add_argument("-o", "--output", type=Path, help="file to write (default: stdout for text formats)")
    p.add_argument("--scenario", choices=scenarios, help="show the graph as this scenario runs it")
    p.add_argument(
        "--report",
        type=Path,
        help="a run's --report JSON: label nodes with samples/s and busy %%, coloured by busy %%",
    )
    p.set_defaults(handler=cmd_viz)

    p = sub.add_parser("plot", help="draw a --metrics time series to PNG: rates, busy %, queues, latency")
    p.add_argument("metrics", type=Path, help="a file written by flowgraph run --metrics")
    p.add_argument("-o", "--output", type=Path, help="PNG to write (default: the metrics file's name, .png)")
    p.set_defaults(handler=cmd_plot)

    p = sub.add_parser("nodes", help="list registered node types, their ports, params and worker rules")
    p.add_argument("name", nargs="?", help="show one type in full")
    p.set_defaults(handler=cmd_nodes)

    for register in _extension(command_registrars, []):
        register(sub)
    return parser


def installed_harnesses() -> list[Harness]:
    return _extension(harnesses, [])


def _extension(find: Callable[[], Any], fallback: Any) -> Any:
    """An extension lookup that warns instead of taking the whole CLI down with a broken package."""
    try:
        return find()
    except RegistryError as exc:
        console.print(f"[yellow]warning:[/yellow] {escape(str(exc))}", highlight=False)
        return fallback


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    allow_modules(*getattr(args, "allow_modules", []))
    try:
        return int(args.handler(args))
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
    graph = load(args, args.scenario)
    c = graph.checked
    out.print(
        f"{args.graph}: ok — {len(c.nodes)} nodes, {len(c.edges)} edges: "
        + " → ".join(c.topological_order()),
        highlight=False,
        soft_wrap=True,
    )
    return EXIT_OK


def check_report_path(path: Path | None, flag: str = "--report") -> None:
    """Refuse a ``--report`` (or ``flag``) that cannot be written before the run, so no run is lost to it."""
    if path is None:
        return
    problem = None
    if path.is_dir():
        problem = f"{path} is a folder; name a file"
    elif not path.parent.is_dir():
        problem = f"{path.parent} is not an existing folder"
    elif not os.access(path if path.exists() else path.parent, os.W_OK):
        problem = f"cannot write {path}: permission denied"
    if problem:
        raise GraphFileError([Issue(flag, None, None, problem)])


@contextlib.contextmanager
def report_kept_on_failure(path: Path | None) -> Iterator[None]:
    """Write the report a failed or stopped run carries (``FlowgraphError.report``) to ``path``, then
    let the error go on: its counts and failures are kept too."""
    try:
        yield
    except FlowgraphError as exc:
        if path and exc.report is not None:
            exc.report.write_json(path)
            console.print(f"report written to {path}")
        raise


async def tick_until_done(future: asyncio.Future[T], every_s: float, tick: Callable[[], None]) -> T:
    """Await ``future``, calling ``tick()`` every ``every_s`` seconds until it is done (progress
    output), never after; cancelled here, it cancels ``future`` too."""
    try:
        while True:
            await asyncio.wait({future}, timeout=every_s)
            if future.done():
                return future.result()
            tick()
    finally:
        if not future.done():
            future.cancel()


def cmd_run(args: argparse.Namespace, harnesses: Sequence[Harness] = ()) -> int:
    check_report_path(args.report)
    check_report_path(args.metrics, "--metrics")
    if not args.metrics_every > 0:
        raise GraphFileError(
            [Issue("--metrics-every", None, None, f"must be above 0 seconds, got {args.metrics_every}")]
        )
    chosen = [h for h in harnesses if h.selected(args)]
    if len(chosen) > 1:
        raise ValueError(
            f"options of several harnesses given ({', '.join(h.name for h in chosen)}); pick one"
        )
    if args.prometheus_port is not None:
        from .monitor import PrometheusEndpoint

        if not 0 <= args.prometheus_port <= 65535:
            raise GraphFileError(
                [Issue("--prometheus-port", None, None, f"{args.prometheus_port} is not a TCP port")]
            )
        PrometheusEndpoint.check_installed()
    if chosen:
        return chosen[0].run(args)
    graph = load(args)
    with report_kept_on_failure(args.report):
        if graph.checked.loaded.spec.shards is not None:
            report = run_event_loop(_run_sharded(args))
        else:
            report = run_event_loop(_run_with_progress(graph, args))
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


def monitoring(args: argparse.Namespace) -> list[str]:
    """The watching flags given (``--metrics``, ``--prometheus-port``)."""
    given = (("--metrics", args.metrics), ("--prometheus-port", args.prometheus_port))
    return [flag for flag, value in given if value is not None]


def shard_view_every_s(args: argparse.Namespace) -> float:
    """How often a sharded run's parent asks the shards for their counters: as often as the progress
    line or ``--metrics`` reads them, at least once a second (Prometheus, the closing figures)."""
    progress = float(getattr(args, "progress_every", 10.0))
    return min(1.0, progress if progress > 0 else 1.0, args.metrics_every if args.metrics else 1.0)


@contextlib.asynccontextmanager
async def watching(runtime: Any, args: argparse.Namespace) -> AsyncIterator[None]:
    """``--metrics`` and ``--prometheus-port`` around a running graph (a plain run's, the graph a
    harness drives, or a sharded run's ``ShardsView``): the series is written and the endpoint served
    until the block ends."""
    from .timeseries import MetricsWriter

    writer = (
        asyncio.create_task(MetricsWriter(runtime, args.metrics, args.metrics_every).run())
        if args.metrics
        else None
    )
    try:
        with contextlib.ExitStack() as stack:
            if args.prometheus_port is not None:
                from .monitor import PrometheusEndpoint

                endpoint = stack.enter_context(
                    PrometheusEndpoint(runtime, args.prometheus_port, args.prometheus_addr)
                )
                console.print(f"Prometheus: http://{endpoint.addr}:{endpoint.port}/metrics", highlight=False)
            yield
    finally:
        if writer is not None:
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)


def print_report(report: Report) -> None:
    """The run's tables on standard output (``Report.tables``)."""
    for table in report.tables():
        out.print(table)


def announcer(quiet: bool) -> Callable[[str], None]:
    """Where nodes' and harnesses' progress messages go: standard error, or nowhere when ``quiet``."""
    if quiet:
        return lambda msg: None
    return lambda msg: console.print(msg, highlight=False, markup=False)


def interrupts(run: Run) -> Interrupts:
    """Ctrl-C or SIGTERM once drains (sources stop, in-flight items finish); twice cancels everything;
    a run still going a few seconds after that is ended, naming the node that did not stop."""

    def drain(name: str) -> None:
        in_flight = {k: v for k, v in run.runtime.in_flight().items() if v}
        console.print(
            f"\n[yellow]{name}: draining (in flight: {in_flight or 'nothing'}); press Ctrl-C again to "
            "cancel[/yellow]",
            highlight=False,
        )
        run.stop(drain=True)

    def stop() -> None:
        console.print("\n[yellow]interrupted again: cancelling[/yellow]")
        run.stop(drain=False)

    return Interrupts(asyncio.get_running_loop(), drain, stop, run.runtime.still_running)


async def _run_sharded(args: argparse.Namespace) -> Report:
    """A graph with ``shards:``: the parent sends index batches, the shards run them (``shards.run``).
    Progress lines (with the per-node line summed over the shards), ``--metrics`` and Prometheus read a
    ``ShardsView`` the parent refreshes from the shards. Ctrl-C once stops sending and lets the shards
    finish what they hold; twice cancels."""
    from .live import Sampler, node_line
    from .shards.run import run_sharded
    from .shards.view import ShardsView

    loop = asyncio.get_running_loop()
    quiet, every_s = args.quiet, args.progress_every
    stop = asyncio.Event()
    started = time.perf_counter()
    last = [started]
    view = ShardsView(args.graph.stem, every_s=shard_view_every_s(args))
    sampler = Sampler(view)

    def progress(done: int, total: int) -> None:
        now = time.perf_counter()
        if not quiet and every_s > 0 and (now - last[0] >= every_s or done == total):
            last[0] = now
            rate = done / max(now - started, 1e-9)
            eta = f", ETA {(total - done) / rate:,.0f} s" if rate > 0 and done < total else ""
            nodes = f"\n{node_line(sampler.sample())}" if view.shards else ""
            console.print(
                f"{done:,}/{total:,} samples answered by the shards, {rate:,.1f}/s{eta}{nodes}",
                highlight=False,
                markup=False,
            )

    def drain(name: str) -> None:
        console.print(
            f"\n[yellow]{name}: no more batches sent; the shards finish theirs[/yellow]", highlight=False
        )
        stop.set()

    running = asyncio.ensure_future(
        run_sharded(args.graph, overrides(args), announcer(quiet), progress=progress, stop=stop, view=view)
    )

    def cancel() -> None:
        running.cancel()

    async with watching(view, args):
        with Interrupts(loop, drain, cancel, lambda: "the shards' parent"):
            return await running
    raise AssertionError("unreachable")  # pragma: no cover


async def _run_with_progress(graph: Graph, args: argparse.Namespace) -> Report:
    async with (
        graph.start(announce=lambda msg: console.print(msg, highlight=False, markup=False)) as run,
        watching(run.runtime, args),
    ):
        with interrupts(run):
            return await _progress(graph, run, args.quiet, args.progress_every)
    raise AssertionError("unreachable")  # pragma: no cover


async def _progress(graph: Graph, run: Run, quiet: bool, every_s: float = 10.0) -> Report:
    if quiet or (not console.is_terminal and every_s <= 0):
        return await run.wait()
    nodes, metrics = run.runtime.nodes, {m.name: m for m in run.runtime.metrics}
    sources = [nodes[name] for name in run.runtime.sources()]
    sinks = [metrics[name] for name in run.runtime.sinks()]
    expected = [s.expected_items() for s in sources]
    total = sum(e for e in expected if e is not None) if all(e is not None for e in expected) else None
    if not console.is_terminal:
        return await _progress_lines(graph, run, sinks, total, every_s)
    from rich.console import Group
    from rich.live import Live

    from .live import Sampler, node_view

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    )
    task = progress.add_task(graph.name, total=total, rate="")
    sampler = Sampler(run.runtime)
    with Live(progress, console=console, transient=True, auto_refresh=False) as live:
        shown = [0.0]

        def update() -> None:
            done = sum(m.samples_in for m in sinks)
            started = run.runtime.started  # 0 until every node's setup is done
            now = time.perf_counter()
            elapsed = now - started if started else 0.0
            progress.update(task, completed=done, rate=f"{done / elapsed:,.1f}/s" if elapsed > 0 else "")
            if started and now - shown[0] >= LIVE_VIEW_EVERY_S:  # per-node rates over a readable interval
                shown[0] = now
                live.update(Group(progress, node_view(sampler.sample())))
            live.refresh()

        return await tick_until_done(asyncio.ensure_future(run.wait()), 0.25, update)


async def _progress_lines(
    graph: Graph, run: Run, sinks: list[Any], total: int | None, every_s: float
) -> Report:
    """Progress for a log file: every ``every_s`` seconds, a plain line (samples, rate, ETA) and one
    with each node's busy %, samples/s and queue over that interval (no bar to redraw)."""
    from .live import Sampler, node_line

    sampler = Sampler(run.runtime)

    def line() -> None:
        started = run.runtime.started
        if not started:
            console.print(f"{graph.name}: setting up", highlight=False, markup=False)
            return
        done = sum(m.samples_in for m in sinks)
        elapsed = time.perf_counter() - started
        rate = done / elapsed if elapsed > 0 else 0.0
        of = f"/{total}" if total is not None else ""
        eta = f", ETA {(total - done) / rate:,.0f} s" if total is not None and rate > 0 else ""
        console.print(
            f"{graph.name}: {done}{of} samples, {rate:,.1f}/s, {elapsed:,.0f} s{eta}\n{node_line(sampler.sample())}",
            highlight=False,
            markup=False,
        )

    return await tick_until_done(asyncio.ensure_future(run.wait()), every_s, line)


def cmd_viz(args: argparse.Namespace) -> int:
    graph = load(args, args.scenario, check_environment=False)
    figures = None
    if args.report:
        import json

        from .export import figures_from_report

        try:
            figures = figures_from_report(json.loads(args.report.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise GraphFileError(
                [Issue(str(args.report), None, None, f"not a run's --report JSON: {exc}")]
            ) from exc
        unknown = sorted(set(figures) - set(graph.nodes))
        if unknown:
            console.print(
                f"[yellow]warning:[/yellow] {args.report} has nodes this graph lacks ({', '.join(unknown)}): "
                "a report of another graph?",
                highlight=False,
            )
    rendered = export(graph.checked, args.format, figures)
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


def cmd_plot(args: argparse.Namespace) -> int:
    from .plot import plot_metrics, read_series

    output = args.output or args.metrics.with_suffix(".png")
    check_report_path(output, "--output")
    series = read_series(args.metrics)
    output.write_bytes(plot_metrics(series, title=f"{args.metrics.name}: {series[-1]['t_s']:,.1f} s"))
    console.print(f"wrote {output}", highlight=False)
    return EXIT_OK


def _param_lines(model: Any, skip: set[str], described: bool) -> list[str]:
    lines = []
    for fname, field in model.model_fields.items():
        if fname in skip:
            continue
        if field.is_required():
            default = "required"
        elif field.default_factory is not None:
            default = f"= {field.default_factory()!r}"
        else:
            default = f"= {field.default!r}"
        line = f"{fname} {default}"
        if described and field.description:
            line += f"  — {field.description}"
        lines.append(line)
    return lines


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
        fields = _param_lines(cls.Params, set(), args.name is not None)
        for variant, model in cls.params_variants().items():  # e.g. each inference backend's own
            extra = _param_lines(model, set(cls.Params.model_fields), args.name is not None)
            fields.append(f"[{variant}] " + ("; ".join(extra) if not args.name else "") or "—")
            if args.name:
                fields.extend(f"  {line}" for line in extra)
        table.add_row(name, ins, outs, str(cls.worker_rule), escape("\n".join(fields)) or "—")
        if args.name:
            doc = (cls.__doc__ or "").strip()
            if doc:
                out.print(f"[bold]{name}[/bold]: {doc}", highlight=False)
    out.print(table)
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
