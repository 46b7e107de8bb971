"""The contract between the engine and a node type.

A node type is a subclass of ``Node`` that declares, as class attributes, everything the validator and
``flowgraph nodes`` need without running it: its ports and their payload types, a pydantic ``Params``
model, and a ``WorkerRule``. At run time the engine builds one instance per graph node, awaits
``setup()``, runs ``workers`` copies of ``run()`` (or, for the common one-in-one-out case, calls
``process()`` per item in its own fast loop), then awaits ``teardown()``.

Nothing here imports the runtime: a node sees the engine only through ``WorkerIO``.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

from .channel import END, Marker

if TYPE_CHECKING:
    from .ports import Inbox, Outbox

__all__ = [
    "END",
    "SKIP",
    "Follows",
    "Needs",
    "NoParams",
    "SampleFailed",
    "Node",
    "NodeContext",
    "Port",
    "Source",
    "WorkerIO",
    "WorkerRule",
    "sample_count",
    "sample_keys",
    "sample_of",
]


SKIP: Any = Marker("SKIP")
"""Returned by ``process`` to emit nothing for this item (it is then counted as consumed, not failed)."""


class SampleFailed(Exception):
    """Raise from a node that handles several samples at once to say which one failed.

    The engine reports ``sample`` (not the last item the worker took) and chains ``error``; under
    ``on_error: skip`` a node may instead pass both to ``NodeContext.report_failure`` and go on.
    """

    def __init__(self, sample: object, error: BaseException) -> None:
        super().__init__(f"sample {sample}: {type(error).__name__}: {error}")
        self.sample = sample
        self.error = error


class NoParams(BaseModel):
    """Params model of a node type that takes none."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True, slots=True)
class Port:
    """A typed port. ``type`` is any class; an edge is valid when the output's type is a subclass of the
    input's (``object`` accepts anything).

    ``partitioned`` (inputs only): each worker of the node gets its own queue and the producer picks one,
    for schedulers that route work to a specific engine. ``multi`` (outputs only): the port may feed
    several edges, each getting every item; other output ports feed exactly one edge.
    """

    type: type = object
    required: bool = True
    partitioned: bool = False
    multi: bool = False
    doc: str = ""


@dataclass(frozen=True, slots=True)
class WorkerRule:
    """How many workers a node type may have.

    ``fixed(1)``: batch merge, batch split and GPU schedule, whose order or global view needs one worker.
    ``equals("engine_num")``: one worker per engine, so the count must equal that param of the node.
    ``per_partition()``: one worker per partition of the nearest node with a partitioned input, looking
    downstream first, then upstream: a copy stage feeding engines, or a stage after them, runs one
    worker per engine without its own copy of ``engine_num`` (the validator derives it and checks it).
    ``any()``: whatever the graph says (default 1).
    """

    kind: str
    value: int | str = 1

    @classmethod
    def fixed(cls, n: int) -> WorkerRule:
        return cls("fixed", n)

    @classmethod
    def equals(cls, param: str) -> WorkerRule:
        return cls("equals", param)

    @classmethod
    def per_partition(cls) -> WorkerRule:
        return cls("per_partition", 1)

    @classmethod
    def any(cls, default: int = 1) -> WorkerRule:
        return cls("any", default)

    def expected(self, params: BaseModel) -> int | None:
        """The count this rule demands for these params, or None when any count goes."""
        if self.kind == "fixed":
            return int(self.value)
        if self.kind == "equals":
            return int(getattr(params, str(self.value)))
        return None

    def default(self, params: BaseModel) -> int:
        expected = self.expected(params)
        return expected if expected is not None else int(self.value)

    def __str__(self) -> str:
        if self.kind == "fixed":
            return f"exactly {self.value}"
        if self.kind == "equals":
            return f"equals params.{self.value}"
        if self.kind == "per_partition":
            return "one per partition of the engines it feeds or follows"
        return f"any (default {self.value})"


@dataclass(frozen=True, slots=True)
class Needs:
    """Modules a node type imports when it runs, and what installs them (``pip install ...``).

    Why declared: node modules import their heavy libraries lazily, so listing or validating any graph
    works on the engine's light base install; a graph that uses a node whose libraries are missing is
    then refused at validation, saying what to install, instead of failing mid-run with a traceback."""

    install: str
    """What to pip install, e.g. ``flowgraph[cpu]``."""
    modules: tuple[str, ...]

    def missing(self) -> list[str]:
        """The modules that cannot be imported here."""
        import importlib.util

        return [m for m in self.modules if importlib.util.find_spec(m) is None]

    def problem(self, what: str) -> str | None:
        """Why ``what`` cannot run here for want of a module, or None."""
        missing = self.missing()
        if not missing:
            return None
        return f"{what} needs {', '.join(missing)}, not installed here: pip install '{self.install}'"


