"""Check mlperf.conf / user.conf before LoadGen reads them.

LoadGen's own parser ignores a misspelt key, a model or scenario name that matches nothing, and reads
``min_query_count = 1e5`` as 1 (strtoull stops at the 'e'): runs then silently use defaults. Here each
of those is an error naming the file and line.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from flowgraph import GraphFileError, Issue
from flowgraph.errors import did_you_mean
from flowgraph.load import read_text_file

__all__ = ["BUILTIN_ONLY", "KEYS", "SCENARIOS", "UNREAD_OFFICIAL", "check_conf"]

SCENARIOS = ("SingleStream", "MultiStream", "Server", "Offline")

_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)")
"""What LoadGen's integer parser reads as written: no leading zero (octal), no 1e5, no 1_000."""

INTEGER, FLOAT, PERCENT, MILLIS, FLAG = "integer", "float", "percent", "milliseconds", "flag"
KEYS = {
    "mode": INTEGER,
    "min_duration": MILLIS,
    "max_duration": MILLIS,
    "min_query_count": INTEGER,
    "max_query_count": INTEGER,
    "qsl_rng_seed": INTEGER,
    "sample_index_rng_seed": INTEGER,
    "schedule_rng_seed": INTEGER,
    "accuracy_log_rng_seed": INTEGER,
    "accuracy_log_probability": FLOAT,  # a probability, 0 to 1
    "accuracy_sample_count_override": INTEGER,
    "accuracy_log_sampling_target": INTEGER,
    "print_timestamps": FLAG,
    "performance_issue_unique": FLAG,
    "performance_issue_same": FLAG,
    "performance_issue_same_index": INTEGER,
    "performance_sample_count_override": INTEGER,
    "target_latency_percentile": PERCENT,
    "target_latency": MILLIS,
    "target_qps": FLOAT,
    "samples_per_query": INTEGER,
    "max_async_queries": INTEGER,
    "coalesce_queries": FLAG,
    "test05": FLAG,
    "test05_qsl_rng_seed": INTEGER,
    "test05_sample_index_rng_seed": INTEGER,
    "test05_schedule_rng_seed": INTEGER,
    "sample_concatenate_permutation": FLAG,
    "use_token_latencies": FLAG,
    "ttft_latency": MILLIS,
    "tpot_latency": MILLIS,
    "infer_token_latencies": FLAG,
    "token_latency_scaling_factor": INTEGER,
}
"""The keys LoadGen reads from a conf file, with how it reads each value. Pinned against the installed
LoadGen by tests/loadgen/test_conf.py: every key of LoadGen's own built-in mlperf.conf is here, and
every key here is a name LoadGen's library knows. Not here: ``server_num_issue_query_threads`` (a
TestSettings field LoadGen never reads from a conf file: a line setting it would do nothing)."""

UNREAD_OFFICIAL = {"target_duration": MILLIS}
"""Keys MLCommons' own mlperf.conf sets that LoadGen does not read: accepted in an mlperf.conf (so the
official file passes), refused in a user.conf (where setting one would silently do nothing)."""


BUILTIN_ONLY = frozenset(
    {
        "qsl_rng_seed",
        "sample_index_rng_seed",
        "schedule_rng_seed",
        "accuracy_log_probability",
        "test05",
        "test05_qsl_rng_seed",
        "test05_sample_index_rng_seed",
        "test05_schedule_rng_seed",
    }
)
"""Keys LoadGen reads only from the mlperf.conf compiled into it: in any file it is given (a user.conf,
an audit.config, an mlperf.conf passed with --mlperf-conf) it skips them. Accepted in an mlperf.conf,
which lists them (its values are the built-in ones); refused elsewhere. Pinned by test_conf.py, which
sets each through a conf file and sees LoadGen keep its own value."""


@dataclass(frozen=True)
class ConfLine:
    model: str
    scenario: str
    key: str
    value: float
    line: int


