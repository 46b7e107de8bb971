"""docs/writing-nodes.md, as written: its files are written out, its commands run, their stated output
checked line by line, and its packaging snippet installed as a real package."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GUIDE = (ROOT / "docs" / "writing-nodes.md").read_text()
BLOCK = re.compile(r"(<!-- test: run -->\n)?```(\w+)\n(.*?)```", re.S)


def blocks() -> list[tuple[bool, str, str]]:
    return [(bool(run), lang, body) for run, lang, body in BLOCK.findall(GUIDE)]


def files() -> dict[str, str]:
    """The guide's files: each python/yaml/toml block whose first line is ``# NAME``."""
    named = {}
    for _, lang, body in blocks():
        first = body.splitlines()[0]
        if lang in ("python", "yaml", "toml") and first.startswith("# "):
            named[first[2:].strip()] = body
    return named


def env() -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "COLUMNS": "200",
    }


def test_every_command_prints_what_the_guide_says(tmp_path):
    for name, body in files().items():
        if name != "pyproject.toml":
            (tmp_path / name).write_text(body)
    listed = blocks()
    ran = 0
    for i, (run, lang, body) in enumerate(listed):
        if not run:
            continue
        assert lang == "bash"
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", body],
            cwd=tmp_path,
            env=env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, output
        expected = listed[i + 1]
        assert expected[1] == "text", f"a run block is followed by its output: {body}"
        lines = [" ".join(line.split()) for line in output.splitlines()]
        for want in expected[2].splitlines():
            want = " ".join(want.split())
            assert any(want in line for line in lines), f"{body.strip()}: missing {want!r} in\n{output}"
        ran += 1
    assert ran == 4


def test_the_packaging_snippet_installs_a_package_whose_types_register_by_name(tmp_path):
    package, site = tmp_path / "mynodes", tmp_path / "site"
    package.mkdir()
    named = files()
    (package / "pyproject.toml").write_text(named["pyproject.toml"])
    (package / "mynodes.py").write_text(named["mynodes.py"])
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(site),
            str(package),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr
    graph = tmp_path / "by_name.yaml"
    graph.write_text(
        files()["alarm.yaml"].replace('"mynodes:ToReading"', "to_reading").replace('"mynodes:Alarm"', "alarm")
    )
    environment = {**env(), "PYTHONPATH": str(site), "FLOWGRAPH_ALLOW_MODULES": ""}
    shown = subprocess.run(
        [sys.executable, "-m", "flowgraph.cli", "nodes", "alarm"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0 and "Reading" in shown.stdout and "above" in shown.stdout, shown.stderr
    ran = subprocess.run(
        [sys.executable, "-m", "flowgraph.cli", "run", str(graph)],
        cwd=tmp_path / "site",
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr  # by name, no --allow-module: installing was the consent
    assert "4 results" in ran.stdout