@dataclass(frozen=True, slots=True)
class Follows:
    """A param that follows the same param of the nearest node upstream that has one (``source``: its
    name there, when it differs). Left unset (None, 0 or empty), the validator fills it in; set, it must
    agree, so a value declared once (the batch size) cannot drift apart between nodes. A list param
    agrees when it contains the upstream value."""

    param: str
    source: str | None = None


@dataclass
class NodeContext:
    """What a node instance knows about its place in the graph, given before ``setup``."""

    name: str
    workers: int
    graph_params: Mapping[str, Any] = field(default_factory=dict)
    cache_dir: Path = field(default_factory=lambda: Path.home() / ".cache" / "flowgraph")
    shared: dict[str, Any] = field(default_factory=dict)
    """Objects nodes of one graph share (e.g. engines a scheduler and its inference node both see)."""
    announce: Callable[[str], None] = print
    """Where a node says what slow thing it is doing (building a model, generating data)."""
    offload: Callable[..., Awaitable[Any]] | None = None
    """Runs a blocking call in this node's own thread pool (sized to its workers); set by the runtime."""
    on_error: str = "fail"
    """The node's error policy from the graph: 'fail' stops the graph, 'skip' records and goes on."""
    timeout: float | None = None
    """Seconds one item may take in ``process`` (and one call in ``offload``); None: no limit."""
    report_failure: Callable[[object, BaseException], None] = lambda sample, error: None
    """Records a failed sample (for nodes that handle errors themselves under ``on_error: skip``)."""
    skip_item: Callable[[Any, BaseException], None] | None = None
    """Records ``item`` as failed with ``error`` and counts its samples (``on_error: skip``); set by the
    runtime."""
    observe: Callable[[float], None] = lambda seconds: None
    """Adds one latency observation (seconds) to the node's metrics, for nodes with their own ``run``."""


class WorkerIO(Protocol):
    """What a running worker sees of the engine."""

    worker: int
    inbox: Inbox
    inputs: Mapping[str, Inbox]
    out: Outbox

    async def offload(self, fn: Callable[..., Any], /, *args: Any) -> Any:
        """Run blocking ``fn(*args)`` in this node's thread pool, keeping the event loop free."""
        ...

    def feed(self) -> AsyncIterator[Any]:
        """Items the embedding program submits to this node (for external-input nodes)."""
        ...

    async def deliver(self, item: Any) -> None:
        """Hand a finished item to the embedding program (for result-collecting sinks)."""
        ...


P = TypeVar("P", bound=BaseModel)


