"""What flows between the ResNet50 pipeline's nodes. Slotted dataclasses: they are created per sample.

Port types are these classes, so the validator catches an edge from ``preprocess`` straight into
``inference`` (``Image`` is not a ``Batch``) before anything runs. Every payload names its sample(s)
(``sample_id`` / ``sample_ids``), which is how errors and failure records point at the culprit.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Answers",
    "Batch",
    "ClassScores",
    "Flush",
    "Image",
    "ImageData",
    "Images",
    "Logits",
    "Prediction",
    "Predictions",
    "Sample",
    "Scores",
    "stack_device_parts",
    "stack_parts",
]


@dataclass(slots=True)
class Sample:
    """One dataset entry before decoding: where the JPEG is and its label (-1 when unknown)."""

    sample_id: int
    path: Path | None
    label: int
    data: bytes | None = None
    t_start: float = 0.0
    """perf_counter when the sample entered the graph: the start of its end-to-end latency."""


class ImageData:
    """One preprocessed image (``Image``), several (``Images``) or a stack of them (``Batch``): what
    memory_copy accepts, so a scenario that bypasses batch_merge still type-checks (memory_copy makes a
    batch of one)."""

    __slots__ = ()


@dataclass(slots=True)
class Image(ImageData):
    """One preprocessed image: float32 CHW/HWC (mean-subtracted) or uint8 HWC for device-side normalizing.

    An image on the device must be complete when sent (its producer has synchronized the stream that
    wrote it): batch_merge records no event for it, and the engine reads it on its own stream."""

    sample_id: int
    label: int
    array: Any
    t_start: float = 0.0


@dataclass(slots=True)
class Images(ImageData):
    """Images batched but not stacked: what batch_merge emits. It only references the images (no copy
    on the event loop); memory_copy stacks them, in its own thread or on its own CUDA stream, into the
    one contiguous array an engine takes (``Batch``)."""

    sample_ids: list[int]
    labels: list[int]
    arrays: list[Any]
    """One array per image, all on the host or all on the device."""
    t_starts: list[float] = field(default_factory=list)


@dataclass(slots=True)
class Batch(ImageData):
    """What an engine takes: one contiguous array of images stacked along axis 0, on the host (numpy)
    or on the device (CuPy/torch), and the event to wait for before reading a device array.

    Which engine runs it is the partition of the edge it travels on (gpu_schedule's choice), not a
    field here; where it lives is the array's own type."""

    sample_ids: list[int]
    labels: list[int]
    array: Any
    t_starts: list[float] = field(default_factory=list)
    ready: Any = None
    """A device event the consumer waits on (on its own stream) before reading ``array`` (memory_copy's
    copy or gather); None when the array is ready now."""


def stack_parts(parts: list[Any], out: Any = None) -> Any:
    """``np.stack(parts, out=out)``, with the GIL released once for the whole copy, not once per part.

    Why: np.stack copies part by part and releases the GIL around each copy, so a thread stacking a
    128-image batch must win the GIL back 128 times; while the event loop and LoadGen's thread are busy
    each win can wait up to the 5 ms switch interval. On the H100 such a stack in memory_copy's thread
    took 23–29 ms instead of ~2 ms, and set the Server tail (bench/RESULTS.md 4e). OpenCV's ``vconcat``
    copies the whole list in one call that releases the GIL once; it is used where OpenCV is installed
    and the parts are alike and contiguous (each part is seen as one row of bytes).
    """
    import numpy as np

    first = parts[0]
    shape = (len(parts), *first.shape)
    concat = _vconcat()
    if (
        concat is None
        or len(parts) < 2
        or first.nbytes == 0
        or not all(p.shape == first.shape and p.dtype == first.dtype and p.flags.c_contiguous for p in parts)
        or (
            out is not None
            and not (out.flags.c_contiguous and out.shape == shape and out.dtype == first.dtype)
        )
    ):
        return np.stack(parts, out=out)  # including numpy's own checks and messages for a wrong ``out``
    if out is None:
        out = np.empty(shape, first.dtype)
    rows = out.reshape(len(parts), -1).view(np.uint8)
    written = concat([p.reshape(1, -1).view(np.uint8) for p in parts], rows)
    if written.ctypes.data != rows.ctypes.data:  # OpenCV allocated instead of writing in place
        rows[...] = written
    return out


def stack_device_parts(parts: list[Any], out: Any = None) -> Any:
    """Stack CuPy arrays on the current stream: rows of one array (a sample library kept on the GPU)
    are gathered by one ``take`` of their row numbers, anything else by ``cupy.stack``.

    Why: ``cupy.stack`` of 128 images held the launching thread (and the GIL) for 0.56 ms on the H100,
    a ``take`` of the same rows for 0.08 ms (``bench/gather.py``); under Server load that thread's time
    is what the event loop and LoadGen's thread wait for."""
    import cupy

    rows = _rows_of_one_array(parts)
    if rows is None:
        return cupy.stack(parts, out=out)
    library, index = rows
    return cupy.take(library, cupy.asarray(index, dtype=cupy.int64), axis=0, out=out)


def _rows_of_one_array(parts: list[Any]) -> tuple[Any, list[int]] | None:
    """(array, row numbers) when every part is a whole row ``array[k]`` of one C-contiguous array."""
    library = parts[0].base
    if library is None or not library.flags.c_contiguous or library.shape[1:] != parts[0].shape:
        return None
    start, row_bytes = library.data.ptr, library.strides[0]
    index = []
    for part in parts:
        offset = part.data.ptr - start
        if part.base is not library or part.shape != library.shape[1:] or offset % row_bytes:
            return None
        index.append(offset // row_bytes)
    return library, index


@functools.cache
def _vconcat() -> Any:
    """cv2.vconcat, or None without OpenCV (imported on first use: it takes ~0.1 s)."""
    try:
        import cv2
    except ImportError:
        return None
    return cv2.vconcat


class ClassScores:
    """Scores for one sample (``Scores``) or a batch (``Logits``): what postprocess accepts, so a
    scenario that bypasses batch_split still type-checks."""

    __slots__ = ()


@dataclass(slots=True)
class Logits(ClassScores):
    """The model's output for a batch: ``scores`` is a host array [N, classes]; or, from an engine that
    ranks on the device (inference ``top_k``), ``top`` [N, k] class indices best first and no scores."""

    sample_ids: list[int]
    labels: list[int]
    scores: Any
    t_starts: list[float] = field(default_factory=list)
    top: Any = None


@dataclass(slots=True)
class Scores(ClassScores):
    """One sample's row of class scores, or its ``top`` class indices best first (see ``Logits``)."""

    sample_id: int
    label: int
    scores: Any
    t_start: float = 0.0
    top: Any = None


class Answers:
    """What postprocess emits: one sample's ``Prediction`` or a whole batch's ``Predictions``."""

    __slots__ = ()


@dataclass(slots=True)
class Predictions(Answers):
    """A batch's answers: ``top`` is an int array [N, k], best first, label offset applied."""

    sample_ids: list[int]
    labels: list[int]
    top: Any

    @property
    def top1(self) -> list[int]:
        return [int(c) for c in self.top[:, 0]]


@dataclass(slots=True)
class Prediction(Answers):
    """One sample's answer: top-1 and top-5 classes (label offset applied) and whether they hit."""

    sample_id: int
    label: int
    top1: int
    top5: tuple[int, ...]
    latency_s: float = 0.0

    @property
    def correct(self) -> bool:
        return self.top1 == self.label


class Flush:
    """Tells batch_merge to send its partial batch now (LoadGen's flush_queries). It names no samples,
    so the run's accounting does not count it as one."""

    __slots__ = ()
    sample_ids: tuple[int, ...] = ()
