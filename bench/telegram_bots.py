"""Benchmark: Telegram webhook acknowledgement latency, and a burst of sends within the limits.

    python -m bench telegram-bots [--rate 500] [--rounds 2] [--duration 10] [--burst-messages N]

Part 1, the webhook. Three servers, started with the uvicorn settings of `parley api`
(bench/serve.py, one worker), measured side by side in one run:

  bare-ok       a bare FastAPI app: POST /telegram/webhook/{bot_id} reads the JSON update and
                answers {"ok": true}; nothing else;
  bare-enqueue  the same bare endpoint, which also enqueues the very job Parley enqueues (same
                function, arguments and `_job_id`, through `backend.jobs.enqueue_now`);
  parley        Parley, POST /telegram/webhook/{bot_id}: its middleware, the request's
                transaction, the bot looked up through the lookup RLS policy (connected as the
                app's login role), the secret's hash compared in constant time, the ARQ job
                enqueued, {"ok": true}.

Setup: a throwaway database (the real migrations, the app's login role), --bots workspaces with
an assistant and a bot each, connected with Parley's own service against the Telegram stand-in
(tests/standins/telegram_api.py, strict about HTTPS webhooks: the webhook base URL is
https://parley.example.com); each bot's secret is read from the webhook the stand-in recorded.
Updates are realistic private-chat text messages, each with a new update_id, spread over the
bots, sent with the right secret. No ARQ worker runs: the queue just fills (the benchmark checks
that every acknowledged update is in it, and removes the jobs at the end).

Each server gets a sequential phase (one connection, the next request as soon as the answer is
in: the cost of one request without queueing), then --rounds open-loop phases at --rate updates/s
(request i is due at start + i / rate; its latency counts from that due time, so a server that
falls behind shows up as latency). Rounds alternate the order of the servers. Parley and the bare
servers run on CPU 0, the load client (a process of its own) on CPU 1; PostgreSQL and Redis are
shared and not pinned. Each phase records where the CPU went (server, its PostgreSQL backends,
Redis, load client, anything else) and the Redis commands the server issued.

Part 2, the burst. --burst-messages answers (10,000) to --burst-chats private chats (100) of one
bot go through `backend.telegram.sender.send_html` (Parley's Redis limiter, `book_slot`, and its
retries) with the limiter settings at their defaults (the real limits: 1 message/s per chat,
30/s per bot). One task per chat sends that chat's answers one after the other; all chats start
at once. The Bot API is the stand-in with `enforce_limits=True` in a process of its own (CPU 1),
which answers 429 with `retry_after` to a send over a limit (per chat a bucket of 3 refilled at
1/s, per bot a bucket of 30 refilled at 30/s) and counts those 429s. The driver runs on CPU 0.

The theoretical minimum under those limits: the bot's bucket lets the first 30 sends go at once
and one every 1/30 s after that, so the N-th send is admitted at (N - 30) / 30 s at the earliest;
a chat's bucket lets its first 3 go at once, then one a second, so its M-th send goes at M - 3 s
at the earliest. For 10,000 sends over 100 chats of 100: max(9,970 / 30, 97) = 332.3 s.

Redis: the benchmark uses its own Redis database (--redis-db, default 11), because the test
suite flushes database 0 between tests and would wipe the queue and the limiter's keys; it
deletes its own keys at the end.

The goals checked (from the Telegram issue): webhook acknowledgement p99 <= 20 ms at 500
updates/s; in the 10,000-message burst, under 0.1 % of sends get a 429. The total time of the
burst is reported against the theoretical minimum. The benchmark exits 0 whether or not the goals
are met, non-zero on errors.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any, TypeVar, cast

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from bench import database
from bench.api_overhead import (
    OTHER_LOAD_WARN_PCT,
    CpuMeter,
    Server,
    Target,
    machine_info,
    server_env,
    start_server,
    stop_server,
    wait_for_quiet,
    wait_ready,
)
from bench.collector import collector_paused
from bench.serve import fastest_implementations
from bench.stats import latency_summary, ratio

ROOT = Path(__file__).resolve().parent.parent

# Goals (from the Telegram issue).
P99_GOAL_MS = 20.0
GOAL_RATE = 500.0
BURST_MESSAGES = 10_000
BURST_CHATS = 100
TOO_MANY_REQUESTS_GOAL = 0.001  # share of sends answered 429

# Telegram's limits as the stand-in enforces them: (bucket capacity, refill per second).
BOT_BUCKET = (30.0, 30.0)
CHAT_BUCKET = (3.0, 1.0)
# The limiter settings Parley is run with: their defaults, the real limits.
LIMIT_SETTINGS = (
    "PARLEY_TELEGRAM_CHAT_MESSAGES_PER_SECOND",
    "PARLEY_TELEGRAM_BOT_MESSAGES_PER_SECOND",
    "PARLEY_TELEGRAM_GROUP_MESSAGES_PER_MINUTE",
    "PARLEY_TELEGRAM_SEND_ATTEMPTS",
)

SERVER_CPU = "0"  # the servers, and the burst's driver
CLIENT_CPU = "1"  # the load client, and the Bot API stand-in of the burst

DATABASE = "parley_bench_telegram"
APP_ROLE_USER = "parley_bench_telegram_app"
APP_ROLE_PASSWORD = "parley-bench-telegram-app-password"  # noqa: S105 (throwaway role)
REDIS_DB = 11
WEBHOOK_BASE_URL = "https://parley.example.com"
WEBHOOK_PATH = "/telegram/webhook/{bot_id}"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 (a header name)
JOB_FUNCTION = "process_telegram_update"
ARQ_QUEUE = "arq:queue"
# The bare enqueueing app learns each bot's workspace from this variable (JSON), so that the job
# it enqueues is exactly Parley's.
BOT_TENANTS_ENV = "PARLEY_BENCH_TELEGRAM_BOT_TENANTS"
QUESTION = "Hello! When does the shop open on Saturdays, and can I pick up an order there?"
FIRST_USER_ID = 6_100_000_001
USERS = 100
FIRST_UPDATE_ID = 900_000_000
BURST_FIRST_CHAT_ID = 6_200_000_001

T = TypeVar("T")


def run_async(main: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


# The bare baselines ----------------------------------------------------------------------------


async def _read_update(request: Request) -> dict[str, Any] | JSONResponse:
    try:
        update = await request.json()
    except ValueError:
        return JSONResponse({"ok": False}, status_code=400)
    if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
        return JSONResponse({"ok": False}, status_code=400)
    return update


def create_bare_ok_app() -> FastAPI:
    """Reads the update and answers {"ok": true}: HTTP, routing and JSON, nothing more."""
    app = FastAPI(title="Bare webhook")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post(WEBHOOK_PATH)
    async def webhook(bot_id: uuid.UUID, request: Request) -> Any:
        update = await _read_update(request)
        if isinstance(update, JSONResponse):
            return update
        return {"ok": True}

    return app


def create_bare_enqueue_app() -> FastAPI:
    """Reads the update and enqueues Parley's job for it (same id), then answers {"ok": true}."""
    from backend.jobs import close_arq_pool, enqueue_now, get_arq_pool
    from backend.telegram.tasks import update_job_id

    tenants: dict[str, str] = json.loads(os.environ.get(BOT_TENANTS_ENV, "{}"))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await get_arq_pool()
        yield
        await close_arq_pool()

    app = FastAPI(title="Bare webhook, enqueueing", lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post(WEBHOOK_PATH)
    async def webhook(bot_id: uuid.UUID, request: Request) -> Any:
        update = await _read_update(request)
        if isinstance(update, JSONResponse):
            return update
        tenant = tenants.get(str(bot_id), str(bot_id))
        await enqueue_now(
            JOB_FUNCTION,
            tenant,
            str(bot_id),
            update,
            _job_id=update_job_id(bot_id, int(update["update_id"])),
        )
        return {"ok": True}

    return app


# The load client (a process of its own) --------------------------------------------------------


def _update(update_id: int, number: int) -> dict[str, Any]:
    """A private-chat text message, as Telegram delivers it."""
    user_id = FIRST_USER_ID + number % USERS
    user = {
        "id": user_id,
        "is_bot": False,
        "first_name": "Ada",
        "last_name": "Lovelace",
        "username": f"ada_{user_id}",
        "language_code": "en",
    }
    chat = {k: user[k] for k in ("id", "first_name", "last_name", "username")}
    return {
        "update_id": update_id,
        "message": {
            "message_id": 1000 + number,
            "from": user,
            "chat": {**chat, "type": "private"},
            "date": int(time.time()),
            "text": QUESTION,
        },
    }


class _Recorder:
    def __init__(self) -> None:
        self.latencies_ms: list[float] = []
        self.errors: Counter[str] = Counter()
        self.answered_ok = 0  # every 200, warm-up included: what the server accepted
        self.last_done = 0.0

    async def post(
        self,
        http: Any,
        url: str,
        body: bytes,
        headers: dict[str, str],
        due: float,
        keep: bool,
    ) -> None:
        import aiohttp

        try:
            async with http.post(url, data=body, headers=headers) as response:
                answer = await response.read()
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
        if status == 200:
            self.answered_ok += 1
        if not keep:
            return
        self.last_done = max(self.last_done, done)
        if status == 200 and answer.replace(b" ", b"") == b'{"ok":true}':
            self.latencies_ms.append((done - due) * 1000)
        else:
            self.errors[f"status_{status}"] += 1


async def run_load(spec: dict[str, Any]) -> dict[str, Any]:
    """Open loop (`rate` updates/s) or sequential (one connection), over the spec's bots."""
    import aiohttp

    targets: list[dict[str, str]] = spec["targets"]
    warm = int(spec["warmup_requests"])
    total = warm + int(spec["requests"])
    first = int(spec["first_update_id"])
    bodies = [json.dumps(_update(first + i, i)).encode() for i in range(total)]
    headers = [{"Content-Type": "application/json", SECRET_HEADER: t["secret"]} for t in targets]
    urls = [t["url"] for t in targets]
    recorder = _Recorder()
    connections = 1 if spec["mode"] == "sequential" else int(spec["connections"])
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections)
    lags_ms: list[float] = []
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=float(spec["timeout"])),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
    ) as http:
        if spec["mode"] == "sequential":
            measured_start = 0.0
            for i in range(total):
                if i == warm:
                    measured_start = time.perf_counter()
                n = i % len(targets)
                started = time.perf_counter()
                await recorder.post(http, urls[n], bodies[i], headers[n], started, i >= warm)
            elapsed = time.perf_counter() - measured_start
        else:
            rate = float(spec["rate"])
            tasks: set[asyncio.Task[None]] = set()
            start = time.perf_counter() + 0.05
            measured_start = start + warm / rate
            for i in range(total):
                due = start + i / rate
                await asyncio.sleep(max(due - time.perf_counter(), 0.0))
                keep = i >= warm
                if keep:
                    lags_ms.append(max(0.0, time.perf_counter() - due) * 1000)
                n = i % len(targets)
                task = asyncio.create_task(
                    recorder.post(http, urls[n], bodies[i], headers[n], due, keep)
                )
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            schedule_end = start + total / rate
            await asyncio.gather(*tasks)
            elapsed = max(schedule_end, recorder.last_done) - measured_start
    lags_ms.sort()
    ok = len(recorder.latencies_ms)
    return {
        "mode": spec["mode"],
        "target_rps": spec.get("rate"),
        "connections": connections,
        "sent": total - warm,
        "sent_including_warmup": total,
        "ok": ok,
        "errors": sum(recorder.errors.values()),
        "errors_by_kind": dict(recorder.errors),
        "answered_ok_including_warmup": recorder.answered_ok,
        "achieved_rps": ok / elapsed if elapsed > 0 else 0.0,
        "send_lag_max_ms": lags_ms[-1] if lags_ms else 0.0,
        "mean_body_bytes": sum(len(b) for b in bodies) / len(bodies),
        **latency_summary(recorder.latencies_ms),
        "latencies_ms": [round(v, 3) for v in recorder.latencies_ms],
    }


