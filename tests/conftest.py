"""Shared fixtures: every test runs under a deadlock guard (pytest-timeout) and checks it leaked nothing."""

from __future__ import annotations

import threading

import pytest


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
