"""Top-1 from MLPerf's ``mlperf_log_accuracy.json``, as MLPerf's accuracy-imagenet.py computes it.

Each entry holds ``qsl_idx`` and the response bytes in hex; the first occurrence of each index counts;
an answer is the first value of its bytes read as ``dtype`` (the reference's default: float32), right
when it equals the label. An empty response (an answer our harness gave a query it could not run) is
counted as wrong, and said.

The label offset is applied exactly once. Our harness answers with the class after the graph's
``label_offset`` (postprocess applied it) and says so in ``flowgraph_log.json`` beside the log; a log
from another harness has no such file and holds what its model returned. So ``--label-offset`` is the
offset the model needs: for our own logs it must agree with what was applied (then nothing more is
added), for others it is added to each answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DTYPES",
    "SIDECAR",
    "AccuracyResult",
    "accuracy_line",
    "read_sidecar",
    "top1_from_mlperf_log",
    "write_sidecar",
]

DTYPES = {"float32": "<f4", "int32": "<i4", "int64": "<i8"}
SIDECAR = "flowgraph_log.json"
"""Beside the LoadGen logs: how our answers are written (dtype, label offset already applied)."""


@dataclass(frozen=True)
class AccuracyResult:
    good: int
    total: int
    empty: int = 0
    """Responses with no bytes (counted as wrong)."""
    notes: list[str] = field(default_factory=list)

    @property
    def top1(self) -> float:
        return self.good / self.total if self.total else 0.0


def write_sidecar(
    log_dir: Path, label_offset: int, dtype: str = "float32", run: dict[str, Any] | None = None
) -> None:
    """Record how this harness writes its answers, for ``top1_from_mlperf_log`` to read back, and how
    the run was made (``run``: the command, graph and conf files, for a submission's README)."""
    record: dict[str, Any] = {"response": "top-1 class", "dtype": dtype, "label_offset_applied": label_offset}
    if run:
        record["run"] = run
    (log_dir / SIDECAR).write_text(json.dumps(record, indent=1) + "\n")


def read_sidecar(log_dir: Path) -> dict[str, Any] | None:
    """What ``write_sidecar`` recorded in ``log_dir``, or None where there is no record."""
    path = log_dir / SIDECAR
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc.msg})") from None
    return data if isinstance(data, dict) else None


def top1_from_mlperf_log(
    log: Path | str, val_map: Path | str, label_offset: int | None = None, dtype: str | None = None
) -> AccuracyResult:
    """Compare each logged answer with the val_map label of its ``qsl_idx`` (see the module's note on
    ``label_offset``: None means none beyond what the log says was applied)."""
    import numpy as np

    log = Path(log)
    notes: list[str] = []
    written = read_sidecar(log.parent)
    applied = int(written.get("label_offset_applied", 0)) if written else 0
    if written is not None and label_offset is not None and label_offset != applied:
        raise ValueError(
            f"{log.parent / SIDECAR}: this log's answers already have label_offset {applied} applied; "
            f"--label-offset {label_offset} disagrees (leave it out, or give {applied})"
        )
    if written is not None and label_offset is not None:
        notes.append(f"label_offset {applied} was applied when the log was written; not applied again")
    extra = label_offset or 0 if written is None else 0
    dtype = dtype or (str(written.get("dtype", "float32")) if written else "float32")
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r}: one of {', '.join(DTYPES)}")
    labels = []
    for number, line in enumerate(Path(val_map).read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ValueError(f"{val_map}:{number}: expected '<file name> <label>'")
        labels.append(int(parts[1]))
    try:
        entries = json.loads(log.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{log}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    seen: set[int] = set()
    good = empty = 0
    for entry in entries:
        index = int(entry["qsl_idx"])
        if index in seen:
            continue
        seen.add(index)
        if index >= len(labels):
            raise ValueError(f"{log}: qsl_idx {index} is past the {len(labels)} labels of {val_map}")
        data = np.frombuffer(bytes.fromhex(entry["data"]), DTYPES[dtype])
        if not data.size:
            empty += 1
        elif int(data[0]) + extra == labels[index]:
            good += 1
    if empty:
        notes.append(f"{empty} empty responses (queries answered without a result) counted as wrong")
    return AccuracyResult(good, len(seen), empty, notes)


def accuracy_line(result: AccuracyResult) -> str:
    """The line MLPerf's accuracy-imagenet.py prints, and the submission checker reads from accuracy.txt."""
    return f"accuracy={100 * result.top1:.3f}%, good={result.good}, total={result.total}"