# The Bot API stand-in of the burst (a process of its own) --------------------------------------


def _timed_standin_class() -> type[Any]:
    from tests.standins.telegram_api import TelegramStandIn

    class TimedStandIn(TelegramStandIn):
        """Records when each send was admitted (monotonic clock, shared by all processes)."""

        def __init__(self) -> None:
            super().__init__(enforce_limits=True, strict_webhooks=False)
            self.admitted: list[tuple[float, int]] = []
            self.refused_at: list[float] = []

        def _admit(self, bot: Any, chat_id: int) -> None:
            try:
                super()._admit(bot, chat_id)
            except Exception:
                self.refused_at.append(self.clock())
                raise
            self.admitted.append((self.clock(), chat_id))

    return TimedStandIn


async def serve_standin(ready_file: Path, token: str) -> None:
    """The stand-in with Telegram's limits enforced, and a control port for its counts."""
    from aiohttp import web

    from bench.loopback import serve_on_loopback

    server = _timed_standin_class()()
    server.add_bot(token)
    await server.start()

    async def stats(_request: web.Request) -> web.Response:
        methods = Counter(f"{c.method.lower()} {c.status}" for c in server.calls)
        return web.json_response(
            {
                "too_many_requests": server.too_many_requests,
                "delivered": len(server.sent_messages(token)),
                "calls": dict(methods),
                "admitted": server.admitted,
                "refused_at": server.refused_at,
            }
        )

    control = web.Application()
    control.router.add_get("/stats", stats)
    runner, control_port = await serve_on_loopback(control)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    ready_file.write_text(json.dumps({"port": server.port, "control_port": control_port}))
    await stop.wait()
    await runner.cleanup()
    await server.stop()


