"""Inference backends: the one engine contract, the params every backend shares, and the registry.

A backend is a ``Backend`` subclass registered under a name, by ``@backend("name")`` or through the
``flowgraph.backends`` entry-point group (so a separate package can add one without touching this
one). It declares its own params model, a subclass of ``EngineParams`` whose ``backend`` field is
``Literal["name"]``: the inference node's params are that model, picked by the ``backend`` value (a
discriminated union, resolved when the graph is validated). Its ``load`` makes one ``Engine`` per
worker. Backend modules import their heavy libraries (onnxruntime, torch, TensorRT) inside ``load``,
so registering them costs nothing on a CPU install.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from flowgraph import RegistryError
from flowgraph.errors import did_you_mean

__all__ = [
    "BACKENDS_GROUP",
    "Backend",
    "Engine",
    "EngineParams",
    "all_backends",
    "backend",
    "backend_names",
    "resolve_backend",
    "run_one",
]

BACKENDS_GROUP = "flowgraph.backends"


class EngineParams(BaseModel):
    """Params every backend takes; a backend's own model adds its fields and narrows ``backend``."""

    model_config = ConfigDict(extra="forbid")

    backend: str = Field("onnxruntime", description="which registered backend runs the model")
    model: str = Field(
        "builtin:resnet50",
        description="ONNX file, builtin:resnet50[-pruned], or torchvision:resnet50 (torch)",
    )
    engine_num: int = Field(1, ge=1, description="engines (and workers) of this node")
    device: Literal["cpu", "cuda"] = Field("cpu", description="where the engines run")
    output: str | None = Field(
        None, description="model output to read (default: the first [batch, classes] float)"
    )
    precision: Literal["fp32", "fp16", "bf16", "int8"] = Field("fp32", description="compute precision")
    threads: int | None = Field(
        None,
        ge=1,
        description="CPU threads per engine where the engine computes on the CPU (onnxruntime; torch on "
        "device cpu); default cores / engines",
    )
    in_flight: int = Field(
        1,
        ge=1,
        le=4,
        description="batches an engine keeps launched before collecting the first: with 2 the next "
        "batch is asked for just before the device frees up, so it holds every query that arrived "
        "meanwhile and the device never idles between batches",
    )


class Engine(Protocol):
    """One model instance; the inference node gives each worker one.

    The contract is two calls: ``launch`` queues a batch (returning once queued, before it has run) and
    ``collect`` waits for its scores. Launches of one engine are awaited one at a time, in order; up to
    ``in_flight`` launched batches may wait to be collected. Neither call may block the event loop."""

    name: str
    precision: str

    async def launch(self, batch: Any) -> Any:
        """Queue ``batch`` (a ``Batch``: one contiguous array, on the host or the device, and the
        event to wait on before reading it) and return a handle for ``collect``."""
        ...

    async def collect(self, handle: Any) -> Any:
        """Scores [N, classes] on the host (with torch's ``top_k``, class indices [N, k])."""
        ...

    def bucket(self, n: int) -> int:
        """The batch size the device actually runs for ``n`` images (what its time depends on)."""
        ...

    def close(self) -> None:
        """Free the engine's memory."""
        ...


async def run_one(engine: Engine, batch: Any) -> Any:
    """``collect(launch(batch))``: one batch through an engine, for tests and benchmarks."""
    return await engine.collect(await engine.launch(batch))


class Backend:
    """A way to run a model: its params model, what it needs of the machine, and its engines."""

    name: ClassVar[str] = ""
    """The registered name, set by ``@backend``."""
    Params: ClassVar[type[EngineParams]] = EngineParams

    @classmethod
    def check_environment(cls, params: EngineParams) -> str | None:
        """Why these params cannot run on this machine (no GPU, a GPU-only backend on the CPU), or None."""
        if params.device == "cuda":
            from ..gpu import cuda_problem

            return cuda_problem(f"inference backend {cls.name} on cuda")
        return None

    @classmethod
    def load(cls, model: Path, params: Any, engine_index: int, context: Any) -> Engine:
        """Make engine ``engine_index`` for ``model``; runs in the node's thread (may take seconds)."""
        raise NotImplementedError(f"backend {cls.name!r} must implement load()")


_backends: dict[str, type[Backend]] = {}

B = TypeVar("B", bound=type[Backend])


def backend(name: str) -> Callable[[B], B]:
    """Class decorator: register a ``Backend`` subclass under ``name``."""

    def register(cls: B) -> B:
        if not (isinstance(cls, type) and issubclass(cls, Backend)):
            raise TypeError(f"@backend({name!r}) must decorate a Backend subclass, not {cls!r}")
        declared = cls.Params.model_fields["backend"].annotation
        if getattr(declared, "__args__", None) != (name,):
            raise TypeError(f"{cls.__name__}.Params must declare backend: Literal[{name!r}]")
        cls.name = name
        _backends[name] = cls
        return cls

    return register


def _from_entry_point(ep: Any) -> type[Backend]:
    """Import one backend's entry point (only the one a graph names: each may need its own extra)."""
    try:
        target = ep.load()
    except ImportError as exc:
        raise RegistryError(f"cannot load inference backend {ep.name!r} ({ep.value}): {exc}") from exc
    if not (isinstance(target, type) and issubclass(target, Backend)):
        raise RegistryError(f"entry point {ep.name!r} in {BACKENDS_GROUP} is not a Backend subclass")
    if _backends.get(ep.name) is not target:
        backend(ep.name)(target)
    return target


def backend_names() -> list[str]:
    """Every backend name, registered or announced by an entry point, without importing any."""
    return sorted({*_backends, *(ep.name for ep in entry_points(group=BACKENDS_GROUP))})


def all_backends() -> dict[str, type[Backend]]:
    """Every backend by name, importing each entry point (for listings; a broken one is left out)."""
    for ep in entry_points(group=BACKENDS_GROUP):
        if ep.name not in _backends:
            try:
                _from_entry_point(ep)
            except RegistryError:
                continue
    return dict(sorted(_backends.items()))


def resolve_backend(name: str) -> type[Backend]:
    """The backend registered as ``name``, or a ``RegistryError`` that lists the ones there are."""
    if name in _backends:
        return _backends[name]
    for ep in entry_points(group=BACKENDS_GROUP, name=name):
        return _from_entry_point(ep)
    names = backend_names()
    hint = did_you_mean(name, names, n=1, show=repr) or f"backends: {', '.join(names)}"
    raise RegistryError(f"unknown inference backend {name!r}; {hint}")
