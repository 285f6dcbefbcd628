"""Prometheus metrics: request counts and latency by route template, and DB pool gauges.

With several API processes (`PARLEY_API_WORKERS` above 1) a scrape reaches one of them, so each
process writes its metrics to files in `PROMETHEUS_MULTIPROC_DIR` (prometheus_client's
multiprocess mode; `parley api` sets it up) and `/metrics` adds up every process's: request
counts and latencies over all of them, pool gauges over the live ones.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

log = structlog.get_logger(__name__)

MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
# How often each process writes its pool gauges for the others' scrapes, in seconds.
POOL_GAUGES_EVERY = 5.0


def multiprocess() -> bool:
    """Whether this process shares its metrics through files (read when this module loads)."""
    return _MULTIPROCESS


_MULTIPROCESS = bool(os.environ.get(MULTIPROCESS_DIR_ENV))

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

_POOL_GAUGES = (
    ("parley_db_pool_size", "Configured pool size.", "size"),
    ("parley_db_pool_checked_out", "Connections in use.", "checkedout"),
    ("parley_db_pool_checked_in", "Idle connections in the pool.", "checkedin"),
    ("parley_db_pool_overflow", "Connections beyond the pool size.", "overflow"),
)


def _pool_readings() -> Iterator[tuple[str, str, str, float]]:
    from backend.db import get_engine

    try:
        pool = get_engine().pool
    except RuntimeError:  # no database configured
        return
    for name, doc, read in _POOL_GAUGES:
        reader = getattr(pool, read, None)
        if reader is not None:
            yield name, doc, read, float(reader())


class DatabasePoolCollector(Collector):
    """Reads the SQLAlchemy pool at scrape time, so the gauges are never stale."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for name, doc, _, value in _pool_readings():
            yield GaugeMetricFamily(name, doc, value=value)


# One process: the pool is read at scrape time. Several: each process writes its own readings
# (now and then, and when it answers a scrape), summed over the live processes.
_POOL_SHARED = (
    {
        read: Gauge(name, doc, multiprocess_mode="livesum", registry=None)
        for name, doc, read in _POOL_GAUGES
    }
    if _MULTIPROCESS
    else {}
)
if not _MULTIPROCESS:
    REGISTRY.register(DatabasePoolCollector())


def write_pool_gauges() -> None:
    for _, _, read, value in _pool_readings():
        _POOL_SHARED[read].set(value)


def latest() -> bytes:
    """The metrics in Prometheus' text format: this process's, or all processes' together."""
    if not _MULTIPROCESS:
        return generate_latest(REGISTRY)
    write_pool_gauges()
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


async def share_pool_gauges() -> None:
    """Keep this process's pool gauges current for scrapes that another process answers."""
    while True:
        try:
            write_pool_gauges()
        except Exception:  # a scrape shows the last values; the loop goes on
            log.exception("pool_gauges_not_written")
        await asyncio.sleep(POOL_GAUGES_EVERY)


def process_exiting() -> None:
    """Drop this process's live gauges from the shared sums."""
    if _MULTIPROCESS:
        mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
