"""``flowgraph accuracy`` agrees with MLCommons' accuracy rule for ImageNet, for label offsets 0 and -1
and every dtype. The rule is re-implemented here from its description (their code is not copied in):
de-duplicate by ``qsl_idx`` keeping the first entry, read the first value of the response bytes as
``dtype``, compare it with the val_map label as it is; accuracy = good / distinct indices."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tiny_models import constant_class_model

from flowgraph import run_event_loop
from flowgraph.cli import main
from flowgraph.loadgen import LoadgenOptions, run_loadgen, top1_from_mlperf_log
from flowgraph.loadgen.accuracy import DTYPES

GRAPH = Path("graphs/resnet50_offline.yaml")


def mlcommons_top1(log: Path, val_map: Path, dtype: str = "float32") -> tuple[int, int]:
    labels = [int(line.split()[1]) for line in val_map.read_text().splitlines() if line.strip()]
    seen: set[int] = set()
    good = 0
    for entry in json.loads(log.read_text()):
        index = entry["qsl_idx"]
        if index in seen:
            continue
        seen.add(index)
        found = np.frombuffer(bytes.fromhex(entry["data"]), DTYPES[dtype])
        if found.size and int(found[0]) == labels[index]:
            good += 1
    return good, len(seen)


@pytest.mark.parametrize("offset", [0, -1])
def test_our_logs_score_as_mlcommons_scores_them_with_the_offset_applied_once(
    tmp_path, dataset, offset, capsys
):
    # The model always answers class 3; with label_offset -1 the graph logs 2 (MLPerf's 1001-class layout).
    model = constant_class_model(tmp_path / "const.onnx", answer=3)
    out = tmp_path / f"acc{offset}"
    overrides = {"model.path": str(model), "dataset.path": str(dataset), "label_offset": offset}
    options = LoadgenOptions(mode="accuracy", output=out)
    result = run_event_loop(
        run_loadgen(GRAPH, overrides, options, announce=lambda m: None, cache_dir=tmp_path)
    )
    log, val_map = out / "mlperf_log_accuracy.json", dataset / "val_map.txt"
    reference = mlcommons_top1(log, val_map)
    assert (result.accuracy.good, result.accuracy.total) == reference
    labels = [int(line.split()[1]) for line in val_map.read_text().splitlines() if line.strip()]
    assert reference[0] == sum(label == 3 + offset for label in labels)  # the offset went in exactly once
    for flags in ([], ["--label-offset", str(offset)]):  # the model's offset, stated again: not re-applied
        assert main(["accuracy", str(log), "--val-map", str(val_map), *flags]) == 0
        assert f"good={reference[0]}, total={reference[1]}" in capsys.readouterr().out
    if offset:
        assert main(["accuracy", str(log), "--val-map", str(val_map), "--label-offset", "0"]) == 2
        assert "already have label_offset -1 applied" in capsys.readouterr().err


def _log(tmp_path: Path, answers: list[bytes], dtype: str) -> tuple[Path, Path]:
    val_map = tmp_path / "val_map.txt"
    val_map.write_text("".join(f"img{k}.JPEG {k % 5}\n" for k in range(len(answers))))
    log = tmp_path / "mlperf_log_accuracy.json"
    entries = [{"seq_id": k, "qsl_idx": k, "data": a.hex().upper()} for k, a in enumerate(answers)]
    entries.append({"seq_id": 99, "qsl_idx": 0, "data": np.array([4], DTYPES[dtype]).tobytes().hex()})  # dup
    log.write_text(json.dumps(entries))
    return log, val_map


@pytest.mark.parametrize("dtype", sorted(DTYPES))
def test_a_log_from_another_harness_scores_alike_for_every_dtype(tmp_path, dtype, capsys):
    values = [0, 1, 3, 3, 4, 0, 2]  # labels are k % 5: 0 1 2 3 4 0 1 -> right at 0, 1, 3, 4, 5
    log, val_map = _log(tmp_path, [np.array([v], DTYPES[dtype]).tobytes() for v in values], dtype)
    reference = mlcommons_top1(log, val_map, dtype)
    ours = top1_from_mlperf_log(log, val_map, dtype=dtype)
    assert (ours.good, ours.total) == reference == (5, 7)
    assert main(["accuracy", str(log), "--val-map", str(val_map), "--dtype", dtype]) == 0
    assert "good=5, total=7" in capsys.readouterr().out
    shifted = top1_from_mlperf_log(log, val_map, label_offset=-1, dtype=dtype)  # no sidecar: added once
    assert shifted.good == sum(v - 1 == k % 5 for k, v in enumerate(values))


def test_an_empty_response_counts_as_wrong_and_is_said(tmp_path, capsys):
    log, val_map = _log(
        tmp_path, [np.array([0], "<f4").tobytes(), b"", np.array([2], "<f4").tobytes()], "float32"
    )
    assert main(["accuracy", str(log), "--val-map", str(val_map)]) == 0
    printed = capsys.readouterr().out
    assert "good=2, total=3" in printed and "1 empty responses" in printed