# The burst's driver (a process of its own) ------------------------------------------------------


async def run_burst(spec: dict[str, Any]) -> dict[str, Any]:
    """Every chat's answers through send_html, one after the other; all chats at once."""
    from backend.config import get_settings
    from backend.redis import get_redis
    from backend.telegram.client import bot_for, close_sessions
    from backend.telegram.sender import send_html

    settings = get_settings()
    redis = get_redis()
    bot = bot_for(spec["token"])
    bot_id = uuid.UUID(spec["bot_id"])
    per_chat = int(spec["messages_per_chat"])
    chats = [BURST_FIRST_CHAT_ID + n for n in range(int(spec["chats"]))]
    durations: list[float] = []
    attempts: Counter[int] = Counter()
    failed: Counter[str] = Counter()

    async def chat(chat_id: int) -> None:
        for n in range(per_chat):
            html = (
                f"<b>Answer {n + 1}</b> to chat {chat_id}: the shop opens at 10:00 on "
                'Saturdays. <a href="https://example.com/handbook">Shop handbook</a>'
            )
            started = time.monotonic()
            outcome = await send_html(redis, bot, bot_id, chat_id, html)
            durations.append(time.monotonic() - started)
            attempts[outcome.attempts] += 1
            if not outcome.sent:
                failed[outcome.error or "not sent"] += 1

    try:
        started = time.monotonic()
        await asyncio.gather(*(chat(c) for c in chats))
        finished = time.monotonic()
    finally:
        await close_sessions()
        await redis.aclose()
    durations.sort()
    return {
        "started": started,
        "finished": finished,
        "total_s": finished - started,
        "sent": sum(attempts.values()) - sum(failed.values()),
        "failed": dict(failed),
        "attempts": {str(k): v for k, v in sorted(attempts.items())},
        "send_html_s": {
            "p50": durations[len(durations) // 2] if durations else math.nan,
            "max": durations[-1] if durations else math.nan,
        },
        "limiter_settings": {
            "telegram_chat_messages_per_second": settings.telegram_chat_messages_per_second,
            "telegram_bot_messages_per_second": settings.telegram_bot_messages_per_second,
            "telegram_group_messages_per_minute": settings.telegram_group_messages_per_minute,
            "telegram_send_attempts": settings.telegram_send_attempts,
        },
    }


# Processes, Redis and CPU ------------------------------------------------------------------------


def _pinned(cpu: str, argv: list[str], pin: bool) -> list[str]:
    return ["taskset", "-c", cpu, *argv] if pin else argv


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _run_child(argv: list[str], cpu: str, pin: bool, env: dict[str, str]) -> dict[str, Any]:
    result = subprocess.run(
        _pinned(cpu, argv, pin), cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"{argv[2:4]} failed:\n{result.stdout[-2000:]}{result.stderr[-3000:]}")
    output: dict[str, Any] = json.loads(result.stdout)
    return output


def redis_url_with_db(url: str, db: int) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{db}"))


class RedisMeter:
    """Redis's CPU seconds and the commands it ran (all clients) during one phase."""

    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url)
        self._cpu = 0.0
        self._commands: dict[str, tuple[int, int]] = {}

    def _read(self) -> tuple[float, dict[str, tuple[int, int]]]:
        cpu = cast(dict[str, Any], self.client.info("cpu"))
        stats = cast(dict[str, Any], self.client.info("commandstats"))
        commands = {
            name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
            for name, v in stats.items()
        }
        return float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]), commands

    def start(self) -> None:
        self._cpu, self._commands = self._read()

    def stop(self) -> dict[str, Any]:
        cpu, commands = self._read()
        delta: dict[str, dict[str, float]] = {}
        for name, (calls, usec) in commands.items():
            calls_then, usec_then = self._commands.get(name, (0, 0))
            if calls - calls_then > 0:
                delta[name] = {"calls": calls - calls_then, "usec": usec - usec_then}
        # The meter's own INFO calls are not the server's.
        delta.pop("info", None)
        return {"redis_cpu_s": cpu - self._cpu, "redis_commands": delta}

    def queue_length(self) -> int:
        return int(cast(int, self.client.zcard(ARQ_QUEUE)))


def delete_bench_keys(url: str, bot_ids: list[str]) -> int:
    """The jobs queued for the benchmark's bots and the burst bot's limiter keys."""
    import redis

    client = redis.Redis.from_url(url)
    deleted = 0
    try:
        for bot_id in bot_ids:
            for pattern in (f"arq:job:telegram-update:{bot_id}:*", f"tg:limit:{bot_id}:*"):
                batch: list[bytes] = []
                for key in client.scan_iter(match=pattern, count=1000):
                    batch.append(key)
                    if len(batch) >= 1000:
                        deleted += int(cast(int, client.unlink(*batch)))
                        batch = []
                if batch:
                    deleted += int(cast(int, client.unlink(*batch)))
            prefix = f"telegram-update:{bot_id}:"
            members = [
                m
                for m in cast(list[bytes], client.zrange(ARQ_QUEUE, 0, -1))
                if m.decode(errors="replace").startswith(prefix)
            ]
            for start in range(0, len(members), 1000):
                client.zrem(ARQ_QUEUE, *members[start : start + 1000])
    finally:
        client.close()
    return deleted


# Setup -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectedBot:
    tenant_id: str
    bot_id: str
    secret: str
    telegram_username: str


