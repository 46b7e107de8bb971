"""``stack_parts``: the same array as ``np.stack``, copied with one GIL release instead of one per part."""

from __future__ import annotations

import sys
import threading
import time

import numpy as np
import pytest

from flowgraph.nodes.payloads import stack_parts

pytest.importorskip("cv2")


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [((224, 224, 3), np.uint8), ((3, 32, 32), np.float32), ((5, 7), np.float16), ((1,), np.int64)],
)
def test_equals_np_stack_into_out(shape: tuple[int, ...], dtype: type) -> None:
    rng = np.random.default_rng(0)
    parts = [(rng.random(shape) * 200).astype(dtype) for _ in range(9)]
    out = np.zeros((9, *shape), dtype)
    result = stack_parts(parts, out=out)
    assert result is out
    np.testing.assert_array_equal(out, np.stack(parts))


def test_without_out_and_odd_parts_fall_back_to_numpy() -> None:
    parts = [np.arange(12, dtype=np.float32).reshape(3, 4) + k for k in range(4)]
    np.testing.assert_array_equal(stack_parts(parts), np.stack(parts))
    strided = [p[:, ::2] for p in parts]  # not contiguous: numpy's path
    np.testing.assert_array_equal(stack_parts(strided), np.stack(strided))
    np.testing.assert_array_equal(stack_parts(parts[:1]), np.stack(parts[:1]))
    with pytest.raises(ValueError):  # numpy's own shape check still speaks
        stack_parts(parts, out=np.zeros((3, 3, 4), np.float32))


def test_stacking_does_not_queue_for_the_gil_per_part() -> None:
    """With another thread running Python, every GIL release costs up to one switch interval to win back.
    np.stack releases it once per part (40 parts here: ≥ 40 intervals); stack_parts once in all."""
    parts = [np.ones((64, 64, 3), np.uint8) * k for k in range(40)]
    out = np.empty((40, 64, 64, 3), np.uint8)
    interval = 0.02
    old = sys.getswitchinterval()
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            sum(range(100))

    spinner = threading.Thread(target=spin)
    sys.setswitchinterval(interval)
    spinner.start()
    try:
        time.sleep(interval)
        t0 = time.perf_counter()
        stack_parts(parts, out=out)
        took = time.perf_counter() - t0
    finally:
        stop.set()
        spinner.join()
        sys.setswitchinterval(old)
    np.testing.assert_array_equal(out, np.stack(parts))
    assert took < 10 * interval, f"stacking 40 parts took {took * 1e3:.0f} ms: it queued for the GIL per part"
