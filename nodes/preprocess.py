"""Decode and preprocess JPEGs with OpenCV, in the node's threads.

The default is exactly MLPerf's reference preprocessing for ResNet50: decode, BGR→RGB, resize the
shorter side to 256 (``int(100 * 224 / 87.5)``) keeping the aspect ratio with INTER_AREA, center-crop
224, float32, subtract the means [123.68, 116.78, 103.94], no division by std. ``torchvision`` is the
PyTorch recipe (bilinear, /255, mean/std); ``uint8`` stops after the crop, for normalizing on the device.

Why chunks: on a small CPU, handing single images to a thread costs 0.5-1 ms each in GIL contention
(FACTS.md); a worker takes up to ``chunk`` ready samples at once and hands them to one thread call.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from flowgraph import END, Needs, Node, Port, SampleFailed, WorkerIO, WorkerRule, node_type

from .files import replace_atomically
from .payloads import Image, Sample

__all__ = [
    "MLPERF_MEANS",
    "Preprocess",
    "center_crop",
    "center_crop_box",
    "decode",
    "preprocess_image",
    "resize_shorter_side",
    "shorter_side_size",
]

MLPERF_MEANS = (123.68, 116.78, 103.94)
TORCHVISION_MEAN = (0.485, 0.456, 0.406)
TORCHVISION_STD = (0.229, 0.224, 0.225)

Variant = Literal["mlperf", "torchvision", "uint8"]


class PreprocessParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    variant: Variant = Field("mlperf", description="mlperf (INTER_AREA, minus means), torchvision, or uint8")
    layout: Literal["NCHW", "NHWC"] = Field(
        "NCHW", description="layout of float outputs (uint8 is always HWC)"
    )
    size: int = Field(224, ge=1, description="output side after the center crop")
    chunk: int = Field(8, ge=1, description="samples handed to a thread at once")
    cache: bool = Field(False, description="keep preprocessed samples on disk and reuse them")
    cache_dir: str | None = Field(None, description="where the cache lives (default: <cache>/preprocessed)")
    opencv_threads: int = Field(
        1, ge=0, description="OpenCV's own threads (1: the node's workers parallelize)"
    )


def decode(data: bytes, where: object) -> Any:
    """BGR uint8 HWC from JPEG bytes; grayscale and CMYK files come out as 3-channel BGR."""
    import cv2
    import numpy as np

    if not data:  # OpenCV asserts on an empty buffer instead of returning None
        raise ValueError(f"{where}: the file is empty (0 bytes)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{where}: not a decodable image ({len(data)} bytes)")
    return image


def shorter_side_size(height: int, width: int, size_crop: int, target: int = 0) -> tuple[int, int]:
    """(new height, new width) with the shorter side ``int(100 * size_crop / 87.5)`` (256 for 224), as
    MLPerf does; ``target`` overrides that side length."""
    target = target or int(100.0 * size_crop / 87.5)
    if height > width:
        return int(target * height / width), target
    return target, int(target * width / height)


def center_crop_box(height: int, width: int, size: int) -> tuple[int, int]:
    """(top, left) of the centered ``size`` square, rounding as MLPerf's reference does."""
    return int((height - size) / 2), int((width - size) / 2)


def resize_shorter_side(image: Any, size: int, size_crop: int, interpolation: int) -> Any:
    import cv2

    new_h, new_w = shorter_side_size(image.shape[0], image.shape[1], size_crop, size if size > 0 else 0)
    return cv2.resize(image, (new_w, new_h), interpolation=interpolation)


def center_crop(image: Any, size: int) -> Any:
    top, left = center_crop_box(image.shape[0], image.shape[1], size)
    return image[top : top + size, left : left + size]


def preprocess_image(bgr: Any, variant: Variant = "mlperf", layout: str = "NCHW", size: int = 224) -> Any:
    """One decoded BGR image → the model's input for one sample."""
    import cv2
    import numpy as np

    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if variant == "torchvision":
        resized = resize_shorter_side(rgb, int(size * 256 / 224), size, cv2.INTER_LINEAR)
        crop = center_crop(resized, size).astype(np.float32) / 255.0
        out = (crop - np.asarray(TORCHVISION_MEAN, np.float32)) / np.asarray(TORCHVISION_STD, np.float32)
    else:
        resized = resize_shorter_side(rgb, 0, size, cv2.INTER_AREA)
        crop = center_crop(resized, size)
        if variant == "uint8":
            return np.ascontiguousarray(crop)
        out = crop.astype(np.float32) - np.asarray(MLPERF_MEANS, np.float32)
    if layout == "NCHW":
        out = out.transpose(2, 0, 1)
    return np.ascontiguousarray(out, dtype=np.float32)


@node_type("preprocess")
class Preprocess(Node):
    """JPEG ``Sample`` → preprocessed ``Image``; order is not kept across workers."""

    Params = PreprocessParams
    params: PreprocessParams
    inputs: ClassVar = {"in": Port(Sample)}
    outputs: ClassVar = {"out": Port(Image)}
    worker_rule = WorkerRule.any(default=2)
    needs = Needs("flowgraph[cpu]", ("numpy", "cv2"))
    skips_failed_samples = True  # its chunked loop reports each failed image itself

    async def setup(self) -> None:
        import cv2

        cv2.setNumThreads(self.params.opencv_threads)
        if self.params.cache:
            self._cache = Path(self.params.cache_dir or self.context.cache_dir / "preprocessed").expanduser()
            self._cache.mkdir(parents=True, exist_ok=True)

    def _cache_file(self, sample: Sample) -> Path | None:
        if not self.params.cache or sample.path is None:
            return None
        stat = sample.path.stat()
        p = self.params
        key = f"{sample.path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{p.variant}|{p.layout}|{p.size}"
        return self._cache / f"{hashlib.sha1(key.encode()).hexdigest()}.npy"

    def _one(self, sample: Sample) -> Image:
        import numpy as np

        cached = self._cache_file(sample)
        if cached is not None and cached.exists():
            return Image(sample.sample_id, sample.label, np.load(cached), sample.t_start)
        where = sample.path or f"sample {sample.sample_id}"
        data = sample.data if sample.data is not None else Path(where).read_bytes()
        p = self.params
        array = preprocess_image(decode(data, where), p.variant, p.layout, p.size)
        if cached is not None:
            replace_atomically(cached, lambda tmp: np.save(tmp, array))
        return Image(sample.sample_id, sample.label, array, sample.t_start)

    def _many(self, samples: Sequence[Sample]) -> list[Image | SampleFailed]:
        out: list[Image | SampleFailed] = []
        for sample in samples:
            try:
                out.append(self._one(sample))
            except Exception as exc:  # reported per sample below, with its id
                out.append(SampleFailed(sample.sample_id, exc))
        return out

    async def run(self, io: WorkerIO) -> None:
        skip = self.context.on_error == "skip"
        while (first := await io.inbox.get()) is not END:
            chunk = [first, *io.inbox.take_ready(self.params.chunk - 1)]
            t0 = time.perf_counter()
            results = await self.offload(self._many, chunk)
            per_sample = (time.perf_counter() - t0) / len(chunk)
            for result in results:
                self.context.observe(per_sample)
                if isinstance(result, SampleFailed):
                    if not skip:
                        raise result
                    self.context.report_failure(result.sample, result.error)
                    continue
                await io.out.send(result)
