"""Running ``flowgraph`` as a user does, in a process of its own, with the tests' node types importable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent


def start_cli(*args: str) -> subprocess.Popen[str]:
    """``python -m flowgraph.cli ARGS`` with stdout and stderr piped (text)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, "-m", "flowgraph.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def write_chain(path: Path, middle: str, count: int, capacity: int = 64) -> Path:
    """A graph file: ``count`` integers → node ``s`` (``middle``, its YAML mapping) → discard."""
    path.write_text(
        f"nodes:\n  a: {{type: source, params: {{range: {count}}}}}\n  s: {middle}\n  c: {{type: discard}}\n"
        f"edges: [{{from: a, to: s, capacity: {capacity}}}, {{from: s, to: c}}]\n"
    )
    return path
