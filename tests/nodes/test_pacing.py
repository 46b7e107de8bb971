"""Pacer: when an engine with batches in flight asks for the next one."""

from __future__ import annotations

import pytest

from flowgraph.nodes.inference.pacing import Pacer


def test_knowing_nothing_it_asks_at_once():
    pacer = Pacer(margin_s=0.0)
    pacer.launched(key=64, asked=10.0, now=10.0)
    assert pacer.ask_at() <= 10.0


def test_it_asks_a_lead_before_the_device_is_predicted_to_free_up():
    pacer = Pacer(margin_s=0.001)
    token = pacer.launched(64, asked=0.0, now=0.0)
    pacer.finished(token, now=0.005)  # a batch of 64 takes 5 ms
    assert pacer.estimate(64) == pytest.approx(0.005)
    token = pacer.launched(64, asked=1.0, now=1.002)  # 2 ms from asking to launched
    lead = pacer.lead_s
    assert 0 < lead < 0.002
    assert pacer.ask_at() == pytest.approx(1.002 + 0.005 - lead - 0.001)


def test_a_batch_queued_behind_another_is_timed_from_when_that_one_finished():
    pacer = Pacer()
    first = pacer.launched(32, asked=0.0, now=0.0)
    second = pacer.launched(32, asked=0.0, now=0.001)  # launched while the first runs
    pacer.finished(first, now=0.004)
    pacer.finished(second, now=0.008)
    # 4 ms each: the second's time counts from the first's end (0.004), not its launch (0.001)
    assert pacer.estimate(32) == pytest.approx(0.004, rel=0.01)


def test_an_unmeasured_size_is_scaled_from_the_nearest_measured_one():
    pacer = Pacer()
    pacer.finished(pacer.launched(64, 0.0, 0.0), 0.008)
    assert pacer.estimate(128) == pytest.approx(0.016)
    assert pacer.estimate(48) == pytest.approx(0.006)
