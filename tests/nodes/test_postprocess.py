"""postprocess ranks a whole batch with numpy exactly as it ranks one sample at a time."""

from __future__ import annotations

import numpy as np
import pytest

from flowgraph import NodeContext
from flowgraph.nodes.payloads import Logits
from flowgraph.nodes.postprocess import Postprocess, PostprocessParams


@pytest.mark.parametrize(("n", "classes", "offset"), [(1, 1000, 0), (7, 1001, -1), (3, 4, 0)])
def test_a_batch_ranks_like_its_samples_one_by_one(n: int, classes: int, offset: int) -> None:
    rng = np.random.default_rng(n)
    scores = rng.random((n, classes)).astype(np.float32)
    labels = [
        int(np.argmax(scores[0])) + offset,
        -1,
        *(int(x) for x in rng.integers(0, classes, max(0, n - 2))),
    ][:n]
    params = PostprocessParams(label_offset=offset)
    batched, single = (Postprocess(params, NodeContext("p", 1)) for _ in range(2))
    answers = batched.predict_batch(Logits(list(range(n)), labels, scores, [0.0] * n))
    k = min(5, classes)
    for i in range(n):
        one = single.predict(i, labels[i], scores[i], 0.0)
        expected = list(np.argsort(-scores[i])[:k] + offset)
        assert [int(c) for c in answers.top[i]] == list(one.top5) == expected
    assert (batched.counted, batched.top1_hits, batched.top5_hits) == (
        single.counted,
        single.top1_hits,
        single.top5_hits,
    )
    assert batched.top1_hits >= 1  # sample 0 was made a hit


@pytest.mark.parametrize("offset", [0, -1])
def test_ranks_from_the_device_are_taken_as_they_are(offset: int) -> None:
    # An engine with top_k sends class indices best first and no scores: postprocess only applies the
    # offset and counts, per batch and per sample alike.
    rng = np.random.default_rng(3)
    scores = rng.random((6, 1000)).astype(np.float32)
    top = np.argsort(-scores, axis=1)[:, :5].astype(np.int32)
    labels = [int(top[0, 0]) + offset, int(top[1, 3]) + offset, -1, 7, 8, 9]
    params = PostprocessParams(label_offset=offset)
    from_scores, from_top, one_by_one = (Postprocess(params, NodeContext("p", 1)) for _ in range(3))
    expected = from_scores.predict_batch(Logits(list(range(6)), labels, scores, [0.0] * 6))
    got = from_top.predict_batch(Logits(list(range(6)), labels, None, [0.0] * 6, top=top))
    assert got.top.tolist() == expected.top.tolist()
    for i in range(6):
        assert one_by_one.predict(i, labels[i], None, 0.0, top[i]).top5 == tuple(expected.top[i].tolist())
    counts = [(p.counted, p.top1_hits, p.top5_hits) for p in (from_scores, from_top, one_by_one)]
    assert counts[0] == counts[1] == counts[2] == (5, 1, 2)


def test_ties_rank_the_lower_class_first_k_is_capped_and_the_scores_are_left_alone() -> None:
    from flowgraph.nodes.postprocess import rank_top

    scores = np.array([[1, 3, 3, 0], [2, 2, 2, 2]], dtype=np.int64)
    assert rank_top(scores, 5).tolist() == [[1, 2, 0, 3], [0, 1, 2, 3]]
    assert scores.tolist() == [[1, 3, 3, 0], [2, 2, 2, 2]]
    assert rank_top(np.array([[0.5, -np.inf, 0.25]], np.float32), 2).tolist() == [[0, 2]]


@pytest.mark.parametrize("batched", [True, False])
def test_a_label_outside_the_model_s_classes_fails_naming_the_sample(batched: bool) -> None:
    from flowgraph import SampleFailed

    node = Postprocess(PostprocessParams(), NodeContext("p", 1))
    scores = np.zeros((2, 10), np.float32)
    with pytest.raises(SampleFailed, match="label 12 is outside the model's 10 classes") as err:
        if batched:
            node.predict_batch(Logits([5, 6], [3, 12], scores, [0.0, 0.0]))
        else:
            node.predict(6, 12, scores[1], 0.0)
    assert err.value.sample == 6
