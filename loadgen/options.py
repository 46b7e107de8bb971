"""What a LoadGen test is asked to do (``LoadgenOptions``) and what it found (``LoadgenResult``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowgraph import DependencyMissing, GraphFileError, Issue, Report

from .accuracy import AccuracyResult
from .conf import SCENARIOS

__all__ = ["SCENARIOS", "LoadgenOptions", "LoadgenResult", "import_loadgen", "unwritable_folder"]


def import_loadgen() -> Any:
    try:
        import mlperf_loadgen
    except ImportError as exc:
        raise DependencyMissing(
            "LoadGen scenarios need mlcommons-loadgen: pip install 'flowgraph[loadgen]'"
        ) from exc
    return mlperf_loadgen


@dataclass
class LoadgenOptions:
    """What ``flowgraph run --scenario`` passes; every field maps to a LoadGen setting or our harness."""

    scenario: str = "Offline"
    mode: str = "performance"
    target_qps: float | None = None
    target_latency_ms: float | None = None
    count: int | None = None
    time_s: float | None = None
    mlperf_conf: Path | None = None
    user_conf: Path | None = None
    output: Path | None = None
    performance_sample_count: int | None = None
    warm_up_batches: int = 3
    """Full batches sent through the graph before LoadGen's clock starts (untimed, as MLPerf allows):
    without them a short test's first batches pay for cold buffers and thread pools. The Server
    deadline tuning needs one; 0 sends none otherwise."""
    test05_seeds: tuple[int, int, int] | None = None
    """Compliance TEST05: run with these (qsl, sample index, schedule) seeds instead of the official
    ones, through the TestSettings (LoadGen reads no test05 key from a file it is given)."""
    audit_config: Path | None = None
    """A compliance test's ``audit.config``, applied by LoadGen over every other setting. Without one,
    none is read: LoadGen's own default reads ``audit.config`` from the current folder, so a file left
    there by an earlier audit would silently change a submission run."""
    coalesce_queries: bool = True
    """Server: LoadGen hands every query already due in one ``issue_queries`` call (its
    ``server_coalesce_queries``, which NVIDIA's harness also turns on), instead of one call per query.
    Why: each call takes the GIL from the event loop; when LoadGen's thread falls behind, the queries
    it owes then cost one hand-over instead of one each. A conf file's ``coalesce_queries`` still wins."""
    tune_server_wait: bool = True
    """Server: derive batch_merge's ``max_wait_us`` from a measured warm-up batch (when batch_merge's
    edges queue; a pulling batch_merge has no deadline to derive). The CLI turns it off when
    ``--set`` names ``max_wait_us``: the user chose one."""
    freeze_gc: bool = True
    """Move everything alive once the graph is set up out of the collector's reach for the test
    (``gc.freeze``): with torch and a model loaded a full collection walks millions of objects, and one
    stopped a Server run on the H100 for 89 ms (bench/RESULTS.md 4e). Collections still run; they walk
    only what the test itself creates."""

    def check(self) -> None:
        """Refuse values LoadGen would take badly (it trusts its input: ``inf`` QPS crashed it, ``0``
        queries printed VALID with NaN samples/s), and an output folder it could not write to (also a
        crash), before anything runs. Raises ``GraphFileError`` naming the flag."""
        issues: list[Issue] = []

        def bad(flag: str, message: str) -> None:
            issues.append(Issue(flag, None, None, message))

        for flag, value in (
            ("--target-qps", self.target_qps),
            ("--target-latency-ms", self.target_latency_ms),
            ("--time", self.time_s),
        ):
            if value is not None and not (math.isfinite(value) and value > 0):
                bad(flag, f"must be a finite number above 0, got {value}")
        if self.count is not None and self.count < 1:
            bad("--count", f"must be 1 or more queries, got {self.count}")
        if self.scenario not in SCENARIOS:
            bad("--scenario", f"unknown scenario {self.scenario!r}; one of {', '.join(SCENARIOS)}")
        if self.output is not None:
            problem = unwritable_folder(self.output)
            if problem:
                bad("--output", problem)
        if issues:
            raise GraphFileError(issues)


def unwritable_folder(folder: Path) -> str | None:
    """Why files cannot be written in ``folder`` (made if missing), or None."""
    for parent in [folder, *folder.parents]:
        if parent.exists() and not parent.is_dir():
            return f"{parent} is a file, not a folder"
        if parent.exists():
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".flowgraph-write-check"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        return f"cannot write in {folder}: {exc.strerror or exc}"
    return None


@dataclass
class LoadgenResult:
    scenario: str
    mode: str
    valid: bool | None
    metrics: dict[str, str]
    reasons: list[str]
    log_dir: Path
    report: Report | None = None
    accuracy: AccuracyResult | None = None
    settings_note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    val_map: Path | None = None
    """The dataset's labels (for scoring this run's accuracy log), where the dataset has them."""

    def latency_ms(self, percentile: float) -> float:
        """A latency percentile from the summary's additional stats (50 and 99 are read), NaN if absent."""
        return float(self.metrics.get(f"{percentile:.2f} percentile latency (ns)", "nan")) / 1e6
