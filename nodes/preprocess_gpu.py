"""``preprocess_gpu``: JPEG bytes → a batch on the GPU, decoded by nvJPEG and resized there.

The CPU decodes ~384 JPEGs/s per core (FACTS.md); nvJPEG through ``torchvision.io.decode_jpeg(device=
"cuda")`` decodes a batch of 256 at ~14,700/s on the H100, so on a GPU machine decoding stops being the
bottleneck. Resize uses bilinear interpolation with antialiasing (close to, not bit-equal with, OpenCV's
INTER_AREA: the CPU node stays the reference), then the MLPerf center crop. Output is uint8 NHWC:
the inference engine normalizes on the device, inside its CUDA graph.

One worker takes up to ``max_batch`` queued samples, reads their files in one thread call and emits
one ``Batch`` (so it also does batch_merge's job: put it straight before gpu_schedule).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from flowgraph import END, Node, Port, WorkerIO, WorkerRule, node_type

from .payloads import Batch, Sample

__all__ = ["PreprocessGpu"]


class PreprocessGpuParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_batch: int = Field(64, ge=1, description="images decoded together")
    max_wait_us: float = Field(2000.0, ge=0, description="longest the first image waits for more")
    size: int = Field(224, ge=1)


@node_type("preprocess_gpu")
class PreprocessGpu(Node):
    """``Sample`` (JPEG) → ``Batch`` of uint8 NHWC images on the GPU."""

    Params = PreprocessGpuParams
    params: PreprocessGpuParams
    inputs: ClassVar = {"in": Port(Sample)}
    outputs: ClassVar = {"out": Port(Batch)}
    worker_rule = WorkerRule.any()

    @classmethod
    def check_environment(cls, params: BaseModel) -> str | None:
        from .gpu import cuda_problem

        problem = cuda_problem("preprocess_gpu")
        if problem:
            return problem
        try:
            import torchvision.io  # noqa: F401
        except ImportError:
            return "preprocess_gpu needs torchvision (nvJPEG decode); use the CPU preprocess node instead"
        return None

    async def setup(self) -> None:
        import torch

        from .gpu import new_stream

        self.torch = torch
        self.streams = [new_stream() for _ in range(self.context.workers)]

    def _decode(self, samples: list[Sample], worker: int) -> tuple[Any, Any]:
        """Decode the batch with nvJPEG, then resize + center-crop every image in one ``roi_align``.

        Why one op: images differ in size, and a resize per image costs ~0.4 ms of kernel launches
        (measured on the H100), which capped this node at ~3.5k img/s. Pasting them onto one canvas and
        sampling each image's crop box with adaptive sampling (every output pixel averages the source
        pixels it covers, like INTER_AREA when shrinking) does the whole batch in a few launches."""
        import torch
        from torchvision.io import decode_jpeg
        from torchvision.ops import roi_align

        from .preprocess import center_crop_box, shorter_side_size

        datas = [s.data if s.data is not None else Path(str(s.path)).read_bytes() for s in samples]
        size = self.params.size
        stream = torch.cuda.ExternalStream(self.streams[worker].ptr)
        with torch.cuda.stream(stream):
            # bytearray: torch wants a writable buffer (a 45 kB copy per JPEG, nothing next to decoding)
            images = decode_jpeg(
                [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in datas], device="cuda"
            )
            height = max(int(im.shape[1]) for im in images)
            width = max(int(im.shape[2]) for im in images)
            canvas = torch.zeros((len(images), 3, height, width), dtype=torch.float16, device="cuda")
            boxes = []
            for i, image in enumerate(images):
                h, w = int(image.shape[1]), int(image.shape[2])
                canvas[i, :, :h, :w] = image  # a grayscale image broadcasts to three channels
                new_h, new_w = shorter_side_size(h, w, size)
                top, left = center_crop_box(new_h, new_w, size)
                sy, sx = h / new_h, w / new_w
                boxes.append([i, left * sx, top * sy, (left + size) * sx, (top + size) * sy])
            rois = torch.tensor(boxes, dtype=torch.float16, device="cuda")
            crops = roi_align(
                canvas, rois, output_size=(size, size), spatial_scale=1.0, sampling_ratio=0, aligned=True
            )
            out = crops.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
            ready = torch.cuda.Event()
            ready.record(stream)
        return out, ready

    async def run(self, io: WorkerIO) -> None:
        max_batch, wait_s = self.params.max_batch, self.params.max_wait_us / 1e6
        while (first := await io.inbox.get()) is not END:
            samples = [first]
            await io.inbox.fill(samples, max_batch, time.perf_counter() + wait_s)
            t0 = time.perf_counter()
            array, ready = await self.offload(self._decode, samples, io.worker)
            self.context.observe((time.perf_counter() - t0) / len(samples))
            await io.out.send(
                Batch(
                    [s.sample_id for s in samples],
                    [s.label for s in samples],
                    array,
                    [s.t_start for s in samples],
                    ready=ready,
                )
            )
