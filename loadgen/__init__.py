"""The MLPerf LoadGen harness for flowgraph graphs (installed as ``flowgraph.loadgen``).

It lives outside the engine core: the core's CLI finds it through the ``flowgraph.harnesses`` and
``flowgraph.commands`` entry points, and its ``loadgen_complete`` node type through ``flowgraph.nodes``.
Built from small parts, one job each:

- ``split``: cut the graph's spec at the QSL (pure spec → spec);
- ``qsl``: the QSL's samples, loaded through the front of the graph;
- ``bridge``: LoadGen's threads ↔ the event loop, and the sink that answers queries;
- ``conf`` and ``settings``: conf files checked, then TestSettings built; the summary read back;
- ``run``: one test; ``cli``: ``flowgraph run --scenario`` and ``flowgraph accuracy``.
"""

from __future__ import annotations

from .accuracy import AccuracyResult, top1_from_mlperf_log
from .bridge import Bridge, LoadgenComplete
from .conf import check_conf
from .options import SCENARIOS, LoadgenOptions, LoadgenResult, import_loadgen
from .run import LoadgenControl, run_loadgen
from .settings import build_settings, read_summary
from .split import LoadgenSplit, split_for_loadgen

__all__ = [
    "SCENARIOS",
    "AccuracyResult",
    "Bridge",
    "LoadgenComplete",
    "LoadgenControl",
    "LoadgenOptions",
    "LoadgenResult",
    "LoadgenSplit",
    "build_settings",
    "check_conf",
    "import_loadgen",
    "read_summary",
    "run_loadgen",
    "split_for_loadgen",
    "top1_from_mlperf_log",
]
