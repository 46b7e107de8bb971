"""What other packages add to the ``flowgraph`` command: subcommands and harnesses, by entry point.

Two entry-point groups, found the way node types are (``flowgraph.nodes``):

- ``flowgraph.commands``: each entry point names a function ``register(commands)`` that adds
  subcommands to the CLI's argparse subparsers; each subcommand sets ``handler=`` (``args -> exit code``).
- ``flowgraph.harnesses``: each names a ``Harness`` (class or instance) that drives a graph under
  ``flowgraph run`` when its own options are given (MLPerf LoadGen with ``--scenario``).

So the engine's CLI names no pipeline module: the ResNet50 pipeline's ``data`` and ``model`` commands
and the LoadGen harness arrive through these groups, and a separate package can add its own.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

from .errors import RegistryError

__all__ = [
    "COMMANDS_GROUP",
    "HARNESSES_GROUP",
    "Harness",
    "command_registrars",
    "harnesses",
]

COMMANDS_GROUP = "flowgraph.commands"
HARNESSES_GROUP = "flowgraph.harnesses"


@runtime_checkable
class Harness(Protocol):
    """Drives a graph in ``flowgraph run`` instead of the plain run, when ``selected(args)``."""

    name: str
    """Shown as the title of the harness's group of options in ``flowgraph run --help``."""
    scenarios: Sequence[str]
    """Scenario names the harness runs; ``validate`` and ``viz`` accept them as ``--scenario``."""

    def add_arguments(self, group: argparse._ArgumentGroup) -> None:
        """Add this harness's options to ``flowgraph run`` (names must not clash with other harnesses')."""
        ...

    def selected(self, args: argparse.Namespace) -> bool:
        """Whether ``args`` ask for this harness (one of its options was given)."""
        ...

    def run(self, args: argparse.Namespace) -> int:
        """Run the graph ``args.graph`` (with ``args.overrides``) under this harness; the exit code."""
        ...


def harnesses() -> list[Harness]:
    """Every installed harness, in entry-point name order."""
    found: list[Harness] = []
    for ep in sorted(entry_points(group=HARNESSES_GROUP), key=lambda e: e.name):
        target = _load(ep)
        harness = target() if isinstance(target, type) else target
        if not isinstance(harness, Harness):
            raise RegistryError(
                f"entry point {ep.name!r} in {HARNESSES_GROUP} is not a flowgraph Harness: {target!r}"
            )
        found.append(harness)
    return found


def command_registrars() -> list[Callable[[Any], None]]:
    """The ``register(commands)`` functions of every installed command extension."""
    registrars = []
    for ep in sorted(entry_points(group=COMMANDS_GROUP), key=lambda e: e.name):
        target = _load(ep)
        if not callable(target):
            raise RegistryError(f"entry point {ep.name!r} in {COMMANDS_GROUP} is not callable: {target!r}")
        registrars.append(target)
    return registrars


def _load(ep: Any) -> Any:
    try:
        return ep.load()
    except ImportError as exc:
        raise RegistryError(f"cannot load {ep.group} entry point {ep.name!r} ({ep.value}): {exc}") from exc
