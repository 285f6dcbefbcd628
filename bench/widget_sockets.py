"""Benchmark: idle widget connections and event fan-out on one Parley API process, side by side
with a bare `websockets` server in the same run, and the widget bundle's size.

    python -m bench widget-sockets [--connections 10000] [--hold 30] [--rate 1000]

Two servers take the same load, one after the other, each pinned to CPU 0:

  parley  Parley's `/ws/widget` (backend/widget/socket.py), served with the uvicorn settings of
          `parley api` (bench/serve.py: one worker, uvloop, httptools, uvicorn's websockets
          protocol, no per-message deflate), connected to PostgreSQL as the app's login role
          (row-level security applies) and to Redis. The app is Parley's own `create_app()`
          with one extra route, `/_bench/{action}`, that the benchmark calls only between
          measurements (object census, tracemalloc snapshots);
  bare    the `websockets` library's own asyncio server on uvloop, doing the least the same
          protocol needs: answer `hello` with `ready` (a new conversation id and an empty
          history), answer `ping` with `pong`, send `heartbeat` every --heartbeat seconds, and
          forward what is published on a conversation's Redis channel to its socket through
          ONE pub/sub connection per process (as Parley's Hub does), with the library's
          `broadcast` and without parsing the event. No database, no token check.

The load: --client-processes processes (pinned to CPU 1) open --connections WebSocket
connections with the `websockets` client (no compression, no client pings: a browser sends
none), at most --open-concurrency handshakes in flight, each saying `hello` with a visitor token
of its own and waiting for `ready`. Visitor tokens are minted in the benchmark process with
`backend.widget.visitors.issue_token` (Parley's secret key), not through POST
/api/widget/session: that call is not what is measured and would add 10,000 HTTP requests.
Each `hello` without a conversation id opens a new conversation (a row in PostgreSQL). The file
limit (RLIMIT_NOFILE) is raised in the benchmark process before it starts the others, so the
servers and the clients inherit it.

Phases, per server:

  warm-up   --warmup-connections connections per client process, opened and closed (imports,
            the database and Redis pools, the Hub's pub/sub connection); the server's RSS then
            is the baseline;
  open      all connections: the time to open them, each one's WebSocket handshake and
            `hello`-to-`ready` latency, the CPU of the server, its PostgreSQL backends and Redis;
  idle      the connections held --hold seconds with heartbeats flowing: the server's RSS
            (VmRSS from /proc, sampled every second; the peak counts), Redis memory, against
            the baseline; per connection: RSS, Python objects (a gc census) and asyncio tasks;
  fan-out   while all connections stay open, a publisher process (CPU 1) publishes --rate
            events/s for --fanout-warmup + --fanout-duration seconds, round-robin over
            --fanout-conversations of the connections' conversations (one socket each; the
            other connections stay idle): for Parley through `backend.widget.events.publish`
            (the Lua script numbering the event, keeping it in the conversation's stream and
            PUBLISHing it: the path of operator replies and of every other process), for the
            bare server with a plain PUBLISH on the same channel names. An event is shaped like
            a streamed `delta` and carries its send time (CLOCK_MONOTONIC: one clock for every
            process of the machine); the client that receives it counts the delivery latency.
            Events of the warm-up seconds are not recorded. Dropped = recorded events
            published minus recorded events received, --drain seconds after the last one;
  profiled  (Parley; --profile-connections) once the load's connections are closed, new
            connections opened under cProfile, counting SQL statements, pool checkouts and new
            database connections: where the server's time per connection opened goes;
  traced    (--trace-connections) then new connections opened under tracemalloc (started
            through the probe only now, so it sees nothing else): the Python memory each
            connection holds, by file and line.

Garbage collection is timed in both servers (a gc.callbacks hook): the number of full (gen2)
passes and the longest pause in each phase.

Machines are noisy: before each server's open and fan-out phases the benchmark waits (up to
--quiet-wait seconds) for other programs' load to stop, and reports where the CPU went in every
phase (server, clients and publisher, PostgreSQL, Redis, anything else); a phase in which other
programs used more than 25 % of a core is flagged as noisy. The whole run takes about 6 minutes
on 2 cores, plus those waits.

The goals (from the widget issue): 10,000 idle connections on one API process with RSS <=
1.5 GB (1,500,000,000 bytes, the peak during the hold); 1,000 messages/s fanned out with p95
delivery <= 100 ms (the rate held, nothing dropped); the widget bundle <= 25 KB gzipped (level
9, as widget/scripts/size.mjs checks it). The benchmark reports; it exits 0 whether or not the
goals are met, non-zero on errors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import ctypes
import gc
import gzip
import json
import os
import platform
import pstats
import resource
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from bench.stats import latency_summary

if TYPE_CHECKING:
    import redis as redis_sync
    from websockets.asyncio.client import ClientConnection
    from websockets.asyncio.server import ServerConnection
    from websockets.http11 import Request, Response

    from bench.database import BenchDatabase

ROOT = Path(__file__).resolve().parent.parent

IDLE_GOAL_CONNECTIONS = 10_000
RSS_GOAL_BYTES = 1_500_000_000
FANOUT_GOAL_RATE = 1_000.0
FANOUT_P95_GOAL_MS = 100.0
BUNDLE_GOAL_BYTES = 25 * 1024
# The offered fan-out rate counts as held when the publisher reached this share of it.
RATE_HELD = 0.98
# A phase is reported as noisy when other programs used more than this much CPU (% of a core).
OTHER_LOAD_WARN_PCT = 25.0

SERVER_CPU = "0"
CLIENT_CPU = "1"

APP_ROLE_USER = "parley_bench_widget_app"
APP_ROLE_PASSWORD = "parley-bench-widget-app-password"  # noqa: S105 (throwaway role)
WS_PATH = "/ws/widget"
PROBE_PREFIX = "/_bench/"
# The widget runs on a business's page; the seeded assistant allows every origin.
PAGE_ORIGIN = "https://shop.example.com"
# Generous: under a reconnect storm a handshake waits for the server's backlog.
OPEN_TIMEOUT_S = 120.0
# A delivery slower than this is kept with its send time, to find when the slow ones happened.
SLOW_MS = 50.0
# File descriptors a process needs beyond one per connection (pools, logs, pipes, libraries).
FD_SLACK = 1024
CHANNEL_PREFIX = "widget:conv:"

T = TypeVar("T")


def now() -> float:
    """CLOCK_MONOTONIC: one clock for every process of the machine, so a publisher's send time
    and a client's receive time can be compared."""
    return time.clock_gettime(time.CLOCK_MONOTONIC)


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` on uvloop when installed (the loop `parley api` runs on), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def raise_file_limit(wanted: int) -> int:
    """Raise RLIMIT_NOFILE to `wanted` open files (the hard limit too, when allowed); processes
    started afterwards inherit it. Returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    if hard != resource.RLIM_INFINITY and hard < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return wanted
        except (ValueError, OSError):
            pass
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


def _mib(value: float) -> float:
    return value / 1024 / 1024


_STARTED = time.monotonic()


def say(message: str) -> None:
    """A progress line, stamped with the seconds since the benchmark started."""
    print(f"[{time.monotonic() - _STARTED:6.1f} s] {message}", flush=True)


# Probes: what a server holds, asked for between measurements ---------------------------------


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def malloc_info() -> dict[str, int]:
    """glibc's heap: bytes obtained from the system (sbrk arena + mmapped blocks), in use, free."""
    try:
        function = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return {}
    function.restype = _MallInfo2
    info = function()
    return {
        "heap_bytes": int(info.arena) + int(info.hblkhd),
        "in_use_bytes": int(info.uordblks) + int(info.hblkhd),
        "free_bytes": int(info.fordblks),
    }


def object_census() -> dict[str, Any]:
    """Every object the garbage collector tracks, counted by type (with shallow sizes), and how
    many sat in the young generations before this census's own collection."""
    young = {f"gen{generation}": len(gc.get_objects(generation)) for generation in (0, 1)}
    gc.collect()
    counts: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    for obj in gc.get_objects():
        kind = type(obj)
        name = f"{kind.__module__}.{kind.__qualname__}"
        counts[name] += 1
        sizes[name] += sys.getsizeof(obj)
    return {
        "tasks": len(asyncio.all_tasks()),
        "young_generations": young,
        "gc_objects": sum(counts.values()),
        "allocated_blocks": sys.getallocatedblocks(),
        "malloc": malloc_info(),
        "types": {name: [counts[name], sizes[name]] for name in counts},
    }


LONG_PAUSE_S = 0.02


class GcPauses:
    """How long the garbage collector stopped the process, per generation (gc.callbacks), and
    when the long pauses happened (CLOCK_MONOTONIC, comparable with the other processes)."""

    def __init__(self) -> None:
        self._started = 0.0
        self.stats: dict[int, list[float]] = {}
        self.long: list[dict[str, Any]] = []
        self.reset()

    def reset(self) -> None:
        self.stats = {generation: [0, 0.0, 0.0] for generation in range(3)}
        self.long = []

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = now()
            return
        spent = now() - self._started
        entry = self.stats[info["generation"]]
        entry[0] += 1
        entry[1] += spent
        entry[2] = max(entry[2], spent)
        if spent > LONG_PAUSE_S and len(self.long) < 200:
            self.long.append(
                {
                    "at": self._started,
                    "generation": info["generation"],
                    "ms": 1000 * spent,
                    "collected": info.get("collected", 0),
                }
            )

    def take(self) -> dict[str, Any]:
        """The pauses since the last call, in ms, and the collector's object counts."""
        taken: dict[str, Any] = {
            f"gen{generation}": {
                "collections": int(count),
                "total_ms": 1000 * total,
                "max_ms": 1000 * longest,
            }
            for generation, (count, total, longest) in self.stats.items()
        }
        taken["long_pauses"] = self.long
        taken["stalls"] = loop_lag.take()
        self.reset()
        return taken


class LoopLag:
    """Samples the event loop every 5 ms; a wake-up more than LONG_PAUSE_S late is a stall
    (the loop was busy or the process did not run), kept with its time."""

    PERIOD_S = 0.005

    def __init__(self) -> None:
        self.stalls: list[dict[str, float]] = []
        self.worst_ms = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            due = now() + self.PERIOD_S
            await asyncio.sleep(self.PERIOD_S)
            late = now() - due
            if late > LONG_PAUSE_S:
                self.worst_ms = max(self.worst_ms, 1000 * late)
                if len(self.stalls) < 500:
                    self.stalls.append({"at": due, "ms": 1000 * late})

    def take(self) -> dict[str, Any]:
        taken = {"count": len(self.stalls), "worst_ms": self.worst_ms, "list": self.stalls}
        self.stalls = []
        self.worst_ms = 0.0
        return taken


loop_lag = LoopLag()


gc_pauses = GcPauses()


def install_gc_timer() -> None:
    if gc_pauses not in gc.callbacks:
        gc.callbacks.append(gc_pauses)


_snapshots: dict[str, tracemalloc.Snapshot] = {}


def _short_path(path: str) -> str:
    for marker in ("site-packages/", str(ROOT) + "/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path.rsplit("/lib/python", 1)[-1] if "/lib/python" in path else path


def _snapshot() -> tracemalloc.Snapshot:
    gc.collect()
    return tracemalloc.take_snapshot().filter_traces(
        (
            tracemalloc.Filter(False, tracemalloc.__file__),
            tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
            tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
            tracemalloc.Filter(False, "<unknown>"),
        )
    )


def trace_report(before: tracemalloc.Snapshot, top: int = 25) -> dict[str, Any]:
    after = _snapshot()
    report: dict[str, Any] = {}
    for key in ("filename", "lineno"):
        stats = after.compare_to(before, key)
        report[key] = [
            {
                "where": _short_path(str(s.traceback[0].filename))
                + (f":{s.traceback[0].lineno}" if key == "lineno" else ""),
                "size_diff": s.size_diff,
                "count_diff": s.count_diff,
            }
            for s in stats[:top]
        ]
        if key == "filename":
            report["total_size_diff"] = sum(s.size_diff for s in stats)
            report["total_count_diff"] = sum(s.count_diff for s in stats)
    return report


_profiler: list[cProfile.Profile] = []


def _code_area(filename: str, function: str) -> str:
    """Where a profiled function lives: a package, a part of Parley, or the standard library."""
    if filename == "~":  # a C function: name its owner ("<method 'x' of 'y' objects>")
        owner = function.rsplit(" of ", 1)[-1].strip("'>").split("'")[0]
        return f"C: {owner.split('.')[0]}" if " of " in function else "C: builtins"
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if filename.startswith(str(ROOT) + "/"):
        parts = filename[len(str(ROOT)) + 1 :].split("/")
        return "/".join(parts[:2]).removesuffix(".py")
    if "/lib/python" in filename:
        rest = filename.split("/lib/python", 1)[1].split("/", 2)
        return "stdlib: " + (rest[1].removesuffix(".py") if len(rest) > 1 else "?")
    return filename


def profile_report(profiler: cProfile.Profile, top: int = 25) -> dict[str, Any]:
    """Self time by code area and by function (cProfile's own overhead inflates every call
    alike: the shares count, not the absolute times)."""
    stats: dict[tuple[str, int, str], tuple[int, int, float, float, Any]]
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    areas: dict[str, float] = {}
    functions = []
    for (filename, line, function), (_, calls, self_s, cumulative_s, _) in stats.items():
        area = _code_area(filename, function)
        areas[area] = areas.get(area, 0.0) + self_s
        where = function if filename == "~" else f"{_short_path(filename)}:{line} {function}"
        functions.append((self_s, cumulative_s, calls, where))
    total = sum(areas.values())
    functions.sort(reverse=True)
    return {
        "total_self_s": total,
        "by_area": [
            {"area": a, "self_s": t}
            for a, t in sorted(areas.items(), key=lambda item: item[1], reverse=True)[:top]
        ],
        "by_function": [
            {"where": w, "self_s": t, "cumulative_s": c, "calls": n}
            for t, c, n, w in functions[:top]
        ],
    }


def probe(action: str) -> dict[str, Any]:
    """`ready`; `objects`; `profile-start`, `profile-stop`; `trace-start`, `trace-stop` (the
    Python allocations made in between, by file and line)."""
    if action == "ready":
        with contextlib.suppress(RuntimeError):
            loop_lag.start()
        return {"ok": True}
    if action == "objects":
        return object_census()
    if action == "gc":
        return gc_pauses.take()
    if action == "profile-start":
        _profiler[:] = [cProfile.Profile()]
        _profiler[0].enable()
        return {"ok": True}
    if action == "profile-stop" and _profiler:
        _profiler[0].disable()
        return profile_report(_profiler.pop())
    if action == "trace-start":
        tracemalloc.start(1)
        _snapshots["start"] = _snapshot()
        return {"ok": True}
    if action == "trace-stop" and "start" in _snapshots:
        report = trace_report(_snapshots.pop("start"))
        tracemalloc.stop()
        return report
    return {"error": f"unknown probe {action!r}"}


class SqlCounter:
    """SQL statements, pool checkouts and new database connections of Parley's engine,
    counted while attached."""

    def __init__(self) -> None:
        self.statements: Counter[str] = Counter()
        self.checkouts = 0
        self.connects = 0
        self._attached = False

    def _statement(self, *args: Any) -> None:
        statement = " ".join(str(args[2]).split())
        self.statements[statement[:90]] += 1

    def _checkout(self, *args: Any) -> None:
        self.checkouts += 1

    def _connect(self, *args: Any) -> None:
        self.connects += 1

    def attach(self) -> None:
        from sqlalchemy import event

        from backend.db import get_engine

        engine = get_engine().sync_engine
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine.pool, "checkout", self._checkout)
        event.listen(engine.pool, "connect", self._connect)
        self._attached = True

    def detach(self) -> dict[str, Any]:
        from sqlalchemy import event

        from backend.db import get_engine

        if self._attached:
            engine = get_engine().sync_engine
            event.remove(engine, "before_cursor_execute", self._statement)
            event.remove(engine.pool, "checkout", self._checkout)
            event.remove(engine.pool, "connect", self._connect)
            self._attached = False
        counted = {
            "statements": sum(self.statements.values()),
            "checkouts": self.checkouts,
            "new_connections": self.connects,
            "by_statement": dict(self.statements.most_common(20)),
        }
        self.statements.clear()
        self.checkouts = self.connects = 0
        return counted


def parley_facts() -> dict[str, Any]:
    """The Parley process's pools and Hub, for the object census."""
    from backend.db import get_engine
    from backend.redis import get_redis
    from backend.widget import events

    pool = get_redis().connection_pool
    return {
        "hub_channels": events.get_hub(get_redis()).channels,
        "redis_pool_connections": len(getattr(pool, "_available_connections", ()))
        + len(getattr(pool, "_in_use_connections", ())),
        "database_pool": get_engine().pool.status(),
    }


def create_probed_app() -> Any:
    """Parley's app with the benchmark's probe route (served by bench/serve.py). While
    profiled, SQL statements and pool checkouts are counted too."""
    from backend.main import create_app

    install_gc_timer()
    app = create_app()
    sql = SqlCounter()

    async def bench_probe(action: str) -> dict[str, Any]:
        if action == "profile-start":
            sql.attach()
        result = probe(action)
        if action == "objects":
            result["parley"] = parley_facts()
        if action == "profile-stop":
            result["sql"] = sql.detach()
        return result

    app.add_api_route(
        PROBE_PREFIX + "{action}", bench_probe, methods=["GET"], include_in_schema=False
    )
    return app


# The bare server -----------------------------------------------------------------------------

HEARTBEAT_FRAME = '{"type": "heartbeat"}'
PONG_FRAME = '{"type": "pong"}'


async def serve_bare(port: int, redis_url: str, heartbeat: float) -> None:
    """The baseline: the same frames over the `websockets` library's server, nothing more."""
    from redis.asyncio import Redis
    from websockets.asyncio.server import broadcast, serve
    from websockets.exceptions import ConnectionClosed

    install_gc_timer()
    loop_lag.start()
    loop = asyncio.get_running_loop()
    redis = Redis.from_url(redis_url, decode_responses=True)
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    channels: dict[str, set[ServerConnection]] = {}
    reader: asyncio.Task[None] | None = None

    async def forward() -> None:
        while True:
            message = await pubsub.get_message(timeout=1.0)
            if message is not None and message.get("type") == "message":
                broadcast(channels.get(str(message["channel"]), ()), message["data"])

    async def handler(connection: ServerConnection) -> None:
        nonlocal reader
        try:
            hello = json.loads(await asyncio.wait_for(connection.recv(), 10.0))
            if not isinstance(hello, dict) or hello.get("type") != "hello":
                raise ValueError("the first frame must be hello")
        except (TimeoutError, ValueError, ConnectionClosed):
            await connection.close(code=4400)
            return
        conversation_id = str(uuid.uuid4())
        channel = CHANNEL_PREFIX + conversation_id
        listeners = channels.setdefault(channel, set())
        listeners.add(connection)
        if len(listeners) == 1:
            await pubsub.subscribe(channel)
        if reader is None or reader.done():
            reader = asyncio.create_task(forward())
        ready = {
            "type": "ready",
            "conversation_id": conversation_id,
            "visitor_id": "v_bare",
            "last_seq": 0,
            "history": [],
        }
        await connection.send(json.dumps(ready))
        timer: asyncio.TimerHandle | None = None

        def beat() -> None:
            nonlocal timer
            broadcast((connection,), HEARTBEAT_FRAME)
            timer = loop.call_later(heartbeat, beat)

        timer = loop.call_later(heartbeat, beat)
        try:
            async for raw in connection:
                frame = json.loads(raw)
                if isinstance(frame, dict) and frame.get("type") == "ping":
                    await connection.send(PONG_FRAME)
        except ConnectionClosed:
            pass
        finally:
            timer.cancel()
            listeners.discard(connection)
            if not listeners:
                del channels[channel]
                with contextlib.suppress(Exception):
                    await pubsub.unsubscribe(channel)

    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        if request.path.startswith(PROBE_PREFIX):
            action = request.path.removeprefix(PROBE_PREFIX).split("?", 1)[0]
            return connection.respond(200, json.dumps(probe(action)))
        return None

    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    loop.add_signal_handler(signal.SIGINT, stop.set_result, None)
    async with serve(
        handler,
        "127.0.0.1",
        port,
        compression=None,
        process_request=process_request,
        backlog=2048,  # uvicorn's default, as Parley runs
    ):
        await stop
    if reader is not None:
        reader.cancel()
    await pubsub.aclose()
    await redis.aclose()


# The load client -----------------------------------------------------------------------------


@dataclass
class ClientState:
    """One client process's connections and what they received."""

    connections: list[ClientConnection] = field(default_factory=list)
    readers: list[asyncio.Task[None]] = field(default_factory=list)
    conversation_ids: list[str] = field(default_factory=list)
    heartbeats: int = 0
    events: int = 0
    recorded: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    slow: list[tuple[float, float]] = field(default_factory=list)
    other_frames: Counter[str] = field(default_factory=Counter)
    closed_by_server: int = 0
    closing: bool = False

    async def read(self, connection: ClientConnection) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            async for raw in connection:
                received = now()
                frame = json.loads(raw)
                kind = frame.get("type")
                if kind == "heartbeat":
                    self.heartbeats += 1
                    continue
                marker = frame.get("bench")
                if isinstance(marker, dict):
                    self.events += 1
                    if marker.get("rec"):
                        self.recorded += 1
                        sent = float(marker["sent"])
                        latency = (received - sent) * 1000
                        self.latencies_ms.append(latency)
                        if latency > SLOW_MS:
                            self.slow.append((sent, latency))
                else:
                    self.other_frames[str(kind)] += 1
        except ConnectionClosed:
            pass
        if not self.closing:
            self.closed_by_server += 1

    def stats(self) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "open": len(self.connections) - self.closed_by_server,
            "closed_by_server": self.closed_by_server,
            "heartbeats": self.heartbeats,
            "events": self.events,
            "recorded": self.recorded,
            "latencies_ms": self.latencies_ms,
            "slow": self.slow,
            "other_frames": dict(self.other_frames),
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "max_rss_bytes": usage.ru_maxrss * 1024,
        }

    async def close_all(self) -> None:
        self.closing = True
        for start in range(0, len(self.connections), 500):
            batch = self.connections[start : start + 500]
            await asyncio.gather(*(c.close() for c in batch), return_exceptions=True)
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)


async def _open_one(
    url: str, hello: dict[str, Any]
) -> tuple[ClientConnection, dict[str, Any], float, float]:
    """Connect, say hello, wait for ready: (connection, ready, handshake ms, hello->ready ms)."""
    from websockets.asyncio.client import connect

    started = now()
    connection = await connect(
        url,
        additional_headers={"Origin": PAGE_ORIGIN},
        compression=None,
        ping_interval=None,
        open_timeout=OPEN_TIMEOUT_S,
        close_timeout=2,
        proxy=None,
    )
    connected = now()
    try:
        await connection.send(json.dumps(hello))
        ready = json.loads(await asyncio.wait_for(connection.recv(), OPEN_TIMEOUT_S))
        if not isinstance(ready, dict) or ready.get("type") != "ready":
            code = ready.get("code") if isinstance(ready, dict) else None
            raise RuntimeError(f"answered {str(ready)[:80]} ({code})")
    except BaseException:
        await connection.close()
        raise
    return connection, ready, (connected - started) * 1000, (now() - connected) * 1000


async def open_connections(
    state: ClientState, url: str, hellos: list[dict[str, Any]], concurrency: int, keep: bool
) -> dict[str, Any]:
    semaphore = asyncio.Semaphore(concurrency)
    handshakes: list[float] = []
    readies: list[float] = []
    errors: Counter[str] = Counter()
    opened: list[ClientConnection] = []

    async def one(hello: dict[str, Any]) -> None:
        async with semaphore:
            try:
                connection, ready, handshake, to_ready = await _open_one(url, hello)
            except Exception as exc:
                errors[f"{type(exc).__name__}: {str(exc)[:120]}"] += 1
                return
        handshakes.append(handshake)
        readies.append(to_ready)
        opened.append(connection)
        if keep:
            state.connections.append(connection)
            state.conversation_ids.append(str(ready["conversation_id"]))
            state.readers.append(asyncio.create_task(state.read(connection)))

    started = now()
    await asyncio.gather(*(one(h) for h in hellos))
    elapsed = now() - started
    if not keep:
        await asyncio.gather(*(c.close() for c in opened), return_exceptions=True)
    return {
        "opened": len(opened),
        "failed": sum(errors.values()),
        "errors": dict(errors.most_common(5)),
        "elapsed_s": elapsed,
        "handshake_ms": latency_summary(handshakes),
        "hello_to_ready_ms": latency_summary(readies),
        "conversation_ids": state.conversation_ids if keep else [],
    }


async def client_main(spec: dict[str, Any]) -> None:
    """Line commands on stdin (`open`, `stats`, `close`), one JSON line answered per command."""
    loop = asyncio.get_running_loop()
    state = ClientState()

    def answer(body: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(body) + "\n")
        sys.stdout.flush()

    warm = await open_connections(
        state, spec["url"], spec["warmup_hellos"], spec["concurrency"], keep=False
    )
    answer({"warm": warm})
    while True:
        command = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
        if command == "open":
            answer(
                await open_connections(
                    state, spec["url"], spec["hellos"], spec["concurrency"], keep=True
                )
            )
        elif command == "stats":
            answer(state.stats())
        else:  # "close", or the benchmark went away
            await state.close_all()
            answer({"closed": len(state.connections)})
            return


# The publisher -------------------------------------------------------------------------------


async def publisher_main(spec: dict[str, Any]) -> dict[str, Any]:
    """Publish `rate` events/s, open loop: event i is due at start + i / rate."""
    from redis.asyncio import Redis

    redis = Redis.from_url(spec["redis_url"], decode_responses=True)
    ids = [str(c) for c in spec["conversation_ids"]]
    uuids = [uuid.UUID(c) for c in ids]
    rate = float(spec["rate"])
    warm_count = round(rate * float(spec["warmup_s"]))
    total = warm_count + round(rate * float(spec["duration_s"]))
    parley = spec["server"] == "parley"
    if parley:
        from backend.widget import events
    message_id = str(uuid.uuid4())
    lateness_ms: list[float] = []
    errors: Counter[str] = Counter()
    published = recorded = 0
    first_recorded = last_recorded = 0.0
    start = now() + 0.2
    index = 0
    try:
        while index < total:
            due_now = min(total, int((now() - start) * rate) + 1)
            if index >= due_now:
                await asyncio.sleep(max(0.0, start + index / rate - now()))
                continue
            while index < due_now:
                sent = now()
                record = index >= warm_count
                event = {
                    "type": "delta",
                    "message_id": message_id,
                    "text": "word ",
                    "bench": {"sent": sent, "rec": record, "n": index},
                }
                slot = index % len(ids)
                try:
                    if parley:
                        await events.publish(redis, uuids[slot], event)
                    else:
                        payload = json.dumps({"seq": index + 1, **event})
                        await redis.publish(CHANNEL_PREFIX + ids[slot], payload)
                except Exception as exc:
                    errors[f"{type(exc).__name__}: {str(exc)[:120]}"] += 1
                else:
                    published += 1
                    if record:
                        recorded += 1
                        first_recorded = first_recorded or sent
                        last_recorded = sent
                if record:
                    lateness_ms.append((sent - (start + index / rate)) * 1000)
                index += 1
    finally:
        await redis.aclose()
    span = last_recorded - first_recorded
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "published": published,
        "recorded": recorded,
        "errors": dict(errors.most_common(5)),
        "rate_per_s": (recorded - 1) / span if span > 0 else 0.0,
        "lateness_ms": latency_summary(lateness_ms),
        "cpu_s": usage.ru_utime + usage.ru_stime,
    }


# Process and machine facts -------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def _process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, pending = [], [root]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending.extend(children.get(pid, []))
    return tree


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def postgres_seconds(database_name: str) -> float:
    """CPU seconds so far of the PostgreSQL backends serving `database_name`."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = Path(f"/proc/{entry.name}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        words = title.replace("\0", " ").split()
        if len(words) > 2 and words[0] == "postgres:" and words[2] == database_name:
            total += cpu_seconds([int(entry.name)])
    return total


def memory_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (peak RSS), RssAnon, RssFile of the process tree at `pid`, in bytes."""
    totals: Counter[str] = Counter()
    for member in _process_tree(pid):
        try:
            lines = Path(f"/proc/{member}/status").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                totals[name] += int(rest.split()[0]) * 1024
    return dict(totals)


def _cpu_times() -> dict[str, tuple[int, int]]:
    times: dict[str, tuple[int, int]] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            numbers = [int(v) for v in values[:8]]
            idle = numbers[3] + numbers[4]
            times[name] = (sum(numbers) - idle, sum(numbers))
    return times


def redis_facts(client: redis_sync.Redis) -> dict[str, Any]:
    memory: Any = client.info("memory")
    clients: Any = client.info("clients")
    cpu: Any = client.info("cpu")
    channels: Any = client.pubsub_channels(CHANNEL_PREFIX + "*")
    return {
        "used_memory": int(memory["used_memory"]),
        "connected_clients": int(clients["connected_clients"]),
        "cpu_s": float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]),
        "widget_channels": len(channels),
    }


class Meter:
    """Where the machine's CPU went during one phase, in CPU seconds and % of one core."""

    def __init__(self, rig: Rig, server_pid: int, client_pids: list[int]) -> None:
        self.rig = rig
        self.server_pid = server_pid
        self.client_pids = client_pids
        self._start: dict[str, float] = {}
        self._cpus: dict[str, tuple[int, int]] = {}

    def _read(self) -> dict[str, float]:
        fields = _stat_fields(self.server_pid) or ["0"] * 13
        return {
            "server_minor_faults": float(fields[7]),
            "server_major_faults": float(fields[9]),
            "server": cpu_seconds(_process_tree(self.server_pid)),
            "clients": cpu_seconds(self.client_pids),
            "postgres": postgres_seconds(self.rig.db.name),
            "redis": redis_facts(self.rig.redis)["cpu_s"],
            "wall": now(),
        }

    def start(self) -> None:
        self._start = self._read()
        self._cpus = _cpu_times()

    def stop(self, extra_cpu_s: float = 0.0) -> dict[str, Any]:
        end = self._read()
        spent = {k: end[k] - self._start[k] for k in end}
        wall = spent.pop("wall")
        faults = {k: int(spent.pop(k)) for k in ("server_minor_faults", "server_major_faults")}
        busy_seconds = 0.0
        busy: dict[str, float] = {}
        for name, (busy_now, total_now) in _cpu_times().items():
            busy_then, total_then = self._cpus.get(name, (busy_now, total_now))
            elapsed = total_now - total_then
            busy[name] = round(100 * (busy_now - busy_then) / elapsed, 1) if elapsed else 0.0
            busy_seconds += (busy_now - busy_then) / CLOCK_TICKS
        spent["clients"] += extra_cpu_s
        other = max(0.0, busy_seconds - sum(spent.values()))
        return {
            "wall_s": wall,
            **{f"{k}_cpu_s": v for k, v in spent.items()},
            "cpu_busy_pct": busy,
            "other_load_pct": round(100 * other / wall, 1) if wall else 0.0,
            **faults,
        }


def wait_for_others(meter: Meter, limit: float, quiet_pct: float = 15.0) -> float:
    """Wait up to `limit` seconds until programs other than the benchmark's own (servers,
    clients, their PostgreSQL backends, Redis) use at most `quiet_pct` % of a core."""
    started = time.monotonic()
    announced = False
    while time.monotonic() - started < limit:
        meter.start()
        time.sleep(1.0)
        if meter.stop()["other_load_pct"] <= quiet_pct:
            break
        if not announced:
            say(f"waiting up to {limit:g} s for other load on the machine to stop")
            announced = True
    return time.monotonic() - started


def machine_info() -> dict[str, Any]:
    from bench.api_overhead import machine_info as base_info

    machine = base_info(None)
    machine.pop("wrk", None)
    machine["packages"].update(
        {name: version(name) for name in ("websockets", "redis", "uvloop", "httptools")}
    )
    machine["os"] = _os_name()
    machine["file_limit"] = list(resource.getrlimit(resource.RLIMIT_NOFILE))
    return machine


def _os_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    return platform.system()


# Bundle size ---------------------------------------------------------------------------------


def bundle_size(build: bool) -> dict[str, Any]:
    """widget/dist/widget.js raw and gzipped (level 9); built first when missing."""
    widget = ROOT / "widget"
    bundle = widget / "dist" / "widget.js"
    built_now = False
    if not bundle.is_file() and build:
        npm = shutil.which("npm")
        if npm is None:
            return {"error": "widget/dist/widget.js is missing and npm is not installed"}
        say("Building the widget (npm ci, npm run build)")
        if not (widget / "node_modules").is_dir():
            subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=widget, check=True)
        subprocess.run([npm, "run", "build"], cwd=widget, check=True)
        built_now = True
    if not bundle.is_file():
        return {"error": "widget/dist/widget.js is missing"}
    raw = bundle.read_bytes()
    sources = [p for p in (widget / "src").rglob("*") if p.is_file()]
    newest_source = max((p.stat().st_mtime for p in sources), default=0.0)
    return {
        "path": str(bundle.relative_to(ROOT)),
        "raw_bytes": len(raw),
        "gzip_bytes": len(gzip.compress(raw, compresslevel=9)),
        "built_now": built_now,
        "older_than_sources": bundle.stat().st_mtime < newest_source,
    }


# Servers and client processes ----------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pinned(cpu: str, argv: list[str], pin: bool) -> list[str]:
    return ["taskset", "-c", cpu, *argv] if pin else argv


def _stop(process: subprocess.Popen[Any], timeout: float = 20.0) -> None:
    """SIGTERM to the process's group (it was started in a session of its own), then SIGKILL."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@dataclass
class Server:
    name: str
    label: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{WS_PATH}"

    def probe(self, action: str, timeout: float = 120.0) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.port}{PROBE_PREFIX}{action}"
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body: dict[str, Any] = json.loads(response.read())
        return body

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        last_error = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                self.probe("ready", timeout=2)
                return
            except (OSError, urllib.error.HTTPError, ValueError) as exc:
                last_error = str(exc)
            time.sleep(0.2)
        log = self.log_path.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"the {self.name} server did not become ready ({last_error})\n{log}")


class ClientProcess:
    """A load client process, driven by line commands; answers are read with a deadline."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,
            )
        self._buffer = b""

    def send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command.encode() + b"\n")
        self.process.stdin.flush()

    def receive(self, timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"a load client did not answer in {timeout:g} s")
            readable, _, _ = select.select([fd], [], [], remaining)
            if readable:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    log = self.log_path.read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"a load client exited:\n{log}")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        body: dict[str, Any] = json.loads(line)
        return body

    def stop(self) -> None:
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        _stop(self.process, timeout=30)


@dataclass
class Rig:
    opts: argparse.Namespace
    db: BenchDatabase
    env: dict[str, str]
    redis: redis_sync.Redis
    public_key: str
    tokens: Iterator[str]
    work: Path
    parley_conversations: list[str] = field(default_factory=list)

    def hellos(self, count: int) -> list[dict[str, Any]]:
        return [{"type": "hello", "visitor_token": next(self.tokens)} for _ in range(count)]

    def start_server(self, name: str) -> Server:
        from bench.serve import fastest_implementations

        port = _free_port()
        if name == "parley":
            loop, http = fastest_implementations()
            argv = [
                sys.executable,
                "-m",
                "bench.serve",
                "bench.widget_sockets:create_probed_app",
                "--port",
                str(port),
                "--loop",
                loop,
                "--http",
                http,
            ]
            label = "Parley"
        else:
            argv = [
                sys.executable,
                "-m",
                "bench.widget_sockets",
                "bare",
                "--port",
                str(port),
                "--redis-url",
                self.opts.redis_url,
                "--heartbeat",
                str(self.opts.heartbeat),
            ]
            label = "bare websockets"
        log_path = self.work / f"server-{name}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                _pinned(SERVER_CPU, argv, self.opts.pin),
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = Server(name, label, port, process, log_path)
        server.wait_ready()
        return server

    def start_clients(self, server: Server, connections: int, tag: str) -> list[ClientProcess]:
        count = max(1, min(self.opts.client_processes, connections))
        concurrency = max(1, self.opts.open_concurrency // count)
        clients = []
        for number in range(count):
            share = connections // count + (1 if number < connections % count else 0)
            spec = {
                "url": f"{server.ws_url}?key={self.public_key}",
                "hellos": self.hellos(share),
                "warmup_hellos": self.hellos(self.opts.warmup_connections),
                "concurrency": concurrency,
            }
            spec_path = self.work / f"client-{server.name}-{tag}-{number}.json"
            spec_path.write_text(json.dumps(spec))
            argv = [
                sys.executable,
                "-m",
                "bench.widget_sockets",
                "client",
                "--spec",
                str(spec_path),
            ]
            clients.append(
                ClientProcess(
                    _pinned(CLIENT_CPU, argv, self.opts.pin),
                    self.env,
                    self.work / f"client-{server.name}-{tag}-{number}.log",
                )
            )
        return clients

    def run_publisher(self, server: Server, conversation_ids: list[str]) -> dict[str, Any]:
        spec = {
            "server": server.name,
            "redis_url": self.opts.redis_url,
            "conversation_ids": conversation_ids,
            "rate": self.opts.rate,
            "warmup_s": self.opts.fanout_warmup,
            "duration_s": self.opts.fanout_duration,
        }
        spec_path = self.work / f"publisher-{server.name}.json"
        spec_path.write_text(json.dumps(spec))
        argv = [
            sys.executable,
            "-m",
            "bench.widget_sockets",
            "publish",
            "--spec",
            str(spec_path),
        ]
        budget = self.opts.fanout_warmup + self.opts.fanout_duration + 120
        result = subprocess.run(
            _pinned(CLIENT_CPU, argv, self.opts.pin),
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=budget,
        )
        if result.returncode != 0:
            raise RuntimeError(f"the publisher failed:\n{result.stderr[-3000:]}")
        body: dict[str, Any] = json.loads(result.stdout)
        return body


def _ask_all(clients: list[ClientProcess], command: str, timeout: float) -> list[dict[str, Any]]:
    for client in clients:
        client.send(command)
    return [client.receive(timeout) for client in clients]


def _interleave(lists: list[list[str]]) -> list[str]:
    merged: list[str] = []
    for index in range(max((len(x) for x in lists), default=0)):
        merged.extend(x[index] for x in lists if index < len(x))
    return merged


def _merge_open(results: list[dict[str, Any]]) -> dict[str, Any]:
    errors: Counter[str] = Counter()
    for r in results:
        errors.update(r["errors"])
    return {
        "opened": sum(r["opened"] for r in results),
        "failed": sum(r["failed"] for r in results),
        "errors": dict(errors.most_common(5)),
        "elapsed_s": max(r["elapsed_s"] for r in results),
        # Percentiles of the client processes' own percentiles: the worse process's.
        "handshake_ms": {
            k: max(r["handshake_ms"][k] for r in results) for k in results[0]["handshake_ms"]
        },
        "hello_to_ready_ms": {
            k: max(r["hello_to_ready_ms"][k] for r in results)
            for k in results[0]["hello_to_ready_ms"]
        },
    }


def _merge_stats(results: list[dict[str, Any]]) -> dict[str, Any]:
    latencies = sorted(x for r in results for x in r["latencies_ms"])
    other: Counter[str] = Counter()
    for r in results:
        other.update(r["other_frames"])
    return {
        "open": sum(r["open"] for r in results),
        "closed_by_server": sum(r["closed_by_server"] for r in results),
        "heartbeats": sum(r["heartbeats"] for r in results),
        "events": sum(r["events"] for r in results),
        "recorded": sum(r["recorded"] for r in results),
        "latency_ms": latency_summary(latencies),
        "slow": sorted(tuple(x) for r in results for x in r["slow"]),
        "other_frames": dict(other),
        "client_cpu_s": sum(r["cpu_s"] for r in results),
        "client_max_rss_bytes": max(r["max_rss_bytes"] for r in results),
    }


def slow_bursts(slow: list[Any], origin: float, gap_s: float = 0.5) -> list[dict[str, Any]]:
    """Slow deliveries grouped into bursts by send time (seconds after `origin`)."""
    bursts: list[dict[str, Any]] = []
    for sent, latency in slow:
        if bursts and sent - bursts[-1]["_last"] <= gap_s:
            burst = bursts[-1]
            burst["_last"] = sent
            burst["events"] += 1
            burst["max_ms"] = max(burst["max_ms"], latency)
        else:
            bursts.append(
                {"at": round(sent - origin, 3), "_last": sent, "events": 1, "max_ms": latency}
            )
    for burst in bursts:
        burst["span_s"] = round(burst.pop("_last") - origin - burst["at"], 3)
    return bursts


def census_delta(
    before: dict[str, Any], after: dict[str, Any], connections: int, top: int = 15
) -> dict[str, Any]:
    """Objects per connection, by type, from two object censuses."""
    rows = []
    for name, (count, size) in after["types"].items():
        count_then, size_then = before["types"].get(name, [0, 0])
        if count - count_then > 0:
            rows.append((name, count - count_then, size - size_then))
    rows.sort(key=lambda r: r[1], reverse=True)
    per = max(connections, 1)
    malloc_before, malloc_after = before.get("malloc", {}), after.get("malloc", {})
    return {
        "tasks_per_connection": (after["tasks"] - before["tasks"]) / per,
        "gc_objects_per_connection": (after["gc_objects"] - before["gc_objects"]) / per,
        "gc_objects_before": before["gc_objects"],
        "gc_objects_after": after["gc_objects"],
        "allocated_blocks_per_connection": (after["allocated_blocks"] - before["allocated_blocks"])
        / per,
        "malloc_in_use_per_connection": (
            (malloc_after["in_use_bytes"] - malloc_before["in_use_bytes"]) / per
            if malloc_before and malloc_after
            else None
        ),
        "young_generations_at_end": after.get("young_generations"),
        "malloc_heap_after_bytes": malloc_after.get("heap_bytes"),
        "malloc_free_after_bytes": malloc_after.get("free_bytes"),
        "types_per_connection": [
            {"type": name, "count": count / per, "shallow_bytes": size / per}
            for name, count, size in rows[:top]
        ],
        "parley": after.get("parley"),
    }


# One server, all phases ----------------------------------------------------------------------


def measure_server(rig: Rig, name: str) -> dict[str, Any]:
    from bench.api_overhead import wait_for_quiet

    opts = rig.opts
    result: dict[str, Any] = {"server": name}
    server = rig.start_server(name)
    clients: list[ClientProcess] = []
    try:
        say(f"[{name}] server ready; warm-up")
        clients = rig.start_clients(server, opts.connections, "main")
        result["warmup"] = [c.receive(OPEN_TIMEOUT_S * 2)["warm"]["opened"] for c in clients]
        time.sleep(1.0)
        result["rss_baseline"] = memory_status(server.process.pid)
        census_before = server.probe("objects")
        redis_before = redis_facts(rig.redis)
        waited = wait_for_quiet(opts.quiet_wait)
        result["quiet_wait_s"] = round(waited, 1)

        say(f"[{name}] opening {opts.connections:,} connections")
        client_pids = [c.process.pid for c in clients]
        meter = Meter(rig, server.process.pid, client_pids)
        server.probe("gc")
        meter.start()
        opened = _ask_all(clients, "open", timeout=1800)
        result["open"] = {**_merge_open(opened), "cpu": meter.stop(), "gc": server.probe("gc")}
        heartbeats_before = _merge_stats(_ask_all(clients, "stats", timeout=120))["heartbeats"]
        result["rss_open"] = memory_status(server.process.pid)
        result["redis_open"] = redis_facts(rig.redis)
        conversations = _interleave([r["conversation_ids"] for r in opened])
        if name == "parley":
            rig.parley_conversations.extend(conversations)
        say(
            f"[{name}] {result['open']['opened']:,} open in {result['open']['elapsed_s']:.1f} s"
            f" ({result['open']['failed']} failed); holding {opts.hold:g} s"
        )

        meter.start()
        samples = []
        deadline = time.monotonic() + opts.hold
        while time.monotonic() < deadline:
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
            samples.append(memory_status(server.process.pid).get("VmRSS", 0))
        idle_cpu = meter.stop()
        idle_stats = _merge_stats(_ask_all(clients, "stats", timeout=120))
        idle_stats["heartbeats_during_hold"] = idle_stats["heartbeats"] - heartbeats_before
        idle_gc = server.probe("gc")
        held = memory_status(server.process.pid)
        redis_held = redis_facts(rig.redis)
        say(f"[{name}] object census")
        census_after = server.probe("objects", timeout=300)
        open_now = idle_stats["open"]
        result["idle"] = {
            "cpu": idle_cpu,
            "gc": idle_gc,
            "stats": idle_stats,
            "rss_end": held,
            "rss_peak_bytes": max([*samples, held.get("VmRSS", 0)]),
            "rss_samples_mib": [round(_mib(s), 1) for s in samples],
            "redis": redis_held,
            "redis_memory_delta_bytes": redis_held["used_memory"] - redis_before["used_memory"],
            "census": census_delta(census_before, census_after, open_now),
        }

        targets = conversations[: opts.fanout_conversations]
        say(
            f"[{name}] fan-out: {opts.rate:g} events/s over {len(targets):,} conversations "
            f"for {opts.fanout_warmup + opts.fanout_duration:g} s"
        )
        result["quiet_wait_fanout_s"] = round(wait_for_others(meter, opts.quiet_wait), 1)
        server.probe("gc")  # (the census's own collection is not the fan-out's)
        fan_started = now()
        meter.start()
        published = rig.run_publisher(server, targets)
        time.sleep(opts.drain)
        fan_cpu = meter.stop(extra_cpu_s=published["cpu_s"])
        fan_gc = server.probe("gc")
        after_fanout = _merge_stats(_ask_all(clients, "stats", timeout=120))
        delivered = after_fanout["recorded"]
        result["fanout"] = {
            "conversations": len(targets),
            "publisher": published,
            "delivered": delivered,
            "dropped": published["recorded"] - delivered,
            "latency_ms": after_fanout["latency_ms"],
            "slow_bursts": slow_bursts(after_fanout["slow"], fan_started),
            "server_stalls": [
                {**x, "at": round(x["at"] - fan_started, 3)} for x in fan_gc["stalls"]["list"]
            ],
            "gc_long_pauses": [
                {**x, "at": round(x["at"] - fan_started, 3)} for x in fan_gc["long_pauses"]
            ],
            "cpu": fan_cpu,
            "gc": {k: v for k, v in fan_gc.items() if k not in ("stalls", "long_pauses")},
            "worst_server_stall_ms": fan_gc["stalls"]["worst_ms"],
            "server_cpu_us_per_event": (
                1e6 * fan_cpu["server_cpu_s"] / published["published"]
                if published["published"]
                else None
            ),
            "closed_by_server": after_fanout["closed_by_server"],
            "redis": redis_facts(rig.redis),
            "rss_end": memory_status(server.process.pid),
            "client_cpu_s": after_fanout["client_cpu_s"],
            "client_max_rss_bytes": after_fanout["client_max_rss_bytes"],
        }
        result["redis_before"] = redis_before
        say(f"[{name}] closing")
        _ask_all(clients, "close", timeout=300)
        for client in clients:
            client.stop()
        clients = []
        settle(server)
        if name == "parley" and opts.profile_connections > 0:
            result["open_profiled"] = extra_open(rig, server, "profile")
        if opts.trace_connections > 0:
            result["open_traced"] = extra_open(rig, server, "trace")
    finally:
        for client in clients:
            client.stop()
        _stop(server.process)
    return result


def settle(server: Server, limit: float = 30.0) -> None:
    """Wait (up to `limit` s) until the server has finished closing connections."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = cpu_seconds(_process_tree(server.process.pid))
        time.sleep(1.0)
        if cpu_seconds(_process_tree(server.process.pid)) - before < 0.05:
            return


def extra_open(rig: Rig, server: Server, kind: str) -> dict[str, Any]:
    """New connections on the server whose load connections are closed, under cProfile
    (`profile`: where the server's time per connection opened goes) or tracemalloc (`trace`:
    the Python memory each one holds, started only now so that it sees nothing else)."""
    count = rig.opts.profile_connections if kind == "profile" else rig.opts.trace_connections
    say(f"[{server.name}] {count:,} new connections opened under {kind}")
    clients = rig.start_clients(server, count, kind)
    try:
        for client in clients:
            client.receive(OPEN_TIMEOUT_S * 2)
        started = cpu_seconds(_process_tree(server.process.pid))
        server.probe(f"{kind}-start")
        opened = _ask_all(clients, "open", timeout=900)
        if kind == "trace":
            time.sleep(2.0)  # the last readies sent, the sockets idle
        report = server.probe(f"{kind}-stop", timeout=300)
        spent = cpu_seconds(_process_tree(server.process.pid)) - started
        if server.name == "parley":
            rig.parley_conversations.extend(_interleave([r["conversation_ids"] for r in opened]))
        _ask_all(clients, "close", timeout=300)
    finally:
        for client in clients:
            client.stop()
    merged = _merge_open(opened)
    per = max(merged["opened"], 1)
    if kind == "profile":
        sql = report.get("sql", {})
        return {
            "open": merged,
            "server_cpu_ms_per_connection_profiled": 1000 * spent / per,
            "statements_per_connection": sql.get("statements", 0) / per,
            "checkouts_per_connection": sql.get("checkouts", 0) / per,
            "new_database_connections": sql.get("new_connections", 0),
            "profile": report,
            "by_area_ms_per_connection": [
                {**row, "ms_per_connection": 1000 * row["self_s"] / per}
                for row in report["by_area"]
            ],
        }
    return {
        "open": merged,
        "traced_bytes_per_connection": report["total_size_diff"] / per,
        "traced_blocks_per_connection": report["total_count_diff"] / per,
        "by_file": [
            {**row, "bytes_per_connection": row["size_diff"] / per}
            for row in report["filename"][:15]
        ],
        "by_line": [
            {**row, "bytes_per_connection": row["size_diff"] / per} for row in report["lineno"][:20]
        ],
    }


# Setup ---------------------------------------------------------------------------------------


async def seed(count: int) -> tuple[str, list[str]]:
    """A workspace with an assistant that allows every origin, and `count` visitor tokens."""
    from backend.assistants import schemas as assistant_schemas
    from backend.assistants.service import create_assistant
    from backend.auth.service import create_user
    from backend.db import get_engine, unit_of_work
    from backend.jobs import close_arq_pool
    from backend.models import ModelProvider, Role
    from backend.tenancy.context import TenantContext, TenantId
    from backend.tenancy.permissions import ROLE_PERMISSIONS
    from backend.tenancy.service import create_tenant
    from backend.widget.visitors import assistant_by_key, issue_token, new_visitor_id
    from bench.database import SEED_PASSWORD

    try:
        suffix = uuid.uuid4().hex[:8]
        async with unit_of_work() as session:
            user = await create_user(
                session,
                email=f"bench-widget-{suffix}@example.com",
                password=SEED_PASSWORD,
                full_name="Bench Owner",
                verified=True,
            )
            tenant = await create_tenant(
                session, owner_id=user.id, name="Widget benchmark", slug=f"bench-widget-{suffix}"
            )
            ctx = TenantContext(
                tenant_id=TenantId(tenant.id),
                permissions=ROLE_PERMISSIONS[Role.owner],
                user_id=user.id,
                role=Role.owner,
            )
            assistant = await create_assistant(
                session,
                ctx,
                assistant_schemas.AssistantCreate(
                    name="Harbour Shoes",
                    provider=ModelProvider.offline,
                    allow_all_origins=True,
                    welcome_message="Hi! Ask me anything.",
                ),
            )
            public_key = assistant.public_key
        async with unit_of_work() as session:
            widget_assistant = await assistant_by_key(session, public_key)
        tokens = [issue_token(widget_assistant, new_visitor_id())[0] for _ in range(count)]
    finally:
        await close_arq_pool()
        await get_engine().dispose()
    return public_key, tokens


async def count_conversations(db: BenchDatabase) -> int:
    import asyncpg

    from bench.database import plain_url

    conn = await asyncpg.connect(plain_url(db.owner_url))
    try:
        return int(await conn.fetchval("SELECT count(*) FROM conversations"))
    finally:
        await conn.close()


def cleanup_redis(client: redis_sync.Redis, conversation_ids: list[str]) -> None:
    """Delete the streams and counters Parley kept for the benchmark's conversations."""
    for start in range(0, len(conversation_ids), 1000):
        keys = []
        for cid in conversation_ids[start : start + 1000]:
            keys += [f"{CHANNEL_PREFIX}{cid}:seq", f"{CHANNEL_PREFIX}{cid}:events"]
        client.delete(*keys)


# Verdicts and reports ------------------------------------------------------------------------


def verdicts(
    results: dict[str, dict[str, Any]], bundle: dict[str, Any], opts: argparse.Namespace
) -> list[dict[str, Any]]:
    checked: list[dict[str, Any]] = []
    parley = results.get("parley")
    if parley is not None:
        opened = parley["open"]["opened"]
        still_open = parley["idle"]["stats"]["open"]
        peak = parley["idle"]["rss_peak_bytes"]
        enough = opts.connections >= IDLE_GOAL_CONNECTIONS
        checked.append(
            {
                "goal": f"{IDLE_GOAL_CONNECTIONS:,} idle connections, RSS <= "
                f"{RSS_GOAL_BYTES / 1e9:g} GB",
                "passed": enough
                and opened == opts.connections
                and still_open == opened
                and peak <= RSS_GOAL_BYTES,
                "detail": f"{opened:,} of {opts.connections:,} opened, {still_open:,} still open "
                f"after {opts.hold:g} s; peak RSS {peak / 1e9:.3f} GB ({_mib(peak):,.0f} MiB)"
                + ("" if enough else "; fewer connections than the goal's"),
            }
        )
        fan = parley["fanout"]
        rate = fan["publisher"]["rate_per_s"]
        p95 = fan["latency_ms"]["p95_ms"]
        checked.append(
            {
                "goal": f"{FANOUT_GOAL_RATE:,.0f} messages/s fanned out, p95 delivery <= "
                f"{FANOUT_P95_GOAL_MS:g} ms",
                "passed": opts.rate >= FANOUT_GOAL_RATE
                and rate >= RATE_HELD * FANOUT_GOAL_RATE
                and fan["dropped"] == 0
                and p95 <= FANOUT_P95_GOAL_MS,
                "detail": f"{rate:,.0f} events/s published, {fan['delivered']:,} of "
                f"{fan['publisher']['recorded']:,} delivered ({fan['dropped']:,} dropped), "
                f"p95 {p95:.1f} ms (p99 {fan['latency_ms']['p99_ms']:.1f} ms, max "
                f"{fan['latency_ms']['max_ms']:.1f} ms)",
            }
        )
    if "gzip_bytes" in bundle:
        checked.append(
            {
                "goal": f"widget bundle <= {BUNDLE_GOAL_BYTES / 1024:g} KB gzipped",
                "passed": bundle["gzip_bytes"] <= BUNDLE_GOAL_BYTES,
                "detail": f"{bundle['gzip_bytes']:,} bytes gzipped "
                f"({bundle['gzip_bytes'] / 1024:.1f} KB), {bundle['raw_bytes']:,} raw",
            }
        )
    else:
        checked.append(
            {"goal": "widget bundle size", "passed": False, "detail": bundle.get("error", "")}
        )
    return checked


def _f(value: Any, fmt: str = ",.1f") -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    return format(value, fmt)


def _ratio(a: Any, b: Any) -> str:
    if not isinstance(a, int | float) or not isinstance(b, int | float) or not b:
        return ""
    return f"{a / b:.1f}x"


def summary_rows(results: dict[str, dict[str, Any]]) -> list[list[str]]:
    """The side-by-side table: one row per measure, a column per server, then Parley / bare."""
    names = [n for n in ("parley", "bare") if n in results]
    rows: list[list[str]] = []

    def pick(name: str, path: str) -> Any:
        value: Any = results[name]
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return value

    def number(label: str, values: list[Any], fmt: str = ",.1f", ratio: bool = True) -> None:
        extra = _ratio(values[0], values[1]) if ratio and len(values) == 2 else ""
        rows.append([label, *(_f(v, fmt) for v in values), extra])

    def pair(label: str, first: str, second: str, fmt: str = ",.1f") -> None:
        cells = [f"{_f(pick(n, first), fmt)} / {_f(pick(n, second), fmt)}" for n in names]
        rows.append([label, *cells, ""])

    def per_opened(name: str, path: str, scale: float = 1.0) -> float | None:
        value, opened = pick(name, path), pick(name, "open.opened")
        return scale * value / opened if isinstance(value, int | float) and opened else None

    def per_open(name: str, after: str, before: str, scale: float = 1.0) -> float | None:
        end, start, count = pick(name, after), pick(name, before), pick(name, "idle.stats.open")
        if not isinstance(end, int | float) or not isinstance(start, int | float) or not count:
            return None
        return float((end - start) / count / scale)

    def share(name: str, phase: str) -> float | None:
        spent, wall = pick(name, f"{phase}.cpu.server_cpu_s"), pick(name, f"{phase}.cpu.wall_s")
        return 100 * spent / wall if isinstance(spent, int | float) and wall else None

    number("connections opened", [pick(n, "open.opened") for n in names], ",d", False)
    number("failed to open", [pick(n, "open.failed") for n in names], ",d", False)
    number("time to open all, s", [pick(n, "open.elapsed_s") for n in names])
    number(
        "opened per second",
        [1 / x if (x := per_opened(n, "open.elapsed_s")) else None for n in names],
        ",.0f",
    )
    pair("handshake p50 / p95, ms", "open.handshake_ms.p50_ms", "open.handshake_ms.p95_ms")
    pair(
        "hello to ready p50 / p95, ms",
        "open.hello_to_ready_ms.p50_ms",
        "open.hello_to_ready_ms.p95_ms",
    )
    number(
        "server CPU per connection opened, ms",
        [per_opened(n, "open.cpu.server_cpu_s", 1000) for n in names],
        ",.2f",
    )
    number(
        "PostgreSQL CPU per connection opened, ms",
        [per_opened(n, "open.cpu.postgres_cpu_s", 1000) for n in names],
        ",.2f",
        False,
    )
    number(
        "Redis CPU per connection opened, ms",
        [per_opened(n, "open.cpu.redis_cpu_s", 1000) for n in names],
        ",.2f",
    )
    number("RSS at baseline, MiB", [_mib(pick(n, "rss_baseline.VmRSS") or 0) for n in names])
    number("RSS peak while idle, MiB", [_mib(pick(n, "idle.rss_peak_bytes") or 0) for n in names])
    number(
        "RSS per connection, KiB",
        [per_open(n, "idle.rss_end.VmRSS", "rss_baseline.VmRSS", 1024) for n in names],
    )
    number(
        "anonymous RSS per connection, KiB",
        [per_open(n, "idle.rss_end.RssAnon", "rss_baseline.RssAnon", 1024) for n in names],
    )
    number(
        "asyncio tasks per connection",
        [pick(n, "idle.census.tasks_per_connection") for n in names],
        ",.2f",
    )
    number(
        "gc-tracked objects per connection",
        [pick(n, "idle.census.gc_objects_per_connection") for n in names],
    )
    number(
        "Redis memory per connection, bytes",
        [per_open(n, "idle.redis.used_memory", "redis_before.used_memory") for n in names],
        ",.0f",
    )
    number(
        "Redis clients while open",
        [pick(n, "redis_open.connected_clients") for n in names],
        ",d",
        False,
    )
    number(
        "connections dropped while idle",
        [pick(n, "idle.stats.closed_by_server") for n in names],
        ",d",
        False,
    )
    number(
        "heartbeats received during the hold",
        [pick(n, "idle.stats.heartbeats_during_hold") for n in names],
        ",d",
        False,
    )
    number("server CPU while idle, % of a core", [share(n, "idle") for n in names])
    for phase, title in (("open", "opening"), ("idle", "idle"), ("fanout", "fan-out")):
        pair(
            f"full GC passes while {title}: count / longest ms",
            f"{phase}.gc.gen2.collections",
            f"{phase}.gc.gen2.max_ms",
            ",.0f",
        )
    number(
        "fan-out: events/s published",
        [pick(n, "fanout.publisher.rate_per_s") for n in names],
        ",.0f",
        False,
    )
    pair("fan-out: delivered / published", "fanout.delivered", "fanout.publisher.recorded", ",d")
    for pct in ("p50", "p95", "p99", "max"):
        number(
            f"fan-out: delivery {pct}, ms",
            [pick(n, f"fanout.latency_ms.{pct}_ms") for n in names],
            ",.2f",
        )
    number("fan-out: server CPU, % of a core", [share(n, "fanout") for n in names])
    number(
        "fan-out: server CPU per event, µs",
        [pick(n, "fanout.server_cpu_us_per_event") for n in names],
        ",.0f",
    )
    number(
        "fan-out: publisher lateness p99, ms",
        [pick(n, "fanout.publisher.lateness_ms.p99_ms") for n in names],
        ",.2f",
        False,
    )
    return rows


def render_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def render_verdicts(checked: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{'PASS' if v['passed'] else 'FAIL'}  {v['goal']}: {v['detail']}" for v in checked
    )


def _header(results: dict[str, dict[str, Any]]) -> list[str]:
    labels = {"parley": "Parley", "bare": "bare websockets"}
    names = [labels[n] for n in ("parley", "bare") if n in results]
    return ["", *names, "Parley / bare" if len(names) == 2 else ""]


def render_extra(report: dict[str, Any]) -> str:
    """The object census and, when traced, where Python memory goes per connection."""
    lines = []
    for name, result in report["servers"].items():
        fan = result["fanout"]
        bursts = fan["slow_bursts"]
        lines.append(
            f"{name}: fan-out deliveries over {SLOW_MS:g} ms: "
            f"{sum(b['events'] for b in bursts):,} in {len(bursts)} bursts; server event-loop "
            f"stalls over {1000 * LONG_PAUSE_S:g} ms: {len(fan['server_stalls'])} (worst "
            f"{fan['worst_server_stall_ms']:.0f} ms); GC pauses over {1000 * LONG_PAUSE_S:g} ms: "
            f"{len(fan['gc_long_pauses'])}; server page faults: "
            f"{fan['cpu']['server_minor_faults']:,} minor, {fan['cpu']['server_major_faults']:,} "
            "major (times: seconds after the fan-out began)"
        )
        for burst in bursts[:6]:
            lines.append(
                f"  slow  +{burst['at']:6.2f} s  {burst['events']:5,} events over "
                f"{burst['span_s']:.2f} s, max {burst['max_ms']:.0f} ms"
            )
        for stall in fan["server_stalls"][:8]:
            lines.append(f"  stall +{stall['at']:6.2f} s  {stall['ms']:.0f} ms")
        for pause in fan["gc_long_pauses"][:8]:
            lines.append(
                f"  gc    +{pause['at']:6.2f} s  gen{pause['generation']} {pause['ms']:.0f} ms, "
                f"{pause['collected']:,} objects collected"
            )
    for name, result in report["servers"].items():
        census = result["idle"]["census"]
        lines.append(f"{name}: objects per idle connection (gc census, top types by count)")
        for row in census["types_per_connection"][:12]:
            lines.append(
                f"  {row['count']:6.2f}  {row['type']}  ({row['shallow_bytes']:,.0f} B shallow)"
            )
        lines.append(
            f"  objects in the young GC generations at the end of the hold: "
            f"{census.get('young_generations_at_end')}; glibc heap "
            f"{_mib(census.get('malloc_heap_after_bytes') or 0):,.0f} MiB, of it free "
            f"{_mib(census.get('malloc_free_after_bytes') or 0):,.0f} MiB"
        )
        if census.get("parley"):
            lines.append(f"  Parley: {census['parley']}")
        profiled = result.get("open_profiled")
        if profiled:
            lines.append(
                f"{name}: server self time per connection opened, under cProfile "
                f"({profiled['open']['opened']:,} connections; "
                f"{profiled['server_cpu_ms_per_connection_profiled']:.2f} ms CPU each, profiled)"
            )
            for row in profiled["by_area_ms_per_connection"][:14]:
                lines.append(f"  {row['ms_per_connection']:6.3f} ms  {row['area']}")
            lines.append(
                f"  SQL statements per connection: {profiled['statements_per_connection']:.1f}, "
                f"pool checkouts: {profiled['checkouts_per_connection']:.1f}, new database "
                f"connections: {profiled['new_database_connections']:,}; "
                f"{profiled['profile']['sql']['by_statement']}"
            )
            lines.append("  top functions by self time (s, all connections):")
            for row in profiled["profile"]["by_function"][:15]:
                lines.append(
                    f"  {row['self_s']:7.3f} s  {row['calls']:>8,} calls  {row['where'][:100]}"
                )
        traced = result.get("open_traced")
        if traced:
            lines.append(
                f"{name}: Python allocations per connection under tracemalloc "
                f"({traced['open']['opened']:,} connections): "
                f"{traced['traced_bytes_per_connection']:,.0f} B in "
                f"{traced['traced_blocks_per_connection']:,.0f} blocks"
            )
            for row in traced["by_file"][:10]:
                lines.append(f"  {row['bytes_per_connection']:8,.0f} B  {row['where']}")
            lines.append("  by line:")
            for row in traced["by_line"][:14]:
                lines.append(f"  {row['bytes_per_connection']:8,.0f} B  {row['where']}")
    return "\n".join(lines)


def render_markdown(report: dict[str, Any], rows: list[list[str]]) -> str:
    header = _header(report["servers"])
    machine = report["machine"]
    bundle = report["bundle"]
    parts = [
        f"# Widget connections and fan-out, {report['started_at']}",
        "",
        f"`{report['command']}`",
        "",
        f"{machine['nproc']} CPUs ({machine['cpu_model']}), {machine['memory_gib']} GiB, "
        f"Python {machine['python']}, {machine['os']}",
        "",
        markdown_table(header, rows),
        "",
        f"Bundle: {bundle.get('raw_bytes', '-')} bytes raw, {bundle.get('gzip_bytes', '-')} "
        "bytes gzipped (level 9)",
        "",
        "```",
        render_verdicts(report["verdicts"]),
        "```",
        "",
        "```",
        render_extra(report),
        "```",
        "",
    ]
    return "\n".join(parts)


