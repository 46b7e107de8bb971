"""Resolving ``module:function`` references that graph files use to name user code.

Only modules this run allows are imported (``flowgraph.trust``): a graph file cannot name ``os:system``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flowgraph import RegistryError
from flowgraph.trust import check_reference, import_reference

__all__ = ["checked_reference", "import_callable"]


def checked_reference(ref: str, what: str = "function") -> str:
    """``ref`` if it names an allowed module (for a params validator: imports nothing), else ValueError."""
    try:
        check_reference(ref, what)
    except RegistryError as exc:
        raise ValueError(str(exc)) from None
    return ref


def import_callable(ref: str) -> Callable[..., Any]:
    """The callable named by ``package.module:attr`` (dots after the colon walk attributes)."""
    try:
        target = import_reference(ref, "function")
    except RegistryError as exc:
        raise ValueError(str(exc)) from None
    if not callable(target):
        raise ValueError(f"{ref!r} is not callable")
    return target
