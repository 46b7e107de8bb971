"""``flowgraph plot``: a --metrics series drawn to PNG; bad files named with their line."""

from __future__ import annotations

import pytest
from cli_process import write_chain

from flowgraph.cli import main

pytest.importorskip("matplotlib")


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_a_run_s_metrics_become_one_png(tmp_path, capsys):
    graph = write_chain(tmp_path / "g.yaml", "{type: 'fixture_nodes:Slow', params: {seconds: 0.01}}", 30, 4)
    series = tmp_path / "run.jsonl"
    assert main(["run", str(graph), "--quiet", "--metrics", str(series), "--metrics-every", "0.05"]) == 0
    assert main(["plot", str(series)]) == 0
    picture = (tmp_path / "run.png").read_bytes()
    width, height = png_size(picture)
    assert width >= 800 and height >= 600
    assert "wrote" in capsys.readouterr().err
    # the same series without its closing line (a run still going) still draws
    lines = series.read_text().splitlines()[:-1]
    (tmp_path / "partial.jsonl").write_text("\n".join(lines) + "\n")
    assert main(["plot", str(tmp_path / "partial.jsonl"), "-o", str(tmp_path / "p.png")]) == 0
    assert png_size((tmp_path / "p.png").read_bytes()) == (width, height)


def test_a_file_that_is_not_a_series_is_named_with_its_line(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"t_s": 1, "nodes": {}}\n{not json\n')
    assert main(["plot", str(bad)]) == 2
    assert f"{bad}:2: not a JSON line" in capsys.readouterr().err
    other = tmp_path / "other.jsonl"
    other.write_text('{"hello": 1}\n')
    assert main(["plot", str(other)]) == 2
    assert "not a --metrics line" in capsys.readouterr().err


def test_viz_draws_a_png_top_to_bottom_without_graphviz(tmp_path, monkeypatch):
    import flowgraph.export as export

    monkeypatch.setattr(export.shutil, "which", lambda name: None)  # as on a machine without Graphviz
    out = tmp_path / "g.png"
    assert main(["viz", "graphs/resnet50_offline.yaml", "--format", "png", "-o", str(out)]) == 0
    width, height = png_size(out.read_bytes())
    assert height > 1.5 * width  # eight stages as a column, not a 2148x76 strip
    assert width >= 300


def test_without_matplotlib_plot_names_the_extra_to_install(tmp_path, monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.split(".")[0] == "matplotlib":
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    series = tmp_path / "s.jsonl"
    series.write_text('{"t_s": 1, "nodes": {}}\n')
    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    assert main(["plot", str(series)]) == 2
    assert "pip install 'flowgraph[plot]'" in capsys.readouterr().err
