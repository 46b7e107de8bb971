from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

from cli_process import start_cli, write_chain

from flowgraph.cli import main

F = "fixture_nodes"
TESTS = Path(__file__).parent


def test_validate_ok_exits_0(capsys):
    assert main(["validate", "graphs/hello.yaml"]) == 0
    assert "ok — 5 nodes, 4 edges" in capsys.readouterr().out


def test_invalid_graph_exits_2_and_names_file_line_and_fix(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "nodes:\n  a: {type: source, params: {range: 1}}\n  b: {type: batch, params: {size: 2}, workers: 2}\n"
        "  c: {type: collect}\nedges: [{from: a, to: b}, {from: b, to: c}]\n"
    )
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:3: node 'b': workers is 2" in err and "fix: set workers: 1" in err


def test_run_failure_exits_1(tmp_path, capsys):
    g = tmp_path / "fail.yaml"
    g.write_text(
        f"nodes:\n  a: {{type: source, params: {{range: 5}}}}\n  f: {{type: '{F}:FailsOn', params: {{bad: 2}}}}\n"
        "  c: {type: collect}\nedges: [{from: a, to: f}, {from: f, to: c}]\n"
    )
    assert main(["run", str(g), "--quiet"]) == 1
    assert "node 'f' (worker 0) failed" in capsys.readouterr().err


def test_run_with_set_and_json_report(tmp_path):
    report = tmp_path / "r.json"
    assert main(["run", "graphs/hello.yaml", "--set", "count=7", "--quiet", "--report", str(report)]) == 0
    data = json.loads(report.read_text())
    assert data["samples"]["completed"] == 7 and {n["node"] for n in data["nodes"]} >= {"numbers", "results"}


def test_bad_set_exits_2(capsys):
    assert main(["run", "graphs/hello.yaml", "--set", "cuont=3"]) == 2
    assert "did you mean count" in capsys.readouterr().err


def test_nodes_lists_types_with_worker_rules(capsys):
    assert main(["nodes"]) == 0
    out = capsys.readouterr().out
    assert "batch" in out and "exactly 1" in out and "map" in out


def test_viz_writes_dot_and_mermaid(tmp_path, capsys):
    assert main(["viz", "graphs/hello.yaml", "--format", "dot", "-o", str(tmp_path / "g.dot")]) == 0
    dot = (tmp_path / "g.dot").read_text()
    assert '"numbers" -> "factorial"' in dot and "map x2" in dot
    assert main(["viz", "graphs/hello.yaml", "--format", "mermaid"]) == 0
    assert "numbers -->" in capsys.readouterr().out


def test_ctrl_c_drains_reports_in_flight_and_exits_nonzero(tmp_path):
    g = write_chain(tmp_path / "slow.yaml", f"{{type: '{F}:Slow', params: {{seconds: 0.01}}}}", 100000, 4)
    proc = start_cli("run", str(g), "--quiet")
    time.sleep(2.0)
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 1, err
    assert "draining" in err and "in flight at the stop" in err


def test_a_piped_run_prints_plain_progress_lines_with_an_eta(tmp_path):
    g = write_chain(tmp_path / "slow.yaml", f"{{type: '{F}:Slow', params: {{seconds: 0.01}}}}", 150, 4)
    proc = start_cli("run", str(g), "--progress-every", "0.3")  # stderr is a pipe, not a terminal
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    lines = [line for line in err.splitlines() if line.startswith("graph: ") and "samples" in line]
    assert len(lines) >= 2, err
    assert "/150 samples" in lines[0] and "/s" in lines[0] and "ETA" in lines[0]
