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
    assert '"numbers" -> "factorial"' in dot and "map ×2" in dot
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
    views = [line for line in err.splitlines() if line.startswith("  nodes: ")]
    assert len(views) == len(lines), err  # each progress line comes with the per-node view
    slow = next(part for part in views[-1].split(" · ") if part.split()[0] == "s")
    assert "%" in slow and "/s" in slow and "/4" in slow  # busy %, samples/s, queue fill of its capacity 4


def test_a_terminal_run_shows_a_live_per_node_view_with_an_eta(tmp_path, monkeypatch):
    import io

    from rich.console import Console

    import flowgraph.cli as cli

    screen = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=screen, force_terminal=True, width=80))
    monkeypatch.setattr(cli, "LIVE_VIEW_EVERY_S", 0.0)
    g = write_chain(tmp_path / "slow.yaml", f"{{type: '{F}:Slow', params: {{seconds: 0.01}}}}", 60, 4)
    assert main(["run", str(g)]) == 0
    drawn = screen.getvalue()
    for heading in ("samples/s", "busy %", "queue in", "ETA"):
        assert heading in drawn
    assert "/4" in drawn  # a queue's fill against its capacity


def test_metrics_writes_a_time_series_of_the_run_as_json_lines(tmp_path):
    import json

    graph = write_chain(tmp_path / "g.yaml", f"{{type: '{F}:Slow', params: {{seconds: 0.01}}}}", 40, 8)
    out = tmp_path / "m.jsonl"
    assert main(["run", str(graph), "--quiet", "--metrics", str(out), "--metrics-every", "0.05"]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) >= 3  # several intervals, and the last line at the end
    times = [line["t_s"] for line in lines]
    assert times == sorted(times)
    last = lines[-1]
    assert last["nodes"]["s"]["items_out"] == 40 and last["nodes"]["c"]["items_in"] == 40
    assert any(line["nodes"]["s"]["items_per_s"] > 0 for line in lines)
    assert any(0 < line["nodes"]["s"]["busy_pct"] <= 100 for line in lines)
    edge = next(iter(k for k in last["edges"] if k.startswith("a")))
    assert all(line["edges"][edge]["queued"] <= line["edges"][edge]["capacity"] == 8 for line in lines)
    assert max(line["edges"][edge]["queued"] for line in lines) > 0  # the slow node backs its queue up
    assert last["final"] and sum(last["latency"]["s"]["counts"]) == 40  # each item's time, in the histogram
    assert last["latency"]["s"]["edges_ms"][0] >= 9  # the node sleeps 10 ms per item


def test_a_prometheus_port_outside_the_tcp_range_is_refused_before_the_run(capsys):
    assert main(["run", "graphs/hello.yaml", "--prometheus-port", "70000"]) == 2
    assert "--prometheus-port: 70000 is not a TCP port" in capsys.readouterr().err


def test_metrics_that_cannot_be_written_or_a_bad_interval_are_refused_before_the_run(tmp_path, capsys):
    assert main(["run", "graphs/hello.yaml", "--metrics", str(tmp_path / "no" / "m.jsonl")]) == 2
    assert "--metrics" in capsys.readouterr().err
    assert (
        main(["run", "graphs/hello.yaml", "--metrics", str(tmp_path / "m.jsonl"), "--metrics-every", "0"])
        == 2
    )
    assert "--metrics-every" in capsys.readouterr().err