async def connect_bots(count: int) -> list[ConnectedBot]:
    """Workspaces with an assistant and a bot each, connected through Parley's service against
    an in-process stand-in; each bot's secret is the one the stand-in's setWebhook recorded."""
    from backend.assistants import schemas as assistant_schemas
    from backend.assistants.service import create_assistant
    from backend.auth.service import create_user
    from backend.config import get_settings
    from backend.db import get_engine, unit_of_work
    from backend.jobs import close_arq_pool
    from backend.models import Role
    from backend.telegram import schemas as telegram_schemas
    from backend.telegram import service as telegram_service
    from backend.telegram.client import close_sessions
    from backend.tenancy.context import TenantContext, TenantId
    from backend.tenancy.permissions import ROLE_PERMISSIONS
    from backend.tenancy.service import create_tenant
    from tests.standins.telegram_api import TelegramStandIn

    connected: list[ConnectedBot] = []
    async with TelegramStandIn() as standin:
        os.environ["PARLEY_TELEGRAM_API_BASE"] = standin.base_url
        get_settings.cache_clear()
        try:
            for number in range(count):
                suffix = uuid.uuid4().hex[:8]
                info = standin.add_bot()
                async with unit_of_work() as session:
                    user = await create_user(
                        session,
                        email=f"bench-telegram-{number}-{suffix}@example.com",
                        password=database.SEED_PASSWORD,
                        full_name=f"Bench Owner {number}",
                        verified=True,
                    )
                    tenant = await create_tenant(
                        session,
                        owner_id=user.id,
                        name=f"Telegram benchmark {number}",
                        slug=f"bench-telegram-{number}-{suffix}",
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
                            name=f"Shop assistant {number}",
                            welcome_message="Hello from the shop!",
                        ),
                    )
                    row = await telegram_service.connect_bot(
                        session,
                        ctx,
                        telegram_schemas.BotConnect(token=info.token, assistant_id=assistant.id),
                    )
                    bot_id = str(row.id)
                hook = standin.webhook(info.token)
                if hook is None or not hook.secret_token:
                    raise RuntimeError("connecting the bot set no webhook with a secret")
                if hook.url != f"{WEBHOOK_BASE_URL}/telegram/webhook/{bot_id}":
                    raise RuntimeError(f"unexpected webhook URL {hook.url}")
                connected.append(
                    ConnectedBot(str(tenant.id), bot_id, hook.secret_token, info.username)
                )
        finally:
            await close_sessions()
            await close_arq_pool()
            await get_engine().dispose()
    return connected


def bench_env(
    db: database.BenchDatabase, redis_url: str, bots: list[ConnectedBot]
) -> dict[str, str]:
    env = server_env(db.app_url, redis_url, 0)
    for name in LIMIT_SETTINGS:
        env.pop(name, None)
    env.update(
        {
            "PARLEY_TELEGRAM_MODE": "webhook",
            "PARLEY_TELEGRAM_WEBHOOK_BASE_URL": WEBHOOK_BASE_URL,
            BOT_TENANTS_ENV: json.dumps({b.bot_id: b.tenant_id for b in bots}),
        }
    )
    return env


# The webhook phases ------------------------------------------------------------------------------


@dataclass
class Rig:
    opts: argparse.Namespace
    db: database.BenchDatabase
    work: Path
    env: dict[str, str]
    bots: list[ConnectedBot]
    redis: RedisMeter
    next_update_id: int = FIRST_UPDATE_ID
    runs: int = 0

    def phase(self, server: Server, mode: str) -> dict[str, Any]:
        opts = self.opts
        if mode == "sequential":
            warm, requests = opts.sequential_warmup, opts.sequential_requests
        else:
            warm, requests = round(opts.phase_warmup * opts.rate), round(opts.duration * opts.rate)
        spec = {
            "mode": mode,
            "rate": opts.rate,
            "connections": opts.connections,
            "timeout": opts.timeout,
            "warmup_requests": warm,
            "requests": requests,
            "first_update_id": self.next_update_id,
            "targets": [
                {
                    "url": f"http://127.0.0.1:{server.port}/telegram/webhook/{b.bot_id}",
                    "secret": b.secret,
                }
                for b in self.bots
            ],
        }
        self.next_update_id += warm + requests + 1000
        self.runs += 1
        spec_path = self.work / f"load-{self.runs}.json"
        spec_path.write_text(json.dumps(spec))
        argv = [sys.executable, "-m", "bench.telegram_bots", "load", "--spec", str(spec_path)]
        waited = wait_for_quiet(opts.quiet_wait)
        queued_before = self.redis.queue_length()
        meter = CpuMeter(server.process.pid, self.db.name)
        meter.start()
        self.redis.start()
        result = _run_child(argv, CLIENT_CPU, opts.pin, self.env)
        redis_stats = self.redis.stop()
        result.update(meter.stop())
        result.update(redis_stats)
        result["other_load_pct"] = max(
            0.0, result["other_load_pct"] - 100 * redis_stats["redis_cpu_s"] / result["wall_s"]
        )
        result["queued_jobs"] = self.redis.queue_length() - queued_before
        result["waited_for_quiet_s"] = round(waited, 1)
        return result


def _round_orders(names: list[str], rounds: int) -> list[list[str]]:
    return [names[r % len(names) :] + names[: r % len(names)] for r in range(rounds)]


