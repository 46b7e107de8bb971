"""LoadGen's TestSettings from our options and conf files, and its summary read back."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from flowgraph import GraphFileError, Issue

from .conf import check_conf
from .options import LoadgenOptions

__all__ = ["build_settings", "read_summary"]


def build_settings(lg: Any, options: LoadgenOptions, model: str) -> tuple[Any, str]:
    """TestSettings: LoadGen's built-in mlperf.conf, then --mlperf-conf, --user-conf, then the flags."""
    options.check()
    scenario = options.scenario
    if options.mlperf_conf:
        check_conf(options.mlperf_conf, model, user=False)
    if options.user_conf:
        check_conf(options.user_conf, model, user=True)
    if options.audit_config:
        check_conf(options.audit_config, "*", user=True)
    settings = lg.TestSettings()
    # The built-in mlperf.conf is applied only by the first FromConfig of a process unless asked for
    # explicitly like this (FACTS.md), so ask every time.
    settings.FromConfig("", model, scenario, 0)
    settings.server_coalesce_queries = options.coalesce_queries  # before the conf files: they may override
    for path in (options.mlperf_conf, options.user_conf):
        if path is not None and settings.FromConfig(str(path), model, scenario, 1) != 0:
            raise GraphFileError([Issue(str(path), None, None, "LoadGen could not read this conf file")])
    settings.scenario = getattr(lg.TestScenario, scenario)
    settings.mode = lg.TestMode.AccuracyOnly if options.mode == "accuracy" else lg.TestMode.PerformanceOnly
    if options.target_qps is not None:
        if scenario == "Server":
            settings.server_target_qps = options.target_qps
        settings.offline_expected_qps = options.target_qps
    if options.target_latency_ms is not None:
        ns = int(options.target_latency_ms * 1e6)
        settings.server_target_latency_ns = ns
        settings.single_stream_expected_latency_ns = ns
        settings.multi_stream_expected_latency_ns = ns
    notes = []
    if options.time_s is not None:
        settings.min_duration_ms = int(options.time_s * 1000)
        notes.append(f"min_duration {options.time_s:g} s")
        if options.count is None:  # a quick run: the duration decides, not the conf's query minimum
            settings.min_query_count = 1
    if options.count is not None:
        settings.min_query_count = options.count
        settings.max_query_count = options.count
        if options.time_s is None:
            settings.min_duration_ms = 0
        notes.append(f"{options.count} queries")
    if options.test05_seeds is not None:
        settings.test05 = True
        qsl, index, schedule = options.test05_seeds
        settings.test05_qsl_rng_seed = qsl
        settings.test05_sample_index_rng_seed = index
        settings.test05_schedule_rng_seed = schedule
    if options.performance_sample_count is not None:
        settings.performance_sample_count_override = options.performance_sample_count
    note = f"quick run ({', '.join(notes)}): not a submission-length run" if notes else ""
    return settings, note


EARLY_STOPPING = re.compile(r"Early stopping (\S+) percentile estimate: (\d+)")


def read_summary(log_dir: Path) -> tuple[bool | None, dict[str, str], list[str]]:
    """VALID/INVALID, the result metrics and LoadGen's reasons, from mlperf_log_summary.txt.

    The headline metric sits between 'Mode' and 'Result is'; the reasons follow 'Result is' up to the
    first blank line; median and tail latency come from 'Additional Stats'."""
    path = log_dir / "mlperf_log_summary.txt"
    if not path.exists():
        return None, {}, []
    valid: bool | None = None
    metrics: dict[str, str] = {}
    reasons: list[str] = []
    section = "head"
    for line in path.read_text().splitlines():
        early = EARLY_STOPPING.search(line)
        if early:  # SingleStream/MultiStream: the figure the submission checker records
            metrics[f"early stopping {early.group(1)} percentile estimate (ns)"] = early.group(2)
        if line.startswith("Mode"):
            section = "metric"
        elif line.startswith("Result is"):
            valid = line.split(":", 1)[1].strip() == "VALID"
            section = "reasons"
        elif section == "reasons":
            if not line.strip():
                section = "rest"
            else:
                reasons.append(line.strip())
        elif (
            section == "metric"
            and ":" in line
            or section == "rest"
            and ":" in line
            and line.split(":")[0].strip()
            in ("50.00 percentile latency (ns)", "99.00 percentile latency (ns)", "QPS w/o loadgen overhead")
        ):
            key, _, value = line.partition(":")
            metrics[key.strip()] = value.strip()
    return valid, metrics, reasons
