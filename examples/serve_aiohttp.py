"""ResNet50 classification over HTTP: POST a JPEG to /classify, get its top-1 and top-5 as JSON.

    pip install -e ".[cpu,serve]"
    python examples/serve_aiohttp.py --port 8080 &
    curl --data-binary @cat.jpg http://127.0.0.1:8080/classify

One graph runs for the server's life; each request is one ``await run.call(sample)``. The graph batches
requests that arrive together (``batch_merge``), and at most ``--max-in-flight`` requests are inside it
at once: the others wait for a slot, so a burst cannot queue without bound. A file that is not a JPEG
fails alone (HTTP 422 naming the node and the error) while the graph serves the next request.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web

from flowgraph import Graph, SampleError
from flowgraph.nodes import Sample

GRAPH = Path(__file__).resolve().parent.parent / "graphs" / "resnet50_serve.yaml"
RUN = web.AppKey("run", Any)
STATS = web.AppKey("stats", dict)


def make_app(graph: Graph, max_in_flight: int = 32, timeout_s: float = 30.0) -> web.Application:
    """An aiohttp app serving ``graph`` (a graph with a ``sample_input`` and a collecting sink)."""
    app = web.Application(client_max_size=16 * 2**20)
    ids = itertools.count()
    slots = asyncio.Semaphore(max_in_flight)
    app[STATS] = {"in_flight": 0, "peak_in_flight": 0, "answered": 0, "failed": 0}

    async def graph_running(app: web.Application) -> AsyncIterator[None]:
        async with graph.start(announce=lambda msg: None) as run:
            await run.started()  # models built before the first request is taken
            app[RUN] = run
            yield
        # leaving the block closed the input and waited for the graph to finish what it held

    async def classify(request: web.Request) -> web.Response:
        data = await request.read()
        if not data:
            return web.json_response({"error": "send the JPEG as the request body"}, status=400)
        stats = request.app[STATS]
        async with slots:  # bounded concurrency: beyond max_in_flight, requests wait here
            stats["in_flight"] += 1
            stats["peak_in_flight"] = max(stats["peak_in_flight"], stats["in_flight"])
            try:
                answer = await request.app[RUN].call(Sample(next(ids), None, -1, data), timeout=timeout_s)
            except SampleError as exc:  # this request's own failure; the graph goes on
                stats["failed"] += 1
                return web.json_response({"error": exc.error, "node": exc.node}, status=422)
            finally:
                stats["in_flight"] -= 1
        stats["answered"] += 1
        return web.json_response({"top1": answer.top1, "top5": list(answer.top5)})

    app.cleanup_ctx.append(graph_running)
    app.router.add_post("/classify", classify)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--max-in-flight", type=int, default=32)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    from flowgraph.load import parse_override

    graph = Graph.from_yaml(GRAPH, dict(parse_override(text) for text in args.overrides))
    web.run_app(make_app(graph, args.max_in_flight), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
