from __future__ import annotations

from flowgraph.cli import main


def test_data_synth_writes_jpegs_and_val_map_deterministically(tmp_path):
    assert main(["data", "synth", "--out", str(tmp_path / "a"), "--count", "5", "--seed", "4"]) == 0
    assert main(["data", "synth", "--out", str(tmp_path / "b"), "--count", "5", "--seed", "4"]) == 0
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert len(files) == 6 and "val_map.txt" in files
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    first = (tmp_path / "a" / files[0]).read_bytes()
    assert first[:2] == b"\xff\xd8" and 5_000 < len(first) < 200_000  # a real JPEG of photo-like size


def test_model_build_writes_a_loadable_onnx(tmp_path):
    import onnxruntime as ort

    out = tmp_path / "m.onnx"
    assert main(["model", "build", "resnet50", "--variant", "pruned", "--out", str(out)]) == 0
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[1:] == [3, 224, 224]


def test_resnet_graph_validates_and_exports(capsys):
    assert main(["validate", "graphs/resnet50_offline.yaml", "--set", "engine_num=2"]) == 0
    assert (
        "init → preprocess → batch_merge → memory_copy → gpu_schedule → inference → batch_split → postprocess"
        in capsys.readouterr().out
    )
    assert (
        main(
            [
                "validate",
                "graphs/resnet50_offline.yaml",
                "--set",
                "inference.workers=4",
                "--set",
                "engine_num=2",
            ]
        )
        == 2
    )
    assert (
        "workers is 4 but inference needs one worker per engine: engine_num is 2" in capsys.readouterr().err
    )
