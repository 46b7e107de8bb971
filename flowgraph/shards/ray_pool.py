"""The shards as Ray actors, for graphs across hosts (``pip install 'flowgraph[ray]'``).

The same ``ShardService`` runs inside each actor (an async actor: Ray gives it an event loop), so a
shard behaves the same whether it is a local process or an actor on another host. Ray does the rest:
placement (``num_gpus=1`` per GPU shard, spread over the cluster's nodes), the transport (an actor
call per request, awaited from the parent's loop), and failure reports (an actor that dies raises on
its calls). The pool's credit bounds the calls in flight per actor, as it bounds a process shard's.

Every host runs the graph itself: the graph file, the packages it names and its data (the dataset
folder, the model) must be at the same paths on every node (see the README, "Sharding").
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from ..errors import DependencyMissing
from .pool import CLOSE_PATIENCE_S, ShardFailure, ShardPool
from .service import ShardJob, ShardService

__all__ = ["RayShardPool", "ShardActor"]


class ShardActor:
    """One shard in a Ray actor: the service, and the node it was placed on."""

    def __init__(self, job: ShardJob, index: int, gpu: bool) -> None:
        import ray

        self.node_id = ray.get_runtime_context().get_node_id()
        device = 0 if gpu else None  # Ray sets CUDA_VISIBLE_DEVICES to the GPU it gave this actor
        self.service = ShardService(job, index, device, lambda message: print(f"[shard {index}] {message}"))

    async def handle(self, op: str, payload: Any) -> Any:
        result = await self.service.handle(op, payload)
        if op == "start":
            result = {**result, "node_id": self.node_id}
        return result


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise DependencyMissing("shards on Ray need Ray: pip install 'flowgraph[ray]'") from exc
    return ray


class RayShardPool(ShardPool):
    """One actor per shard on the Ray cluster this process is connected to (``ray.init`` first, or
    ``shards.address``; without either, Ray starts a local one)."""

    def __init__(
        self, job: ShardJob, devices: Sequence[int | None], credit: int, address: str | None = None
    ) -> None:
        super().__init__(job, devices, credit)
        self.address = address
        self._actors: list[Any] = []

    async def __aenter__(self) -> RayShardPool:
        ray = _ray()
        if not ray.is_initialized():
            ray.init(address=self.address, ignore_reinit_error=True, log_to_driver=False)
        remote = ray.remote(ShardActor)
        for index, device in enumerate(self.devices):
            options = {
                "num_gpus": 1 if device is not None else 0,
                "num_cpus": 1,
                "scheduling_strategy": "SPREAD",
            }
            self._actors.append(remote.options(**options).remote(self.job, index, device is not None))
        try:
            self.infos = await self.broadcast("start")
        except BaseException:
            await self.close()
            raise
        return self

    async def request(self, shard: int, op: str, payload: Any = None) -> Any:
        if self.failure is not None:
            raise self.failure
        ray = _ray()
        try:
            return await self._actors[shard].handle.remote(op, payload)
        except ray.exceptions.RayActorError as exc:
            failure = ShardFailure(shard, self.devices[shard], f"the shard's actor died: {exc}")
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else exc
            node = getattr(cause, "node", None)
            failure = ShardFailure(shard, self.devices[shard], f"{type(cause).__name__}: {cause}", node)
        self.fail(failure)
        raise failure

    async def close(self) -> None:
        if not self._actors:
            return
        if self.failure is None:
            with contextlib.suppress(Exception):
                self.reports = await asyncio.wait_for(self.broadcast("close"), CLOSE_PATIENCE_S)
        ray = _ray()
        for actor in self._actors:
            with contextlib.suppress(Exception):
                ray.kill(actor)
        self._actors = []
