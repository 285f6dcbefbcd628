"""The benchmarks' HTTP load client, meant to run as a process of its own (pinned to its own CPU).

    python -m bench.load open --url URL --rate 500 --duration 15 [--headers-file F]
    python -m bench.load closed --url URL --connections 32 --duration 10 [--headers-file F]

`open` is an open-loop, constant-rate client: request i is due at start + i / rate whatever
happened to the earlier ones, and its latency counts from that due time rather than from when it
actually left. A server that stalls therefore shows up as latency instead of quietly lowering the
offered load (the "coordinated omission" of closed-loop clients).

`closed` keeps N connections busy, each sending its next request as soon as the previous answer
is in: the maximum throughput. (The benchmarks prefer `wrk` for this when it is installed; it
needs far less CPU per request than any Python client.)

The headers file is a JSON list of header objects; requests cycle through them, so the load can
spread over several accounts and workspaces. Both modes print one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from bench.collector import collector_paused
from bench.stats import latency_summary, percentile

Headers = dict[str, str]


def _load_headers(path: str | None) -> list[Headers]:
    if path is None:
        return [{}]
    sets = json.loads(Path(path).read_text())
    if not isinstance(sets, list) or not sets or not all(isinstance(s, dict) for s in sets):
        raise SystemExit("the headers file must hold a non-empty JSON list of objects")
    return [{str(k): str(v) for k, v in s.items()} for s in sets]


def _session(connections: int, timeout: float) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout),
        # No cookie jar and no automatic decompression: keep the client's own work minimal.
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
    )


class _Recorder:
    """Latencies of successful requests, errors by kind, and response sizes."""

    def __init__(self) -> None:
        self.latencies_ms: list[float] = []
        self.errors: Counter[str] = Counter()
        self.body_bytes = 0
        self.last_done = 0.0
        # Every answer, warm-up included: the requests the server actually served.
        self.answered = 0

    async def send(
        self, http: aiohttp.ClientSession, url: str, headers: Headers, started: float, keep: bool
    ) -> None:
        try:
            async with http.get(url, headers=headers) as response:
                body = await response.read()
                status = response.status
        except TimeoutError:
            if keep:
                self.errors["timeout"] += 1
            return
        except aiohttp.ClientError as exc:
            if keep:
                self.errors[type(exc).__name__] += 1
            return
        done = time.perf_counter()
        self.answered += 1
        if not keep:
            return
        self.last_done = max(self.last_done, done)
        if 200 <= status < 300:
            self.latencies_ms.append((done - started) * 1000)
            self.body_bytes += len(body)
        else:
            self.errors[f"status_{status}"] += 1

    def summary(self, elapsed: float) -> dict[str, Any]:
        ok = len(self.latencies_ms)
        return {
            "ok": ok,
            "errors": sum(self.errors.values()),
            "errors_by_kind": dict(self.errors),
            "answered_including_warmup": self.answered,
            "achieved_rps": ok / elapsed if elapsed > 0 else 0.0,
            "mean_body_bytes": self.body_bytes / ok if ok else 0.0,
            **latency_summary(self.latencies_ms),
            "latencies_ms": [round(v, 3) for v in self.latencies_ms],
        }


async def run_open(
    url: str,
    header_sets: list[Headers],
    *,
    rate: float,
    duration: float,
    warmup: float,
    connections: int,
    timeout: float,
) -> dict[str, Any]:
    """Send `rate` requests per second for warmup + duration seconds; record the last part."""
    recorder = _Recorder()
    warm_count = round(warmup * rate)
    total = warm_count + round(duration * rate)
    lags_ms: list[float] = []
    tasks: set[asyncio.Task[None]] = set()
    async with _session(connections, timeout) as http:
        start = time.perf_counter() + 0.05
        measured_start = start + warm_count / rate
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            # Yield to the event loop even when late, so answers keep being read.
            await asyncio.sleep(max(delay, 0.0))
            keep = i >= warm_count
            if keep:
                lags_ms.append(max(0.0, time.perf_counter() - due) * 1000)
            task = asyncio.create_task(
                recorder.send(http, url, header_sets[i % len(header_sets)], due, keep)
            )
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        schedule_end = start + total / rate
        await asyncio.gather(*tasks)
    # Achieved rate over the measured window: until the schedule ended, or later if the last
    # answers came in after it.
    elapsed = max(schedule_end, recorder.last_done) - measured_start
    lags_ms.sort()
    return {
        "mode": "open",
        "url": url,
        "target_rps": rate,
        "duration_s": duration,
        "warmup_s": warmup,
        "connections": connections,
        "sent": total - warm_count,
        "sent_including_warmup": total,
        "send_lag_p99_ms": percentile(lags_ms, 99),
        "send_lag_max_ms": lags_ms[-1] if lags_ms else 0.0,
        **recorder.summary(elapsed),
    }


async def run_closed(
    url: str,
    header_sets: list[Headers],
    *,
    connections: int,
    duration: float,
    timeout: float,
) -> dict[str, Any]:
    """`connections` loops, each sending its next request when the previous one is answered."""
    recorder = _Recorder()
    counter = 0

    async def loop(http: aiohttp.ClientSession, deadline: float) -> None:
        nonlocal counter
        while time.perf_counter() < deadline:
            counter += 1
            headers = header_sets[counter % len(header_sets)]
            await recorder.send(http, url, headers, time.perf_counter(), True)

    async with _session(connections, timeout) as http:
        started = time.perf_counter()
        deadline = started + duration
        await asyncio.gather(*(loop(http, deadline) for _ in range(connections)))
        elapsed = time.perf_counter() - started
    return {
        "mode": "closed",
        "url": url,
        "connections": connections,
        "duration_s": duration,
        "requests": counter,
        **recorder.summary(elapsed),
    }


def _install_fast_loop() -> str:
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    modes = parser.add_subparsers(dest="mode", required=True)
    open_mode = modes.add_parser("open", help="constant request rate (open loop)")
    open_mode.add_argument("--rate", type=float, required=True, help="requests per second")
    open_mode.add_argument("--warmup", type=float, default=2.0, help="seconds sent, not recorded")
    open_mode.add_argument("--connections", type=int, default=64, help="connection pool size")
    closed_mode = modes.add_parser("closed", help="maximum throughput (closed loop)")
    closed_mode.add_argument("--connections", type=int, default=32, help="concurrent connections")
    for mode in (open_mode, closed_mode):
        mode.add_argument("--url", required=True)
        mode.add_argument("--duration", type=float, required=True, help="recorded seconds")
        mode.add_argument("--headers-file", help="JSON list of header objects to cycle through")
        mode.add_argument("--timeout", type=float, default=5.0, help="seconds per request")
    return parser


def _run(args: argparse.Namespace, header_sets: list[Headers]) -> dict[str, Any]:
    if args.mode == "open":
        return asyncio.run(
            run_open(
                args.url,
                header_sets,
                rate=args.rate,
                duration=args.duration,
                warmup=args.warmup,
                connections=args.connections,
                timeout=args.timeout,
            )
        )
    return asyncio.run(
        run_closed(
            args.url,
            header_sets,
            connections=args.connections,
            duration=args.duration,
            timeout=args.timeout,
        )
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    header_sets = _load_headers(args.headers_file)
    loop_name = _install_fast_loop()
    with collector_paused():
        result = _run(args, header_sets)
    result["client"] = f"aiohttp {aiohttp.__version__} on {loop_name}"
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
