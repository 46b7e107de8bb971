"""Top-1 from MLPerf's ``mlperf_log_accuracy.json``, as MLPerf's accuracy-imagenet.py computes it.

Each entry holds ``qsl_idx`` and the response bytes in hex. Our harness answers with the predicted
class as one float32 (the reference's default dtype); the first occurrence of each index counts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

__all__ = ["AccuracyResult", "top1_from_mlperf_log"]

DTYPES = {"float32": "<f4", "int32": "<i4", "int64": "<i8"}


@dataclass(frozen=True)
class AccuracyResult:
    good: int
    total: int

    @property
    def top1(self) -> float:
        return self.good / self.total if self.total else 0.0


def top1_from_mlperf_log(
    log: Path | str, val_map: Path | str, label_offset: int = 0, dtype: str = "float32"
) -> AccuracyResult:
    """Compare each logged answer (plus ``label_offset``) with the val_map label of its ``qsl_idx``."""
    import numpy as np

    labels = []
    for number, line in enumerate(Path(val_map).read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ValueError(f"{val_map}:{number}: expected '<file name> <label>'")
        labels.append(int(parts[1]))
    try:
        entries = json.loads(Path(log).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{log}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    seen: set[int] = set()
    good = 0
    for entry in entries:
        index = int(entry["qsl_idx"])
        if index in seen:
            continue
        seen.add(index)
        if index >= len(labels):
            raise ValueError(f"{log}: qsl_idx {index} is past the {len(labels)} labels of {val_map}")
        data = np.frombuffer(bytes.fromhex(entry["data"]), DTYPES[dtype])
        if data.size and int(data[0]) + label_offset == labels[index]:
            good += 1
    return AccuracyResult(good, len(seen))
