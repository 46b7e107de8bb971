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
