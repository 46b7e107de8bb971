"""Shared fixtures: every test runs under a deadlock guard (pytest-timeout) and checks it leaked nothing."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

# The tests' own node types and functions are code the tests trust (flowgraph.trust); subprocesses
# started by tests inherit the variable.
os.environ["FLOWGRAPH_ALLOW_MODULES"] = "fixture_nodes,tests,tiny_models"


@pytest.fixture
def no_leaks():
    """Fails the test if it leaves threads behind (flowgraph's executors must be shut down)."""
    before = {t.ident for t in threading.enumerate()}
    yield
    extra = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    assert not extra, f"threads left behind: {[t.name for t in extra]}"


def pytest_asyncio_loop_factories(config, item):
    """Every async test runs on asyncio's own loop and on uvloop, as the engine does in production."""
    import asyncio

    factories = {"asyncio": asyncio.new_event_loop}
    try:
        import uvloop
    except ImportError:
        return factories
    factories["uvloop"] = uvloop.new_event_loop
    return factories


@pytest.fixture(scope="session")
def dataset(tmp_path_factory) -> Path:
    """A small synthetic ImageNet-style folder (24 JPEGs), made once per session."""
    from flowgraph.nodes.dataset import write_synthetic_dataset

    return write_synthetic_dataset(tmp_path_factory.mktemp("synthetic"), 24, seed=1)


@pytest.fixture(scope="session")
def pruned_model(tmp_path_factory) -> Path:
    """The pruned ResNet50 as ONNX, built once per session."""
    from flowgraph.nodes.inference.resnet50_onnx import build_resnet50

    return build_resnet50(tmp_path_factory.mktemp("models") / "pruned.onnx", "pruned")
