"""The ResNet50 pipeline tests need flowgraph[cpu]; their fixtures (dataset, pruned_model) are in tests/conftest.py."""

from __future__ import annotations

import pytest

pytest.importorskip("cv2", reason="the ResNet50 pipeline needs flowgraph[cpu]")
pytest.importorskip("onnxruntime", reason="the ResNet50 pipeline needs flowgraph[cpu]")
