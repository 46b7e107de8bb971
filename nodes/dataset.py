"""The pipeline's init node: samples of an ImageNet-style validation folder, and a synthetic one.

Layout, as MLPerf's harness reads it: a folder of JPEGs and ``val_map.txt`` with ``<file name> <label>``
per line. ``path: synthetic`` makes (once, into the cache directory) a folder of real JPEGs with that
layout, so the pipeline runs on a fresh machine with no downloads.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from flowgraph import Needs, Port, SampleFailed, Source, WorkerRule, node_type

from .files import replace_atomically
from .payloads import Sample
from .sources import ExternalInput

__all__ = [
    "ImageNetSource",
    "SampleInput",
    "read_val_map",
    "synthetic_dataset_dir",
    "write_synthetic_dataset",
]

SYNTHETIC = "synthetic"


class ImageNetParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(SYNTHETIC, description="folder of JPEGs with val_map.txt, or 'synthetic'")
    val_map: str | None = Field(None, description="label file (default: <path>/val_map.txt)")
    count: int | None = Field(None, ge=1, description="take only the first N samples")
    synthetic_count: int = Field(500, ge=1, description="how many JPEGs 'synthetic' generates")
    seed: int = Field(0, description="seed of the synthetic dataset")
    read_bytes: bool = Field(False, description="read each JPEG in the source (else preprocess reads it)")
    indices: list[int] | None = Field(
        None, description="emit only these sample indices (LoadGen's QSL loads)"
    )


def read_val_map(val_map: Path, folder: Path) -> Iterator[tuple[int, Path, int] | SampleFailed]:
    """(index, image path, label) per line; a malformed line yields a ``SampleFailed`` naming file:line."""
    with val_map.open(encoding="utf-8") as lines:
        index = 0
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            parts = line.split()
            where = f"{val_map}:{number}"
            if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
                yield SampleFailed(
                    where,
                    ValueError(f"{where}: expected '<file name> <integer label>', got {line.strip()!r}"),
                )
                continue
            path = folder / parts[0]
            if not _inside(path, folder):  # an absolute path or ../ would read files elsewhere
                yield SampleFailed(
                    where,
                    ValueError(f"{where}: {parts[0]!r} is outside the dataset folder {folder}"),
                )
                continue
            yield index, path, int(parts[1])
            index += 1


@node_type("imagenet")
class ImageNetSource(Source):
    """Emits one ``Sample`` per val_map.txt line, in file order, up to ``count``."""

    Params = ImageNetParams
    params: ImageNetParams
    outputs: ClassVar = {"out": Port(Sample)}
    worker_rule = WorkerRule.fixed(1)
    skips_failed_samples = True  # a malformed val_map line is reported and skipped

    @classmethod
    def check_environment(cls, params: BaseModel) -> str | None:
        if getattr(params, "path", None) == SYNTHETIC:  # generating the JPEGs takes numpy and OpenCV
            return Needs("flowgraph[cpu]", ("numpy", "cv2")).problem("imagenet with path: synthetic")
        return None

    def __init__(self, params: ImageNetParams, context: Any) -> None:
        super().__init__(params, context)
        self.folder = Path()
        self.val_map = Path()
        self.labels: list[int] = []
        """Labels of the samples this source can emit (the first ``count``), by index."""

    async def setup(self) -> None:
        p = self.params
        if p.path == SYNTHETIC:
            folder = synthetic_dataset_dir(self.context.cache_dir, p.synthetic_count, p.seed)
            if not (folder / "val_map.txt").exists():
                self.context.announce(
                    f"generating {p.synthetic_count} synthetic JPEGs into {folder} (once) …"
                )
                t0 = time.perf_counter()
                await self.offload(write_synthetic_dataset, folder, p.synthetic_count, p.seed)
                self.context.announce(f"… done in {time.perf_counter() - t0:.1f} s")
            self.folder = folder
        else:
            self.folder = Path(p.path).expanduser()
            if not self.folder.is_dir():
                raise FileNotFoundError(
                    f"dataset folder {self.folder} does not exist "
                    "(set dataset.path to an ImageNet val folder, or 'synthetic')"
                )
        self.val_map = Path(p.val_map).expanduser() if p.val_map else self.folder / "val_map.txt"
        if not self.val_map.is_file():
            raise FileNotFoundError(
                f"{self.val_map} not found: the folder needs a val_map.txt "
                "with '<file name> <label>' per line"
            )
        self.labels = [
            e[2] for e in read_val_map(self.val_map, self.folder) if not isinstance(e, SampleFailed)
        ]
        if p.count is not None:
            self.labels = self.labels[: p.count]
        if not self.labels:
            raise ValueError(f"{self.val_map} lists no samples (expected '<file name> <label>' lines)")

    def expected_items(self) -> int | None:
        if self.params.indices is not None:
            return len(self.params.indices)
        if self.params.count is not None:
            return self.params.count
        return self.params.synthetic_count if self.params.path == SYNTHETIC else None

    async def items(self, worker: int) -> AsyncIterator[Sample]:
        limit = self.params.count
        wanted = set(self.params.indices) if self.params.indices is not None else None
        emitted = 0
        for entry in read_val_map(self.val_map, self.folder):
            if limit is not None and emitted >= limit:
                return
            if wanted is not None:
                if not wanted:
                    return
                if isinstance(entry, SampleFailed) or entry[0] not in wanted:
                    continue
                wanted.discard(entry[0])
            if isinstance(entry, SampleFailed):
                if self.context.on_error == "skip":
                    self.context.report_failure(entry.sample, entry.error)
                    continue
                raise entry
            index, path, label = entry
            data = await self.offload(path.read_bytes) if self.params.read_bytes else None
            yield Sample(index, path, label, data, time.perf_counter())
            emitted += 1


def _inside(path: Path, folder: Path) -> bool:
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):
        return False


def synthetic_dataset_dir(cache_dir: Path, count: int, seed: int) -> Path:
    return cache_dir / "datasets" / f"synthetic-{count}-seed{seed}"


def write_synthetic_dataset(
    out: Path, count: int, seed: int = 0, progress: Callable[[int, int], None] | None = None
) -> Path:
    """Write ``count`` JPEGs of ImageNet-like sizes (about 500x375, some portrait, some odd) and a
    val_map.txt with labels 0..999, the same for the same seed. Content is smooth gradients, shapes and
    texture, so the files compress like photos (tens of kB), not like noise or flat colour."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(count):
        if i % 10 == 9:
            h, w = int(rng.integers(300, 520)), int(rng.integers(250, 400))  # portrait
        else:
            h, w = int(rng.integers(330, 400)), int(rng.integers(450, 520))
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        base = rng.uniform(0, 255, 3).astype(np.float32)
        slope = rng.uniform(-0.4, 0.4, (2, 3)).astype(np.float32)
        image = base + yy[..., None] * slope[0] + xx[..., None] * slope[1]
        for _ in range(int(rng.integers(3, 8))):
            color = tuple(float(c) for c in rng.uniform(0, 255, 3))
            center = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            radius = int(rng.integers(10, max(11, min(h, w) // 3)))
            cv2.circle(image, center, radius, color, thickness=-1)
        image += rng.normal(0, 10, image.shape).astype(np.float32)
        image = cv2.GaussianBlur(np.clip(image, 0, 255).astype(np.uint8), (3, 3), 0)
        name = f"ILSVRC2012_val_{i + 1:08d}.JPEG"
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        if not ok:
            raise RuntimeError(f"could not encode {name}")
        data = encoded.tobytes()
        replace_atomically(out / name, lambda tmp: tmp.write_bytes(data))  # noqa: B023 - called at once
        lines.append(f"{name} {int(rng.integers(0, 1000))}\n")
        if progress:
            progress(i + 1, count)
    # written last and atomically: its presence means the folder is complete
    replace_atomically(out / "val_map.txt", lambda tmp: tmp.write_text("".join(lines)))
    return out


@node_type("sample_input")
class SampleInput(ExternalInput):
    """Samples the embedding program submits (``Run.call``, ``Run.submit``): one ``Sample`` per request,
    its JPEG's bytes in ``data`` (``path`` None), ``label`` -1 when unknown. Typed, unlike ``input``:
    the validator checks what it feeds, and ``Run.call`` refuses anything that is not a ``Sample``."""

    outputs: ClassVar = {"out": Port(Sample, doc="one sample per request")}
