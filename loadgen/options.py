"""What a LoadGen test is asked to do (``LoadgenOptions``) and what it found (``LoadgenResult``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowgraph import DependencyMissing, Report

from .accuracy import AccuracyResult
from .conf import SCENARIOS

__all__ = ["SCENARIOS", "LoadgenOptions", "LoadgenResult", "import_loadgen"]


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

    def latency_ms(self, percentile: float) -> float:
        """A latency percentile from the summary's additional stats (50 and 99 are read), NaN if absent."""
        return float(self.metrics.get(f"{percentile:.2f} percentile latency (ns)", "nan")) / 1e6