def aggregate(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    latencies = [v for r in rounds for v in r["latencies_ms"]]
    answered = sum(r["answered_ok_including_warmup"] for r in rounds)
    wall = sum(r["wall_s"] for r in rounds)
    commands: Counter[str] = Counter()
    usec: Counter[str] = Counter()
    for r in rounds:
        for name, stats in r["redis_commands"].items():
            commands[name] += int(stats["calls"])
            usec[name] += int(stats["usec"])

    def per_request_ms(key: str) -> float:
        return 1000 * ratio(sum(r[key] for r in rounds), answered)

    return {
        "rounds": len(rounds),
        "target_rps": rounds[0]["target_rps"],
        "achieved_rps": sum(r["achieved_rps"] for r in rounds) / len(rounds),
        "sent": sum(r["sent"] for r in rounds),
        "ok": sum(r["ok"] for r in rounds),
        "errors": sum(r["errors"] for r in rounds),
        "errors_by_kind": dict(sum((Counter(r["errors_by_kind"]) for r in rounds), Counter[str]())),
        **latency_summary(latencies),
        "p99_ms_by_round": [round(r["p99_ms"], 2) for r in rounds],
        "answered_ok_including_warmup": answered,
        "queued_jobs": sum(r["queued_jobs"] for r in rounds),
        "server_cpu_pct": 100 * ratio(sum(r["server_cpu_s"] for r in rounds), wall),
        "postgres_cpu_pct": 100 * ratio(sum(r["postgres_cpu_s"] for r in rounds), wall),
        "redis_cpu_pct": 100 * ratio(sum(r["redis_cpu_s"] for r in rounds), wall),
        "client_cpu_pct": 100 * ratio(sum(r["client_cpu_s"] for r in rounds), wall),
        "other_load_pct_by_round": [round(r["other_load_pct"], 1) for r in rounds],
        "server_cpu_ms_per_update": per_request_ms("server_cpu_s"),
        "postgres_cpu_ms_per_update": per_request_ms("postgres_cpu_s"),
        "redis_cpu_ms_per_update": per_request_ms("redis_cpu_s"),
        "redis_commands_per_update": {
            name: round(calls / answered, 2) for name, calls in commands.most_common() if answered
        },
        "redis_usec_per_call": {
            name: round(usec[name] / calls, 2) for name, calls in commands.most_common() if calls
        },
    }


WEBHOOK_TARGETS = [
    Target(
        "bare-ok", "bare FastAPI, 200", "bench.telegram_bots:create_bare_ok_app", "/healthz", None
    ),
    Target(
        "bare-enqueue",
        "bare FastAPI + enqueue",
        "bench.telegram_bots:create_bare_enqueue_app",
        "/healthz",
        None,
    ),
    Target("parley", "Parley webhook", "backend.main:create_app", "/healthz", None),
]


def measure_webhook(rig: Rig) -> dict[str, dict[str, list[dict[str, Any]]]]:
    opts = rig.opts
    servers: dict[str, Server] = {}
    phases: dict[str, dict[str, list[dict[str, Any]]]] = {"sequential": {}, "open_loop": {}}
    try:
        for target in WEBHOOK_TARGETS:
            server = start_server(target, rig.env, opts, rig.work)
            servers[target.name] = server
            wait_ready(server, {})
        print(f"Warming up ({opts.warmup:g} s at {opts.rate:g} updates/s each)...", flush=True)
        for server in servers.values():
            saved = opts.duration, opts.phase_warmup
            opts.duration, opts.phase_warmup = opts.warmup, 0.0
            try:
                rig.phase(server, "open")
            finally:
                opts.duration, opts.phase_warmup = saved
        names = [t.name for t in WEBHOOK_TARGETS]
        print(f"Sequential ({opts.sequential_requests} updates, one connection):", flush=True)
        for name in names:
            print(f"  {servers[name].target.label}", flush=True)
            phases["sequential"].setdefault(name, []).append(rig.phase(servers[name], "sequential"))
            time.sleep(opts.pause)
        print(f"Open loop at {opts.rate:g} updates/s, {opts.duration:g} s per round:", flush=True)
        for number, order in enumerate(_round_orders(names, opts.rounds), start=1):
            for name in order:
                print(f"  round {number}: {servers[name].target.label}", flush=True)
                phases["open_loop"].setdefault(name, []).append(rig.phase(servers[name], "open"))
                time.sleep(opts.pause)
    finally:
        for server in servers.values():
            stop_server(server)
    return phases


# The burst ---------------------------------------------------------------------------------------


def theoretical_minimum_s(messages: int, chats: int) -> dict[str, float]:
    bot_capacity, bot_rate = BOT_BUCKET
    chat_capacity, chat_rate = CHAT_BUCKET
    per_chat = messages // chats
    bot = max(0.0, (messages - bot_capacity) / bot_rate)
    chat = max(0.0, (per_chat - chat_capacity) / chat_rate)
    return {"bot_limit_s": bot, "chat_limit_s": chat, "minimum_s": max(bot, chat)}


def parley_schedule_s(messages: int, chats: int, bot_rate: float, chat_rate: float) -> float:
    """When Parley's limiter books the last send: slots 1/rate apart, no burst."""
    return max((messages - 1) / bot_rate, (messages // chats - 1) / chat_rate)


def _max_in_window(times: list[float], window: float) -> int:
    best = 0
    start = 0
    for end, moment in enumerate(times):
        while moment - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def measure_burst(opts: argparse.Namespace, work: Path, env: dict[str, str]) -> dict[str, Any]:
    token = f"7100000001:AA{secrets.token_urlsafe(25)}"
    bot_id = str(uuid.uuid4())
    ready = work / "standin.json"
    log_path = work / "standin.log"
    argv = [
        sys.executable,
        "-m",
        "bench.telegram_bots",
        "standin",
        "--ready-file",
        str(ready),
        "--token",
        token,
    ]
    with log_path.open("wb") as log:
        standin = subprocess.Popen(
            _pinned(CLIENT_CPU, argv, opts.pin),
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        ports: dict[str, int] = {}
        while time.monotonic() < deadline and standin.poll() is None and not ports:
            if ready.exists() and ready.read_text():
                ports = json.loads(ready.read_text())
            else:
                time.sleep(0.1)
        if not ports:
            raise RuntimeError(f"the stand-in did not start:\n{log_path.read_text()[-3000:]}")
        driver_env = dict(env)
        driver_env["PARLEY_TELEGRAM_API_BASE"] = f"http://127.0.0.1:{ports['port']}"
        spec = {
            "token": token,
            "bot_id": bot_id,
            "chats": opts.burst_chats,
            "messages_per_chat": opts.burst_messages // opts.burst_chats,
        }
        spec_path = work / "burst.json"
        spec_path.write_text(json.dumps(spec))
        waited = wait_for_quiet(opts.quiet_wait)
        redis = RedisMeter(env["PARLEY_REDIS_URL"])
        redis.start()
        cpu_before = _pid_cpu_s(standin.pid)
        print(
            f"Burst: {opts.burst_messages} messages to {opts.burst_chats} chats "
            "(takes over 5 minutes at 30 messages/s)...",
            flush=True,
        )
        driver = [sys.executable, "-m", "bench.telegram_bots", "burst", "--spec", str(spec_path)]
        children_before = _children_cpu_s()
        result = _run_child(driver, SERVER_CPU, opts.pin, driver_env)
        result["driver_cpu_s"] = _children_cpu_s() - children_before
        result["waited_for_quiet_s"] = round(waited, 1)
        result["standin_cpu_s"] = _pid_cpu_s(standin.pid) - cpu_before
        result.update(redis.stop())
        with _urlopen(f"http://127.0.0.1:{ports['control_port']}/stats") as response:
            stats = json.loads(response.read())
    finally:
        stop_process(standin)
        delete_bench_keys(env["PARLEY_REDIS_URL"], [bot_id])
    admitted = sorted(t for t, _ in stats["admitted"])
    per_chat: dict[int, list[float]] = {}
    for moment, chat in stats["admitted"]:
        per_chat.setdefault(int(chat), []).append(float(moment))
    chat_gaps = [b - a for times in per_chat.values() for a, b in itertools.pairwise(times)]
    result.update(
        {
            "too_many_requests": stats["too_many_requests"],
            "delivered": stats["delivered"],
            "standin_calls": stats["calls"],
            "first_admitted_after_s": admitted[0] - result["started"] if admitted else math.nan,
            "admitted_span_s": admitted[-1] - admitted[0] if admitted else math.nan,
            "max_sends_in_any_1s": _max_in_window(admitted, 1.0),
            "min_gap_in_a_chat_s": min(chat_gaps) if chat_gaps else math.nan,
            "chats": len(per_chat),
            "refused_at_s": [round(t - result["started"], 3) for t in stats["refused_at"]],
        }
    )
    return result


def _children_cpu_s() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _pid_cpu_s(pid: int) -> float:
    from bench.api_overhead import CLOCK_TICKS, _stat_fields

    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS if fields else math.nan


def _urlopen(url: str) -> Any:
    import urllib.request

    return urllib.request.urlopen(url, timeout=30)  # noqa: S310 (our own loopback http URL)


# Verdicts and reports ----------------------------------------------------------------------------


def verdicts(
    webhook: dict[str, Any] | None, burst: dict[str, Any] | None, opts: argparse.Namespace
) -> list[dict[str, Any]]:
    checked = []
    if webhook is not None:
        parley = webhook["open_loop"]["parley"]
        held = parley["ok"] >= 0.98 * parley["sent"]
        passed = parley["p99_ms"] <= P99_GOAL_MS and parley["errors"] == 0 and held
        checked.append(
            {
                "goal": f"webhook acknowledgement p99 <= {P99_GOAL_MS:g} ms at {GOAL_RATE:g} "
                "updates/s",
                "passed": passed,
                "detail": (
                    f"p99 {parley['p99_ms']:.1f} ms (p50 {parley['p50_ms']:.1f}, "
                    f"p95 {parley['p95_ms']:.1f}) at {opts.rate:g} updates/s, "
                    f"{parley['ok']:,}/{parley['sent']:,} acknowledged, {parley['errors']} errors; "
                    f"bare FastAPI p99 {webhook['open_loop']['bare-ok']['p99_ms']:.1f} ms, "
                    f"bare + enqueue p99 {webhook['open_loop']['bare-enqueue']['p99_ms']:.1f} ms"
                ),
            }
        )
    if burst is not None:
        messages = opts.burst_messages
        share = burst["too_many_requests"] / messages
        passed = share < TOO_MANY_REQUESTS_GOAL and burst["delivered"] == messages
        checked.append(
            {
                "goal": f"under {TOO_MANY_REQUESTS_GOAL * 100:g} % of {messages:,} sends get a 429",
                "passed": passed,
                "detail": (
                    f"{burst['too_many_requests']} 429s ({share * 100:.2f} %), "
                    f"{burst['delivered']:,}/{messages:,} delivered, in {burst['total_s']:.1f} s "
                    f"against a theoretical minimum of {burst['theory']['minimum_s']:.1f} s "
                    f"({burst['total_s'] / burst['theory']['minimum_s']:.3f}x)"
                ),
            }
        )
    return checked


Row = tuple[str, list[str]]


def _fmt(value: Any, spec: str) -> str:
    if isinstance(value, list):
        return "/".join(format(v, spec) for v in value)
    if isinstance(value, float) and math.isnan(value):
        return "-"
    return format(value, spec)


WEBHOOK_ROWS = [
    ("p50 ms", "p50_ms", ".2f"),
    ("p95 ms", "p95_ms", ".2f"),
    ("p99 ms", "p99_ms", ".2f"),
    ("max ms", "max_ms", ".1f"),
    ("p99 ms by round", "p99_ms_by_round", ".1f"),
    ("achieved updates/s", "achieved_rps", ".0f"),
    ("acknowledged / sent", None, ""),
    ("errors", "errors", "d"),
    ("jobs queued (all 200s)", None, ""),
    ("server CPU ms/update", "server_cpu_ms_per_update", ".2f"),
    ("PostgreSQL CPU ms/update", "postgres_cpu_ms_per_update", ".2f"),
    ("Redis CPU ms/update", "redis_cpu_ms_per_update", ".3f"),
    ("CPU %: server", "server_cpu_pct", ".0f"),
    ("CPU %: its PostgreSQL", "postgres_cpu_pct", ".0f"),
    ("CPU %: Redis", "redis_cpu_pct", ".0f"),
    ("CPU %: load client", "client_cpu_pct", ".0f"),
    ("CPU %: other, by round", "other_load_pct_by_round", ".0f"),
]


def _redis_summary(stats: dict[str, Any]) -> str:
    commands = stats["redis_commands_per_update"]
    shown = [f"{n} {c:g}" for n, c in commands.items() if c >= 0.5]
    return ", ".join(shown) or "none"


def webhook_rows(webhook: dict[str, Any], opts: argparse.Namespace) -> list[Row | str]:
    names = [t.name for t in WEBHOOK_TARGETS]
    lines: list[Row | str] = [("", [t.label for t in WEBHOOK_TARGETS])]
    for section, title in (
        ("sequential", f"Sequential, one connection ({opts.sequential_requests} updates)"),
        ("open_loop", f"Open loop, {opts.rate:g} updates/s ({opts.rounds} x {opts.duration:g} s)"),
    ):
        lines.append(title)
        for label, key, spec in WEBHOOK_ROWS:
            if section == "sequential" and label.startswith(("CPU %", "p99 ms by", "achieved")):
                continue
            values = []
            for name in names:
                stats = webhook[section][name]
                if label == "acknowledged / sent":
                    values.append(f"{stats['ok']:,}/{stats['sent']:,}")
                elif label.startswith("jobs queued"):
                    answered = stats["answered_ok_including_warmup"]
                    queued = "-" if name == "bare-ok" else f"{stats['queued_jobs']:,}"
                    values.append(f"{queued}/{answered:,}")
                else:
                    assert key is not None
                    values.append(_fmt(stats[key], spec))
            lines.append((label, values))
    return lines


def redis_lines(webhook: dict[str, Any]) -> list[str]:
    """Redis commands per update (Redis counts every client's: other programs' show too)."""
    return [
        f"  Redis commands per update, {section.replace('_', ' ')}, {target.label}: "
        + _redis_summary(webhook[section][target.name])
        for section in ("sequential", "open_loop")
        for target in WEBHOOK_TARGETS
    ]


def _render(lines: list[Row | str]) -> str:
    cells = [value for line in lines if not isinstance(line, str) for value in line[1]]
    width = max([14, *(len(c) + 2 for c in cells)])
    out = []
    for line in lines:
        if isinstance(line, str):
            out.append(line)
        else:
            label, values = line
            out.append(f"  {label:<26}" + "".join(f"{v:>{width}}" for v in values))
    return "\n".join(out)


def burst_lines(burst: dict[str, Any], opts: argparse.Namespace) -> list[str]:
    theory = burst["theory"]
    limits = burst["limiter_settings"]
    return [
        f"Burst: {opts.burst_messages:,} messages, {opts.burst_chats} private chats of one bot, "
        f"through send_html (limiter: {limits['telegram_bot_messages_per_second']:g}/s per bot, "
        f"{limits['telegram_chat_messages_per_second']:g}/s per chat, "
        f"{limits['telegram_send_attempts']} attempts)",
        f"  delivered                 {burst['delivered']:,} ({burst['sent']:,} sent as "
        f"send_html saw it; failed: {burst['failed'] or 'none'})",
        f"  429 answers               {burst['too_many_requests']} "
        f"({100 * burst['too_many_requests'] / opts.burst_messages:.2f} % of sends); "
        f"attempts per message: {burst['attempts']}",
        f"  total time                {burst['total_s']:.2f} s (first to last admitted at the "
        f"stand-in: {burst['admitted_span_s']:.2f} s)",
        f"  theoretical minimum       {theory['minimum_s']:.2f} s (bot: {theory['bot_limit_s']:.2f}"
        f" s, per chat: {theory['chat_limit_s']:.0f} s); Parley's schedule: "
        f"{burst['parley_schedule_s']:.2f} s",
        f"  total / minimum           {burst['total_s'] / theory['minimum_s']:.4f}x",
        f"  max sends in any 1 s      {burst['max_sends_in_any_1s']} (bot limit: bucket of "
        f"{BOT_BUCKET[0]:.0f}, {BOT_BUCKET[1]:.0f}/s); min gap within a chat "
        f"{burst['min_gap_in_a_chat_s']:.3f} s",
        f"  CPU                       driver {burst['driver_cpu_s']:.1f} s, stand-in "
        f"{burst['standin_cpu_s']:.1f} s, Redis {burst['redis_cpu_s']:.1f} s; EVAL calls "
        f"{burst['redis_commands'].get('eval', {}).get('calls', 0):,}",
    ]


def render_verdicts(checked: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{'PASS' if v['passed'] else 'FAIL'}  {v['goal']}: {v['detail']}" for v in checked
    )


def render_markdown(report: dict[str, Any], rows: list[Row | str] | None) -> str:
    machine = report["machine"]
    lines = [
        f"# Telegram webhooks and sending, {report['started_at']}",
        "",
        f"`{report['command']}`",
        "",
        f"Machine: {machine['nproc']} CPUs ({machine['cpu_model']}), {machine['memory_gib']} GiB "
        f"RAM, Linux {machine['kernel']}, Python {machine['python']}.",
        "",
    ]
    if rows is not None and report.get("webhook"):
        lines += ["```", _render(rows), *redis_lines(report["webhook"]), "```", ""]
    if report.get("burst"):
        lines += ["```", *burst_lines(report["burst"], report["opts"]), "```", ""]
    lines += [
        f"- **{'PASS' if v['passed'] else 'FAIL'}** {v['goal']}: {v['detail']}"
        for v in report["verdicts"]
    ]
    lines += [f"- noisy phase: {line}" for line in report["noisy_phases"]]
    return "\n".join(lines) + "\n"


def noisy_phases(phases: dict[str, dict[str, list[dict[str, Any]]]]) -> list[str]:
    return [
        f"{section} {name} round {n}: other load {r['other_load_pct']:.0f}% of a core"
        for section, by_name in phases.items()
        for name, rounds in by_name.items()
        for n, r in enumerate(rounds, start=1)
        if r["other_load_pct"] > OTHER_LOAD_WARN_PCT
    ]


# The run -----------------------------------------------------------------------------------------


def run(opts: argparse.Namespace) -> int:
    admin_url = opts.admin_url or os.environ.get("PARLEY_TEST_ADMIN_DATABASE_URL")
    base_redis_url = opts.redis_url or os.environ.get("PARLEY_TEST_REDIS_URL")
    if not admin_url or not base_redis_url:
        print(
            "bench: set PARLEY_TEST_ADMIN_DATABASE_URL and PARLEY_TEST_REDIS_URL (make bench "
            "does), or pass --admin-url and --redis-url",
            file=sys.stderr,
        )
        return 2
    if opts.burst_messages % opts.burst_chats:
        print("bench: --burst-messages must be a multiple of --burst-chats", file=sys.stderr)
        return 2
    if opts.pin and (shutil.which("taskset") is None or (os.cpu_count() or 1) < 2):
        print("bench: taskset or a second CPU is missing; running unpinned", file=sys.stderr)
        opts.pin = False
    opts.workers = 1
    redis_url = redis_url_with_db(base_redis_url, opts.redis_db)
    db = database.BenchDatabase(admin_url, opts.database, APP_ROLE_USER, APP_ROLE_PASSWORD)
    machine = machine_info(None)
    machine.pop("wrk", None)
    machine["packages"].update({n: version(n) for n in ("aiogram", "aiohttp", "arq", "redis")})
    started_at = datetime.now(UTC)
    print(
        f"bench telegram-bots: {machine['nproc']} CPUs ({machine['cpu_model']}), "
        f"load average {machine['load_average_at_start']}",
        flush=True,
    )
    from cryptography.fernet import Fernet

    os.environ["PARLEY_ENCRYPTION_KEYS"] = Fernet.generate_key().decode()
    phases: dict[str, dict[str, list[dict[str, Any]]]] = {}
    bots: list[ConnectedBot] = []
    burst: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="parley-bench-telegram-") as tmp:
        work = Path(tmp)
        os.environ.update(bench_env(db, redis_url, []))
        try:
            if opts.part in ("all", "webhook"):
                print(f"Creating database {db.name}, migrating...", flush=True)
                asyncio.run(database.recreate(db))
                database.migrate(db)
                print(f"Connecting {opts.bots} bots (one workspace each)...", flush=True)
                bots = asyncio.run(connect_bots(opts.bots))
                env = bench_env(db, redis_url, bots)
                rig = Rig(opts, db, work, env, bots, RedisMeter(redis_url))
                phases = measure_webhook(rig)
            if opts.part in ("all", "burst"):
                env = bench_env(db, redis_url, bots)
                burst = measure_burst(opts, work, env)
        finally:
            if bots:
                delete_bench_keys(redis_url, [b.bot_id for b in bots])
            if opts.part in ("all", "webhook") and not opts.keep_database:
                asyncio.run(database.drop(db))

    webhook = (
        {
            section: {name: aggregate(rounds) for name, rounds in by_name.items()}
            for section, by_name in phases.items()
        }
        if phases
        else None
    )
    if burst is not None:
        limits = burst["limiter_settings"]
        burst["theory"] = theoretical_minimum_s(opts.burst_messages, opts.burst_chats)
        burst["parley_schedule_s"] = parley_schedule_s(
            opts.burst_messages,
            opts.burst_chats,
            limits["telegram_bot_messages_per_second"],
            limits["telegram_chat_messages_per_second"],
        )
    checked = verdicts(webhook, burst, opts)
    noisy = noisy_phases(phases)
    rows = webhook_rows(webhook, opts) if webhook is not None else None
    print()
    if rows is not None and webhook is not None:
        print(_render(rows))
        print("\n".join(redis_lines(webhook)))
        print()
    if burst is not None:
        print("\n".join(burst_lines(burst, opts)))
        print()
    print(render_verdicts(checked))
    for line in noisy:
        print(f"warning: noisy phase, {line}")

    loop, http = fastest_implementations()
    report = {
        "benchmark": "telegram-bots",
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["python", "-m", "bench", *opts.argv]),
        "machine": machine,
        "settings": {
            "part": opts.part,
            "rate": opts.rate,
            "duration_s": opts.duration,
            "phase_warmup_s": opts.phase_warmup,
            "rounds": opts.rounds,
            "connections": opts.connections,
            "sequential_requests": opts.sequential_requests,
            "bots": opts.bots,
            "burst_messages": opts.burst_messages,
            "burst_chats": opts.burst_chats,
            "redis_db": opts.redis_db,
            "worker": "none: the ARQ queue just fills",
            "uvicorn": {"workers": 1, "loop": loop, "http": http, "access_log": False},
            "pinned": {"servers_and_driver": SERVER_CPU, "client_and_standin": CLIENT_CPU}
            if opts.pin
            else None,
        },
        "webhook": webhook,
        "burst": burst,
        "verdicts": checked,
        "noisy_phases": noisy,
        "rounds": {
            section: {
                name: [{k: v for k, v in r.items() if k != "latencies_ms"} for r in rounds]
                for name, rounds in by_name.items()
            }
            for section, by_name in phases.items()
        },
    }
    output = Path(opts.output) if opts.output else default_output(started_at)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    output.with_suffix(".md").write_text(render_markdown({**report, "opts": opts}, rows))
    print(f"\nResults written to {output} (and a Markdown summary, {output.with_suffix('.md')})")
    return 0


def default_output(started_at: datetime) -> Path:
    return ROOT / ".data" / "bench" / f"telegram-bots-{started_at:%Y%m%dT%H%M%SZ}.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--part",
        choices=["all", "webhook", "burst"],
        default="all",
        help="run both parts, or only one",
    )
    parser.add_argument("--rate", type=float, default=GOAL_RATE, help="open-loop updates/s")
    parser.add_argument(
        "--duration", type=float, default=10.0, help="recorded seconds per open-loop round"
    )
    parser.add_argument("--rounds", type=int, default=2, help="open-loop rounds per server")
    parser.add_argument(
        "--phase-warmup", type=float, default=1.0, help="unrecorded seconds before each round"
    )
    parser.add_argument("--warmup", type=float, default=3.0, help="initial warm-up per server")
    parser.add_argument(
        "--sequential-requests", type=int, default=2000, help="updates in the sequential phase"
    )
    parser.add_argument(
        "--sequential-warmup", type=int, default=200, help="unrecorded sequential updates"
    )
    parser.add_argument("--connections", type=int, default=64, help="open-loop connection pool")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per request")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between phases")
    parser.add_argument("--bots", type=int, default=4, help="connected bots (a workspace each)")
    parser.add_argument(
        "--burst-messages", type=int, default=BURST_MESSAGES, help="messages in the burst"
    )
    parser.add_argument("--burst-chats", type=int, default=BURST_CHATS, help="chats in the burst")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=60.0,
        help="before each phase, wait up to this long for other load on the machine to stop",
    )
    parser.add_argument(
        "--no-pin", dest="pin", action="store_false", help="do not pin processes to CPUs"
    )
    parser.add_argument("--database", default=DATABASE, help="database to (re)create")
    parser.add_argument("--keep-database", action="store_true", help="do not drop it at the end")
    parser.add_argument(
        "--admin-url", help="superuser URL (default PARLEY_TEST_ADMIN_DATABASE_URL)"
    )
    parser.add_argument("--redis-url", help="Redis URL (default PARLEY_TEST_REDIS_URL)")
    parser.add_argument(
        "--redis-db", type=int, default=REDIS_DB, help="the Redis database index to use"
    )
    parser.add_argument("--output", help="JSON results file (default .data/bench/...)")


# Entry points of the benchmark's own processes ---------------------------------------------------


def process_main(argv: list[str]) -> int:
    """`python -m bench.telegram_bots load|standin|burst ...`: the processes the benchmark
    starts."""
    parser = argparse.ArgumentParser(prog="python -m bench.telegram_bots")
    roles = parser.add_subparsers(dest="role", required=True)
    load = roles.add_parser("load", help="the webhook load client; prints JSON")
    load.add_argument("--spec", type=Path, required=True)
    standin = roles.add_parser("standin", help="the Bot API stand-in, limits enforced")
    standin.add_argument("--ready-file", type=Path, required=True)
    standin.add_argument("--token", required=True)
    burst = roles.add_parser("burst", help="the burst's driver; prints JSON")
    burst.add_argument("--spec", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.role == "standin":
        run_async(serve_standin(args.ready_file, args.token))
        return 0
    spec = json.loads(args.spec.read_text())
    if args.role == "load":
        with collector_paused():
            result = run_async(run_load(spec))
    else:
        result = run_async(run_burst(spec))
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(process_main(sys.argv[1:]))
