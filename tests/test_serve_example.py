"""examples/serve_aiohttp.py, served on 127.0.0.1: answers, a bad upload failing alone, bounded concurrency."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import pytest
from cli_process import free_port

pytest.importorskip("aiohttp")
pytest.importorskip("cv2")

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from flowgraph import Graph  # noqa: E402

ROOT = Path(__file__).parent.parent


def example():
    spec = importlib.util.spec_from_file_location("serve_aiohttp", ROOT / "examples" / "serve_aiohttp.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_serves_classification_over_http_with_bounded_concurrency(pruned_model, dataset):
    serve = example()
    graph = Graph.from_yaml(serve.GRAPH, {"model.path": str(pruned_model), "max_wait_us": 20000})
    app = serve.make_app(graph, max_in_flight=4)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    url = f"http://127.0.0.1:{port}/classify"
    jpegs = [p.read_bytes() for p in sorted(dataset.glob("**/*.JPEG"))[:12]]
    try:
        async with aiohttp.ClientSession() as client:

            async def post(body: bytes) -> tuple[int, dict]:
                async with client.post(url, data=body) as response:
                    return response.status, await response.json()

            answers = await asyncio.gather(*(post(j) for j in jpegs), post(b"not a jpeg"), post(b""))
            again = await post(jpegs[0])  # the graph still serves after the bad upload
    finally:
        await runner.cleanup()  # leaves the graph's `async with`: it drains and tears down
    *good, bad, empty = answers
    assert all(status == 200 and len(body["top5"]) == 5 for status, body in good)
    assert bad[0] == 422 and bad[1]["node"] == "preprocess" and "not a decodable image" in bad[1]["error"]
    assert empty[0] == 400
    assert again == good[0]  # the same image, the same answer
    stats = app[serve.STATS]
    assert stats["answered"] == 13 and stats["failed"] == 1
    assert 1 < stats["peak_in_flight"] <= 4  # requests overlapped, never more than the bound


def test_the_example_runs_as_its_docstring_says_and_stops_on_ctrl_c(pruned_model, dataset):
    import os
    import signal
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request

    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "examples" / "serve_aiohttp.py"),
            "--port",
            str(port),
            "--set",
            f"model.path={pruned_model}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    jpeg = next(dataset.glob("**/*.JPEG")).read_bytes()
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/classify", data=jpeg, timeout=10
                ) as response:
                    answer = response.read().decode()
                break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None and time.monotonic() < deadline, server.communicate()
                time.sleep(0.2)
        assert '"top5": [' in answer
    finally:
        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=30)
    assert server.returncode == 0, err  # Ctrl-C: aiohttp shuts down, the graph drains and tears down
