"""The QSL's samples: the front of the graph (init, preprocess) run for the indices LoadGen loads."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flowgraph import Graph, GraphFileError, Issue

__all__ = ["SampleLibrary"]


class SampleLibrary:
    """Preprocessed samples by index, loaded and unloaded as LoadGen asks.

    ``open`` runs the front once with no samples: that sets the dataset up (a synthetic one is made
    there) and reads its labels and label file, which a dataset node documents as readable after setup.
    Each ``load`` runs the same checked front with the dataset's ``indices`` param set to the samples
    asked for (``Graph.with_params``: nothing else is checked again)."""

    def __init__(
        self,
        front: Graph,
        source: str,
        start: Mapping[str, Any],
        on_device: bool = False,
    ) -> None:
        self._front = front
        self._source = source
        self._start = dict(start)
        self._on_device = on_device
        self.images: dict[int, Any] = {}
        self.labels: list[int] = []
        self.val_map: Path | None = None

    async def open(self, graph_file: str) -> None:
        async with self._front.with_params(self._source, indices=[]).start(**self._start) as run:
            pass
        dataset = run.node(self._source)
        self.labels = list(getattr(dataset, "labels", []))
        self.val_map = getattr(dataset, "val_map", None)
        if not self.labels:
            raise GraphFileError([Issue(graph_file, None, self._source, "the dataset has no samples")])

    async def load(self, indices: list[int]) -> None:
        loader = self._front.with_params(self._source, indices=sorted(indices), count=None)
        report = await loader.run(**self._start)
        if report.failures:
            raise RuntimeError(f"loading samples failed: {report.failures[0]}")
        if self._on_device and report.results:  # as NVIDIA's harness does: Offline and Server then
            self._keep_on_device(report.results)  # measure inference, not PCIe
            return
        for image in report.results:
            self.images[image.sample_id] = image.array

    def _keep_on_device(self, images: list[Any]) -> None:
        import cupy
        import numpy as np

        # One array, each sample a row of it: a batch is then gathered by one take.
        rows = cupy.asarray(np.stack([image.array for image in images]))
        for row, image in enumerate(images):
            self.images[image.sample_id] = rows[row]
        cupy.cuda.runtime.deviceSynchronize()

    def unload(self, indices: list[int]) -> None:
        for index in indices:
            self.images.pop(index, None)
