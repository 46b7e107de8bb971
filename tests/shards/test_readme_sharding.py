"""The README's sharding commands run as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime", reason="the ResNet50 pipeline needs flowgraph[cpu]")
pytest.importorskip("mlperf_loadgen", reason="LoadGen scenarios need flowgraph[loadgen]")

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_readme_sharding_commands_run_as_written(tmp_path):
    section = (ROOT / "README.md").read_text().split("## Sharding", 1)[1].split("\n## ", 1)[0]
    block = re.findall(r"```bash\n(.*?)```", section, re.S)[0]
    (tmp_path / "graphs").symlink_to(ROOT / "graphs")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "48 results" in done.stdout
    assert "Offline performance: VALID" in done.stdout
    assert 'subgraph shards["x2 shards (cpu, cpu)' in done.stdout
    assert "2 shards on cpu, cpu" in done.stderr
