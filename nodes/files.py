"""Files that several processes may write at once: each writer builds its own temporary file beside the
target, then renames it over the target, so a reader sees the old file or a whole new one, never a
half-written one.

Why: the shards of one graph start together, and each builds into the same cache what the first run
of a graph builds (the built-in model, the synthetic JPEGs, preprocessed arrays). A shared temporary
name let one process rename a file another was still writing (seen on the H200: two GPU shards building
the built-in model at once).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["replace_atomically"]


def replace_atomically(target: Path, write: Callable[[Path], Any]) -> Path:
    """``write(tmp)`` into a temporary path unique to this call, then rename it to ``target``."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp{target.suffix}")
    try:
        write(tmp)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
