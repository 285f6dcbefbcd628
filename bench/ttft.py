"""Benchmark: what Parley adds to the time to first token (TTFT) of a streamed reply.

    python -m bench ttft [--concurrency 50] [--rounds 3] [--duration 25]

The same loopback upstream is timed through Parley's `POST /v1/chat/completions` and called
directly, alternating, in one run:

  upstream  an OpenAI-compatible chat server (tests/standins/openai_chat.py), in a process of its
            own: every streamed answer starts after a fixed delay (--first-token-delay) and is
            the same 40-word reply, split into deltas;
  direct    the upstream called with exactly the body Parley sends it (captured from Parley at
            the start: system prompt, question, model, max_tokens, stream options), so the
            upstream does the same work for both;
  parley    an assistant with provider "openai" and no knowledge base, asked through an API key
            with the `chat` scope: the path counts API-key auth (the key hashed and its entry
            looked up: the process's own after the first request), the tenant context, the
            assistant, the quota (a lease of the process, renewed in the database when due),
            the prompt, the chat client, and relaying the stream; the conversation, question
            and answer are saved after the stream, in one statement;
  bare      the raw baseline (unless --no-bare): bench/bare_relay.py, a FastAPI app under the
            same uvicorn settings and workers that sends the upstream Parley's body through the
            `openai` SDK as Parley's provider does and passes the bytes on, with no auth,
            database or parsing. Its own phases (direct vs bare) follow Parley's sequential
            phase and each of its concurrent rounds. Its overhead is a floor for Parley's on
            this machine: what uvicorn, FastAPI and the SDK cost before any of Parley's work.

TTFT is the time from sending the request to receiving the first non-empty content delta (Parley
sends an empty role chunk before it has asked the model; that one does not count). The client
reads every stream to its end and checks that the answer is the upstream's reply, so a fallback
answer counts as an error, not as a fast first token. Each client stream runs pairs of requests
back to back, one direct and one through Parley, the order alternating from pair to pair; the
overhead is reported as the difference of the two sides' percentiles, and as percentiles of the
per-pair differences.

Setup: a throwaway database (the real migrations, the app's login role, so row-level security
applies), one workspace on the "business" plan, an API key, the assistant without knowledge, and
a second assistant whose knowledge base holds Parley's own documentation (docs/*.md), ingested
with the local embedding model. Parley runs with the uvicorn settings of `parley api`
(bench/serve.py, one worker unless --workers says more), connected as the app role. With one
worker, Parley is pinned to CPU 0, the upstream and the load client (separate processes) to
CPU 1; with more, nothing is pinned. PostgreSQL is shared and not pinned.

Phases, each preceded by a wait for a quiet machine:

  sequential   one stream, --sequential-pairs pairs, short replies (4 deltas, no delay between
               them): the overhead without queueing;
  concurrent   --concurrency streams (the goal's 50), --rounds rounds of --duration recorded
               seconds, replies that stream for about 1.6 s (--deltas deltas, --token-delay
               apart), as a short chat answer does. Streams start staggered; a round records the
               pairs begun in its window and keeps the load on until they have finished;
  retrieval    one stream, the assistant with knowledge against the one without, both through
               Parley: the client-side cost of retrieval. The server's own `retrieval_ms` (query
               embedding and search, saved in each answer's metadata) is read from the database;
  traced       a second Parley with timers around the reply path's steps, SQL statements and
               pool checkouts counted per step, and the event loop's lag sampled every 5 ms
               (`create_traced_app` below; Parley's code is not changed). It shows where the
               time goes; the headline numbers come from the untraced server.

The upstream records when each request arrives (monotonic clock, shared by all processes on the
machine), so every request's TTFT splits into the time until the upstream has the request and
the time from there to the first token. During each phase the benchmark measures the CPU used by
Parley, its PostgreSQL backends, the upstream, the load client and anything else ("other": a
noisy machine), and samples pg_stat_activity every 50 ms: how many of Parley's connections
wait for a lock, or sit idle inside a transaction.

The goals (from the issue): at 50 concurrent streams, overhead <= 3 ms at p50 and <= 10 ms at
p95. The benchmark reports; it exits 0 whether or not the goals are met, non-zero on errors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import dataclasses
import functools
import gc
import json
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any, TypeVar

from bench import bare_relay, database
from bench.api_overhead import (
    OTHER_LOAD_WARN_PCT,
    CpuMeter,
    Server,
    Target,
    can_pin,
    machine_info,
    server_env,
    start_server,
    stop_server,
    wait_for_quiet,
    wait_ready,
)
from bench.serve import fastest_implementations
from bench.stats import latency_summary, percentile

ROOT = Path(__file__).resolve().parent.parent

P50_GOAL_MS = 3.0
P95_GOAL_MS = 10.0
GOAL_CONCURRENCY = 50
# For scale (from the issue): LiteLLM's proxy, median overhead in a sequential test.
LITELLM_SEQUENTIAL_MEDIAN_MS = 4.34

SERVER_CPU = "0"
CLIENT_CPU = "1"  # the load client and the upstream

DATABASE = "parley_bench_ttft"
APP_ROLE_USER = "parley_bench_ttft_app"
APP_ROLE_PASSWORD = "parley-bench-ttft-app-password"  # noqa: S105 (throwaway role)
UPSTREAM_KEY = "sk-bench-upstream"
UPSTREAM_MODEL = "gpt-4o-mini"
CHAT_PATH = "/v1/chat/completions"
TRACE_PATH = "/bench/trace"

# The upstream's answer: 40 words, so 40 deltas are one word each and 4 are ten words each.
REPLY = (
    "Parley relays this answer from a loopback stand-in for the model server, piece by piece, "
    "so that the benchmark can time the first token through the platform against the same "
    "server called directly, with exactly the same body and delay."
)
# Asked of both assistants. The tag lets the upstream tell requests apart.
QUESTION = "How do I stream an answer from an assistant with the OpenAI SDK? (ref @TAG@)"
TAG = "@TAG@"
TAG_PATTERN = re.compile(r"\(ref ([A-Za-z0-9_-]+)\)")
CAPTURE_TAG = "capture"
INSTRUCTIONS = "You answer questions about Parley, a platform for AI assistants. Be brief."
# The knowledge base of the second assistant: Parley's own documentation.
KNOWLEDGE_DOCS = (
    "api.md",
    "assistants.md",
    "configuration.md",
    "knowledge.md",
    "widget-protocol.md",
)

# Replies of the sequential and retrieval phases: 4 deltas, no pause between them.
SHORT_DELTAS = 4
LAG_PERIOD_S = 0.005
# Answers are saved after their stream; this much later still counts to the phase.
WINDOW_SLACK_S = 5.0

T = TypeVar("T")


def now() -> float:
    """CLOCK_MONOTONIC: one clock for every process of the machine, so that the client's, the
    upstream's and the traced server's timestamps can be compared."""
    return time.clock_gettime(time.CLOCK_MONOTONIC)


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` on uvloop when installed (the loop `parley api` runs on), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def _ms(start: float, end: float) -> float:
    return (end - start) * 1000


# The upstream process ------------------------------------------------------------------------


async def serve_upstream(ready_file: Path, first_token_delay: float) -> None:
    """The chat stand-in plus a control server (reply shape, arrival times), until SIGTERM."""
    from aiohttp import web

    from bench.loopback import serve_on_loopback
    from tests.standins.openai_chat import ChatStandIn, content_text

    arrivals: dict[str, float] = {}

    def reply(body: dict[str, Any]) -> str:
        arrived = now()
        messages = [m for m in body.get("messages", []) if m.get("role") == "user"]
        if messages:
            found = TAG_PATTERN.search(content_text(messages[-1].get("content")))
            if found:
                arrivals[found.group(1)] = arrived
        return REPLY

    chat = ChatStandIn(reply=reply, api_key=UPSTREAM_KEY, first_token_delay=first_token_delay)

    async def shape(request: web.Request) -> web.Response:
        wanted = await request.json()
        chat.first_token_delay = float(wanted["first_token_delay"])
        chat.delta_count = int(wanted["deltas"])
        chat.token_delay = float(wanted["token_delay"])
        return web.json_response(wanted)

    async def taken_arrivals(_request: web.Request) -> web.Response:
        taken = dict(arrivals)
        arrivals.clear()
        chat.requests.clear()
        return web.json_response(taken)

    async def last_request(_request: web.Request) -> web.Response:
        if not chat.requests:
            return web.json_response({"error": "no request yet"}, status=404)
        return web.json_response(chat.requests[-1])

    control = web.Application()
    control.router.add_post("/shape", shape)
    control.router.add_get("/arrivals", taken_arrivals)
    control.router.add_get("/last", last_request)
    await chat.start()
    runner, control_port = await serve_on_loopback(control)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    ready_file.write_text(json.dumps({"port": chat.port, "control_port": control_port}))
    try:
        await stop.wait()
    finally:
        await chat.stop()
        await runner.cleanup()


@dataclass
class Upstream:
    process: subprocess.Popen[bytes]
    port: int
    control_port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def control_url(self) -> str:
        return f"http://127.0.0.1:{self.control_port}"


def _pinned(cpu: str, argv: list[str], pin: bool) -> list[str]:
    return ["taskset", "-c", cpu, *argv] if pin else argv


def start_upstream(opts: argparse.Namespace, work: Path) -> Upstream:
    ready = work / "upstream.json"
    log_path = work / "upstream.log"
    argv = [
        sys.executable,
        "-m",
        "bench.ttft",
        "upstream",
        "--ready-file",
        str(ready),
        "--first-token-delay",
        str(opts.first_token_delay),
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            _pinned(CLIENT_CPU, argv, opts.pin),
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        if ready.exists() and ready.read_text():
            ports = json.loads(ready.read_text())
            return Upstream(process, int(ports["port"]), int(ports["control_port"]), log_path)
        time.sleep(0.1)
    stop_process(process)
    raise RuntimeError(
        f"the upstream did not start:\n{log_path.read_text(errors='replace')[-3000:]}"
    )


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _http_json(url: str, body: Any = None, timeout: float = 30) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 (loopback http URLs of this benchmark)
        url, data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        return json.loads(response.read())


def set_shape(upstream: Upstream, first_token_delay: float, deltas: int, delay: float) -> None:
    _http_json(
        f"{upstream.control_url}/shape",
        {"first_token_delay": first_token_delay, "deltas": deltas, "token_delay": delay},
    )


# The load client process ---------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """One side of a pair: where to send, and the body (with TAG where the tag goes)."""

    side: str
    url: str
    headers: dict[str, str]
    body: str


async def _one_request(
    http: Any, endpoint: Endpoint, tag: str, worker: int, pair: int
) -> dict[str, Any]:
    import aiohttp

    headers = {**endpoint.headers, "X-Request-Id": tag}
    body = endpoint.body.replace(TAG, tag)
    sample: dict[str, Any] = {
        "side": endpoint.side,
        "tag": tag,
        "worker": worker,
        "pair": pair,
        "first": None,
        "error": None,
    }
    parts: list[str] = []
    sample["sent"] = now()
    try:
        async with http.post(endpoint.url, data=body, headers=headers) as response:
            if response.status != 200:
                sample["error"] = f"HTTP {response.status}"
                sample["detail"] = (await response.text())[:300]
            else:
                # Read to the end of the body, [DONE] and all, as an SDK does: a response left
                # unread closes its connection, and each request would open a new one.
                async for line in response.content:
                    if not line.startswith(b"data: "):
                        continue
                    payload = line[6:].strip()
                    if payload == b"[DONE]":
                        continue
                    for choice in json.loads(payload).get("choices") or []:
                        text = (choice.get("delta") or {}).get("content")
                        if text:
                            if sample["first"] is None:
                                sample["first"] = now()
                            parts.append(text)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        sample["error"] = type(exc).__name__
        sample["detail"] = str(exc)[:300]
    sample["ended"] = now()
    if sample["error"] is None:
        if sample["first"] is None:
            sample["error"] = "no content"
        elif "".join(parts) != REPLY:
            sample["error"] = "not the upstream's reply"
            sample["detail"] = "".join(parts)[:300]
    sample["ok"] = sample["error"] is None
    return sample


async def run_client(spec: dict[str, Any]) -> dict[str, Any]:
    """Pairs of requests from `concurrency` streams; see `client_spec` for the fields."""
    import aiohttp

    endpoints = [Endpoint(**e) for e in spec["endpoints"]]
    concurrency = int(spec["concurrency"])
    samples: list[dict[str, Any]] = []
    sent: Counter[str] = Counter()
    pairs_mode = spec["pairs"] is not None
    warmup_pairs = int(spec.get("warmup_pairs") or 0)
    total_pairs = warmup_pairs + int(spec["pairs"] or 0)
    started_pairs = 0
    start = now()
    record_from = start + float(spec.get("warmup") or 0)
    record_until = record_from + float(spec.get("duration") or 0)
    stop_at = record_until + float(spec.get("cooldown") or 0)
    stagger = float(spec.get("stagger") or 0)

    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=float(spec["timeout"]))
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        read_bufsize=2**20,
    ) as http:

        async def worker(index: int) -> None:
            nonlocal started_pairs
            await asyncio.sleep(stagger * index / concurrency)
            pair = 0
            while True:
                if pairs_mode:
                    if started_pairs >= total_pairs:
                        return
                    record = started_pairs >= warmup_pairs
                    started_pairs += 1
                else:
                    moment = now()
                    if moment >= stop_at:
                        return
                    record = record_from <= moment < record_until
                order = endpoints if (index + pair) % 2 == 0 else endpoints[::-1]
                for endpoint in order:
                    tag = f"{spec['phase']}-{index}-{pair}-{endpoint.side}"
                    sample = await _one_request(http, endpoint, tag, index, pair)
                    sent[endpoint.side] += 1
                    if record:
                        samples.append(sample)
                pair += 1

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    wall = now() - start
    arrivals: dict[str, float] = await asyncio.to_thread(
        _http_json, f"{spec['control_url']}/arrivals"
    )
    for sample in samples:
        sample["arrival"] = arrivals.get(sample["tag"])
    return {"samples": samples, "sent": dict(sent), "wall_s": wall}


def client_spec(
    phase: str,
    endpoints: list[Endpoint],
    upstream: Upstream,
    *,
    concurrency: int = 1,
    pairs: int | None = None,
    warmup_pairs: int = 0,
    warmup: float = 0.0,
    duration: float = 0.0,
    cooldown: float = 0.0,
    stagger: float = 0.0,
) -> dict[str, Any]:
    """Pairs mode (`pairs` given): `warmup_pairs` unrecorded pairs, then `pairs` recorded ones.
    Duration mode: streams start `stagger` seconds apart in all; pairs begun in the
    `duration` seconds after `warmup` are recorded; new pairs keep starting for `cooldown`
    more seconds, so that the recorded ones finish under the same load."""
    return {
        "phase": phase,
        "endpoints": [vars(e) for e in endpoints],
        "control_url": upstream.control_url,
        "concurrency": concurrency,
        "pairs": pairs,
        "warmup_pairs": warmup_pairs,
        "warmup": warmup,
        "duration": duration,
        "cooldown": cooldown,
        "stagger": stagger,
        "timeout": 60.0,
    }


# The traced server ---------------------------------------------------------------------------


@dataclass
class _Trace:
    tag: str
    marks: dict[str, float] = field(default_factory=dict)
    spans: dict[str, float] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    stage: str = "request"

    def count(self, kind: str) -> None:
        self.counts[f"{self.stage} {kind}"] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "tag": self.tag,
            "marks": self.marks,
            "spans": self.spans,
            "counts": dict(self.counts),
        }


_TRACE: contextvars.ContextVar[_Trace | None] = contextvars.ContextVar("bench_trace", default=None)


def _wrap_async(
    owner: Any,
    name: str,
    span: str,
    *,
    stage_in: str | None = None,
    stage_out: str | None = None,
    mark_in: str | None = None,
    mark_out: str | None = None,
) -> None:
    """Replace `owner.name` (a coroutine function) by one that times itself into the trace."""
    original: Callable[..., Awaitable[Any]] = getattr(owner, name)

    @functools.wraps(original)
    async def timed(*args: Any, **kwargs: Any) -> Any:
        trace = _TRACE.get()
        if trace is None:
            return await original(*args, **kwargs)
        started = now()
        if mark_in:
            trace.marks.setdefault(mark_in, started)
        if stage_in:
            trace.stage = stage_in
        try:
            return await original(*args, **kwargs)
        finally:
            ended = now()
            trace.spans[span] = trace.spans.get(span, 0.0) + ended - started
            if mark_out:
                trace.marks.setdefault(mark_out, ended)
            if stage_out:
                trace.stage = stage_out

    setattr(owner, name, timed)


def _wrap_sync(owner: Any, name: str, span: str, *, mark_in: str | None = None) -> None:
    """Replace `owner.name` (a plain function, so blocking the event loop) by a timed one."""
    original: Callable[..., Any] = getattr(owner, name)

    @functools.wraps(original)
    def timed(*args: Any, **kwargs: Any) -> Any:
        trace = _TRACE.get()
        if trace is None:
            return original(*args, **kwargs)
        started = now()
        if mark_in:
            trace.marks.setdefault(mark_in, started)
        try:
            return original(*args, **kwargs)
        finally:
            trace.spans[span] = trace.spans.get(span, 0.0) + now() - started

    setattr(owner, name, timed)


class Tracer:
    """Timers around the reply path, SQL counted per step, and the event loop's lag."""

    def __init__(self) -> None:
        self.finished: list[_Trace] = []
        self.lags_ms: list[float] = []
        self._monitor: asyncio.Task[None] | None = None

    def install(self) -> None:
        import openai
        from sqlalchemy import event

        from backend.assistants import engine, openai_compat
        from backend.db import RawConnection, get_engine
        from backend.knowledge import retrieval
        from backend.llm import openai_provider
        from backend.usage import leases

        _wrap_async(
            openai_compat,
            "prepare_chat_reply",
            "prepare_reply",
            stage_in="prepare",
            stage_out="stream",
            mark_in="prepare_start",
            mark_out="prepare_end",
        )
        _wrap_sync(openai_compat, "_question_and_history", "question", mark_in="handler")
        # The caller's entry read from the database (when this process does not know it), and
        # the quota lease renewed (when the process's lease cannot serve the reply).
        _wrap_async(RawConnection, "fetchrow", "raw sql")
        _wrap_async(leases.LeaseBook, "_renew", "lease")
        _wrap_async(engine, "_retrieve", "retrieval")
        _wrap_async(retrieval, "_embed_query", "query_embedding")
        _wrap_sync(engine, "context_entered", "context")
        _wrap_sync(engine, "_assistant_of", "assistant")
        _wrap_sync(engine, "chat_provider_for", "chat_client")
        _wrap_sync(engine, "count_message_tokens", "prompt_tokens")
        _wrap_async(engine.ReplyRun, "_finish", "finish", stage_in="finish")
        # The model call's way out: the call begun, the SDK called, the HTTP client's request
        # hook reached (the request is built), the body written to the connection.
        _wrap_async(engine.ModelCall, "streaming", "model_call", mark_in="call_start")
        _wrap_async(openai.AsyncOpenAI, "post", "sdk_post", mark_in="sdk_post")
        _wrap_async(openai_provider, "_traced", "request_hook", mark_in="request_built")
        _wrap_sync(openai_provider, "request_sent", "sent", mark_in="body_written")

        original_text_chunks = openai_compat._text_chunks

        def text_chunks(completion_id: str, model: str, created: int) -> Callable[[str], bytes]:
            text_chunk = original_text_chunks(completion_id, model, created)

            def chunk(text: str) -> bytes:
                trace = _TRACE.get()
                if trace is not None and text:
                    trace.marks.setdefault("first_content_chunk", now())
                return text_chunk(text)

            return chunk

        setattr(openai_compat, "_text_chunks", text_chunks)  # noqa: B010

        # Garbage collections, counted per step; their pauses before the model request is
        # written add to the time to first token.
        collecting: list[float] = []

        def on_collection(phase: str, info: dict[str, Any]) -> None:
            trace = _TRACE.get()
            if trace is None:
                return
            if phase == "start":
                collecting.append(now())
                return
            if not collecting:
                return
            paused = now() - collecting.pop()
            trace.count(f"gc gen{info['generation']}")
            if "body_written" not in trace.marks:
                trace.spans["gc_presend"] = trace.spans.get("gc_presend", 0.0) + paused

        gc.callbacks.append(on_collection)

        sync_engine = get_engine().sync_engine

        def before(conn: Any, *_args: Any) -> None:
            trace = _TRACE.get()
            if trace is not None:
                trace.count("statements")
                conn.info.setdefault("bench_started", []).append(now())

        def after(conn: Any, *_args: Any) -> None:
            trace = _TRACE.get()
            started = conn.info.get("bench_started")
            if trace is not None and started:
                key = f"{trace.stage} sql"
                trace.spans[key] = trace.spans.get(key, 0.0) + now() - started.pop()

        def counter(kind: str) -> Callable[..., None]:
            def count(*_args: Any) -> None:
                trace = _TRACE.get()
                if trace is not None:
                    trace.count(kind)

            return count

        event.listen(sync_engine, "before_cursor_execute", before)
        event.listen(sync_engine, "after_cursor_execute", after)
        event.listen(sync_engine, "begin", counter("begins"))
        event.listen(sync_engine, "commit", counter("commits"))
        event.listen(sync_engine.pool, "checkout", counter("checkouts"))
        event.listen(sync_engine.pool, "connect", counter("new connections"))

    def ensure_monitor(self) -> None:
        if self._monitor is None:
            self._monitor = asyncio.get_running_loop().create_task(self._watch_loop())

    async def _watch_loop(self) -> None:
        while True:
            before = now()
            await asyncio.sleep(LAG_PERIOD_S)
            self.lags_ms.append(max(0.0, _ms(before, now()) - LAG_PERIOD_S * 1000))

    def take(self) -> dict[str, Any]:
        taken = {
            "requests": [t.as_dict() for t in self.finished],
            "loop_lag_ms": lag_summary(self.lags_ms),
        }
        self.finished = []
        self.lags_ms = []
        return taken


