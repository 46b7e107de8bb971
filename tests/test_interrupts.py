"""Ctrl-C and SIGTERM from outside, as a user presses them: nothing hangs, the stuck node is named."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
from cli_process import start_cli, write_chain

from flowgraph import Graph, NodeFailure, NodeTimeout

TESTS = Path(__file__).parent
F = "fixture_nodes"


def start(tmp_path: Path, how: str) -> tuple[subprocess.Popen[str], Path]:
    marker = tmp_path / "stuck"
    graph = write_chain(
        tmp_path / "stuck.yaml", f"{{type: '{F}:Stuck', params: {{how: {how}, marker: '{marker}'}}}}", 10
    )
    proc = start_cli("run", str(graph), "--quiet")
    deadline = time.monotonic() + 20
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the node never started"
        time.sleep(0.05)
    return proc, marker


def press_twice(proc: subprocess.Popen[str], first: int = signal.SIGINT) -> tuple[float, str]:
    t0 = time.monotonic()
    proc.send_signal(first)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("still running 15 s after Ctrl-C twice") from None
    return time.monotonic() - t0, err


@pytest.mark.parametrize("how", ["thread", "loop", "coroutine"])
def test_ctrl_c_twice_ends_a_stuck_run_within_seconds_naming_the_node(tmp_path, how):
    proc, _ = start(tmp_path, how)
    seconds, err = press_twice(proc)
    assert proc.returncode != 0 and seconds < 8, err
    if how != "coroutine":  # a coroutine is cancelled by the second press: nothing is left to name
        assert "still running" in err and "node 's'" in err, err


def test_sigterm_is_treated_like_ctrl_c(tmp_path):
    proc, _ = start(tmp_path, "coroutine")
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    assert proc.poll() is None  # draining: the stuck item is still in flight
    seconds, err = press_twice(proc, first=signal.SIGTERM)
    assert proc.returncode == 1 and "SIGTERM: draining" in err, err


async def test_a_timeout_fails_the_item_that_runs_too_long_naming_node_and_sample():
    text = f"""
nodes:
  i: {{type: input}}
  s: {{type: '{F}:Slow', params: {{seconds: 5}}, timeout: 0.1}}
  r: {{type: collect}}
edges: [{{from: i, to: s}}, {{from: s, to: r}}]
"""
    t0 = time.monotonic()
    with pytest.raises(NodeFailure) as err:
        await Graph.from_text(text).run([{"id": 7}])
    assert time.monotonic() - t0 < 2
    assert err.value.node == "s" and err.value.sample == 7 and isinstance(err.value.error, NodeTimeout)
    assert "timeout of 0.1 s" in str(err.value)


async def test_a_timeout_under_skip_records_the_sample_and_goes_on():
    text = f"""
nodes:
  i: {{type: input}}
  s: {{type: '{F}:Stuck', params: {{how: thread, seconds: 1}}, timeout: 0.1, on_error: skip}}
  r: {{type: collect}}
edges: [{{from: i, to: s}}, {{from: s, to: r}}]
"""
    report = await Graph.from_text(text).run([{"id": 1}, {"id": 2}], announce=lambda m: None)
    assert [f.sample for f in report.failures] == [1, 2]
    assert report.samples == {"entered": 2, "completed": 0, "failed": 2, "dropped": 0}
