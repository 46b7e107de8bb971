"""``flowgraph run --scenario ...`` (the LoadGen harness) and ``flowgraph accuracy``, as CLI extensions."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flowgraph import run_event_loop
from flowgraph.cli import (
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_OK,
    announcer,
    console,
    monitoring,
    out,
    overrides,
    report_kept_on_failure,
    shard_view_every_s,
    tick_until_done,
    watching,
)
from flowgraph.interrupts import Interrupts

from .audit import AUDIT_TESTS
from .conf import SCENARIOS

__all__ = ["LoadgenHarness", "metric_lines", "register_commands"]

_TUNED_BY_HARNESS = "max_wait_us"


class LoadgenHarness:
    """MLPerf LoadGen drives the graph: ``--scenario`` and/or ``--mode`` select it."""

    name = "MLPerf LoadGen (needs flowgraph[loadgen])"
    scenarios = SCENARIOS

    def add_arguments(self, group: argparse._ArgumentGroup) -> None:
        group.add_argument("--scenario", choices=SCENARIOS)
        group.add_argument("--mode", choices=("performance", "accuracy"), default=None)
        group.add_argument("--target-qps", type=float, help="Server target / Offline expected QPS")
        group.add_argument(
            "--target-latency-ms", type=float, help="Server latency bound / stream expected latency"
        )
        group.add_argument("--count", type=int, help="limit the query/sample count for a quick run")
        group.add_argument("--time", type=float, help="min_duration in seconds for a quick run")
        group.add_argument("--mlperf-conf", type=Path, help="mlperf.conf (default: LoadGen's built-in)")
        group.add_argument("--user-conf", type=Path, help="user.conf with this system's settings")
        group.add_argument(
            "--output", type=Path, help="LoadGen log folder (default results/<graph>/<scenario>/<mode>)"
        )

        group.add_argument(
            "--audit",
            choices=AUDIT_TESTS,
            help="run an MLPerf compliance test and verify it against the scenario's runs (run first if missing)",
        )
        group.add_argument(
            "--audit-config", type=Path, help="--audit: this audit.config instead of the test's own"
        )
        group.add_argument(
            "--reference",
            type=Path,
            help="--audit: the scenario folder whose performance/run_1 and accuracy runs the test is judged "
            "against (default: --output, or results/<graph>/<scenario>)",
        )

    def selected(self, args: argparse.Namespace) -> bool:
        return bool(
            getattr(args, "scenario", None) or getattr(args, "mode", None) or getattr(args, "audit", None)
        )

    def run(self, args: argparse.Namespace) -> int:
        from .options import LoadgenOptions, LoadgenResult
        from .run import LoadgenControl, run_loadgen

        sets = overrides(args)
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
            # A --set of the deadline is the user's choice: the harness does not derive one then.
            tune_server_wait=not any(k.split(".")[-1] == _TUNED_BY_HARNESS for k in sets),
        )
        watched = monitoring(args)
        if watched and args.audit:
            raise ValueError(f"{watched[0]} watches one run; --audit runs several (leave it out there)")
        control = LoadgenControl()
        control.view_every_s = shard_view_every_s(args)

        def drain(name: str) -> None:
            console.print(
                f"\n[yellow]{name}: answering LoadGen at once from now on, so its test ends with complete "
                "logs; press Ctrl-C again to exit now[/yellow]",
                highlight=False,
            )
            control.stop(drain=True)

        async def test() -> LoadgenResult:
            loop = asyncio.get_running_loop()
            with Interrupts(loop, drain, lambda: control.stop(drain=False), control.still_running):
                running = asyncio.ensure_future(
                    run_loadgen(args.graph, sets, options, announcer(args.quiet), control=control)
                )
                watcher = asyncio.ensure_future(_watch(control, args)) if watched else None
                try:
                    every = 0.0 if args.quiet else float(getattr(args, "progress_every", 10.0))
                    if every <= 0:
                        return await running
                    return await tick_until_done(running, every, _progress_line(control, options.scenario))
                finally:
                    if watcher is not None:
                        watcher.cancel()
                        await asyncio.gather(watcher, return_exceptions=True)

        if args.audit:
            return _audit(args, sets, options, control, drain)
        with report_kept_on_failure(args.report):
            result = run_event_loop(test())
        verdict = {
            True: "[green]VALID[/green]",
            False: "[red]INVALID[/red]",
            None: "[yellow]no summary[/yellow]",
        }[result.valid]
        if result.mode == "accuracy" and result.accuracy is not None:  # LoadGen judges no accuracy run
            a = result.accuracy
            verdict = f"top-1 {100 * a.top1:.3f}% ({a.good}/{a.total})"
        out.print(f"[bold]{result.scenario}[/bold] {result.mode}: {verdict}", highlight=False)
        for line in metric_lines(result.scenario, result.metrics):
            out.print(f"  {line}", highlight=False)
        if result.valid is False:
            for reason in result.reasons:
                out.print(f"  {reason}", highlight=False)
        if result.accuracy is not None:
            for note in result.accuracy.notes:
                out.print(f"  note: {note}", highlight=False)
        if result.settings_note:
            out.print(f"  note: {result.settings_note}", highlight=False)
        out.print(f"  logs: {result.log_dir}", highlight=False)
        if args.report and result.report is not None:
            result.report.write_json(args.report)
        return EXIT_FAILED if result.valid is False else EXIT_OK


def _audit(
    args: argparse.Namespace,
    sets: dict[str, Any],
    options: Any,
    control: Any,
    drain: Callable[[str], None],
) -> int:
    """``--audit``: the compliance test, its verdict and where its logs are laid out."""
    from .compliance import run_audit

    if args.mode == "accuracy":
        out.print("--audit runs in performance mode (its audit.config says so); leave out --mode accuracy")
        return EXIT_INVALID

    async def audit() -> Any:
        loop = asyncio.get_running_loop()
        with Interrupts(loop, drain, lambda: control.stop(drain=False), control.still_running):
            return await run_audit(
                args.graph,
                sets,
                options,
                args.audit,
                announcer(args.quiet),
                reference=args.reference,
                audit_config=args.audit_config,
                control=control,
            )

    with report_kept_on_failure(args.report):
        verdict = run_event_loop(audit())
    shown = "[green]PASS[/green]" if verdict.passed else f"[red]FAIL[/red]: {verdict.reason}"
    out.print(f"[bold]{verdict.test}[/bold] {options.scenario}: {shown}", highlight=False)
    for check in verdict.checks:
        out.print(f"  {check.name}: {'pass' if check.passed else 'fail'}", highlight=False)
        for line in check.lines:
            out.print(f"    {line}", highlight=False, markup=False)
    out.print(f"  compliance logs: {verdict.folder}", highlight=False)
    return EXIT_OK if verdict.passed else EXIT_FAILED


async def _watch(control: Any, args: argparse.Namespace) -> None:
    """``--metrics`` / ``--prometheus-port`` over the graph LoadGen drives, from when it runs until
    cancelled at the test's end (the series then gets its closing line)."""
    await control.attached.wait()
    async with watching(control.runtime, args):
        await asyncio.Event().wait()


