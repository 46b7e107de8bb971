"""Tests that need a CUDA GPU: skipped, with the reason, anywhere CuPy cannot see one."""

from __future__ import annotations

import pytest


def _gpu_problem() -> str | None:
    try:
        import cupy
    except ImportError:
        return "no CuPy installed (pip install 'flowgraph[gpu]')"
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "no CUDA GPU on this machine"
    except Exception as exc:
        return f"no usable CUDA GPU ({type(exc).__name__})"
    return None


def pytest_collection_modifyitems(config, items):
    problem = _gpu_problem()
    for item in items:
        if "tests/gpu" in str(item.fspath):
            item.add_marker(pytest.mark.gpu)
            if problem:
                item.add_marker(pytest.mark.skip(reason=f"needs a GPU: {problem}"))
