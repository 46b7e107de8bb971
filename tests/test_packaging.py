"""A plain, non-editable install ships the node types as flowgraph.nodes, with their entry point."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.timeout(300)
def test_wheel_maps_nodes_to_flowgraph_nodes_and_registers_the_entry_point(tmp_path):
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if built.returncode != 0 and "No module named" in built.stderr:
        pytest.skip(f"cannot build a wheel here: {built.stderr.strip()[-200:]}")
    assert built.returncode == 0, built.stderr
    wheel = next(tmp_path.glob("flowgraph-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "flowgraph/nodes/__init__.py" in names and "flowgraph/nodes/inference/node.py" in names
    assert not any(n.startswith("nodes/") for n in names)  # no top-level "nodes" package to collide
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[flowgraph.nodes]" in text and "builtin = flowgraph.nodes" in text
    assert "flowgraph = flowgraph.cli:main" in text