class Node:  # noqa: B024 - subclasses override process() or run(); neither is abstract alone
    """Base of every node type. Subclasses set the class attributes and override ``process`` or ``run``."""

    kind: ClassVar[str] = ""
    """The registered name, set by ``registry.node_type``."""
    Params: ClassVar[type[BaseModel]] = NoParams
    inputs: ClassVar[Mapping[str, Port]] = {"in": Port()}
    outputs: ClassVar[Mapping[str, Port]] = {"out": Port()}
    worker_rule: ClassVar[WorkerRule] = WorkerRule.any()
    external_input: ClassVar[bool] = False
    """True for nodes fed by the embedding program (``Run.submit``) through ``WorkerIO.feed``."""
    delivers: ClassVar[bool] = False
    """True for sinks that hand items to the embedding program (``WorkerIO.deliver``): ``Run.results``
    and ``Run.call`` read what they deliver."""
    needs: ClassVar[Needs | None] = None
    """Libraries the node imports when it runs (checked by the validator before anything starts)."""
    follows: ClassVar[tuple[Follows, ...]] = ()
    """Params that must agree with (and default to) a param of the nearest upstream node that has it."""
    skips_failed_samples: ClassVar[bool | None] = None
    """Whether ``on_error: skip`` means something for this type. None: yes when the node works item by
    item through ``process`` (the engine records the failure); a node with its own ``run`` says True
    only if it reports failed samples itself (``NodeContext.report_failure``), else the validator
    refuses ``skip`` instead of accepting a policy the node would ignore."""
    tunables: ClassVar[frozenset[str]] = frozenset()
    """Params that may change while the node runs, through ``Run.tune`` (e.g. a batcher's deadline)."""

    def __init__(self, params: BaseModel, context: NodeContext) -> None:
        self.params = params
        self.context = context

    @classmethod
    def honours_skip(cls) -> bool:
        """Whether ``on_error: skip`` works for this type (see ``skips_failed_samples``)."""
        if cls.skips_failed_samples is not None:
            return cls.skips_failed_samples
        return cls.run is Node.run

    @classmethod
    def params_model(cls, params: Mapping[str, Any]) -> type[BaseModel]:
        """The model that checks this node's ``params`` as written: ``Params``, unless the node picks a
        model by one of them (the inference node by ``backend``: a discriminated union whose members
        other packages register). May raise ``ValueError`` for a value that picks nothing."""
        return cls.Params

    @classmethod
    def params_variants(cls) -> Mapping[str, type[BaseModel]]:
        """The models ``params_model`` can pick, by name, for ``flowgraph nodes`` (none by default)."""
        return {}

    @classmethod
    def check_environment(cls, params: BaseModel) -> str | None:
        """Why this node cannot run on this machine (e.g. "no CUDA GPU"), or None. Checked by the validator
        so a GPU graph on a CPU machine fails before anything starts, not with a CUDA traceback."""
        return None

    def tune(self, **values: Any) -> None:
        """Change ``tunables`` params of a running node: checked by ``Params`` like the graph file's, then
        ``tuned()`` applies them. Why one call: a harness that retunes a node (LoadGen's Server wait)
        must not reach into its attributes."""
        unknown = sorted(set(values) - self.tunables)
        if unknown:
            can = ", ".join(sorted(self.tunables)) or "nothing"
            raise ValueError(
                f"node '{self.context.name}' cannot tune {unknown} while running; it tunes: {can}"
            )
        self.params = type(self.params).model_validate({**self.params.model_dump(), **values})
        self.tuned()

    def tuned(self) -> None:
        """Apply ``self.params`` after ``tune`` changed them (nodes that cache a param override this)."""

    async def offload(self, fn: Callable[..., Any], /, *args: Any) -> Any:
        """Run blocking ``fn(*args)`` in this node's threads (OpenCV, ONNX Runtime, GPU waits release the GIL)."""
        if self.context.offload is None:
            return fn(*args)
        return await self.context.offload(fn, *args)

    def offload_threads(self) -> int:
        """Threads in this node's pool for ``offload``: one per worker unless a node keeps several
        blocking calls going per worker (an engine waiting on batches in flight while it launches more)."""
        return self.context.workers

    async def setup(self) -> None:
        """Acquire what the workers share (sessions, engines, buffers). Runs once before any worker."""

    async def teardown(self) -> None:
        """Release what ``setup`` acquired. Runs once after all workers end, also after a failure."""

    async def process(self, item: Any) -> Any:
        """Turn one input item into one output item (or ``SKIP``). Default for one-in-one-out nodes."""
        raise NotImplementedError(f"{type(self).__name__} must override process() or run()")

    async def run(self, io: WorkerIO) -> None:
        """One worker's whole life. Override for batching, routing, sources and multi-port nodes; the
        default reads ``io.inbox`` and calls ``process`` per item (the engine runs a faster copy of it)."""
        skip = self.context.skip_item if self.context.on_error == "skip" else None
        timeout = self.context.timeout
        while (item := await io.inbox.get()) is not END:
            try:
                result = await (
                    self.process(item) if timeout is None else within(timeout, self.process(item))
                )
            except Exception as exc:
                if skip is None:
                    raise
                skip(item, exc)
                continue
            if result is not SKIP:
                await io.out.send(result)

    def summary(self) -> Mapping[str, Any]:
        """Figures this node contributes to the run's report (accuracy, core inference time...)."""
        return {}

    def expected_items(self) -> int | None:
        """How many items a source will emit, when known: sizes the progress bar."""
        return None


class Source(Node):
    """A node with no inputs that produces items from ``items()``; each worker gets its own share."""

    inputs: ClassVar[Mapping[str, Port]] = {}

    @abc.abstractmethod
    def items(self, worker: int) -> AsyncIterator[Any]:
        """The items this worker emits, in order."""

    async def run(self, io: WorkerIO) -> None:
        async for item in self.items(io.worker):
            await io.out.send(item)


async def within(seconds: float, work: Awaitable[Any], node: str = "", what: str = "the item") -> Any:
    """``await work``, or ``NodeTimeout`` once it has taken ``seconds`` (a node's ``timeout``)."""
    from .errors import NodeTimeout

    try:
        async with asyncio.timeout(seconds):
            return await work
    except TimeoutError:
        raise NodeTimeout(node, seconds, what) from None


def sample_of(item: Any) -> object | None:
    """The sample id(s) an item carries, for error messages and failure records.

    Convention, not a type: an attribute ``sample_id`` or ``sample_ids``, or a mapping key ``id``.
    """
    for attr in ("sample_id", "sample_ids"):
        value = getattr(item, attr, None)
        if value is not None:
            return list(value) if isinstance(value, Sequence) and not isinstance(value, str) else value
    if isinstance(item, Mapping):
        return item.get("id")
    return None


def sample_keys(sample: object) -> list[object]:
    """The ids a ``sample_of`` value names, as a list: one id, a batch's ids, or none (None)."""
    if sample is None:
        return []
    return list(sample) if isinstance(sample, list) else [sample]


def sample_count(item: Any) -> int:
    """How many samples an item stands for (a batch counts its samples)."""
    ids = getattr(item, "sample_ids", None)
    return len(ids) if ids is not None else 1