# Entry points --------------------------------------------------------------------------------


def run(opts: argparse.Namespace) -> int:
    from bench import database
    from bench.api_overhead import server_env

    admin_url = opts.admin_url or os.environ.get("PARLEY_TEST_ADMIN_DATABASE_URL")
    opts.redis_url = opts.redis_url or os.environ.get("PARLEY_TEST_REDIS_URL")
    if not admin_url or not opts.redis_url:
        print(
            "bench: set PARLEY_TEST_ADMIN_DATABASE_URL and PARLEY_TEST_REDIS_URL (make bench "
            "does), or pass --admin-url and --redis-url",
            file=sys.stderr,
        )
        return 2
    if opts.pin and (shutil.which("taskset") is None or (os.cpu_count() or 1) < 2):
        print("bench: taskset or a second CPU is missing; running unpinned", file=sys.stderr)
        opts.pin = False
    order = [s.strip() for s in opts.order.split(",") if s.strip()]
    if not order or any(s not in ("parley", "bare") for s in order):
        print("bench: --order takes parley and/or bare, comma separated", file=sys.stderr)
        return 2
    needed = opts.connections + max(opts.profile_connections, opts.trace_connections) + FD_SLACK
    limit = raise_file_limit(needed)
    if limit < needed:
        print(
            f"bench: the open-file limit is {limit}, below the {needed} needed; lower "
            "--connections or raise the hard limit (ulimit -Hn)",
            file=sys.stderr,
        )
        return 2

    import redis as redis_sync

    machine = machine_info()
    started_at = datetime.now(UTC)
    print(
        f"bench widget-sockets: {machine['nproc']} CPUs ({machine['cpu_model']}), "
        f"load average {machine['load_average_at_start']}, open-file limit {limit}",
        flush=True,
    )
    bundle = bundle_size(build=opts.build_widget)
    say(f"Bundle: {bundle}")

    db = database.BenchDatabase(admin_url, opts.database, APP_ROLE_USER, APP_ROLE_PASSWORD)
    results: dict[str, dict[str, Any]] = {}
    facts: dict[str, Any] = {}
    redis_client = redis_sync.Redis.from_url(opts.redis_url, decode_responses=True)
    previous_term = signal.signal(signal.SIGTERM, _terminate)
    with tempfile.TemporaryDirectory(prefix="parley-bench-widget-") as tmp:
        work = Path(tmp)
        env = server_env(db.app_url, opts.redis_url, 0)
        env.update(
            {
                "PARLEY_DATA_DIR": str(work / "data"),
                "PARLEY_WIDGET_HEARTBEAT_SECONDS": str(opts.heartbeat),
            }
        )
        os.environ.update(env)
        rig: Rig | None = None
        try:
            say(f"Creating database {db.name}, migrating, seeding")
            asyncio.run(database.recreate(db))
            database.migrate(db)
            per_process_warmup = opts.warmup_connections * opts.client_processes
            tokens_needed = (
                opts.connections
                + opts.trace_connections
                + opts.profile_connections
                + 3 * per_process_warmup
            ) * len(order)
            started = time.monotonic()
            public_key, tokens = asyncio.run(seed(tokens_needed))
            facts["tokens_minted"] = len(tokens)
            facts["token_minting_s"] = round(time.monotonic() - started, 2)
            rig = Rig(opts, db, env, redis_client, public_key, iter(tokens), work)
            for name in order:
                say(f"Measuring {name}")
                results[name] = measure_server(rig, name)
            facts["conversation_rows"] = asyncio.run(count_conversations(db))
        finally:
            signal.signal(signal.SIGTERM, previous_term)
            if rig is not None:
                with contextlib.suppress(Exception):
                    cleanup_redis(redis_client, rig.parley_conversations)
            if not opts.keep_database:
                asyncio.run(database.drop(db))
            redis_client.close()

    checked = verdicts(results, bundle, opts)
    rows = summary_rows(results)
    from bench.serve import fastest_implementations

    loop, http = fastest_implementations()
    noisy = [
        f"{name} {phase}: other load {results[name][phase]['cpu']['other_load_pct']:.0f}% of a core"
        for name in results
        for phase in ("open", "idle", "fanout")
        if results[name][phase]["cpu"]["other_load_pct"] > OTHER_LOAD_WARN_PCT
    ]
    report: dict[str, Any] = {
        "benchmark": "widget-sockets",
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["python", "-m", "bench", *opts.argv]),
        "machine": machine,
        "settings": {
            "connections": opts.connections,
            "client_processes": opts.client_processes,
            "open_concurrency": opts.open_concurrency,
            "warmup_connections_per_client": opts.warmup_connections,
            "hold_s": opts.hold,
            "heartbeat_s": opts.heartbeat,
            "rate": opts.rate,
            "fanout_conversations": opts.fanout_conversations,
            "fanout_warmup_s": opts.fanout_warmup,
            "fanout_duration_s": opts.fanout_duration,
            "drain_s": opts.drain,
            "trace_connections": opts.trace_connections,
            "profile_connections": opts.profile_connections,
            "order": order,
            "uvicorn": {"workers": 1, "loop": loop, "http": http, "ws_per_message_deflate": False},
            "pinned": {"server_cpu": SERVER_CPU, "client_and_publisher_cpu": CLIENT_CPU}
            if opts.pin
            else None,
        },
        "setup": facts,
        "bundle": bundle,
        "servers": results,
        "verdicts": checked,
        "noisy_phases": noisy,
    }
    print()
    print(render_table(_header(results), rows))
    print()
    print(render_extra(report))
    print()
    print(render_verdicts(checked))
    for line in noisy:
        print(f"warning: noisy phase, {line}")
    output = Path(opts.output) if opts.output else default_output(started_at)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    output.with_suffix(".md").write_text(render_markdown(report, rows))
    print(f"\nResults written to {output} (and a Markdown summary, {output.with_suffix('.md')})")
    return 0


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # unwinds through the cleanup, as Ctrl-C does