def _progress_line(control: Any, scenario: str) -> Callable[[], None]:
    """A tick that prints the queries answered so far and their rate since the last tick (a LoadGen
    test's length is LoadGen's to decide, so no total and no ETA), then the per-node view of the graph
    answering them (``live.node_line``)."""
    from flowgraph.live import Sampler, node_line

    last: list[float] = [0.0, 0.0]  # when, and how many, at the last line
    sampler: list[Sampler] = []

    def line() -> None:
        answered = control.answered
        if answered is None:
            return
        now = time.perf_counter()
        rate = f", {(answered - last[1]) / (now - last[0]):,.0f}/s" if last[0] else ""
        text = f"{scenario}: {answered:,} queries answered{rate}"
        watched = control.runtime
        if watched is not None and watched.live_metrics():  # a view has none before its first refresh
            if not sampler or sampler[0].runtime is not watched:  # a new run (warm-up, then the test)
                sampler[:] = [Sampler(watched)]
            text += "\n" + node_line(sampler[0].sample())
        console.print(text, highlight=False, markup=False)
        last[:] = [now, answered]

    return line


def metric_lines(scenario: str, metrics: dict[str, str]) -> list[str]:
    """LoadGen's figures for people: latencies in ms, and for SingleStream and MultiStream the early
    stopping estimate named as the figure the submission checker records (LoadGen's own percentile is
    printed beside it: on short runs the two differ by tens of percent)."""
    lines = []
    records_early = scenario in ("SingleStream", "MultiStream")
    for key, value in metrics.items():
        if key.endswith("(ns)"):
            shown = f"{key[:-4].strip()}: {float(value) / 1e6:,.3f} ms"
            if key.startswith("early stopping"):
                shown += "  <- the result the submission checker records" if records_early else ""
            elif records_early and "th percentile latency" in key:
                shown += "  (LoadGen's plain percentile)"
            lines.append(shown)
        else:
            lines.append(f"{key}: {value}")
    return lines