def lag_summary(lags: list[float]) -> dict[str, Any]:
    ordered = sorted(lags)
    return {
        "samples": len(ordered),
        "p50": percentile(ordered, 50),
        "p99": percentile(ordered, 99),
        "max": ordered[-1] if ordered else None,
        "over_5ms": sum(1 for v in ordered if v > 5),
        "over_10ms": sum(1 for v in ordered if v > 10),
    }


class TracedApp:
    """Parley's ASGI app with a trace per chat completion; GET /bench/trace hands them over."""

    def __init__(self, app: Any, tracer: Tracer) -> None:
        self.app = app
        self.tracer = tracer

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == TRACE_PATH:
            body = json.dumps(self.tracer.take()).encode()
            headers = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        if scope["path"] != CHAT_PATH:
            await self.app(scope, receive, send)
            return
        self.tracer.ensure_monitor()
        tag = dict(scope.get("headers", [])).get(b"x-request-id", b"").decode("latin-1")
        trace = _Trace(tag, marks={"start": now()})
        token = _TRACE.set(trace)

        async def traced_send(message: Any) -> None:
            await send(message)
            if (
                message["type"] == "http.response.body"
                and "first_content_chunk" in trace.marks
                and "first_content_sent" not in trace.marks
            ):
                trace.marks["first_content_sent"] = now()

        try:
            await _CountingSuspensions(self.app(scope, receive, traced_send), trace)
        finally:
            _TRACE.reset(token)
            trace.marks["end"] = now()
            self.tracer.finished.append(trace)


