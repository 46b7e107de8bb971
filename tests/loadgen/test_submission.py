"""``flowgraph submission``: the results tree in the layout MLCommons' checker reads, from the README's
rehearsal run as written."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mlperf_loadgen", reason="LoadGen scenarios need flowgraph[loadgen]")

from flowgraph import GraphFileError  # noqa: E402
from flowgraph.cli import main  # noqa: E402
from flowgraph.loadgen.submission import SYSTEM_FIELDS, SubmissionPlan, write_submission  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

# The checker's v6 path templates (MLCommons' submission_checker/constants.py), restated.
CHECKER_PATHS = [
    "{d}/{s}/systems/{y}.json",
    "{d}/{s}/results/{y}/{b}/{c}/performance/run_1/mlperf_log_detail.txt",
    "{d}/{s}/results/{y}/{b}/{c}/performance/run_1/mlperf_log_summary.txt",
    "{d}/{s}/results/{y}/{b}/{c}/accuracy/mlperf_log_detail.txt",
    "{d}/{s}/results/{y}/{b}/{c}/accuracy/mlperf_log_summary.txt",
    "{d}/{s}/results/{y}/{b}/{c}/accuracy/accuracy.txt",
    "{d}/{s}/results/{y}/{b}/{c}/accuracy/mlperf_log_accuracy.json",
    "{d}/{s}/results/{y}/{b}/{c}/measurements.json",
    "{d}/{s}/results/{y}/{b}/{c}/user.conf",
    "{d}/{s}/results/{y}/{b}/{c}/README.md",
    "{d}/{s}/results/{y}/{b}/{c}/TEST01/verify_accuracy.txt",
    "{d}/{s}/results/{y}/{b}/{c}/TEST01/verify_performance.txt",
    "{d}/{s}/results/{y}/{b}/{c}/TEST01/performance/run_1/mlperf_log_detail.txt",
    "{d}/{s}/results/{y}/{b}/{c}/TEST04/verify_performance.txt",
    "{d}/{s}/results/{y}/{b}/{c}/TEST04/performance/run_1/mlperf_log_detail.txt",
    "{d}/{s}/src/{b}/README.md",
]
MEANINGFUL = [
    "division",
    "submitter",
    "system_type",
    "status",
    "system_name",
    "number_of_nodes",
    "host_processor_model_name",
    "host_processors_per_node",
    "host_processor_core_count",
    "host_memory_capacity",
    "host_storage_capacity",
    "accelerators_per_node",
    "framework",
    "operating_system",
]


def readme_block() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Submitting", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_the_readme_rehearsal_runs_as_written_and_makes_the_checker_s_layout(tmp_path):
    (tmp_path / "graphs").symlink_to(ROOT / "graphs")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", readme_block()],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    fields = {"d": "open", "s": "MyOrg", "y": "cpu_box", "b": "resnet", "c": "Offline"}
    tree = tmp_path / "submission"
    for template in CHECKER_PATHS:
        assert (tree / template.format(**fields)).is_file(), template
    scenario = tree / "open/MyOrg/results/cpu_box/resnet/Offline"
    # accuracy.txt carries the hash of the full accuracy log the run wrote
    full = tmp_path / "results/resnet50_offline/Offline/accuracy/mlperf_log_accuracy.json"
    lines = (scenario / "accuracy/accuracy.txt").read_text().splitlines()
    assert re.fullmatch(r"accuracy=[\d.]+%, good=\d+, total=24", lines[0])
    assert f"hash={hashlib.sha256(full.read_bytes()).hexdigest()}" in lines
    assert "TEST PASS" in (scenario / "TEST01/verify_accuracy.txt").read_text().splitlines()
    system = json.loads((tree / "open/MyOrg/systems/cpu_box.json").read_text())
    assert set(SYSTEM_FIELDS) <= set(system)
    assert all(system[f] for f in MEANINGFUL), [f for f in MEANINGFUL if not system[f]]
    assert system["division"] == "open" and system["submitter"] == "MyOrg"
    readme = (scenario / "README.md").read_text()
    assert "--audit TEST01" in readme and "--mode accuracy" in readme  # the commands that made the runs
    assert not (scenario / "performance/run_1/mlperf_log_trace.json").exists()


def fake_run(folder: Path, scenario: str = "Offline", accuracy_bytes: int = 100) -> Path:
    detail = ":::MLLOG " + json.dumps({"key": "effective_scenario", "value": scenario}) + "\n"
    for sub in ("performance/run_1", "accuracy"):
        (folder / sub).mkdir(parents=True)
        (folder / sub / "mlperf_log_detail.txt").write_text(detail)
        (folder / sub / "mlperf_log_summary.txt").write_text("Result is : VALID\n")
    entries = [{"seq_id": i, "qsl_idx": i, "data": "00004040"} for i in range(accuracy_bytes // 40 + 1)]
    (folder / "accuracy/mlperf_log_accuracy.json").write_text(json.dumps(entries))
    (folder / "accuracy/accuracy.txt").write_text("accuracy=10.000%, good=1, total=10\n")
    return folder


def test_a_long_accuracy_log_is_cut_to_its_ends_after_its_hash_is_taken(tmp_path):
    run = fake_run(tmp_path / "Offline", accuracy_bytes=50_000)
    full = (run / "accuracy/mlperf_log_accuracy.json").read_bytes()
    root = write_submission([run], tmp_path / "out", SubmissionPlan("Org", "box"))
    accuracy = root / "results/box/resnet/Offline/accuracy"
    cut = (accuracy / "mlperf_log_accuracy.json").read_bytes()
    assert cut.startswith(full[:4096]) and cut.endswith(full[-4096:]) and len(cut) < 10 * 1024
    assert f"hash={hashlib.sha256(full).hexdigest()}" in (accuracy / "accuracy.txt").read_text()
    assert (run / "accuracy/mlperf_log_accuracy.json").read_bytes() == full  # the run keeps its log


def test_runs_that_lack_what_the_checker_needs_are_all_named_before_anything_is_written(tmp_path, capsys):
    complete = fake_run(tmp_path / "a")
    no_accuracy = fake_run(tmp_path / "b", "Server")
    (no_accuracy / "accuracy/accuracy.txt").unlink()
    no_performance = tmp_path / "c"
    no_performance.mkdir()
    twice = fake_run(tmp_path / "d")
    out = tmp_path / "out"
    code = main(
        ["submission", *map(str, (complete, no_accuracy, no_performance, twice)), "--submitter", "O"]
        + ["--system", "s", "--out", str(out)]
    )
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert (
        "accuracy/accuracy.txt missing" in err and "no performance run" in err and "a second Offline" in err
    )


def test_a_system_description_without_the_required_fields_is_refused_naming_them(tmp_path):
    run = fake_run(tmp_path / "Offline")
    mine = tmp_path / "system.json"
    mine.write_text(json.dumps({"system_name": "box", "status": "available"}))
    with pytest.raises(GraphFileError, match="host_processor_model_name") as caught:
        write_submission([run], tmp_path / "out", SubmissionPlan("Org", "box", system_json=mine))
    assert "framework" in str(caught.value)