def register_commands(commands: Any) -> None:
    """``flowgraph accuracy`` (top-1 from an MLPerf accuracy log) and ``flowgraph submission``."""
    p = commands.add_parser("accuracy", help="top-1 from an MLPerf mlperf_log_accuracy.json")
    p.add_argument("log", type=Path)
    p.add_argument("--val-map", type=Path, required=True)
    p.add_argument(
        "--label-offset",
        type=int,
        default=None,
        help="the model's label offset (MLPerf's resnet50_v1.onnx: -1): added to each answer of a log from "
        "another harness; for a log flowgraph wrote (flowgraph_log.json beside it) it must match what was "
        "applied then, and is not applied twice",
    )
    p.add_argument(
        "--dtype",
        choices=("float32", "int32", "int64"),
        default=None,
        help="how an answer's bytes are read (default float32, or what flowgraph_log.json says)",
    )
    p.set_defaults(handler=_accuracy)

    p = commands.add_parser("submission", help="lay out an MLPerf results tree from scenario folders")
    p.add_argument(
        "runs", nargs="+", type=Path, help="scenario folders (performance/run_1, accuracy, TEST01...)"
    )
    p.add_argument("--submitter", required=True)
    p.add_argument("--system", required=True, help="the system's name (systems/<name>.json)")
    p.add_argument("--division", choices=("open", "closed"), default="open")
    p.add_argument("--benchmark", default="resnet", help="the benchmark's folder name (MLPerf's: resnet)")
    p.add_argument(
        "--system-json", type=Path, help="the system description (default: generated from this machine)"
    )
    p.add_argument("--out", type=Path, default=Path("submission"))
    p.set_defaults(handler=_submission)


def _submission(args: argparse.Namespace) -> int:
    from .submission import SubmissionPlan, write_submission

    plan = SubmissionPlan(
        submitter=args.submitter,
        system=args.system,
        division=args.division,
        benchmark=args.benchmark,
        system_json=args.system_json,
    )
    root = write_submission(args.runs, args.out, plan)
    out.print(f"wrote {root}", highlight=False)
    out.print(
        "check it with MLCommons' submission checker before submitting: "
        f"python -m submission_checker.main --input {args.out}",
        highlight=False,
        markup=False,
    )
    return EXIT_OK


def _accuracy(args: argparse.Namespace) -> int:
    from .accuracy import accuracy_line, top1_from_mlperf_log

    result = top1_from_mlperf_log(args.log, args.val_map, label_offset=args.label_offset, dtype=args.dtype)
    out.print(accuracy_line(result), highlight=False)
    for note in result.notes:
        out.print(f"note: {note}", highlight=False)
    return EXIT_OK
