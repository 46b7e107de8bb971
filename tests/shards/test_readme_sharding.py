"""The README's sharding commands run as written."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_process import run_readme_block

pytest.importorskip("onnxruntime", reason="the ResNet50 pipeline needs flowgraph[cpu]")
pytest.importorskip("mlperf_loadgen", reason="LoadGen scenarios need flowgraph[loadgen]")

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_readme_sharding_commands_run_as_written(tmp_path):
    done = run_readme_block("## Sharding", tmp_path)
    assert "48 results" in done.stdout
    assert "Offline performance: VALID" in done.stdout
    assert 'subgraph shards["x2 shards (cpu, cpu)' in done.stdout
    assert "2 shards on cpu, cpu" in done.stderr
