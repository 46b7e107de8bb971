"""What gathering a batch of device-resident samples costs the engine's thread: the way an engine
gathers today (``cupy.stack`` of the images, each its own array) against one ``take`` by index from
the sample library held as one array (what NVIDIA's harness does with its QSL on the GPU).

    python bench/gather.py [--sizes 8 32 64 128] [--repeat 2000]

The host time is what matters under Server load: the launching thread holds the GIL for it, and the
event loop and LoadGen's issue thread wait for that GIL. GPU time is measured with CUDA events.
Needs CuPy and a CUDA GPU.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import time

import cupy
import numpy as np

SHAPE = (224, 224, 3)


def host_and_gpu_us(fn, repeat: int) -> tuple[float, float, float]:
    """(host p50 µs, host p90 µs, GPU µs per call) of ``fn`` queued ``repeat`` times on the current stream."""
    for _ in range(20):
        fn()
    cupy.cuda.get_current_stream().synchronize()
    host = np.empty(repeat)
    start, end = cupy.cuda.Event(), cupy.cuda.Event()
    start.record()
    for i in range(repeat):
        t0 = time.perf_counter()
        fn()
        host[i] = time.perf_counter() - t0
    end.record()
    end.synchronize()
    gpu_us = cupy.cuda.get_elapsed_time(start, end) * 1e3 / repeat
    return float(np.percentile(host, 50) * 1e6), float(np.percentile(host, 90) * 1e6), gpu_us


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 32, 64, 128])
    parser.add_argument("--repeat", type=int, default=2000)
    parser.add_argument("--library", type=int, default=1024, help="samples in the library")
    args = parser.parse_args()
    print(
        f"# {datetime.date.today()} {cupy.cuda.runtime.getDeviceProperties(0)['name'].decode()}, "
        f"cupy {cupy.__version__}, python {platform.python_version()}: python bench/gather.py "
        f"--sizes {' '.join(map(str, args.sizes))} --repeat {args.repeat}"
    )
    rng = np.random.default_rng(0)
    library = cupy.asarray(rng.integers(0, 255, (args.library, *SHAPE), dtype=np.uint8))
    separate = [cupy.array(library[k]) for k in range(args.library)]  # one allocation per sample
    print("| batch | way | host p50 µs | host p90 µs | GPU µs |\n|---|---|---|---|---|")
    with cupy.cuda.Stream(non_blocking=True):
        for n in args.sizes:
            out = cupy.empty((n, *SHAPE), np.uint8)
            picks = rng.choice(args.library, n, replace=False)
            parts = [separate[k] for k in picks]
            index = np.asarray(picks, np.int64)
            ways = {
                "cupy.stack of separate arrays": lambda parts=parts, out=out: cupy.stack(parts, out=out),
                "take by index from one array": lambda index=index, out=out: cupy.take(
                    library, cupy.asarray(index), axis=0, out=out
                ),
            }
            expected = cupy.stack(parts)
            for way, fn in ways.items():
                out.fill(0)
                fn()
                assert bool((out == expected).all()), way
                p50, p90, gpu = host_and_gpu_us(fn, args.repeat)
                print(f"| {n} | {way} | {p50:.1f} | {p90:.1f} | {gpu:.1f} |")


if __name__ == "__main__":
    main()
