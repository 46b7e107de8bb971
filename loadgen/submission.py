"""``flowgraph submission``: an MLPerf Inference results tree, in the layout the submission checker reads.

Input: one folder per scenario, as ``flowgraph run --scenario`` and ``--audit`` lay them out
(``performance/run_1``, ``accuracy``, ``TEST01``…). Output, for submitter S and system Y::

    <division>/S/systems/Y.json                       the system description (ours, or generated)
    <division>/S/src/<benchmark>/README.md            what ran: flowgraph, its graph, the commands
    <division>/S/results/Y/<benchmark>/<Scenario>/
        README.md, user.conf, measurements.json
        performance/run_1/mlperf_log_{summary,detail}.txt
        accuracy/{accuracy.txt, mlperf_log_accuracy.json, mlperf_log_{summary,detail}.txt}
        TEST01/ TEST04/ …                              the compliance tests run, as ``--audit`` laid them out

Only the files the checker reads are copied (LoadGen's trace and our own records stay behind).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowgraph import GraphFileError, Issue

from .accuracy import read_sidecar
from .audit import AUDIT_TESTS, performance_logs, read_detail_log

__all__ = ["SYSTEM_FIELDS", "SubmissionPlan", "generated_system", "write_submission"]

LOGS = ("mlperf_log_summary.txt", "mlperf_log_detail.txt")
SYSTEM_FIELDS = (
    "division",
    "submitter",
    "status",
    "system_name",
    "system_type",
    "system_type_detail",
    "number_of_nodes",
    "host_processor_model_name",
    "host_processors_per_node",
    "host_processor_core_count",
    "host_processor_frequency",
    "host_processor_caches",
    "host_processor_interconnect",
    "host_memory_capacity",
    "host_memory_configuration",
    "host_storage_capacity",
    "host_storage_type",
    "host_networking",
    "host_networking_topology",
    "host_network_card_count",
    "accelerators_per_node",
    "accelerator_model_name",
    "accelerator_frequency",
    "accelerator_host_interconnect",
    "accelerator_interconnect",
    "accelerator_interconnect_topology",
    "accelerator_memory_capacity",
    "accelerator_memory_configuration",
    "accelerator_on-chip_memories",
    "cooling",
    "hw_notes",
    "framework",
    "operating_system",
    "other_software_stack",
    "sw_notes",
)
"""The fields a system description must have (the checker's list, as of its v6 rules)."""


@dataclass(frozen=True)
class SubmissionPlan:
    submitter: str
    system: str
    division: str = "open"
    benchmark: str = "resnet"
    status: str = "available"
    system_json: Path | None = None
    measurements: dict[str, str] | None = None


def write_submission(runs: Sequence[Path], out: Path, plan: SubmissionPlan) -> Path:
    """Lay ``runs`` (scenario folders) out under ``out``; returns the submitter's folder. Raises
    ``GraphFileError`` listing every run that lacks what the checker requires, before writing."""
    found: dict[str, Path] = {}
    problems: list[Issue] = []
    for run in runs:
        perf = performance_logs(run)
        if perf is None:
            problems.append(Issue(str(run), None, None, "no performance run (performance/run_1)"))
            continue
        scenario = str(read_detail_log(perf / "mlperf_log_detail.txt").get("effective_scenario", ""))
        accuracy = run / "accuracy"
        for name in (*LOGS, "mlperf_log_accuracy.json", "accuracy.txt"):
            if not (accuracy / name).is_file():
                problems.append(Issue(str(run), None, None, f"accuracy/{name} missing: run --mode accuracy"))
        if scenario in found:
            problems.append(
                Issue(str(run), None, None, f"a second {scenario} run (first: {found[scenario]})")
            )
        found[scenario] = run
    if problems:
        raise GraphFileError(problems)

    root = out / plan.division / plan.submitter
    system = _system_description(plan, sorted(found))
    (root / "systems").mkdir(parents=True, exist_ok=True)
    (root / "systems" / f"{plan.system}.json").write_text(json.dumps(system, indent=2) + "\n")
    commands: list[str] = []
    for scenario, run in sorted(found.items()):
        target = root / "results" / plan.system / plan.benchmark / scenario
        if target.exists():
            shutil.rmtree(target)
        perf = performance_logs(run)
        assert perf is not None
        _copy(perf, target / "performance" / "run_1", LOGS)
        _copy(run / "accuracy", target / "accuracy", (*LOGS, "mlperf_log_accuracy.json", "accuracy.txt"))
        for test in AUDIT_TESTS:
            if (run / test).is_dir():
                shutil.copytree(run / test, target / test)
        for accuracy in (target / "accuracy", *(target / t / "accuracy" for t in AUDIT_TESTS)):
            if (accuracy / "accuracy.txt").is_file():
                _hash_and_truncate(accuracy)
        audits = [run / "audit" / t for t in AUDIT_TESTS if (run / t).is_dir()]
        made = [read_sidecar(perf), read_sidecar(run / "accuracy"), *map(read_sidecar, audits)]
        runs_made = [m["run"] for m in made if m and m.get("run")]
        commands += [" ".join(r["command"]) for r in runs_made if r.get("command")]
        user_conf = next((r["user_conf"] for r in runs_made if r.get("user_conf")), None)
        conf_text = Path(user_conf).read_text() if user_conf and Path(user_conf).is_file() else ""
        (target / "user.conf").write_text(
            conf_text
            or f"# {scenario}: no user.conf; the settings were LoadGen's mlperf.conf and the flags\n"
        )
        (target / "measurements.json").write_text(json.dumps(_measurements(plan), indent=2) + "\n")
        (target / "README.md").write_text(_scenario_readme(scenario, runs_made))
    src = root / "src" / plan.benchmark
    src.mkdir(parents=True, exist_ok=True)
    (src / "README.md").write_text(_src_readme(plan, commands))
    return root


VIEWABLE_BYTES = 4096
"""A long accuracy log keeps this much of its start and its end in the tree (MLCommons' rule)."""


def _hash_and_truncate(accuracy: Path) -> None:
    """What MLCommons' truncate_accuracy_log.py does to a results tree: ``hash=<sha256 of the full
    accuracy log>`` appended to accuracy.txt (the checker requires it), then a log over 10 KiB cut to
    its first and last 4 KiB (the full log stays in the run's own folder)."""
    log = accuracy / "mlperf_log_accuracy.json"
    digest = hashlib.sha256(log.read_bytes()).hexdigest()
    text = (accuracy / "accuracy.txt").read_text()
    if f"hash={digest}" not in text:
        (accuracy / "accuracy.txt").write_text(text.rstrip("\n") + f"\nhash={digest}\n")
    data = log.read_bytes()
    if len(data) >= 10 * 1024:
        log.write_bytes(data[:VIEWABLE_BYTES] + b"\n\n...\n\n" + data[-VIEWABLE_BYTES:])


def _copy(source: Path, target: Path, names: Sequence[str]) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy2(source / name, target / name)


def _measurements(plan: SubmissionPlan) -> dict[str, str]:
    fields = {
        "input_data_types": "fp32",
        "retraining": "No",
        "starting_weights_filename": "ResNet50 v1.5 ONNX (flowgraph model build)",
        "weight_data_types": "fp32",
        "weight_transformations": "none",
    }
    fields.update(plan.measurements or {})
    return fields


def _system_description(plan: SubmissionPlan, scenarios: list[str]) -> dict[str, Any]:
    """The user's description (``--system-json``) with the division and submitter set from the plan;
    without one, what can be read off this machine. Missing fields are an error naming them."""
    if plan.system_json is not None:
        system = json.loads(plan.system_json.read_text())
    else:
        system = generated_system(plan, "datacenter" if "Server" in scenarios else "edge")
    system.update(division=plan.division, submitter=plan.submitter)
    missing = [field for field in SYSTEM_FIELDS if field not in system]
    if missing:
        raise GraphFileError(
            [Issue(str(plan.system_json), None, None, f"system description lacks {', '.join(missing)}")]
        )
    return system


def generated_system(plan: SubmissionPlan, system_type: str) -> dict[str, Any]:
    """A system description of the machine this runs on (no accelerator: the CPU path)."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:
        try:
            return f"{name} {version(name)}"
        except PackageNotFoundError:
            return ""

    cpu = _cpu_model()
    memory_gib = _memory_gib()
    disk = shutil.disk_usage("/")
    system: dict[str, Any] = {field: "N/A" for field in SYSTEM_FIELDS}
    system.update(
        {
            "status": plan.status,
            "system_name": plan.system,
            "system_type": system_type,
            "number_of_nodes": 1,
            "host_processor_model_name": cpu,
            "host_processors_per_node": 1,
            "host_processor_core_count": os.cpu_count() or 1,
            "host_memory_capacity": f"{memory_gib:.0f} GiB" if memory_gib else "N/A",
            "host_storage_capacity": f"{disk.total / 2**30:.0f} GiB",
            "host_storage_type": "N/A",
            "accelerators_per_node": "0",  # a string: the checker reads a numeric 0 as left empty
            "framework": ", ".join(
                p for p in (installed("flowgraph"), installed("onnxruntime"), installed("torch")) if p
            ),
            "operating_system": f"{platform.system()} {platform.release()}",
            "other_software_stack": ", ".join(
                p for p in (f"Python {platform.python_version()}", installed("mlcommons-loadgen")) if p
            ),
            "hw_notes": "",
            "sw_notes": "generated by flowgraph submission; check every field before submitting",
        }
    )
    return system


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "N/A"


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 0.0


def _scenario_readme(scenario: str, runs: list[dict[str, Any]]) -> str:
    lines = [f"# {scenario}", "", "Made with flowgraph's LoadGen harness. The runs:", ""]
    for run in runs:
        command = " ".join(run["command"]) if run.get("command") else f"graph {run.get('graph')}"
        kind = "compliance test" if run.get("audit_config") else str(run.get("mode"))
        lines.append(f"- {kind}: `{command}`")
    if not runs:
        lines.append("- (no record of the commands was found beside the logs)")
    return "\n".join(lines) + "\n"


def _src_readme(plan: SubmissionPlan, commands: list[str]) -> str:
    shown = "\n".join(f"    {c}" for c in dict.fromkeys(commands)) or "    (no commands recorded)"
    return (
        f"# {plan.benchmark}: flowgraph\n\n"
        "An asyncio dataflow graph (YAML) driven by MLPerf LoadGen: `pip install 'flowgraph[cpu,loadgen]'`.\n"
        "The runs in this tree were made with:\n\n"
        f"{shown}\n"
    )