class _CountingSuspensions:
    """Awaits a request's coroutine, counting each time it hands the event loop back before its
    model request is written, by the last mark reached: under load, each such wait is a turn
    of the loop spent on other requests' work, whatever the CPU of the step itself."""

    def __init__(self, coroutine: Coroutine[Any, Any, None], trace: _Trace) -> None:
        self._coroutine = coroutine
        self._trace = trace

    def __await__(self) -> Generator[Any, Any, None]:
        inner = self._coroutine.__await__()
        trace = self._trace
        to_send: Any = None
        to_throw: BaseException | None = None
        while True:
            try:
                yielded = inner.send(to_send) if to_throw is None else inner.throw(to_throw)
            except StopIteration:
                return
            if "body_written" not in trace.marks:
                last = max(trace.marks, key=trace.marks.__getitem__)
                trace.counts[f"suspended after {last}"] += 1
            try:
                to_send, to_throw = (yield yielded), None
            except BaseException as exc:  # handed to the coroutine, as a task would
                to_send, to_throw = None, exc


def create_traced_app() -> TracedApp:
    """Parley (backend.main.create_app) with the Tracer installed; for the traced phase only."""
    from backend.main import create_app

    tracer = Tracer()
    tracer.install()
    return TracedApp(create_app(), tracer)


# Setup: the workspace, its key, the assistants and the knowledge base -------------------------


@dataclass(frozen=True)
class Seeded:
    tenant_id: uuid.UUID
    api_key: str
    plain_id: uuid.UUID
    kb_assistant_id: uuid.UUID
    documents: int
    chunks: int
    ingestion: list[str]


async def seed() -> Seeded:
    """Through the app's role, with Parley's own services; ingestion runs in this process."""
    from sqlalchemy import func, select

    from backend.apikeys.service import create_api_key
    from backend.assistants import schemas as assistant_schemas
    from backend.assistants.service import create_assistant
    from backend.auth.service import create_user
    from backend.db import PendingJob, get_engine, unit_of_work
    from backend.jobs import close_arq_pool, set_job_sink
    from backend.knowledge import pipeline
    from backend.knowledge import schemas as knowledge_schemas
    from backend.knowledge.service import create_knowledge_base, create_source
    from backend.models import Chunk, ModelProvider, Role
    from backend.tenancy.context import TenantContext, TenantId
    from backend.tenancy.permissions import ROLE_PERMISSIONS, Permission
    from backend.tenancy.service import create_tenant

    jobs: list[PendingJob] = []

    async def keep(job: PendingJob) -> None:
        jobs.append(job)

    set_job_sink(keep)
    try:
        suffix = uuid.uuid4().hex[:8]
        async with unit_of_work() as session:
            user = await create_user(
                session,
                email=f"bench-ttft-{suffix}@example.com",
                password=database.SEED_PASSWORD,
                full_name="Bench Owner",
                verified=True,
            )
            tenant = await create_tenant(
                session,
                owner_id=user.id,
                name="TTFT benchmark",
                slug=f"bench-ttft-{suffix}",
                plan="business",
            )
            ctx = TenantContext(
                tenant_id=TenantId(tenant.id),
                permissions=ROLE_PERMISSIONS[Role.owner],
                user_id=user.id,
                role=Role.owner,
            )
            _, key = await create_api_key(session, ctx, "ttft benchmark", [Permission.chat])
            kb = await create_knowledge_base(
                session, ctx, knowledge_schemas.KnowledgeBaseCreate(name="Parley documentation")
            )
            documents = 0
            for name in KNOWLEDGE_DOCS:
                path = ROOT / "docs" / name
                if not path.is_file():
                    continue
                body = knowledge_schemas.SourceCreate(
                    kind="text", title=name, text=path.read_text(encoding="utf-8")
                )
                await create_source(session, ctx, kb, body)
                documents += 1
            if not documents:
                raise RuntimeError("none of the documentation files for the knowledge base exist")
            plain = await create_assistant(
                session,
                ctx,
                assistant_schemas.AssistantCreate(
                    name="ttft-plain", provider=ModelProvider.openai, instructions=INSTRUCTIONS
                ),
            )
            with_kb = await create_assistant(
                session,
                ctx,
                assistant_schemas.AssistantCreate(
                    name="ttft-knowledge",
                    provider=ModelProvider.openai,
                    instructions=INSTRUCTIONS,
                    knowledge_base_ids=[kb.id],
                ),
            )
        outcomes = []
        for job in jobs:
            if job.function == "ingest_document":
                tenant_arg, document_arg, doc_version, prefetched = job.args
                outcomes.append(
                    await pipeline.ingest_document(
                        uuid.UUID(tenant_arg),
                        uuid.UUID(document_arg),
                        doc_version,
                        prefetched=prefetched,
                    )
                )
        async with unit_of_work(tenant_id=tenant.id) as session:
            chunks = await session.scalar(
                select(func.count()).select_from(Chunk).where(Chunk.knowledge_base_id == kb.id)
            )
        if not chunks:
            raise RuntimeError(f"the knowledge base has no chunks after ingestion: {outcomes}")
    finally:
        set_job_sink(None)
        await close_arq_pool()
        await get_engine().dispose()
    return Seeded(tenant.id, key, plain.id, with_kb.id, documents, int(chunks), outcomes)


