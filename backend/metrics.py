"""Prometheus metrics: request counts and latency by route template, and DB pool gauges."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter(
    "parley_http_requests_total",
    "HTTP requests by method, route template and status code.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "parley_http_request_duration_seconds",
    "HTTP request latency by method and route template.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)


class DatabasePoolCollector(Collector):
    """Reads the SQLAlchemy pool at scrape time, so the gauges are never stale."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from backend.db import get_engine

        try:
            pool = get_engine().pool
        except RuntimeError:
            return
        for name, doc, read in (
            ("parley_db_pool_size", "Configured pool size.", "size"),
            ("parley_db_pool_checked_out", "Connections in use.", "checkedout"),
            ("parley_db_pool_checked_in", "Idle connections in the pool.", "checkedin"),
            ("parley_db_pool_overflow", "Connections beyond the pool size.", "overflow"),
        ):
            reader = getattr(pool, read, None)
            if reader is not None:
                yield GaugeMetricFamily(name, doc, value=float(reader()))


REGISTRY.register(DatabasePoolCollector())
