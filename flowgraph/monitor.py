"""A Prometheus endpoint for a running graph (``flowgraph[monitor]``, the ``prometheus_client`` library).

Counters, not rates: Prometheus computes rates itself (``rate(flowgraph_samples_total[1m])``), over
whatever window a dashboard asks for, so the endpoint exports each node's running totals (items,
samples, failed samples, busy and waiting worker-seconds), its workers, its latency percentiles, and
each queue's fill and capacity. Values are read from the runtime when scraped, in the HTTP server's
thread: plain reads of numbers the loop writes, no lock, nothing added to the hot path.

    flowgraph run graphs/resnet50_offline.yaml --prometheus-port 9464
    # embedded:
    with PrometheusEndpoint(run.runtime, port=9464):
        ...
"""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Any

from .errors import DependencyMissing
from .live import Watched

__all__ = ["PrometheusEndpoint", "RunCollector"]

INSTALL = "pip install 'flowgraph[monitor]'"


def _client() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise DependencyMissing(
            f"--prometheus-port needs prometheus_client, not installed here: {INSTALL}"
        ) from None
    return prometheus_client


class RunCollector:
    """A ``prometheus_client`` collector over one run: register it in any registry."""

    def __init__(self, runtime: Watched) -> None:
        self.runtime = runtime
        self.graph = runtime.name

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        node_labels = ["graph", "node", "type"]
        families: dict[str, Any] = {
            "items_in": CounterMetricFamily(
                "flowgraph_items_in", "Items a node took (a batch is one)", labels=node_labels
            ),
            "items_out": CounterMetricFamily("flowgraph_items_out", "Items a node sent", labels=node_labels),
            "samples": CounterMetricFamily(
                "flowgraph_samples", "Samples through a node (taken; a source: sent)", labels=node_labels
            ),
            "failed": CounterMetricFamily(
                "flowgraph_failed_samples", "Samples that failed in a node", labels=node_labels
            ),
            "busy": CounterMetricFamily(
                "flowgraph_busy_seconds", "Worker-seconds inside the node's own code", labels=node_labels
            ),
            "wait_in": CounterMetricFamily(
                "flowgraph_wait_in_seconds", "Worker-seconds blocked on an empty input", labels=node_labels
            ),
            "wait_out": CounterMetricFamily(
                "flowgraph_wait_out_seconds", "Worker-seconds blocked on a full output", labels=node_labels
            ),
            "workers": GaugeMetricFamily("flowgraph_workers", "Workers of a node", labels=node_labels),
            "latency": GaugeMetricFamily(
                "flowgraph_latency_seconds",
                "Per-item time in a node, by quantile",
                labels=[*node_labels, "quantile"],
            ),
        }
        for m in self.runtime.live_metrics():
            labels = [self.graph, m.name, m.type]
            families["items_in"].add_metric(labels, m.items_in)
            families["items_out"].add_metric(labels, m.items_out)
            families["samples"].add_metric(labels, m.samples)
            families["failed"].add_metric(labels, m.failed)
            families["busy"].add_metric(labels, m.busy)
            families["wait_in"].add_metric(labels, m.wait_in_s)
            families["wait_out"].add_metric(labels, m.wait_out_s)
            families["workers"].add_metric(labels, m.workers)
            if m.latency.count:
                for q, value in zip((0.5, 0.99), m.latency.percentiles(50, 99).values(), strict=True):
                    families["latency"].add_metric([*labels, str(q)], value)
        yield from families.values()
        queued = GaugeMetricFamily(
            "flowgraph_queue_items", "Items queued on an edge now", labels=["graph", "edge"]
        )
        capacity = GaugeMetricFamily(
            "flowgraph_queue_capacity", "An edge's queue capacity", labels=["graph", "edge"]
        )
        for label, (items, cap) in self.runtime.queue_fill().items():
            queued.add_metric([self.graph, label], items)
            capacity.add_metric([self.graph, label], cap)
        yield queued
        yield capacity


class PrometheusEndpoint:
    """Serves ``/metrics`` for one run on ``addr:port`` while the ``with`` block runs, then stops its
    server and joins its thread (none left behind). ``port`` 0 picks a free port (see ``port``)."""

    def __init__(self, runtime: Watched, port: int, addr: str = "127.0.0.1") -> None:
        client = _client()
        self.registry = client.CollectorRegistry()
        self.registry.register(RunCollector(runtime))
        self._start, self.addr, self.port = client.start_http_server, addr, port
        self._server: Any = None
        self._thread: Any = None

    @staticmethod
    def check_installed() -> None:
        """Raise ``DependencyMissing`` naming the extra when prometheus_client is not installed."""
        _client()

    def __enter__(self) -> PrometheusEndpoint:
        try:
            self._server, self._thread = self._start(self.port, self.addr, self.registry)
        except OSError as exc:
            raise DependencyMissing(
                f"--prometheus-port {self.port}: cannot listen on {self.addr}: {exc.strerror}"
            ) from exc
        self.port = self._server.server_port
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
