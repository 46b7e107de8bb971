"""The Prometheus endpoint: a running graph's counters, scraped over HTTP, and nothing left behind."""

from __future__ import annotations

import asyncio
import threading
import urllib.request

import pytest

from flowgraph import Graph

pytest.importorskip("prometheus_client")

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from flowgraph.monitor import PrometheusEndpoint  # noqa: E402


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(scraped: dict, name: str, **labels: str) -> float:
    matches = [v for (n, ls), v in scraped.items() if n == name and set(labels.items()) <= set(ls)]
    assert len(matches) == 1, (name, labels, [k for k in scraped if k[0] == name])
    return matches[0]


async def test_a_scrape_during_and_after_a_run_shows_its_counters_and_queues():
    graph = Graph.from_text("""
name: watched
nodes:
  src: {type: input}
  slow: {type: "fixture_nodes:Slow", params: {seconds: 0.002}, workers: 2}
  out: {type: discard}
edges: [{from: src, to: slow, capacity: 16}, {from: slow, to: out}]
""")
    threads_before = set(threading.enumerate())
    async with graph.start() as run:
        with PrometheusEndpoint(run.runtime, port=0) as endpoint:
            for i in range(100):
                await run.submit(i)
            during = await asyncio.to_thread(scrape, endpoint.port)
            await run.close()
            await run.wait()
            after = await asyncio.to_thread(scrape, endpoint.port)
    assert value(after, "flowgraph_samples_total", graph="watched", node="out") == 100
    assert value(after, "flowgraph_items_out_total", node="slow") == 100
    assert value(after, "flowgraph_workers", node="slow", type="fixture_nodes:Slow") == 2
    assert value(after, "flowgraph_busy_seconds_total", node="slow") >= 100 * 0.002 * 0.9
    assert value(after, "flowgraph_latency_seconds", node="slow", quantile="0.5") >= 0.0019
    edge = next(ls for (n, ls) in after if n == "flowgraph_queue_capacity")
    assert value(after, "flowgraph_queue_capacity", **dict(edge)) in (16, 64)
    assert value(during, "flowgraph_samples_total", node="out") <= 100
    assert value(during, "flowgraph_queue_items", edge="src.out -> slow.in") <= 16
    left = {
        t
        for t in threading.enumerate()
        if t not in threads_before and not t.name.startswith(("asyncio_", "uvloop_"))
    }
    assert not left  # the server and its threads are gone (to_thread's pool is the loop's own)


def test_the_cli_serves_the_endpoint_for_the_run(tmp_path):
    import time

    from cli_process import free_port, start_cli, write_chain

    port = free_port()
    graph = write_chain(tmp_path / "g.yaml", "{type: 'fixture_nodes:Slow', params: {seconds: 0.01}}", 400)
    proc = start_cli("run", str(graph), "--quiet", "--prometheus-port", str(port))
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                scraped = scrape(port)
                if value(scraped, "flowgraph_samples_total", node="c") > 0:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        assert 0 < value(scraped, "flowgraph_samples_total", node="c") < 400  # seen while it runs
    finally:
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"Prometheus: http://127.0.0.1:{port}/metrics" in err


def test_without_prometheus_client_the_flag_names_the_extra_before_the_run(monkeypatch, capsys):
    import builtins

    from flowgraph.cli import main

    real_import = builtins.__import__

    def no_client(name, *args, **kwargs):
        if name.split(".")[0] == "prometheus_client":
            raise ImportError("No module named 'prometheus_client'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_client)
    assert main(["run", "graphs/hello.yaml", "--prometheus-port", "9464"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'flowgraph[monitor]'" in err and "results" not in err
