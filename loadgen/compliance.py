"""``--audit TESTxx``: run one MLPerf compliance test of a graph, verify it, lay out its logs.

The test is judged against the scenario's own submission runs (the reference), found under the
scenario's results folder as the submission checker lays them out: ``performance/run_1`` and, for
TEST01, ``accuracy``. A reference that is missing is run first, with the same settings, so that one
command gives a verdict; a reference from another folder is named with ``reference``.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flowgraph import GraphFileError, Issue, load_graph

from .accuracy import SIDECAR, accuracy_line, top1_from_mlperf_log
from .audit import (
    AUDIT_TESTS,
    TEST05_SEEDS,
    AuditVerdict,
    audit_config_text,
    lay_out_compliance,
    performance_logs,
    verify_accuracy,
    verify_performance,
)
from .options import LoadgenOptions
from .run import LoadgenControl, default_log_dir, results_root, run_loadgen

__all__ = ["run_audit"]


async def run_audit(
    graph_file: Path,
    overrides: dict[str, Any],
    options: LoadgenOptions,
    test: str,
    announce: Callable[[str], None] = print,
    reference: Path | None = None,
    audit_config: Path | None = None,
    cache_dir: Path | None = None,
    control: LoadgenControl | None = None,
) -> AuditVerdict:
    """Run compliance test ``test`` of ``graph_file`` in ``options.scenario`` and verify it.

    Writes under the scenario's folder (``options.output``, default ``results/<graph>/<scenario>``):
    ``audit/<test>/`` (the test's LoadGen logs and its audit.config) and ``<test>/`` (the verification,
    laid out as the submission checker expects it beside ``performance`` and ``accuracy``)."""
    if test not in AUDIT_TESTS:
        raise GraphFileError(
            [Issue("--audit", None, None, f"unknown test {test!r}; one of {', '.join(AUDIT_TESTS)}")]
        )
    root = options.output or results_root(
        load_graph(graph_file, overrides, options.scenario), graph_file, options.scenario
    )
    reference = reference or root
    base = dataclasses.replace(options, mode="performance", audit_config=None, test05_seeds=None)

    async def run(mode: str, output: Path, config: Path | None = None, **more: Any) -> Any:
        chosen = dataclasses.replace(base, mode=mode, output=output, audit_config=config, **more)
        return await run_loadgen(
            graph_file, overrides, chosen, announce, cache_dir=cache_dir, control=control
        )

    perf = performance_logs(reference)
    if perf is None:
        perf = default_log_dir(reference, "performance")
        announce(f"{test}: no performance run in {reference}; running it first (into {perf})")
        await run("performance", perf)
    accuracy_log = reference / "accuracy" / "mlperf_log_accuracy.json"
    if test == "TEST01" and not accuracy_log.is_file():
        announce(f"{test}: no accuracy run in {reference}; running it first")
        await run("accuracy", accuracy_log.parent)

    test_dir = root / "audit" / test
    test_dir.mkdir(parents=True, exist_ok=True)
    config = test_dir / "audit.config"
    if audit_config is not None:
        config.write_text(Path(audit_config).read_text())
    else:
        config.write_text(audit_config_text(test))
    announce(f"{test}: running the compliance test (logs in {test_dir})")
    seeds = {"test05_seeds": TEST05_SEEDS} if test == "TEST05" else {}
    result = await run("performance", test_dir, config, **seeds)

    checks = []
    accuracy_files: dict[str, str] = {}
    if test == "TEST01":
        tested_log = test_dir / "mlperf_log_accuracy.json"
        checks.append(verify_accuracy(accuracy_log, tested_log, _dtype(test_dir)))
        if result.val_map is not None:
            accuracy_files = _accuracy_files(accuracy_log, tested_log, result.val_map)
    checks.append(
        verify_performance(test, perf / "mlperf_log_detail.txt", test_dir / "mlperf_log_detail.txt")
    )
    folder = lay_out_compliance(test, checks, test_dir, root, accuracy_files)
    return AuditVerdict(test, checks, folder)


def _dtype(log_dir: Path) -> str:
    sidecar = log_dir / SIDECAR
    return str(json.loads(sidecar.read_text()).get("dtype", "float32")) if sidecar.is_file() else "float32"


def _accuracy_files(reference_log: Path, tested_log: Path, val_map: Path) -> dict[str, str]:
    """``accuracy.txt`` (top-1 of the logged answers) and, as MLCommons' baseline script makes them,
    ``compliance_accuracy.txt`` (the same) and ``baseline_accuracy.txt`` (the accuracy run's answers for
    the same samples): the checker compares the two when answers are not bit-identical."""
    tested = top1_from_mlperf_log(tested_log, val_map)
    logged = {int(e["qsl_idx"]) for e in json.loads(tested_log.read_text())}
    kept = [e for e in json.loads(reference_log.read_text()) if int(e["qsl_idx"]) in logged]
    with tempfile.TemporaryDirectory() as tmp:
        subset = Path(tmp) / reference_log.name
        subset.write_text(json.dumps(kept))
        sidecar = reference_log.parent / SIDECAR
        if sidecar.is_file():
            (Path(tmp) / sidecar.name).write_text(sidecar.read_text())
        baseline = top1_from_mlperf_log(subset, val_map)

    return {
        "accuracy.txt": accuracy_line(tested) + "\n",
        "compliance_accuracy.txt": accuracy_line(tested) + "\n",
        "baseline_accuracy.txt": accuracy_line(baseline) + "\n",
    }
