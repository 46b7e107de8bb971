"""``postprocess``: per-sample top-1 / top-5, the accuracy tally, and the run's FlagPerf-style figures.

``label_offset`` is added to the model's class index before comparing with the label: MLPerf's
resnet50_v1.onnx has 1001 outputs with class 0 = background, so it needs -1; our built-in model has 1000.
"""

from __future__ import annotations

import resource
import sys
import time
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from flowgraph import Needs, Node, Port, SampleFailed, WorkerIO, WorkerRule, node_type
from flowgraph.metrics import Reservoir

from .payloads import Answers, ClassScores, Logits, Prediction, Predictions, Scores

__all__ = ["Postprocess", "top_k"]


class PostprocessParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label_offset: int = Field(0, description="added to the predicted class (MLPerf's resnet50_v1.onnx: -1)")
    top_k: int = Field(5, ge=1, description="classes kept per sample")


def rank_top(scores: Any, k: int) -> Any:
    """[N, k] indices of each row's ``k`` highest scores, best first (ties: the lower index first).

    Why k rounds of argmax and not argpartition: argpartition selects row by row (~4 µs a row on the
    2-core VM, 0.9 ms for 128 rows of 1000 on the event loop); argmax is vectorized, and for k = 5 the
    five rounds took 0.11 ms for the same 128 rows."""
    import numpy as np

    work = np.array(scores, dtype=np.result_type(scores.dtype, np.float32))  # a copy: masked below
    rows = np.arange(work.shape[0])
    k = min(k, work.shape[1])
    top = np.empty((work.shape[0], k), np.intp)
    for rank in range(k):
        best = work.argmax(axis=1)
        top[:, rank] = best
        work[rows, best] = -np.inf
    return top


def top_k(scores: Any, k: int) -> list[int]:
    """Indices of the ``k`` highest scores of one sample, best first."""
    return [int(i) for i in rank_top(scores[None], k)[0]]


@node_type("postprocess")
class Postprocess(Node):
    """``Scores`` → ``Prediction``; counts hits. Its output is optional: unconnected, it is the sink."""

    Params = PostprocessParams
    params: PostprocessParams
    inputs: ClassVar = {"in": Port(ClassScores, doc="one sample's Scores, or a whole batch's Logits")}
    outputs: ClassVar = {
        "out": Port(Answers, required=False, doc="Prediction per Scores, Predictions per Logits")
    }
    worker_rule = WorkerRule.per_partition()  # one per engine, as the seeds' schedulers ran it
    needs = Needs("flowgraph[cpu]", ("numpy",))

    def __init__(self, params: PostprocessParams, context: Any) -> None:
        super().__init__(params, context)
        self.counted = 0
        self.top1_hits = 0
        self.top5_hits = 0
        self.first_start = float("inf")
        self.last_done = 0.0
        self.latency = Reservoir()

    def predict(self, sample_id: int, label: int, scores: Any, t_start: float, top: Any = None) -> Prediction:
        offset = self.params.label_offset
        if scores is not None and label >= 0 and not offset <= label < len(scores) + offset:
            raise SampleFailed(sample_id, self._label_error(label, len(scores)))
        ranked = top_k(scores, self.params.top_k) if top is None else top[: self.params.top_k].tolist()
        best = [c + offset for c in ranked]
        now = time.perf_counter()
        latency = now - t_start if t_start else 0.0
        if t_start:
            self.first_start = min(self.first_start, t_start)
            self.latency.add(latency)
        self.last_done = now
        if label >= 0:
            self.counted += 1
            self.top1_hits += best[0] == label
            self.top5_hits += label in best
        return Prediction(sample_id, label, best[0], tuple(best), latency)

    def predict_batch(self, item: Logits) -> Predictions:
        """The whole batch at once with numpy: per-sample Python work is what limits a GPU pipeline
        at 20k+ images/s (bench/RESULTS.md), so a graph without batch_split takes this path."""
        import numpy as np

        if item.top is not None:  # ranked on the device: nothing left to rank here
            top = np.asarray(item.top)[:, : self.params.top_k] + self.params.label_offset
        else:
            top = rank_top(np.asarray(item.scores), self.params.top_k) + self.params.label_offset
        now = time.perf_counter()
        labels = np.asarray(item.labels)
        known = labels >= 0
        if item.scores is not None:
            classes, offset = np.shape(item.scores)[-1], self.params.label_offset
            outside = known & ((labels < offset) | (labels >= classes + offset))
            if outside.any():
                k = int(np.argmax(outside))
                raise SampleFailed(item.sample_ids[k], self._label_error(int(labels[k]), classes))
        self.counted += int(known.sum())
        self.top1_hits += int((top[:, 0] == labels)[known].sum())
        self.top5_hits += int((top == labels[:, None]).any(axis=1)[known].sum())
        for t_start in item.t_starts:
            if t_start:
                self.first_start = min(self.first_start, t_start)
                self.latency.add(now - t_start)
        self.last_done = now
        return Predictions(item.sample_ids, item.labels, top)

    def _label_error(self, label: int, classes: int) -> ValueError:
        offset = self.params.label_offset
        return ValueError(
            f"label {label} is outside the model's {classes} classes ({offset}..{classes - 1 + offset} with "
            f"label_offset {offset}): a label file for another model, or label_offset wrong"
        )

    async def run(self, io: WorkerIO) -> None:
        async for item in io.inbox:
            if isinstance(item, Logits):  # batch_split bypassed: the batch in one go
                await io.out.send(self.predict_batch(item))
            else:
                assert isinstance(item, Scores)
                await io.out.send(
                    self.predict(item.sample_id, item.label, item.scores, item.t_start, item.top)
                )

    def summary(self) -> dict[str, Any]:
        stats = self.context.shared.get("inference")
        images = stats.images if stats else self.counted
        e2e = (
            self.last_done - self.first_start if self.last_done and self.first_start != float("inf") else 0.0
        )
        lat = self.latency.percentiles(50, 90, 99)
        rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out: dict[str, Any] = {
            "precision": stats.precision if stats else "?",
            "backend": stats.backend if stats else "?",
            "batch_size": stats.max_batch if stats else 0,
            "batch_mean": round(stats.images / stats.batches, 1) if stats and stats.batches else 0.0,
            "engines": stats.engine_num if stats else 0,
            "images": images,
            "e2e_time_s": round(e2e, 4),
            "p_infer_whole": round(images / e2e, 2) if e2e else 0.0,
            # core: images over the time at least one engine was inside the backend
            "p_infer_core": round(images / stats.core_s, 2) if stats and stats.core_s else 0.0,
            "latency_ms_p50": round(lat["p50"] * 1e3, 3),
            "latency_ms_p90": round(lat["p90"] * 1e3, 3),
            "latency_ms_p99": round(lat["p99"] * 1e3, 3),
            "host_peak_memory_mb": round(rss_kb / (1024 if sys.platform != "darwin" else 1024 * 1024), 1),
        }
        if stats and stats.device_memory_peak:
            out["device_peak_memory_mb"] = round(stats.device_memory_peak / 2**20, 1)
        if self.counted:
            out["top1"] = round(self.top1_hits / self.counted, 5)
            out["top5"] = round(self.top5_hits / self.counted, 5)
            out["labelled"] = self.counted
        return out
