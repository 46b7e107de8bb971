"""Files several processes write at once (shards building one cache): readers never see half a file."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from flowgraph.nodes.files import replace_atomically


def test_concurrent_writers_of_one_file_never_show_a_reader_half_of_it(tmp_path):
    target = tmp_path / "model.bin"
    sizes = {1_000_000 * k for k in (1, 2, 3)}
    stop = threading.Event()
    seen: list[int] = []

    def writer(size: int) -> None:
        data = bytes([size % 251]) * size
        for _ in range(15):
            replace_atomically(target, lambda tmp: tmp.write_bytes(data))

    def reader() -> None:
        while not stop.is_set():
            if target.exists():
                seen.append(len(target.read_bytes()))

    watching = threading.Thread(target=reader)
    watching.start()
    writers = [threading.Thread(target=writer, args=(size,)) for size in sizes]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    stop.set()
    watching.join()
    assert seen and set(seen) <= sizes  # only whole files, of one writer or another
    assert [p.name for p in tmp_path.iterdir()] == ["model.bin"]  # no temporary file left


def test_two_processes_building_the_builtin_model_at_once_leave_a_loadable_model(tmp_path):
    out = tmp_path / "pruned.onnx"
    build = (
        "import sys; from flowgraph.nodes.inference.resnet50_onnx import build_resnet50; "
        "build_resnet50(__import__('pathlib').Path(sys.argv[1]), 'pruned')"
    )
    procs = [subprocess.Popen([sys.executable, "-c", build, str(out)]) for _ in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    import onnx

    onnx.checker.check_model(onnx.load(str(out)))
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == ["pruned.onnx"]