def check_conf(path: Path, model: str, user: bool = True) -> list[ConfLine]:
    """Parse ``path``; raise ``GraphFileError`` listing every problem. ``user``: a user.conf, whose lines
    must name this ``model`` (or ``*``); an mlperf.conf may name any MLPerf model; an audit.config is
    checked with ``model="*"`` (what LoadGen reads it for)."""
    text = read_text_file(path, "conf file")
    issues: list[Issue] = []
    lines: list[ConfLine] = []
    for number, raw in enumerate(text.splitlines(), 1):
        body = raw.split("#", 1)[0].strip()
        if not body:
            continue

        def bad(msg: str, fix: str | None = None, number: int = number) -> None:
            issues.append(Issue(str(path), number, None, msg, fix))

        if "=" not in body:
            bad(f"expected 'model.scenario.key = value', got {body!r}")
            continue
        name, _, value_text = (part.strip() for part in body.partition("="))
        parts = name.rsplit(".", 2)  # a model's own name may hold dots (wan-2.2-t2v-a14b)
        if len(parts) != 3 or not all(parts):
            bad(f"{name!r}: a key is model.scenario.key (three parts; '*' matches any model or scenario)")
            continue
        conf_model, scenario, key = parts
        # A user.conf configures this run's model; an mlperf.conf lists every model of its round (the
        # list changes each round, so any name goes there).
        if user and model == "*" and conf_model != "*":
            bad(
                f"model {conf_model!r}: LoadGen reads an audit.config for the model '*' only; it ignores this line",
                f"write *.{scenario}.{key}",
            )
            continue
        if user and conf_model not in ("*", model):
            bad(
                f"model {conf_model!r} matches nothing (this run is {model!r})",
                did_you_mean(conf_model, (model,), n=1) or f"use {model} or *",
            )
            continue
        if scenario != "*" and scenario not in SCENARIOS:
            bad(
                f"scenario {scenario!r} matches nothing",
                did_you_mean(scenario, SCENARIOS, n=1) or f"one of {', '.join(SCENARIOS)} or *",
            )
            continue
        kind = KEYS.get(key) or (None if user else UNREAD_OFFICIAL.get(key))
        if kind is None and key in UNREAD_OFFICIAL:
            bad(
                f"{key}: LoadGen does not read this key (only MLCommons' mlperf.conf sets it); it would do nothing"
            )
            continue
        if kind is None:
            bad(f"unknown key {key!r} (LoadGen would silently ignore it)", did_you_mean(key, KEYS, n=1))
            continue
        if user and key in BUILTIN_ONLY:
            bad(f"{key}: LoadGen reads this key only from its built-in mlperf.conf; here it would do nothing")
            continue
        if kind in (INTEGER, FLAG) and not _DECIMAL.fullmatch(value_text):
            leading = re.match(r"-?\d+", value_text)
            octal = re.fullmatch(r"-?0[0-7]+", value_text)
            why = (
                f"LoadGen reads a leading 0 as octal ({value_text} is {int(value_text, 8)})"
                if octal
                else f"LoadGen reads {value_text!r} as {leading.group()}"
                if leading
                else "must be a whole number in decimal digits"
            )
            bad(f"{key} = {value_text!r}: {why}", "write plain decimal digits, e.g. 1000")
            continue
        try:
            value = float(int(value_text, 0)) if kind in (INTEGER, FLAG) else float(value_text)
        except ValueError:
            bad(
                f"{key} = {value_text!r}: must be {'an integer' if kind in (INTEGER, FLAG) else 'a number'}"
                + (" (LoadGen reads '1e5' as 1)" if kind == INTEGER and "e" in value_text.lower() else "")
            )
            continue
        if not math.isfinite(value):
            bad(f"{key} = {value_text}: must be a finite number")
            continue
        if value < 0:
            bad(f"{key} = {value_text}: must not be negative (LoadGen reads -1 as 18446744073709551615)")
            continue
        if key == "target_qps" and value == 0:
            bad(f"{key} = {value_text}: must be above 0")
            continue
        if kind == PERCENT and key.endswith("percentile") and value >= 100:
            bad(f"{key} = {value_text}: a percentile is below 100 (99 means the 99th)")
            continue
        if kind == PERCENT and 0 < value <= 1:
            bad(
                f"{key} = {value_text}: this is a percentage (99 means the 99th percentile); {value_text} would be "
                f"the {value_text}th",
                f"write {value * 100:g}",
            )
            continue
        # a latency under 1 ms, or a duration under 100 ms, was almost certainly written in seconds
        seconds_below = 1 if key.endswith("latency") else 100 if key.endswith("duration") else 0
        if kind == MILLIS and 0 < value < seconds_below:
            bad(
                f"{key} = {value_text}: LoadGen reads milliseconds; {value_text} ms looks like seconds",
                f"write {value * 1000:g}",
            )
            continue
        if kind == FLAG and value not in (0, 1):
            bad(f"{key} = {value_text}: a flag is 0 or 1")
            continue
        lines.append(ConfLine(conf_model, scenario, key, value, number))
    if issues:
        raise GraphFileError(issues)
    return lines
