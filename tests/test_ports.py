"""The engine's fast path (``ports.process_each``) against ``Node.run``'s plain loop: same behaviour."""

from __future__ import annotations

import pytest

from flowgraph import Graph, NodeFailure

GRAPH = """
name: paths
nodes:
  numbers: {type: source, params: {range: 200}}
  fails:   {type: "tests.fixture_nodes:FailsOn", params: {bad: 7}, on_error: %s, workers: %d}
  negate:  {type: map, params: {fn: "operator:neg"}}
  results: {type: collect}
edges:
  - {from: numbers, to: fails, capacity: %d}
  - {from: fails, to: negate, capacity: %d}
  - {from: negate, to: results}
"""


def _run(fast_path: bool, on_error: str, workers: int, capacity: int):
    graph = Graph.from_text(GRAPH % (on_error, workers, capacity, capacity))
    return graph.run_sync(fast_path=fast_path)


@pytest.mark.parametrize(("workers", "capacity"), [(1, 64), (3, 1), (2, 0)])
def test_fast_path_counts_results_and_failures_like_the_plain_loop(workers, capacity, no_leaks):
    fast, plain = _run(True, "skip", workers, capacity), _run(False, "skip", workers, capacity)
    assert sorted(fast.results) == sorted(plain.results) == sorted(-n for n in range(200) if n != 7)
    assert [(f.node, f.sample, f.error) for f in fast.failures] == [
        (f.node, f.sample, f.error) for f in plain.failures
    ]
    assert fast.samples == plain.samples
    for node in ("fails", "negate", "results"):
        a, b = fast.node(node), plain.node(node)
        counts = ("items_in", "items_out", "failed")
        assert [a[k] for k in counts] == [b[k] for k in counts], node
    if workers == 1:  # one worker keeps input order on both paths
        assert fast.results == plain.results


def test_fast_path_fails_the_run_like_the_plain_loop(no_leaks):
    errors = []
    for fast_path in (True, False):
        with pytest.raises(NodeFailure) as caught:
            _run(fast_path, "fail", 1, 64)
        errors.append((caught.value.node, caught.value.sample, str(caught.value.error)))
    assert errors[0] == errors[1] == ("fails", None, "cannot handle 7")
