"""The README's embedding example runs as written."""

from __future__ import annotations

import re
from pathlib import Path


def test_readme_python_example_runs():
    text = (Path(__file__).parent.parent / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "the README has a python example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {"__name__": "readme"})


def test_readme_test_command_is_what_ci_runs():
    root = Path(__file__).parent.parent
    ci = (root / ".ci" / "run").read_text()
    command = re.search(r"^(pip install .*python -m pytest -q)$", ci, re.M)
    assert command and command.group(1) in (root / "README.md").read_text()


def test_the_readme_watching_commands_run_as_written(tmp_path):
    import pytest
    from cli_process import run_readme_block

    pytest.importorskip("matplotlib")
    pytest.importorskip("prometheus_client")
    done = run_readme_block("### Watching a run", tmp_path, timeout=300)
    assert (tmp_path / "run.png").read_bytes()[:4] == b"\x89PNG"
    assert "samples/s" in done.stdout and "style factorial fill:#" in done.stdout
    assert "Prometheus: http://127.0.0.1:9464/metrics" in done.stderr
