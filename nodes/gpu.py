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

INLINE_GATHER = 8
"""Device images up to this many are gathered on the loop: launching the gather kernel costs tens of µs,
less than a thread hand-off (~80 µs round trip), as the torch engine's ``inline_batch`` measured."""


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
        self._warm_gathers()

    def _warm_gathers(self) -> None:
        """Gather device images once each way ``_gather`` may (a take of rows, a stack), for the image
        dtypes the pipeline sends: CuPy compiles each kernel on first use (NVRTC, ~0.1-0.3 s on a
        machine with no kernel cache), which must not happen inside the first batches of a Server run."""
        cupy = self.cupy
        for dtype in (cupy.uint8, cupy.float32):
            library = cupy.zeros((2, 4, 4, 3), dtype)
            self._gather([library[1], library[0]])
            self._gather([cupy.zeros((4, 4, 3), dtype) for _ in range(9)])
        self.stream.synchronize()

    def _pinned(self, nbytes: int) -> Any:
        import numpy as np

        return np.frombuffer(self.cupy.cuda.alloc_pinned_memory(nbytes), np.uint8)

    def _stage(self, host: Any, item: Any) -> tuple[Any, Any]:
        """Stack or copy into the pinned buffer and queue host→device (in a thread: a bs-256 float batch
        is 150 MB). ``item``: ``Images`` (stacked straight into pinned memory: the batch's only host
        copy) or a host ``Batch``."""
        import numpy as np

        from .payloads import stack_parts

        parts = getattr(item, "arrays", None)
        if parts is not None:
            first = parts[0]
            shape, dtype = (len(parts), *first.shape), first.dtype
        else:
            shape, dtype = item.array.shape, item.array.dtype
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        if host is None or host.nbytes < nbytes:
            # Pinning is slow (milliseconds for a large batch): grow at least 2x, so a Server run whose
            # batches grow one image at a time pins a handful of times, not at every new size.
            host = self._pinned(max(nbytes, 2 * (0 if host is None else host.nbytes)))
        view = host[:nbytes].view(dtype).reshape(shape)
        if parts is not None:
            stack_parts(parts, out=view)
        else:
            view[...] = item.array
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
            return device, self._mark()

    def _mark(self) -> Any:
        """An event after the work queued on this worker's stream so far (a host wait on it sleeps)."""
        event = self.cupy.cuda.Event(block=True, disable_timing=True)
        event.record(self.stream)
        return event

    def _gather(self, parts: list[Any]) -> tuple[Any, Any]:
        """Device images → one contiguous device array, on this worker's stream: rows of one array (a
        sample library on the GPU) by one ``take``, others by one ``cupy.stack``."""
        from .payloads import stack_device_parts

        if type(parts[0]).__module__.startswith("torch"):
            import torch

            with torch.cuda.stream(torch.cuda.ExternalStream(self.stream.ptr)):
                array = torch.stack(parts)
            return array, self._mark()
        with self.stream:
            array = stack_device_parts(parts)
            return array, self._mark()

    async def copy(self, item: Any, offload: Any) -> tuple[Any, Any]:
        """``Images`` or a ``Batch`` → (one contiguous device array, the event that marks it ready).

        Host images go through a pinned buffer; device images are gathered on this worker's stream (on
        the loop while there are few: a thread hand-off costs more than the launch); a device batch
        passes as it is. The engine waits for the event on the GPU, never the host."""
        import numpy as np

        from .payloads import Batch

        if isinstance(item, Batch):
            if on_device(item.array):
                return item.array, item.ready
            if item.array.nbytes <= INLINE_BYTES:
                return self._send(np.ascontiguousarray(item.array))
        elif on_device(item.arrays[0]):
            if len(item.arrays) <= INLINE_GATHER:
                return self._gather(item.arrays)
            return await offload(self._gather, item.arrays)
        host, last_copy = await self.free.get()  # bounds copies in flight to the pool size
        if last_copy is not None and not last_copy.done:
            await offload(last_copy.synchronize)  # rare: the buffer's previous copy has not run yet
        host, (device, event) = await offload(self._stage, host, item)
        # The batch goes on at once (the engine waits for ``event`` on the GPU); the buffer is reused
        # only once that copy has run, checked when it is next taken.
        self.free.put_nowait((host, event))
        return device, event

    def close(self) -> None:
        self.stream.synchronize()
