"""Test utilities for people who write node types, backends and harnesses (as aiostream ships its own).

    from flowgraph.testing import assert_cleaned_up, run_text

    async def test_my_node():
        async with assert_cleaned_up():
            report = await run_text(GRAPH_YAML, items=range(10))
        assert sorted(report.results) == [...]

``installed_package`` makes a throwaway distribution with entry points, on ``sys.path`` for the block,
so a test can prove that a node type, a backend or a harness plugs in from a separate package.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .graph import Graph
from .registry import forget_entry_points
from .report import Report

__all__ = ["LeakError", "assert_cleaned_up", "installed_package", "run_text"]


class LeakError(AssertionError):
    """Threads or tasks a block left running behind it."""


async def run_text(
    text: str,
    items: Iterable[Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    **start: Any,
) -> Report:
    """Validate a graph written inline, run it to completion (feeding ``items`` to its input node), and
    return the report. Validation errors and node failures are raised as the engine raises them."""
    return await Graph.from_text(text, overrides, file="<test graph>").run(items, **start)


@contextlib.asynccontextmanager
async def assert_cleaned_up(grace_s: float = 1.0) -> AsyncIterator[None]:
    """Fail if the block leaves threads or asyncio tasks running (an executor not shut down, a task
    created outside a task group). Threads get ``grace_s`` to finish exiting after the block."""
    threads = set(threading.enumerate())
    tasks = asyncio.all_tasks()
    yield
    await asyncio.sleep(0)  # let tasks finished by the block's last step be collected
    deadline = time.monotonic() + grace_s
    while True:
        extra_threads = [t for t in threading.enumerate() if t not in threads and t.is_alive()]
        extra_tasks = [t for t in asyncio.all_tasks() - tasks if not t.done()]
        if not extra_threads and not extra_tasks:
            return
        if time.monotonic() > deadline:
            raise LeakError(
                f"left running: threads {[t.name for t in extra_threads]}, "
                f"tasks {[t.get_name() for t in extra_tasks]}"
            )
        await asyncio.sleep(0.01)


@contextlib.contextmanager
def installed_package(
    root: Path,
    name: str,
    modules: Mapping[str, str],
    entry_points: Mapping[str, Mapping[str, str]],
) -> Iterator[Path]:
    """A distribution ``name`` under ``root``: ``modules`` (file name → source) beside a dist-info
    folder declaring ``entry_points`` (group → entry name → "module:attr"), importable for the block.

    Entry points are found the way an installed package's are (``importlib.metadata``), so what a test
    proves here holds for a real ``pip install`` of a separate package."""
    root.mkdir(parents=True, exist_ok=True)
    for filename, source in modules.items():
        (root / filename).write_text(source)
    info = root / f"{name}-0.0.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.0.0\n")
    lines = []
    for group, entries in entry_points.items():
        lines.append(f"[{group}]")
        lines.extend(f"{entry} = {target}" for entry, target in entries.items())
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    forget_entry_points()
    names = [Path(filename).stem for filename in modules]
    try:
        yield root
    finally:
        sys.path.remove(str(root))
        for module in names:
            sys.modules.pop(module, None)
        importlib.invalidate_caches()
        forget_entry_points()
