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


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on now (for a server a test starts)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_readme_block(heading: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """The first ```bash block under README heading ``heading`` (e.g. "## Sharding"), run by bash in
    ``cwd`` (with the repository's graphs/ linked there) as a user would type it; fails with its output
    if it exits non-zero."""
    import re

    level = heading.split(" ", 1)[0]
    text = (TESTS.parent / "README.md").read_text()
    section = text.split(heading, 1)[1].split(f"\n{level} ", 1)[0]
    block = re.findall(r"```bash\n(.*?)```", section, re.S)[0]
    (cwd / "graphs").symlink_to(TESTS.parent / "graphs")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done
