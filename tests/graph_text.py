"""Edits to graph YAML text that tests need, written once."""

from __future__ import annotations


def with_collector(text: str, after: str = "postprocess") -> str:
    """The graph with a ``collect`` sink fed by ``after``, so a test can read every result it emits."""
    text = text.replace("nodes:\n", "nodes:\n  results: {type: collect}\n", 1)
    return text.replace("edges:\n", f"edges:\n  - {{from: {after}, to: results}}\n", 1)