# Processes and CPU ---------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = raw[raw.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / (os.sysconf("SC_CLK_TCK") or 100)


class PhaseMeter:
    """api_overhead's CpuMeter (server, its PostgreSQL backends, load client, other), with the
    upstream's CPU taken out of "other"."""

    def __init__(self, server_pid: int, upstream_pid: int, database_name: str) -> None:
        self.meter = CpuMeter(server_pid, database_name)
        self.upstream_pid = upstream_pid
        self._upstream = 0.0

    def start(self) -> None:
        self.meter.start()
        self._upstream = _cpu_seconds(self.upstream_pid)

    def stop(self) -> dict[str, Any]:
        cpu = self.meter.stop()
        cpu["upstream_cpu_s"] = _cpu_seconds(self.upstream_pid) - self._upstream
        return cpu

    @staticmethod
    def with_postgres(cpu: dict[str, Any], postgres_cpu_s: float) -> dict[str, Any]:
        """The PostgreSQL figure from the ActivitySampler, and "other" recomputed: all busy CPU
        less Parley, its backends, the load client and the upstream."""
        wall = cpu["wall_s"]
        busy = sum(cpu["cpu_busy_pct"].values()) / 100 * wall
        known = cpu["server_cpu_s"] + postgres_cpu_s + cpu["client_cpu_s"] + cpu["upstream_cpu_s"]
        other = 100 * max(0.0, busy - known) / wall if wall else 0.0
        return {**cpu, "postgres_cpu_s": postgres_cpu_s, "other_load_pct": round(other, 1)}


ACTIVITY_QUERY = (
    "SELECT count(*) AS connections, "
    "count(*) FILTER (WHERE state = 'active') AS active, "
    "count(*) FILTER (WHERE wait_event_type = 'Lock') AS lock_waits, "
    "count(*) FILTER (WHERE state = 'idle in transaction') AS idle_in_transaction, "
    "coalesce(array_agg(pid), '{}') AS pids "
    "FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend'"
)


