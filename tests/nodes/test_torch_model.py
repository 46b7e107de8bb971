"""Which batch sizes the torch backend captures CUDA graphs for (pure arithmetic: runs without torch)."""

from __future__ import annotations

from flowgraph.nodes.inference.torch_model import bucket_for, graph_sizes


def test_powers_of_two_up_to_the_largest_size_plus_the_sizes_asked_for():
    assert graph_sizes([256]) == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert graph_sizes([96]) == [1, 2, 4, 8, 16, 32, 64, 96]
    assert graph_sizes([]) == []


def test_a_step_adds_every_multiple_so_a_partial_batch_pads_less():
    sizes = graph_sizes([128], step=16)
    assert sizes == [1, 2, 4, 8, 16, 32, 48, 64, 80, 96, 112, 128]
    assert bucket_for(33, sizes) == 48  # without the step: 64
    assert bucket_for(33, graph_sizes([128])) == 64
    assert all(bucket_for(n, sizes) - n < 16 for n in range(1, 129))