def default_output(started_at: datetime) -> Path:
    return ROOT / ".data" / "bench" / f"widget-sockets-{started_at:%Y%m%dT%H%M%SZ}.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--connections", type=int, default=IDLE_GOAL_CONNECTIONS, help="connections per server"
    )
    parser.add_argument("--hold", type=float, default=30.0, help="seconds the idle load is held")
    parser.add_argument(
        "--heartbeat",
        type=float,
        default=25.0,
        help="seconds between heartbeats, both servers (PARLEY_WIDGET_HEARTBEAT_SECONDS' default)",
    )
    parser.add_argument("--rate", type=float, default=FANOUT_GOAL_RATE, help="events/s published")
    parser.add_argument(
        "--fanout-conversations",
        type=int,
        default=1000,
        help="conversations the events go to, round-robin (one socket each)",
    )
    parser.add_argument(
        "--fanout-duration", type=float, default=20.0, help="recorded seconds of fan-out"
    )
    parser.add_argument(
        "--fanout-warmup", type=float, default=3.0, help="unrecorded seconds before them"
    )
    parser.add_argument(
        "--drain", type=float, default=3.0, help="seconds to wait for the last events"
    )
    parser.add_argument(
        "--client-processes", type=int, default=2, help="load client processes (CPU 1)"
    )
    parser.add_argument(
        "--open-concurrency", type=int, default=100, help="handshakes in flight, all clients"
    )
    parser.add_argument(
        "--warmup-connections",
        type=int,
        default=20,
        help="connections per client process opened and closed before the baseline",
    )
    parser.add_argument(
        "--trace-connections",
        type=int,
        default=1000,
        help="connections opened under tracemalloc at the end, per server (0: skip it)",
    )
    parser.add_argument(
        "--profile-connections",
        type=int,
        default=1000,
        help="connections opened under cProfile after Parley's fan-out (0: skip it)",
    )
    parser.add_argument(
        "--order", default="parley,bare", help="servers to measure, in order (parley,bare)"
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=30.0,
        help="before each open and fan-out phase, wait up to this long for other load to stop",
    )
    parser.add_argument(
        "--no-build",
        dest="build_widget",
        action="store_false",
        help="do not build the widget when widget/dist/widget.js is missing",
    )
    parser.add_argument(
        "--no-pin", dest="pin", action="store_false", help="do not pin servers and clients"
    )
    parser.add_argument("--database", default="parley_bench_widget", help="database to (re)create")
    parser.add_argument("--keep-database", action="store_true", help="do not drop it at the end")
    parser.add_argument(
        "--admin-url", help="superuser URL (default PARLEY_TEST_ADMIN_DATABASE_URL)"
    )
    parser.add_argument("--redis-url", help="Redis URL (default PARLEY_TEST_REDIS_URL)")
    parser.add_argument("--output", help="JSON results file (default .data/bench/...)")


def process_main(argv: list[str]) -> int:
    """`python -m bench.widget_sockets bare|client|publish ...`: the processes the benchmark
    starts."""
    parser = argparse.ArgumentParser(prog="python -m bench.widget_sockets")
    roles = parser.add_subparsers(dest="role", required=True)
    bare = roles.add_parser("bare", help="the bare websockets server")
    bare.add_argument("--port", type=int, required=True)
    bare.add_argument("--redis-url", required=True)
    bare.add_argument("--heartbeat", type=float, required=True)
    client = roles.add_parser("client", help="a load client, driven over stdin/stdout")
    client.add_argument("--spec", type=Path, required=True)
    publish = roles.add_parser("publish", help="the publisher; prints JSON")
    publish.add_argument("--spec", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.role == "bare":
        run_async(serve_bare(args.port, args.redis_url, args.heartbeat))
        return 0
    spec = json.loads(args.spec.read_text())
    if args.role == "client":
        run_async(client_main(spec))
        return 0
    json.dump(run_async(publisher_main(spec)), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(process_main(sys.argv[1:]))
