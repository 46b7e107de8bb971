"""Node types by name.

Built-in and third-party node types announce themselves through the ``flowgraph.nodes`` entry-point
group: each entry point names a module whose import registers its types with ``@node_type``. A graph may
also name a class directly as ``package.module:Class``, for a user's own node without packaging.
The engine core never imports a node module by name; it only loads entry points.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TypeVar

from .errors import RegistryError, did_you_mean
from .node import Node
from .trust import import_reference

__all__ = ["ENTRY_POINT_GROUP", "all_node_types", "forget_entry_points", "node_type", "resolve"]

ENTRY_POINT_GROUP = "flowgraph.nodes"

_types: dict[str, type[Node]] = {}
_loaded = False
_broken: dict[str, str] = {}
"""Entry points that failed to import, and why: named when a type cannot be found."""

N = TypeVar("N", bound=type[Node])


def node_type(name: str) -> Callable[[N], N]:
    """Class decorator: register a ``Node`` subclass under ``name``."""

    def register(cls: N) -> N:
        if not (isinstance(cls, type) and issubclass(cls, Node)):
            raise TypeError(f"@node_type({name!r}) must decorate a Node subclass, not {cls!r}")
        existing = _types.get(name)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise RegistryError(f"node type {name!r} is registered twice: {existing!r} and {cls!r}")
        cls.kind = name
        _types[name] = cls
        return cls

    return register


def _load_entry_points() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except ImportError as exc:  # one broken package must not hide every other node type
            _broken[ep.name] = f"{ep.value}: {exc}"


def forget_entry_points() -> None:
    """Read the entry points again on next use (a test that installs a node package)."""
    global _loaded
    _loaded = False
    _broken.clear()


def all_node_types() -> dict[str, type[Node]]:
    """Every registered node type, by name (loads entry points on first use)."""
    _load_entry_points()
    return dict(sorted(_types.items()))


def resolve(name: str) -> type[Node]:
    """The node class for a registered name or a ``package.module:Class`` reference."""
    if ":" in name:
        cls = import_reference(name, "node type")  # only from modules this run allows (trust.py)
        if not (isinstance(cls, type) and issubclass(cls, Node)):
            raise RegistryError(f"{name!r} is not a flowgraph Node subclass")
        if not cls.kind:
            cls.kind = name
        return cls
    _load_entry_points()
    try:
        return _types[name]
    except KeyError:
        suggestion = did_you_mean(name, _types, n=3, show=repr)
        hint = f"; {suggestion}" if suggestion else ""
        broken = "".join(f"; entry point {k!r} failed to load ({v})" for k, v in sorted(_broken.items()))
        raise RegistryError(f"unknown node type {name!r}{hint}{broken}") from None