class ActivitySampler:
    """Samples pg_stat_activity of the benchmark database every `period` seconds, from a thread
    of its own (connected to another database): how many of Parley's connections wait for a
    lock, and how many sit idle inside a transaction (waiting for Parley's next statement or
    COMMIT) meanwhile. It also follows the CPU time of each backend (from /proc) while it
    lives, so backends that Parley's pool opens and closes during a phase are counted too (up
    to their last sample: a lower bound)."""

    def __init__(self, db: database.BenchDatabase, period: float = 0.05) -> None:
        self.db = db
        self.period = period
        self.rows: list[dict[str, int]] = []
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ActivitySampler:
        self._thread.start()
        self._ready.wait(timeout=10)
        return self

    @property
    def postgres_cpu_s(self) -> float:
        """CPU seconds of the database's backends since the first sample."""
        return sum(self._last[pid] - self._first.get(pid, 0.0) for pid in self._last)

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        asyncio.run(self._sample())

    async def _sample(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(database.plain_url(self.db.server_admin_url))
        try:
            first = True
            while True:
                row = await conn.fetchrow(ACTIVITY_QUERY, self.db.name)
                for pid in row["pids"]:
                    seconds = _cpu_seconds(pid)
                    if first:
                        self._first[pid] = seconds
                    self._last[pid] = max(seconds, self._last.get(pid, 0.0))
                if first:
                    first = False
                    self._ready.set()
                else:
                    self.rows.append({k: int(row[k]) for k in row.keys() if k != "pids"})  # noqa: SIM118
                if self._stop.is_set():
                    return
                await asyncio.sleep(self.period)
        finally:
            self._ready.set()
            await conn.close()

    def summary(self) -> dict[str, Any]:
        return activity_summary(self.rows)


def activity_summary(rows: list[dict[str, int]]) -> dict[str, Any]:
    if not rows:
        return {"samples": 0}
    keys = ("connections", "active", "lock_waits", "idle_in_transaction")
    return {
        "samples": len(rows),
        **{f"{k}_mean": statistics.fmean(r[k] for r in rows) for k in keys},
        **{f"{k}_max": max(r[k] for r in rows) for k in keys},
    }


@dataclass
class Phase:
    name: str
    samples: list[dict[str, Any]]
    sent: dict[str, int]
    cpu: dict[str, Any]
    waited_s: float
    started_at: datetime
    finished_at: datetime
    trace: dict[str, Any] | None = None
    activity: list[dict[str, int]] = field(default_factory=list)


@dataclass
class Rig:
    """The running pieces, and what the phases need to reach them."""

    opts: argparse.Namespace
    db: database.BenchDatabase
    upstream: Upstream
    server: Server
    seeded: Seeded
    work: Path
    direct_body: str = ""
    runs: int = 0
    bare: Server | None = None  # the raw baseline (bench/bare_relay.py), unless --no-bare

    def parley(self, side: str, assistant_id: uuid.UUID) -> Endpoint:
        body = {
            "model": str(assistant_id),
            "messages": [{"role": "user", "content": QUESTION}],
            "stream": True,
        }
        return Endpoint(
            side,
            f"http://127.0.0.1:{self.server.port}{CHAT_PATH}",
            {
                "Authorization": f"Bearer {self.seeded.api_key}",
                "Content-Type": "application/json",
            },
            json.dumps(body),
        )

    def relay(self) -> Endpoint:
        """The bare relay, asked exactly as Parley is."""
        if self.bare is None:
            raise RuntimeError("the bare relay is not running")
        endpoint = self.parley("bare", self.seeded.plain_id)
        return dataclasses.replace(endpoint, url=f"http://127.0.0.1:{self.bare.port}{CHAT_PATH}")

    def bare_phase(self, name: str, spec: dict[str, Any]) -> Phase:
        """A phase against the bare relay, its CPU metered as Parley's server's would be."""
        if self.bare is None:
            raise RuntimeError("the bare relay is not running")
        parley, self.server = self.server, self.bare
        try:
            return self.phase(name, spec)
        finally:
            self.server = parley

    def direct(self) -> Endpoint:
        return Endpoint(
            "direct",
            f"{self.upstream.base_url}/chat/completions",
            {"Authorization": f"Bearer {UPSTREAM_KEY}", "Content-Type": "application/json"},
            self.direct_body,
        )

    def client(self, spec: dict[str, Any]) -> dict[str, Any]:
        self.runs += 1
        spec_path = self.work / f"client-{self.runs}.json"
        spec_path.write_text(json.dumps(spec))
        argv = [sys.executable, "-m", "bench.ttft", "client", "--spec", str(spec_path)]
        result = subprocess.run(
            _pinned(CLIENT_CPU, argv, self.opts.pin),
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"the load client failed:\n{result.stderr[-3000:]}")
        output: dict[str, Any] = json.loads(result.stdout)
        return output

    def phase(self, name: str, spec: dict[str, Any], *, traced: bool = False) -> Phase:
        waited = wait_for_quiet(self.opts.quiet_wait)
        meter = PhaseMeter(self.server.process.pid, self.upstream.process.pid, self.db.name)
        started_at = datetime.now(UTC)
        with ActivitySampler(self.db) as sampler:
            meter.start()
            output = self.client(spec)
            cpu = meter.stop()
        cpu = meter.with_postgres(cpu, sampler.postgres_cpu_s)
        finished_at = datetime.now(UTC)
        trace = self.take_trace() if traced else None
        failed = [s for s in output["samples"] if not s["ok"]]
        if failed:
            kinds = Counter(s["error"] for s in failed)
            print(
                f"    {len(failed)} failed requests: {dict(kinds)}; e.g. {failed[0].get('detail')}"
            )
        return Phase(
            name,
            output["samples"],
            output["sent"],
            cpu,
            round(waited, 1),
            started_at,
            finished_at,
            trace,
            sampler.rows,
        )

    def take_trace(self) -> dict[str, Any]:
        trace: dict[str, Any] = _http_json(f"http://127.0.0.1:{self.server.port}{TRACE_PATH}")
        return trace

    def capture_direct_body(self) -> None:
        """Ask Parley once, then take the body it sent upstream as the direct requests' body."""
        endpoint = self.parley("parley", self.seeded.plain_id)
        request = urllib.request.Request(  # noqa: S310 (our loopback URL)
            endpoint.url,
            data=endpoint.body.replace(TAG, CAPTURE_TAG).encode(),
            headers=endpoint.headers,
        )
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            response.read()
        sent = _http_json(f"{self.upstream.control_url}/last")
        template = json.dumps(sent)
        marker = f"(ref {CAPTURE_TAG})"
        if marker not in template:
            raise RuntimeError(f"Parley's upstream request does not hold the question: {sent}")
        self.direct_body = template.replace(marker, f"(ref {TAG})")
        _http_json(f"{self.upstream.control_url}/arrivals")


# The phases ----------------------------------------------------------------------------------


def _stream_seconds(opts: argparse.Namespace) -> float:
    from tests.standins.openai_chat import split_reply

    deltas = len(split_reply(REPLY, opts.deltas))
    return float(opts.first_token_delay + (deltas - 1) * opts.token_delay)


def _short_shape(rig: Rig) -> None:
    set_shape(rig.upstream, rig.opts.first_token_delay, SHORT_DELTAS, 0.0)


def _long_shape(rig: Rig) -> None:
    set_shape(rig.upstream, rig.opts.first_token_delay, rig.opts.deltas, rig.opts.token_delay)


def _concurrent_spec(
    rig: Rig, name: str, duration: float, warmup: float, other: Endpoint | None = None
) -> dict[str, Any]:
    pair_seconds = 2 * _stream_seconds(rig.opts) + 0.2
    return client_spec(
        name,
        [rig.direct(), other or rig.parley("parley", rig.seeded.plain_id)],
        rig.upstream,
        concurrency=rig.opts.concurrency,
        warmup=max(warmup, pair_seconds),
        duration=duration,
        cooldown=pair_seconds,
        stagger=pair_seconds,
    )


def warm_up(rig: Rig, label: str) -> None:
    print(f"  warm-up ({label})", flush=True)
    _short_shape(rig)
    plain = rig.parley("parley", rig.seeded.plain_id)
    kb = rig.parley("kb", rig.seeded.kb_assistant_id)
    rig.client(client_spec("warm", [rig.direct(), plain], rig.upstream, pairs=0, warmup_pairs=20))
    rig.client(client_spec("warmkb", [plain, kb], rig.upstream, pairs=0, warmup_pairs=10))
    if rig.bare is not None:
        rig.client(
            client_spec(
                "warmb", [rig.direct(), rig.relay()], rig.upstream, pairs=0, warmup_pairs=20
            )
        )
    _long_shape(rig)
    rig.client(_concurrent_spec(rig, "warmc", 0.0, rig.opts.round_warmup))
    if rig.bare is not None:
        rig.client(_concurrent_spec(rig, "warmcb", 0.0, rig.opts.round_warmup, rig.relay()))


def measure_main(rig: Rig) -> dict[str, Any]:
    opts = rig.opts
    phases: dict[str, Any] = {}
    warm_up(rig, "Parley")
    plain = rig.parley("parley", rig.seeded.plain_id)

    print(f"Sequential: {opts.sequential_pairs} pairs, direct vs Parley", flush=True)
    _short_shape(rig)
    spec = client_spec(
        "seq", [rig.direct(), plain], rig.upstream, pairs=opts.sequential_pairs, warmup_pairs=5
    )
    phases["sequential"] = [rig.phase("sequential", spec)]
    if rig.bare is not None:
        print(f"Sequential: {opts.sequential_pairs} pairs, direct vs the bare relay", flush=True)
        spec = client_spec(
            "seqb",
            [rig.direct(), rig.relay()],
            rig.upstream,
            pairs=opts.sequential_pairs,
            warmup_pairs=5,
        )
        phases["sequential_bare"] = [rig.bare_phase("sequential, bare relay", spec)]

    print(
        f"Concurrent: {opts.concurrency} streams, {opts.rounds} rounds of {opts.duration:g} s",
        flush=True,
    )
    _long_shape(rig)
    rounds, bare_rounds = [], []
    for number in range(1, opts.rounds + 1):
        print(f"  round {number}", flush=True)
        spec = _concurrent_spec(rig, f"conc{number}", opts.duration, opts.round_warmup)
        rounds.append(rig.phase(f"concurrent round {number}", spec))
        if rig.bare is not None:
            print(f"  round {number}, the bare relay", flush=True)
            spec = _concurrent_spec(
                rig, f"concb{number}", opts.duration, opts.round_warmup, rig.relay()
            )
            bare_rounds.append(rig.bare_phase(f"concurrent round {number}, bare relay", spec))
    phases["concurrent"] = rounds
    if bare_rounds:
        phases["concurrent_bare"] = bare_rounds

    print(f"Retrieval: {opts.retrieval_pairs} pairs, knowledge vs none, both Parley", flush=True)
    _short_shape(rig)
    kb = rig.parley("kb", rig.seeded.kb_assistant_id)
    spec = client_spec("ret", [plain, kb], rig.upstream, pairs=opts.retrieval_pairs, warmup_pairs=3)
    phases["retrieval"] = [rig.phase("retrieval", spec)]
    return phases


def measure_traced(rig: Rig) -> dict[str, Any]:
    opts = rig.opts
    phases: dict[str, Any] = {}
    warm_up(rig, "traced Parley")
    rig.take_trace()
    plain = rig.parley("parley", rig.seeded.plain_id)
    print(f"Traced, sequential: {opts.traced_pairs} pairs, direct vs Parley", flush=True)
    _short_shape(rig)
    spec = client_spec(
        "tseq", [rig.direct(), plain], rig.upstream, pairs=opts.traced_pairs, warmup_pairs=3
    )
    phases["sequential"] = rig.phase("traced sequential", spec, traced=True)
    pairs = max(10, opts.traced_pairs // 3)
    print(f"Traced, retrieval: {pairs} pairs", flush=True)
    kb = rig.parley("kb", rig.seeded.kb_assistant_id)
    spec = client_spec("tret", [plain, kb], rig.upstream, pairs=pairs, warmup_pairs=3)
    phases["retrieval"] = rig.phase("traced retrieval", spec, traced=True)
    print(f"Traced, concurrent: {opts.concurrency} streams, {opts.traced_duration:g} s", flush=True)
    _long_shape(rig)
    rig.take_trace()
    spec = _concurrent_spec(rig, "tconc", opts.traced_duration, opts.round_warmup)
    phases["concurrent"] = rig.phase("traced concurrent", spec, traced=True)
    return phases


async def answer_stats(db: database.BenchDatabase, windows: dict[str, Phase]) -> dict[str, Any]:
    """What the server saved with each answer: its retrieval_ms, first_token_ms and status, by
    assistant and phase (read as the owner, past row-level security)."""
    import asyncpg

    conn = await asyncpg.connect(database.plain_url(db.owner_url))
    try:
        rows = await conn.fetch(
            "SELECT a.name, m.created_at, m.status::text AS status, "
            "(m.metadata->>'retrieval_ms')::float8 AS retrieval_ms, "
            "(m.metadata->>'first_token_ms')::float8 AS first_token_ms "
            "FROM messages m JOIN conversations c ON c.id = m.conversation_id "
            "JOIN assistants a ON a.id = c.assistant_id WHERE m.role = 'assistant'"
        )
        server_version = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    result: dict[str, Any] = {"postgresql": str(server_version)}
    for name, phase in windows.items():
        until = phase.finished_at.timestamp() + WINDOW_SLACK_S
        inside = [
            r for r in rows if phase.started_at.timestamp() <= r["created_at"].timestamp() <= until
        ]
        by_assistant: dict[str, Any] = {}
        for assistant in sorted({r["name"] for r in inside}):
            mine = [r for r in inside if r["name"] == assistant]
            retrieval = sorted(r["retrieval_ms"] for r in mine if r["retrieval_ms"] is not None)
            first = sorted(r["first_token_ms"] for r in mine if r["first_token_ms"] is not None)
            by_assistant[assistant] = {
                "answers": len(mine),
                "statuses": dict(Counter(r["status"] for r in mine)),
                "retrieval_ms": _p50_p95(retrieval),
                "first_token_ms": _p50_p95(first),
            }
        result[name] = by_assistant
    return result


# Aggregation and verdicts --------------------------------------------------------------------


def _p50_p95(ordered: list[float]) -> dict[str, Any]:
    return {
        "n": len(ordered),
        "p50": percentile(ordered, 50),
        "p95": percentile(ordered, 95),
    }


def side_summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [s for s in samples if s["ok"]]
    timed = [s for s in ok if s["arrival"] is not None]
    return {
        "requests": len(samples),
        "errors": len(samples) - len(ok),
        "errors_by_kind": dict(Counter(s["error"] for s in samples if not s["ok"])),
        **latency_summary([_ms(s["sent"], s["first"]) for s in ok]),
        "to_upstream_ms": _p50_p95(sorted(_ms(s["sent"], s["arrival"]) for s in timed)),
        "upstream_to_first_ms": _p50_p95(sorted(_ms(s["arrival"], s["first"]) for s in timed)),
        "without_arrival": len(ok) - len(timed),
    }


def compare(samples: list[dict[str, Any]], base: str, other: str) -> dict[str, Any]:
    """`other` against `base`: both sides, the difference of their percentiles, and the
    percentiles of the per-pair differences (the two requests of a pair ran back to back)."""
    sides = {
        side: side_summary([s for s in samples if s["side"] == side]) for side in (base, other)
    }
    pairs: dict[str, dict[str, dict[str, Any]]] = {}
    for s in samples:
        # The tag is PHASE-WORKER-PAIR-SIDE: without its side, it names the pair.
        pairs.setdefault(s["tag"].rsplit("-", 1)[0], {})[s["side"]] = s
    diffs = sorted(
        _ms(p[other]["sent"], p[other]["first"]) - _ms(p[base]["sent"], p[base]["first"])
        for p in pairs.values()
        if base in p and other in p and p[base]["ok"] and p[other]["ok"]
    )
    b, o = sides[base], sides[other]
    return {
        "base": base,
        "other": other,
        base: b,
        other: o,
        "overhead_ms": {k: o[f"{k}_ms"] - b[f"{k}_ms"] for k in ("p50", "p95", "p99", "mean")},
        "paired_ms": {
            "pairs": len(diffs),
            "p50": percentile(diffs, 50),
            "p95": percentile(diffs, 95),
            "mean": statistics.fmean(diffs) if diffs else float("nan"),
        },
        # Where the difference arises: before the upstream has the request, or after.
        "split_p50_ms": {
            "before_upstream": o["to_upstream_ms"]["p50"] - b["to_upstream_ms"]["p50"],
            "after_upstream": o["upstream_to_first_ms"]["p50"] - b["upstream_to_first_ms"]["p50"],
        },
    }


def cpu_summary(phases: list[Phase], parley_sides: tuple[str, ...]) -> dict[str, Any]:
    wall = sum(p.cpu["wall_s"] for p in phases)
    parley_requests = sum(p.sent.get(side, 0) for p in phases for side in parley_sides)

    def total(key: str) -> float:
        return float(sum(p.cpu[key] for p in phases))

    def pct(key: str) -> float:
        return 100 * total(key) / wall if wall else float("nan")

    return {
        "wall_s": wall,
        "parley_requests": parley_requests,
        "parley_requests_per_s": parley_requests / wall if wall else float("nan"),
        "server_cpu_pct": pct("server_cpu_s"),
        "postgres_cpu_pct": pct("postgres_cpu_s"),
        "upstream_cpu_pct": pct("upstream_cpu_s"),
        "client_cpu_pct": pct("client_cpu_s"),
        "server_cpu_ms_per_parley_request": 1000 * total("server_cpu_s") / parley_requests
        if parley_requests
        else float("nan"),
        "postgres_cpu_ms_per_parley_request": 1000 * total("postgres_cpu_s") / parley_requests
        if parley_requests
        else float("nan"),
        "cpu_busy_pct_by_round": [p.cpu["cpu_busy_pct"] for p in phases],
        "other_load_pct_by_round": [p.cpu["other_load_pct"] for p in phases],
        "waited_for_quiet_s": [p.waited_s for p in phases],
    }


def summarize(phases: list[Phase], base: str, other: str) -> dict[str, Any]:
    samples = [s for p in phases for s in p.samples]
    summary = compare(samples, base, other)
    parley_sides = tuple(side for side in (base, other) if side != "direct")
    summary["cpu"] = cpu_summary(phases, parley_sides)
    summary["database_activity"] = activity_summary([r for p in phases for r in p.activity])
    if len(phases) > 1:
        by_round = [compare(p.samples, base, other) for p in phases]
        summary["by_round"] = [
            {
                "overhead_p50_ms": r["overhead_ms"]["p50"],
                "overhead_p95_ms": r["overhead_ms"]["p95"],
                "paired_p50_ms": r["paired_ms"]["p50"],
                "paired_p95_ms": r["paired_ms"]["p95"],
                f"{other}_p95_ms": r[other]["p95_ms"],
                f"{base}_p95_ms": r[base]["p95_ms"],
            }
            for r in by_round
        ]
    return summary


# Timeline of a traced request: consecutive segments from the client's send to its first token.
SEGMENTS = (
    ("to Parley: loopback, uvicorn, waiting for the event loop", "sent", "start"),
    ("middleware, routing, reading and validating the body", "start", "handler"),
    ("the handler until the reply is prepared", "handler", "prepare_start"),
    ("prepare_chat_reply: caller, assistant, prompt, quota", "prepare_start", "prepare_end"),
    ("  until the model call starts", "prepare_start", "call_start"),
    ("  until the SDK is called", "call_start", "sdk_post"),
    ("  the SDK building the request", "sdk_post", "request_built"),
    ("  the HTTP client sending it", "request_built", "body_written"),
    ("  until prepare_chat_reply returns", "body_written", "prepare_end"),
    ("from there until the upstream has the request", "prepare_end", "arrival"),
    ("upstream's first token (fixed delay) and SSE parsing", "arrival", "first_content_chunk"),
    ("building and sending the chunk", "first_content_chunk", "first_content_sent"),
    ("to the client", "first_content_sent", "first"),
)
DIRECT_SEGMENTS = (
    ("to the upstream", "sent", "arrival"),
    ("upstream's first token (fixed delay) to the client", "arrival", "first"),
)
PREPARE_SPANS = (
    ("raw sql", "the caller's entry read (parley_enter_chat), when not known"),
    ("lease", "the quota lease renewed (parley_lease_quota), when due"),
    ("context", "tenant context from the entry"),
    ("assistant", "the assistant from the entry's row, when not known"),
    ("retrieval", "retrieval"),
    ("query_embedding", "  of which query embedding"),
    ("chat_client", "chat client construction (openai.AsyncOpenAI), blocking"),
    ("prompt_tokens", "prompt token count, blocking"),
    ("prepare sql", "  SQL statements sent through SQLAlchemy (retrieval)"),
    ("gc_presend", "garbage collection before the request is written"),
)


def breakdown(phase: Phase, side: str) -> dict[str, Any]:
    """Per-segment p50/p95 of the traced requests of `side`, the direct side's segments, the
    statements per step, and the event loop's lag during the phase."""
    assert phase.trace is not None
    traces = {t["tag"]: t for t in phase.trace["requests"]}
    segments: dict[str, list[float]] = {label: [] for label, _, _ in SEGMENTS}
    spans: dict[str, list[float]] = {label: [] for _, label in PREPARE_SPANS}
    counts: dict[str, list[int]] = {}
    round_trips: list[int] = []
    for sample in phase.samples:
        trace = traces.get(sample["tag"])
        if sample["side"] != side or not sample["ok"] or trace is None:
            continue
        marks = {**trace["marks"], "sent": sample["sent"], "first": sample["first"]}
        if sample["arrival"] is not None:
            marks["arrival"] = sample["arrival"]
        for label, start, end in SEGMENTS:
            if start in marks and end in marks:
                segments[label].append(_ms(marks[start], marks[end]))
        for key, label in PREPARE_SPANS:
            spans[label].append(1000 * trace["spans"].get(key, 0.0))
        for key, number in trace["counts"].items():
            counts.setdefault(key, []).append(number)
        # Each statement, BEGIN, COMMIT and pool checkout (its pre-ping) is one round trip.
        round_trips.append(
            sum(n for k, n in trace["counts"].items() if not k.endswith("new connections"))
        )
    direct: dict[str, list[float]] = {label: [] for label, _, _ in DIRECT_SEGMENTS}
    for sample in phase.samples:
        if sample["side"] == "direct" and sample["ok"] and sample["arrival"] is not None:
            marks = {"sent": sample["sent"], "arrival": sample["arrival"], "first": sample["first"]}
            for label, start, end in DIRECT_SEGMENTS:
                direct[label].append(_ms(marks[start], marks[end]))
    return {
        "side": side,
        "traced_requests": len(next(iter(spans.values()))),
        "segments_ms": {k: _p50_p95(sorted(v)) for k, v in segments.items()},
        "prepare_reply_ms": {k: _p50_p95(sorted(v)) for k, v in spans.items()},
        "direct_segments_ms": {k: _p50_p95(sorted(v)) for k, v in direct.items()},
        "round_trips_per_request": statistics.median(round_trips) if round_trips else 0,
        # Means over all traced requests (a request without the event counts 0).
        "per_request_counts": {
            k: {"mean": sum(v) / len(round_trips), "max": max(v)} for k, v in sorted(counts.items())
        },
        "loop_lag_ms": phase.trace["loop_lag_ms"],
        "database_activity": activity_summary(phase.activity),
    }


def verdicts(
    concurrent: dict[str, Any], opts: argparse.Namespace, bare: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    errors = concurrent["parley"]["errors"] + concurrent["direct"]["errors"]
    at = f"at {opts.concurrency} concurrent streams"
    note = "" if opts.concurrency == GOAL_CONCURRENCY else f" (the goal: {GOAL_CONCURRENCY})"
    results = []
    for key, goal in (("p50", P50_GOAL_MS), ("p95", P95_GOAL_MS)):
        value = concurrent["overhead_ms"][key]
        paired = concurrent["paired_ms"][key]
        rounds = ", ".join(f"{r[f'overhead_{key}_ms']:.1f}" for r in concurrent.get("by_round", []))
        results.append(
            {
                "goal": f"overhead <= {goal:g} ms at {key} {at}{note}",
                "passed": errors == 0 and value <= goal,
                "value": value,
                "detail": f"Parley {concurrent['parley'][f'{key}_ms']:.1f} ms - direct "
                f"{concurrent['direct'][f'{key}_ms']:.1f} ms = {value:+.1f} ms (per-pair "
                f"differences: {key} {paired:+.1f} ms; by round: {rounds}); "
                f"{concurrent['paired_ms']['pairs']} pairs, {errors} errors"
                + (
                    f"; the bare relay in the same run: {bare['overhead_ms'][key]:+.1f} ms"
                    if bare is not None
                    else ""
                ),
            }
        )
    return results


# Report --------------------------------------------------------------------------------------


def _f(value: Any, fmt: str = ".1f") -> str:
    return "-" if value is None else format(value, fmt)


def comparison_rows(title: str, summary: dict[str, Any]) -> list[str]:
    base, other = summary["base"], summary["other"]
    b, o = summary[base], summary[other]
    cpu = summary["cpu"]
    lines = [
        f"{title}",
        f"  {'':<34}{base:>12}{other:>12}{'difference':>12}",
    ]
    for key in ("p50", "p95", "p99", "mean"):
        diff = summary["overhead_ms"][key]
        lines.append(
            f"  {'TTFT ' + key + ' ms':<34}{b[key + '_ms']:>12.2f}{o[key + '_ms']:>12.2f}"
            f"{diff:>+12.2f}"
        )
    paired = summary["paired_ms"]
    lines.append(
        f"  {'per-pair difference p50 / p95 ms':<34}{'':>12}{'':>12}"
        f"{paired['p50']:>+6.2f}/{paired['p95']:<+6.1f}"
    )
    for label, key in (("until the upstream has it", "to_upstream_ms"),):
        lines.append(
            f"  {label + ', p50 ms':<34}{b[key]['p50']:>12.2f}{o[key]['p50']:>12.2f}"
            f"{o[key]['p50'] - b[key]['p50']:>+12.2f}"
        )
    key = "upstream_to_first_ms"
    lines.append(
        f"  {'from there to first token, p50 ms':<34}{b[key]['p50']:>12.2f}"
        f"{o[key]['p50']:>12.2f}{o[key]['p50'] - b[key]['p50']:>+12.2f}"
    )
    requests = [f"{x['requests']} ({x['errors']})" for x in (b, o)]
    lines.append(f"  {'requests recorded (errors)':<34}{requests[0]:>12}{requests[1]:>12}")
    server = "The bare relay" if other == "bare" else "Parley"
    lines.append(
        f"  {server}: {cpu['parley_requests_per_s']:.1f} req/s, server CPU "
        f"{cpu['server_cpu_pct']:.0f}% of a core ({cpu['server_cpu_ms_per_parley_request']:.1f} "
        f"ms/request), its PostgreSQL {cpu['postgres_cpu_pct']:.0f}% "
        f"({cpu['postgres_cpu_ms_per_parley_request']:.1f} ms/request), upstream "
        f"{cpu['upstream_cpu_pct']:.0f}%, client {cpu['client_cpu_pct']:.0f}%, other "
        + "/".join(f"{v:.0f}" for v in cpu["other_load_pct_by_round"])
        + "%"
    )
    lines += activity_rows(summary["database_activity"])
    for number, r in enumerate(summary.get("by_round", []), start=1):
        lines.append(
            f"  round {number}: overhead p50 {r['overhead_p50_ms']:+.1f} ms, p95 "
            f"{r['overhead_p95_ms']:+.1f} ms (per pair: {r['paired_p50_ms']:+.1f} / "
            f"{r['paired_p95_ms']:+.1f})"
        )
    return lines


def activity_rows(activity: dict[str, Any]) -> list[str]:
    if not activity["samples"]:
        return []
    return [
        f"  Parley's database connections ({activity['samples']} samples of pg_stat_activity): "
        f"mean / max {activity['connections_mean']:.1f} / {activity['connections_max']} open, "
        f"{activity['active_mean']:.1f} / {activity['active_max']} active, "
        f"{activity['lock_waits_mean']:.1f} / {activity['lock_waits_max']} waiting for a lock, "
        f"{activity['idle_in_transaction_mean']:.1f} / {activity['idle_in_transaction_max']} "
        "idle in transaction"
    ]


def breakdown_rows(title: str, b: dict[str, Any]) -> list[str]:
    lines = [f"{title} ({b['traced_requests']} traced requests), p50 / p95 ms:"]
    for label, v in b["segments_ms"].items():
        lines.append(f"  {label:<58}{_f(v['p50'], '.2f'):>9} /{_f(v['p95'], '.2f'):>8}")
    lines.append("  inside prepare_chat_reply:")
    for label, v in b["prepare_reply_ms"].items():
        lines.append(f"    {label:<56}{_f(v['p50'], '.2f'):>9} /{_f(v['p95'], '.2f'):>8}")
    if any(v["n"] for v in b["direct_segments_ms"].values()):
        lines.append("  direct:")
        for label, v in b["direct_segments_ms"].items():
            lines.append(f"    {label:<56}{_f(v['p50'], '.2f'):>9} /{_f(v['p95'], '.2f'):>8}")
    counts = ", ".join(
        f"{k} {v['mean']:.2g} (max {v['max']:g})" for k, v in b["per_request_counts"].items()
    )
    lines.append(
        f"  per request: {b['round_trips_per_request']:g} database round trips (median); "
        f"means: {counts}"
    )
    lag = b["loop_lag_ms"]
    lines.append(
        f"  event loop lag ({lag['samples']} samples every {LAG_PERIOD_S * 1000:g} ms): p50 "
        f"{_f(lag['p50'], '.2f')}, p99 {_f(lag['p99'], '.1f')}, max {_f(lag['max'], '.1f')} ms; "
        f"{lag['over_5ms']} over 5 ms, {lag['over_10ms']} over 10 ms"
    )
    lines += activity_rows(b["database_activity"])
    return lines


def render(report: dict[str, Any]) -> str:
    main = report["phases"]
    lines: list[str] = []
    lines += comparison_rows(
        f"Sequential (1 stream, {report['settings']['sequential_pairs']} pairs)",
        main["sequential"],
    )
    lines += comparison_rows(
        f"Concurrent ({report['settings']['concurrency']} streams)", main["concurrent"]
    )
    if "sequential_bare" in main:
        lines += comparison_rows(
            "Raw baseline: the bare relay (bench/bare_relay.py), sequential",
            main["sequential_bare"],
        )
    if "concurrent_bare" in main:
        lines += comparison_rows(
            f"Raw baseline: the bare relay, {report['settings']['concurrency']} streams",
            main["concurrent_bare"],
        )
    lines += comparison_rows("Retrieval (1 stream, knowledge vs none)", main["retrieval"])
    answers = report["answers"].get("retrieval", {})
    for name, stats in answers.items():
        r = stats["retrieval_ms"]
        lines.append(
            f"  server retrieval_ms, {name}: p50 {_f(r['p50'], '.2f')}, p95 "
            f"{_f(r['p95'], '.2f')} ({r['n']} answers; statuses {stats['statuses']})"
        )
    for name, b in report.get("traced", {}).items():
        lines.append("")
        lines += breakdown_rows(f"Traced server, {name}", b)
    return "\n".join(lines)


def render_verdicts(results: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{'PASS' if v['passed'] else 'FAIL'}  {v['goal']}: {v['detail']}" for v in results
    )


def render_markdown(report: dict[str, Any]) -> str:
    machine = report["machine"]
    return (
        f"Command: `{report['command']}`\n\n"
        f"Machine: {machine['nproc']} CPUs ({machine['cpu_model']}), {machine['memory_gib']} GiB "
        f"RAM, Linux {machine['kernel']}, Python {machine['python']}, PostgreSQL "
        f"{report['answers']['postgresql']}; run {report['started_at']}.\n\n"
        f"```\n{render(report)}\n```\n\n"
        + "\n".join(
            f"- **{'PASS' if v['passed'] else 'FAIL'}** {v['goal']}: {v['detail']}"
            for v in report["verdicts"]
        )
        + "\n"
    )


# The run -------------------------------------------------------------------------------------


def parley_env(db: database.BenchDatabase, redis_url: str, work: Path) -> dict[str, str]:
    env = server_env(db.app_url, redis_url, 0)
    env.update(
        {
            "PARLEY_DATA_DIR": str(work / "data"),
            "PARLEY_OPENAI_CHAT_MODEL": UPSTREAM_MODEL,
            "PARLEY_OPENAI_BASE_URL": "",
            "PARLEY_OPENAI_API_KEY": "",
        }
    )
    return env


def _measure(
    opts: argparse.Namespace, db: database.BenchDatabase, redis_url: str, work: Path
) -> tuple[dict[str, Any], dict[str, Any], Seeded]:
    print("Seeding: workspace, API key, assistants, knowledge base (ingesting docs)...", flush=True)
    seeded = asyncio.run(seed())
    print(f"  {seeded.documents} documents, {seeded.chunks} chunks", flush=True)
    upstream = start_upstream(opts, work)
    env = parley_env(db, redis_url, work)
    env["PARLEY_OPENAI_BASE_URL"] = upstream.base_url
    env["PARLEY_OPENAI_API_KEY"] = UPSTREAM_KEY
    rig: Rig | None = None
    try:
        plain = Target("parley", "Parley", "backend.main:create_app", "/healthz", db.app_url)
        server = start_server(plain, env, opts, work)
        rig = Rig(opts, db, upstream, server, seeded, work)
        wait_ready(server, {})
        rig.capture_direct_body()
        if opts.bare:
            rig.bare = start_bare_relay(rig, env)
        main = measure_main(rig)
        stop_server(server)
        if rig.bare is not None:
            stop_server(rig.bare)
            rig.bare = None
        traced: dict[str, Any] = {}
        if opts.trace:
            target = Target(
                "traced", "Parley, traced", "bench.ttft:create_traced_app", "/healthz", db.app_url
            )
            # One process: the tracer's figures live in the process that served the request.
            one_worker = argparse.Namespace(**{**vars(opts), "workers": 1})
            rig.server = start_server(target, env, one_worker, work)
            wait_ready(rig.server, {})
            traced = measure_traced(rig)
            stop_server(rig.server)
    finally:
        if rig is not None:
            stop_server(rig.server)
            if rig.bare is not None:
                stop_server(rig.bare)
        stop_process(upstream.process)
    return main, traced, seeded


def start_bare_relay(rig: Rig, env: dict[str, str]) -> Server:
    """The raw baseline: bench/bare_relay.py with Parley's uvicorn settings and workers,
    sending the upstream the body Parley sends it."""
    body = rig.work / "relay-body.json"
    body.write_text(rig.direct_body)
    relay_env = {
        **env,
        bare_relay.UPSTREAM_ENV: rig.upstream.base_url,
        bare_relay.KEY_ENV: UPSTREAM_KEY,
        bare_relay.RELAY_BODY_ENV: str(body),
    }
    target = Target("bare", "Bare relay", "bench.bare_relay:create_app", "/healthz", None)
    server = start_server(target, relay_env, rig.opts, rig.work)
    wait_ready(server, {})
    return server


def run(opts: argparse.Namespace) -> int:
    admin_url = opts.admin_url or os.environ.get("PARLEY_TEST_ADMIN_DATABASE_URL")
    redis_url = opts.redis_url or os.environ.get("PARLEY_TEST_REDIS_URL")
    if not admin_url or not redis_url:
        print(
            "bench: set PARLEY_TEST_ADMIN_DATABASE_URL and PARLEY_TEST_REDIS_URL (make bench "
            "does), or pass --admin-url and --redis-url",
            file=sys.stderr,
        )
        return 2
    opts.pin = can_pin(opts)
    from tests.standins.openai_chat import split_reply

    # The stand-in cuts the reply between words: the deltas it actually sends.
    deltas = len(split_reply(REPLY, opts.deltas))
    short_deltas = len(split_reply(REPLY, SHORT_DELTAS))
    db = database.BenchDatabase(admin_url, opts.database, APP_ROLE_USER, APP_ROLE_PASSWORD)
    machine = machine_info(None)
    machine.pop("wrk", None)
    machine["packages"].update({name: version(name) for name in ("openai", "aiohttp")})
    started_at = datetime.now(UTC)
    print(
        f"bench ttft: {machine['nproc']} CPUs ({machine['cpu_model']}), "
        f"load average {machine['load_average_at_start']}; concurrent phase replies: {deltas} "
        f"deltas {opts.token_delay:g} s apart, about "
        f"{opts.first_token_delay + (deltas - 1) * opts.token_delay:.1f} s per stream",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="parley-bench-ttft-") as tmp:
        work = Path(tmp)
        # This process migrates, seeds and ingests with the servers' settings, as the app role.
        os.environ.update(parley_env(db, redis_url, work))
        try:
            print(f"Creating database {db.name}, migrating...", flush=True)
            asyncio.run(database.recreate(db))
            database.migrate(db)
            main, traced, seeded = _measure(opts, db, redis_url, work)
            windows = {
                "sequential": main["sequential"][0],
                "retrieval": main["retrieval"][0],
            }
            answers = asyncio.run(answer_stats(db, windows))
        finally:
            if not opts.keep_database:
                asyncio.run(database.drop(db))

    summaries = {
        "sequential": summarize(main["sequential"], "direct", "parley"),
        "concurrent": summarize(main["concurrent"], "direct", "parley"),
        "retrieval": summarize(main["retrieval"], "parley", "kb"),
    }
    for phase in ("sequential", "concurrent"):
        if f"{phase}_bare" in main:
            summaries[f"{phase}_bare"] = summarize(main[f"{phase}_bare"], "direct", "bare")
    traced_summary = {}
    if traced:
        traced_summary = {
            "sequential, Parley": breakdown(traced["sequential"], "parley"),
            "retrieval, knowledge assistant": breakdown(traced["retrieval"], "kb"),
            f"{opts.concurrency} concurrent streams, Parley": breakdown(
                traced["concurrent"], "parley"
            ),
        }
    checked = verdicts(summaries["concurrent"], opts, summaries.get("concurrent_bare"))
    noisy = [
        f"{p.name}: other load {p.cpu['other_load_pct']:.0f}% of a core"
        for group in main.values()
        for p in group
        if p.cpu["other_load_pct"] > OTHER_LOAD_WARN_PCT
    ]
    loop, http = fastest_implementations()
    report: dict[str, Any] = {
        "benchmark": "ttft",
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["python", "-m", "bench", *opts.argv]),
        "machine": machine,
        "settings": {
            "concurrency": opts.concurrency,
            "rounds": opts.rounds,
            "duration_s": opts.duration,
            "round_warmup_s": opts.round_warmup,
            "sequential_pairs": opts.sequential_pairs,
            "retrieval_pairs": opts.retrieval_pairs,
            "traced_pairs": opts.traced_pairs if opts.trace else None,
            "traced_duration_s": opts.traced_duration if opts.trace else None,
            "upstream": {
                "first_token_delay_s": opts.first_token_delay,
                "concurrent_phase": {"deltas": deltas, "token_delay_s": opts.token_delay},
                "other_phases": {"deltas": short_deltas, "token_delay_s": 0.0},
                "reply_words": len(REPLY.split()),
            },
            "uvicorn": {"workers": opts.workers, "loop": loop, "http": http, "access_log": False},
            "pinned": {"parley_cpu": SERVER_CPU, "upstream_and_client_cpu": CLIENT_CPU}
            if opts.pin
            else None,
        },
        "setup": {
            "knowledge_documents": seeded.documents,
            "knowledge_chunks": seeded.chunks,
            "ingestion": seeded.ingestion,
        },
        "phases": summaries,
        "answers": answers,
        "traced": traced_summary,
        "verdicts": checked,
        "noisy_phases": noisy,
    }
    print()
    print(render(report))
    print()
    print(render_verdicts(checked))
    for line in noisy:
        print(f"warning: noisy phase, {line}")
    output = Path(opts.output) if opts.output else default_output(started_at)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    output.with_suffix(".md").write_text(render_markdown(report))
    print(f"\nResults written to {output} (and a Markdown summary, {output.with_suffix('.md')})")
    return 0


def default_output(started_at: datetime) -> Path:
    return ROOT / ".data" / "bench" / f"ttft-{started_at:%Y%m%dT%H%M%SZ}.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--concurrency", type=int, default=GOAL_CONCURRENCY, help="concurrent client streams"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the concurrent phase")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="uvicorn workers of Parley (above 1: nothing is pinned; the traced phase runs one)",
    )
    parser.add_argument(
        "--duration", type=float, default=25.0, help="recorded seconds per concurrent round"
    )
    parser.add_argument(
        "--round-warmup",
        type=float,
        default=5.0,
        help="unrecorded seconds at the start of each concurrent round",
    )
    parser.add_argument(
        "--sequential-pairs", type=int, default=250, help="pairs of the sequential phase"
    )
    parser.add_argument(
        "--retrieval-pairs", type=int, default=100, help="pairs of the retrieval phase"
    )
    parser.add_argument(
        "--traced-pairs", type=int, default=100, help="pairs of the traced sequential phase"
    )
    parser.add_argument(
        "--traced-duration",
        type=float,
        default=10.0,
        help="recorded seconds of the traced concurrent phase",
    )
    parser.add_argument(
        "--no-trace", dest="trace", action="store_false", help="skip the traced phases"
    )
    parser.add_argument(
        "--no-bare",
        dest="bare",
        action="store_false",
        help="skip the raw baseline (the bare relay, bench/bare_relay.py)",
    )
    parser.add_argument(
        "--first-token-delay",
        type=float,
        default=0.05,
        help="seconds before the upstream's first token",
    )
    parser.add_argument(
        "--deltas",
        type=int,
        default=40,
        help="deltas per reply in the concurrent phase (the 40-word reply is cut between "
        "words, so 40 at most)",
    )
    parser.add_argument(
        "--token-delay",
        type=float,
        default=0.04,
        help="seconds between deltas in the concurrent phase",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=30.0,
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
    parser.add_argument("--output", help="JSON results file (default .data/bench/...)")


# Entry points of the benchmark's own processes -----------------------------------------------


def process_main(argv: list[str]) -> int:
    """`python -m bench.ttft upstream|client ...`: the processes the benchmark starts."""
    parser = argparse.ArgumentParser(prog="python -m bench.ttft")
    roles = parser.add_subparsers(dest="role", required=True)
    upstream = roles.add_parser("upstream", help="the loopback chat server")
    upstream.add_argument("--ready-file", type=Path, required=True)
    upstream.add_argument("--first-token-delay", type=float, required=True)
    client = roles.add_parser("client", help="the load client; prints JSON")
    client.add_argument("--spec", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.role == "upstream":
        run_async(serve_upstream(args.ready_file, args.first_token_delay))
        return 0
    result = run_async(run_client(json.loads(args.spec.read_text())))
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(process_main(sys.argv[1:]))
