"""Every error flowgraph raises on purpose, so callers can catch exactly what they mean.

    FlowgraphError
     ├── GraphFileError          the graph file cannot be read or parsed (YAML, unknown key, wrong type)
     │    └── GraphValidationError  the graph parsed but breaks a rule (cycle, dangling port, workers...)
     ├── RegistryError           a node type name that resolves to nothing
     ├── NodeFailure             a node raised while running; names node, worker and sample
     ├── GraphStopped            the run was stopped (Ctrl-C or Run.stop) before it finished
     └── DependencyMissing       an optional extra is needed ("install flowgraph[gpu]")

Invalid input maps to exit code 2 in the CLI; a failure while running maps to 1.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DependencyMissing",
    "FlowgraphError",
    "GraphFileError",
    "GraphStopped",
    "GraphValidationError",
    "Issue",
    "NodeFailure",
    "NodeTimeout",
    "RegistryError",
    "did_you_mean",
    "first_failure",
]


def did_you_mean(
    word: str, choices: Iterable[str], n: int = 2, show: Callable[[str], str] = str
) -> str | None:
    """``did you mean a or b?`` for the choices closest to a misspelt ``word``, or None if none is close.

    Every "unknown X" message offers its fix this way, so the wording is written once."""
    close = difflib.get_close_matches(word, list(choices), n=n)
    return f"did you mean {' or '.join(show(c) for c in close)}?" if close else None


class FlowgraphError(Exception):
    """Base of every flowgraph error."""

    report: Any = None
    """For a run that failed or was stopped: its ``Report`` (counts, failures), so it can still be
    written and read; None otherwise."""


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem found in a graph file: where it is, what is wrong, and what to change."""

    file: str
    line: int | None
    node: str | None
    message: str
    fix: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        who = f" node '{self.node}':" if self.node else ""
        fix = f"\n    fix: {self.fix}" if self.fix else ""
        return f"{where}:{who} {self.message}{fix}"


class GraphFileError(FlowgraphError):
    """The graph file could not be turned into a spec. Carries one or more located issues."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


class GraphValidationError(GraphFileError):
    """The spec is well-formed but breaks a graph rule; nothing has started."""


class RegistryError(FlowgraphError):
    """A node type name that matches no registered type and no importable 'module:Class'."""


class DependencyMissing(FlowgraphError):
    """An optional dependency is not installed; the message names the extra that provides it."""


class NodeFailure(FlowgraphError):
    """A node raised while processing; the graph was stopped.

    The original exception is chained as ``__cause__``.
    """

    def __init__(self, node: str, worker: int, sample: object | None, error: BaseException) -> None:
        self.node = node
        self.worker = worker
        self.sample = sample
        self.error = error
        on = f" on sample {sample}" if sample is not None else ""
        super().__init__(f"node '{node}' (worker {worker}) failed{on}: {type(error).__name__}: {error}")


class SampleError(FlowgraphError):
    """One sample failed in the graph and was recorded (``on_error: skip``); the graph went on.

    Raised by ``Run.call`` to the caller whose sample it was: ``node`` and ``error`` say where and why."""

    def __init__(self, failure: Any) -> None:
        self.node: str = failure.node
        self.sample: object = failure.sample
        self.error: str = failure.error
        super().__init__(f"sample {failure.sample} failed in node '{failure.node}': {failure.error}")


class NodeTimeout(TimeoutError):
    """An item, or a blocking call in a node's threads, took longer than the node's ``timeout``.

    Raised inside the node, so it becomes a ``NodeFailure`` naming the node and the sample (or, under
    ``on_error: skip``, a failed sample). A thread that never returns stays behind; the run names it."""

    def __init__(self, node: str, seconds: float, what: str) -> None:
        self.node = node
        self.seconds = seconds
        super().__init__(f"{what} took longer than the node's timeout of {seconds:g} s")


class GraphStopped(FlowgraphError):
    """The run was stopped before its sources were exhausted (Ctrl-C or ``Run.stop``)."""

    def __init__(self, in_flight: dict[str, int]) -> None:
        self.in_flight = in_flight
        busy = ", ".join(f"{k}: {v}" for k, v in in_flight.items() if v) or "nothing"
        super().__init__(f"run stopped; in flight at stop: {busy}")


def first_failure(error: BaseException) -> BaseException:
    """The error to surface from a task group's exception group: its first ``NodeFailure``, else its
    first error (``error`` itself when it is no group). One exception that says where, not a tree."""
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(error)
    return next((exc for exc in leaves if isinstance(exc, NodeFailure)), leaves[0] if leaves else error)
