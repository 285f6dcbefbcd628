"""`parley api` with two worker processes: every scrape of /metrics counts the requests of both,
and the pool gauges add up both processes' pools."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from backend.config import get_settings
from tests.factories.ports import free_port

REQUESTS = 40
START_TIMEOUT = 60.0


def _get(port: int, path: str) -> str:
    # A new connection each time, so the kernel hands the requests to either process.
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return str(response.read().decode())


def _value(body: str, sample: str) -> float | None:
    found = re.search(rf"^{re.escape(sample)} (\S+)$", body, re.MULTILINE)
    return float(found.group(1)) if found else None


def _eventually(check: Callable[[], bool], seconds: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {seconds} s")
        time.sleep(0.2)


def test_metrics_add_up_every_api_process(tmp_path: Path) -> None:
    port = free_port()
    shared = tmp_path / "metrics"
    shared.mkdir()
    (shared / "counter_1.db").write_bytes(b"left by an earlier run")
    env = {
        **os.environ,
        "PARLEY_API_WORKERS": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(shared),
        "PARLEY_LOG_LEVEL": "WARNING",
    }
    log = (tmp_path / "api.log").open("wb")
    process = subprocess.Popen(  # noqa: S603 (fixed argv)
        [sys.executable, "-m", "backend.cli", "api", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    pool_size = get_settings().database_pool_size
    try:

        def both_started() -> bool:
            try:
                body = _get(port, "/metrics")
            except OSError:
                return False
            return _value(body, "parley_db_pool_size") == 2 * pool_size

        # Each process shares its pool gauges once it has started: the sum shows both.
        _eventually(both_started)
        assert not (shared / "counter_1.db").exists()  # emptied before the processes start
        for _ in range(REQUESTS):
            assert _get(port, "/healthz") == '{"status":"ok"}'
        sample = 'parley_http_requests_total{method="GET",route="/healthz",status="200"}'
        for _ in range(6):
            assert _value(_get(port, "/metrics"), sample) == REQUESTS
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
    assert process.returncode == 0, (tmp_path / "api.log").read_text()
