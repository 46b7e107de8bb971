"""The LoadGen harness tests need flowgraph[loadgen] and, for the pipeline they drive, flowgraph[cpu]."""

from __future__ import annotations

import pytest

pytest.importorskip("cv2", reason="the ResNet50 pipeline needs flowgraph[cpu]")
pytest.importorskip("onnxruntime", reason="the ResNet50 pipeline needs flowgraph[cpu]")
pytest.importorskip("mlperf_loadgen", reason="LoadGen scenarios need flowgraph[loadgen]")
