"""The parent's side of the shards: start them, send each request to the shard with the most free
credit, fail the run the moment one shard fails, and leave nothing behind.

Credit is counted in samples: a shard holds at most ``credit`` samples in flight (its queue's
capacity, across processes), and ``acquire`` picks the shard with the most room, as gpu_schedule picks
an engine. A shard that answers with an error or whose process dies fails every request in flight and
every later one with ``ShardFailure`` (shard, device, node), at once: the pool reads EOF from a dead
shard's socket the moment the process is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import multiprocessing
import shutil
import signal
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import FlowgraphError
from .service import ShardJob
from .transport import Link, LinkClosed

__all__ = ["ProcessShardPool", "ShardFailure", "ShardPool"]

START_TIMEOUT_S = 120.0
CLOSE_PATIENCE_S = 10.0


class ShardFailure(FlowgraphError):
    """A shard failed: it raised (``node`` names the node) or its process died."""

    def __init__(self, shard: int, device: int | None, message: str, node: str | None = None) -> None:
        self.shard, self.device, self.node = shard, device, node
        where = f"shard {shard} ({'cpu' if device is None else f'GPU {device}'})"
        super().__init__(f"{where}{f', node {node!r}' if node else ''}: {message}")


class ShardPool:
    """What the sharded runs need from a pool, over processes or Ray actors: ``request``, ``acquire`` /
    ``release`` by credit, ``broadcast``, and ``failure``. Subclasses say how a request travels."""

    def __init__(self, job: ShardJob, devices: Sequence[int | None], credit: int) -> None:
        self.job, self.devices, self.credit = job, list(devices), credit
        self.free = [credit] * len(self.devices)
        self.infos: list[dict[str, Any]] = []
        self.reports: list[Any] = []
        self.failure: ShardFailure | None = None
        self._room = asyncio.Event()
        self._failed = asyncio.Event()

    async def __aenter__(self) -> ShardPool:
        """Start every shard (``infos``: what each said when it started); close them all on failure."""
        raise NotImplementedError

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every shard (``reports``: each one's report) and leave nothing running."""
        raise NotImplementedError

    async def request(self, shard: int, op: str, payload: Any = None) -> Any:
        raise NotImplementedError

    async def broadcast(self, op: str, payload: Any = None) -> list[Any]:
        return list(await asyncio.gather(*(self.request(i, op, payload) for i in range(len(self.devices)))))

    async def acquire(self, samples: int) -> int:
        """The shard with the most free credit, once it has room for ``samples`` (at most its whole
        credit); its credit is taken. Raises the pool's failure."""
        samples = min(samples, self.credit)
        while True:
            if self.failure is not None:
                raise self.failure
            shard = max(range(len(self.free)), key=self.free.__getitem__)
            if self.free[shard] >= samples:
                self.free[shard] -= samples
                return shard
            self._room.clear()
            waiter = asyncio.ensure_future(self._room.wait())
            failed = asyncio.ensure_future(self._failed.wait())
            try:
                await asyncio.wait({waiter, failed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                failed.cancel()

    def release(self, shard: int, samples: int) -> None:
        self.free[shard] += min(samples, self.credit)
        self._room.set()

    def fail(self, failure: ShardFailure) -> None:
        if self.failure is None:
            self.failure = failure
        self._failed.set()
        self._room.set()

    async def wait_failed(self) -> ShardFailure:
        await self._failed.wait()
        assert self.failure is not None
        return self.failure


class ProcessShardPool(ShardPool):
    """One spawned process per shard, each linked to the parent by a Unix socket in a private folder."""

    def __init__(self, job: ShardJob, devices: Sequence[int | None], credit: int) -> None:
        super().__init__(job, devices, credit)
        self._folder = Path(tempfile.mkdtemp(prefix="flowgraph-shards-"))
        self._links: dict[int, Link] = {}
        self._connected = asyncio.Event()
        self._processes: list[Any] = []
        self._readers: list[asyncio.Task[None]] = []
        self._pending: dict[int, tuple[int, asyncio.Future[Any]]] = {}
        self._seq = itertools.count()
        self._server: asyncio.AbstractServer | None = None
        self._closing = False

    async def __aenter__(self) -> ProcessShardPool:
        try:
            await self._start()
        except BaseException:
            await self.close()
            raise
        return self

    async def _start(self) -> None:
        from . import worker

        path = str(self._folder / "shards.sock")
        self._server = await asyncio.start_unix_server(self._accept, path, limit=1 << 24)
        context = multiprocessing.get_context("spawn")
        # multiprocessing's resource tracker unblocks SIGINT and SIGTERM in this thread when it starts,
        # undoing the CLI's handling of them (flowgraph.interrupts): keep this thread's mask as it was
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
        try:
            for index, device in enumerate(self.devices):
                process = context.Process(
                    target=worker.main, args=(path, index, device, self.job), name=f"flowgraph-shard-{index}"
                )
                process.start()
                self._processes.append(process)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT_S
        while len(self._links) < len(self.devices):
            dead = [i for i, p in enumerate(self._processes) if p.exitcode is not None]
            if dead:
                i = dead[0]
                raise ShardFailure(
                    i,
                    self.devices[i],
                    f"the process exited while starting (exit code {self._processes[i].exitcode})",
                )
            if asyncio.get_running_loop().time() > deadline:
                raise ShardFailure(
                    0, self.devices[0], f"not all shards connected within {START_TIMEOUT_S:.0f} s"
                )
            self._connected.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._connected.wait(), 0.2)
        for index in range(len(self.devices)):
            self._readers.append(asyncio.create_task(self._read(index), name=f"shards:read{index}"))
        self.infos = await self.broadcast("start")

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = Link(reader, writer)
        hello = await link.receive()
        self._links[int(hello[1])] = link
        self._connected.set()

    async def request(self, shard: int, op: str, payload: Any = None) -> Any:
        if self.failure is not None:
            raise self.failure
        seq = next(self._seq)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[seq] = (shard, future)
        try:
            await self._links[shard].send((seq, op, payload))
        except (ConnectionError, OSError) as exc:
            self._pending.pop(seq, None)
            raise self._died(shard) from exc
        return await future

    async def _read(self, shard: int) -> None:
        link = self._links[shard]
        try:
            while True:
                seq, status, payload = await link.receive()
                _, future = self._pending.pop(seq, (None, None))
                if future is None or future.done():
                    continue
                if status == "ok":
                    future.set_result(payload)
                else:
                    failure = ShardFailure(
                        shard, self.devices[shard], payload["message"], payload.get("node")
                    )
                    self._fail_all(failure)
                    future.set_exception(self.failure or failure)
        except LinkClosed:
            if not self._closing:
                self._fail_all(self._died(shard))

    def _died(self, shard: int) -> ShardFailure:
        process = self._processes[shard]
        process.join(0.5)
        code = process.exitcode
        return ShardFailure(shard, self.devices[shard], f"the shard's process died (exit code {code})")

    def _fail_all(self, failure: ShardFailure) -> None:
        self.fail(failure)
        for _, future in list(self._pending.values()):
            if not future.done():
                future.set_exception(self.failure or failure)
        self._pending.clear()

    async def close(self) -> None:
        """Close every shard (collecting its report), then make sure no process or file is left."""
        if self._closing:
            return
        self._closing = True  # from now on a shard's EOF is its exit, not a death
        if self.failure is None and len(self._links) == len(self.devices) and self._readers:
            with contextlib.suppress(Exception):
                self.reports = await asyncio.wait_for(self.broadcast("close"), CLOSE_PATIENCE_S)
        for task in self._readers:
            task.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
        for link in self._links.values():
            link.close()
        if self._server is not None:
            self._server.close()
        await asyncio.to_thread(self._end_processes)
        shutil.rmtree(self._folder, ignore_errors=True)

    def _end_processes(self) -> None:
        for process in self._processes:
            process.join(CLOSE_PATIENCE_S if self.failure is None else 1.0)
        for process in self._processes:
            if process.is_alive():
                process.terminate()
                process.join(2.0)
            if process.is_alive():
                process.kill()
                process.join(2.0)
            process.close()
