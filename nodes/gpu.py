"""CUDA plumbing shared by GPU nodes: is there a GPU, pinned host buffers, CuPy streams, and handing
GPU completion to asyncio without blocking or polling the event loop.

Imported only by nodes configured for ``cuda``; nothing here runs on a CPU install.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable
from typing import Any

__all__ = ["HostToDevice", "cuda_problem", "new_stream", "on_device", "stream_done"]

_STREAMS: list[Any] = []


def new_stream() -> Any:
    """A non-blocking CuPy stream that lives as long as the process.

    Why never destroyed: torch's caching allocator records an event on a tensor's stream when the tensor
    is freed, which can be long after its engine is closed; on a destroyed stream that aborts the process
    ("CUDA error: context is destroyed", seen on the H100). Engines are few, streams are cheap.
    """
    import cupy

    stream = cupy.cuda.Stream(non_blocking=True)
    _STREAMS.append(stream)
    return stream


def on_device(array: Any) -> bool:
    """True for CuPy arrays and CUDA torch tensors (checked without importing either)."""
    module = type(array).__module__
    if module.startswith("cupy"):
        return True
    return module.startswith("torch") and getattr(array, "is_cuda", False)


def cuda_problem(what: str) -> str | None:
    """Why ``what`` cannot run here, or None when CuPy sees a CUDA device."""
    try:
        import cupy
    except ImportError:
        return (
            f"{what} needs CuPy and a CUDA GPU: pip install 'flowgraph[gpu]' on a GPU machine "
            "(or run the CPU graph, graphs/resnet50_offline.yaml)"
        )
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError without a driver
        return f"{what} needs a CUDA GPU, and none is usable here ({type(exc).__name__}); run the CPU graph instead"
    if count == 0:
        return f"{what} needs a CUDA GPU, and this machine has none; run the CPU graph instead"
    return None


WAIT_MODE = os.environ.get("FLOWGRAPH_GPU_WAIT", "thread")
"""How GPU completion reaches asyncio: 'thread' (an event synchronized in the node's own thread pool) or
'callback' (a CUDA host function). Both leave the event loop free. 'thread' is the default: a bs-1 query
through the graph measured 0.37 and 0.47 ms lower at p90 with it in two of three runs of
``bench/gpu.py latency``, 0.04 ms higher in the third (bench/RESULTS.md 4b). A host function also holds
its stream until it gets the GIL."""


def stream_done(stream: Any, offload: Any = None, spin: bool = False) -> Awaitable[Any]:
    """An awaitable that completes when all work queued on ``stream`` so far has run.

    'callback': CUDA calls a host function on its own thread once the stream reaches it; that thread hands
    the result to the loop with ``call_soon_threadsafe`` (FACTS.md: 69 µs median on uvloop). 'thread':
    an event recorded on the stream is synchronized in one of the node's threads (55 µs). The loop never
    blocks or polls either way.

    ``spin`` (thread mode): the thread waits in the CUDA driver's own spin loop (with the GIL released)
    instead of sleeping until the GPU's interrupt wakes it, which notices completion sooner at the price
    of one core while it waits. Worth it where a batch is small and its latency is the point
    (SingleStream); a sleeping wait suits big batches, whose milliseconds of GPU time a spin would burn.
    """
    if WAIT_MODE == "thread" and offload is not None:
        import cupy

        # block=False: the device's scheduling policy decides, and with fewer CUDA contexts than cores
        # (cudaDeviceScheduleAuto) that is a spin.
        event = cupy.cuda.Event(block=not spin, disable_timing=True)
        event.record(stream)
        return offload(event.synchronize)
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()

    def finish(_: object) -> None:
        loop.call_soon_threadsafe(_resolve, future)

    stream.launch_host_func(finish, None)
    return future


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


INLINE_BYTES = 1 << 20
"""Batches up to this size are copied on the loop, from pageable memory: a 150 kB image copies faster
than a thread hand-off."""


class HostToDevice:
    """One copy worker: a CuPy stream and a ring of pinned host buffers reused across batches."""

    def __init__(self, buffers: int, reserve_bytes: int = 0) -> None:
        """``reserve_bytes``: pin every buffer this big now. Pinning takes milliseconds and stalls other
        CUDA calls meanwhile: on the H100, pinning lazily as a Server run's first big batches came made
        its first 0.3 s the slowest of the run (bench/RESULTS.md 4e)."""
        import cupy

        self.cupy = cupy
        self.stream = new_stream()
        # (pinned buffer or None, event of its last copy or None); its size bounds the copies in flight
        self.free: asyncio.Queue[tuple[Any, Any]] = asyncio.Queue()
        for _ in range(buffers):
            self.free.put_nowait((self._pinned(reserve_bytes) if reserve_bytes else None, None))

    def _pinned(self, nbytes: int) -> Any:
        import numpy as np

        return np.frombuffer(self.cupy.cuda.alloc_pinned_memory(nbytes), np.uint8)

    def _stage(self, host: Any, batch: Any) -> tuple[Any, Any]:
        """Copy into the pinned buffer and queue host→device (in a thread: a bs-256 float batch is 150 MB)."""
        import numpy as np

        if batch.parts is not None:  # stack straight into pinned memory: the batch's only host copy
            first = batch.parts[0]
            shape, dtype = (len(batch.parts), *first.shape), first.dtype
        else:
            shape, dtype = batch.array.shape, batch.array.dtype
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        if host is None or host.nbytes < nbytes:
            # Pinning is slow (milliseconds for a large batch): grow at least 2x, so a Server run whose
            # batches grow one image at a time pins a handful of times, not at every new size.
            host = self._pinned(max(nbytes, 2 * (0 if host is None else host.nbytes)))
        view = host[:nbytes].view(dtype).reshape(shape)
        if batch.parts is not None:
            batch.stacked(out=view)
        else:
            view[...] = batch.array
        return host, self._send(view)

    def _send(self, array: Any) -> tuple[Any, Any]:
        """Queue host→device of ``array`` on this worker's stream: the device array, and an event the
        engine waits for on the GPU.

        A small batch (SingleStream's one image) is sent straight from pageable memory, on the loop,
        with no wait: from pageable memory ``cudaMemcpyAsync`` returns once the driver has staged the
        data, so the array may be reused at once. That saves a host copy and a completion round trip
        (~0.15 ms of a 0.7 ms query)."""
        cupy = self.cupy
        with self.stream:
            device = cupy.empty(array.shape, array.dtype)
            device.set(array, stream=self.stream)
            event = cupy.cuda.Event(block=True, disable_timing=True)  # a host wait on it sleeps, not spins
            event.record(self.stream)
        return device, event

    async def copy(self, batch: Any, offload: Any) -> Any:
        """Host ``batch`` → the same batch with ``array`` on the device, ``ready`` an event on the copy.
        A batch already on the device (start_from_device, GPU preprocessing) passes through untouched."""
        import numpy as np

        if on_device(batch.array if batch.parts is None else batch.parts[0]):
            return batch  # the engine stacks device parts itself, on its own stream
        if batch.parts is None and batch.array.nbytes <= INLINE_BYTES:
            device, event = self._send(np.ascontiguousarray(batch.array))
        else:
            host, last_copy = await self.free.get()  # bounds copies in flight to the pool size
            if last_copy is not None and not last_copy.done:
                await offload(last_copy.synchronize)  # rare: the buffer's previous copy has not run yet
            host, (device, event) = await offload(self._stage, host, batch)
            # The batch goes on at once (the engine waits for ``event`` on the GPU); the buffer is reused
            # only once that copy has run, checked when it is next taken.
            self.free.put_nowait((host, event))
        batch.array = device
        batch.device = "cuda"
        batch.ready = event
        return batch

    def close(self) -> None:
        self.stream.synchronize()
