"""Top-5 of a batch of class scores on the CPU: postprocess's ``rank_top`` (k rounds of argmax) against
the row-by-row ``np.argpartition`` + ``argsort`` it replaced. This runs on the event loop once per batch.

    python bench/ranking.py [--sizes 1 8 36 128] [--repeat 300]
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from flowgraph.nodes.postprocess import rank_top


def by_argpartition(scores: Any, k: int) -> Any:
    rows = np.arange(scores.shape[0])[:, None]
    part = np.argpartition(scores, -k, axis=1)[:, -k:]
    return part[rows, np.argsort(-scores[rows, part], axis=1)]


def best_of(fn: Callable[[Any, int], Any], scores: Any, repeat: int, rounds: int = 3) -> float:
    """Microseconds per call, the best of ``rounds`` timed loops."""
    fn(scores, 5)
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(repeat):
            fn(scores, 5)
        best = min(best, (time.perf_counter() - t0) / repeat)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 8, 36, 128])
    parser.add_argument("--repeat", type=int, default=300)
    args = parser.parse_args()
    print(f"# python {platform.python_version()}, numpy {np.__version__}: python bench/ranking.py")
    print("| batch | argpartition µs | rank_top µs | ratio |\n|---|---|---|---|")
    for n in args.sizes:
        scores = np.random.default_rng(n).standard_normal((n, 1000)).astype(np.float32)
        assert (rank_top(scores, 5) == by_argpartition(scores, 5)).all()
        old, new = best_of(by_argpartition, scores, args.repeat), best_of(rank_top, scores, args.repeat)
        print(f"| {n} | {old:.0f} | {new:.0f} | {old / new:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
