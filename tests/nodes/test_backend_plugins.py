"""An inference backend added from a separate package: its own params, picked by ``backend``, run by the
inference node's one loop, with no edit to this package."""

from __future__ import annotations

import numpy as np
import pytest

from flowgraph import Graph, GraphValidationError
from flowgraph.nodes.payloads import Image
from flowgraph.testing import installed_package, run_text

BACKEND = '''
from typing import Literal

import numpy as np
from pydantic import ConfigDict

from flowgraph.nodes.inference.backend import Backend, EngineParams


class SummingParams(EngineParams):
    model_config = ConfigDict(title="backend summing")
    backend: Literal["summing"] = "summing"
    classes: int = 10


class SummingEngine:
    """Class = the sum of the image's pixels, modulo ``classes``."""

    name, precision = "summing", "fp32"

    def __init__(self, classes):
        self.classes = classes

    async def launch(self, batch):
        sums = batch.array.reshape(len(batch.array), -1).sum(1).astype(int) % self.classes
        return np.eye(self.classes, dtype=np.float32)[sums]

    async def collect(self, handle):
        return handle

    def bucket(self, n):
        return n

    def close(self):
        pass


class SummingBackend(Backend):
    Params = SummingParams

    @classmethod
    def load(cls, model, params, engine_index, context):
        return SummingEngine(params.classes)
'''

GRAPH = """
nodes:
  i: {type: input}
  m: {type: batch_merge, params: {max_batch: 4, max_wait_us: 0}}
  c: {type: memory_copy}
  e: {type: inference, params: {backend: summing, model: "MODEL", engine_num: 2, classes: 7}}
  p: {type: postprocess}
  r: {type: collect}
edges: [{from: i, to: m}, {from: m, to: c}, {from: c, to: e}, {from: e, to: p}, {from: p, to: r}]
"""


@pytest.fixture
def summing(tmp_path):
    model = tmp_path / "model.bin"
    model.write_bytes(b"no weights needed")
    entry = {"flowgraph.backends": {"summing": "summingbackend:SummingBackend"}}
    with installed_package(tmp_path / "pkg", "summingbackend", {"summingbackend.py": BACKEND}, entry):
        yield GRAPH.replace("MODEL", str(model))


async def test_a_backend_from_another_package_runs_in_the_inference_node(summing):
    images = [Image(k, k % 7, np.full((2, 2, 3), k, np.uint8)) for k in range(10)]
    graph = Graph.from_text(summing)
    assert type(graph.nodes["e"].params).__name__ == "SummingParams" and graph.nodes["e"].workers == 2
    report = await run_text(summing, items=images)
    predicted = {
        k: top1 for batch in report.results for k, top1 in zip(batch.sample_ids, batch.top1, strict=True)
    }
    assert predicted == {k: (12 * k) % 7 for k in range(10)}  # 2x2x3 pixels of value k


def test_the_backend_s_own_params_are_checked_by_its_model(summing):
    with pytest.raises(GraphValidationError) as err:
        Graph.from_text(summing.replace("classes: 7", "classes: 7, cuda_graphs: true"))
    assert "unknown param 'cuda_graphs'" in str(err.value)
    assert "inference (backend summing) takes:" in str(err.value) and "classes" in str(err.value)


def test_an_unknown_backend_names_the_ones_there_are(summing):
    with pytest.raises(GraphValidationError) as err:
        Graph.from_text(summing.replace("backend: summing", "backend: suming"))
    assert "unknown inference backend 'suming'; did you mean 'summing'" in str(err.value)
