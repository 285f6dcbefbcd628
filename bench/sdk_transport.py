"""Benchmark: CPU per streamed chat completion call through the `openai` SDK, by HTTP transport.

    python -m bench sdk-transport [--calls 2000] [--blocks 6] [--concurrency 1 25]

One process makes the calls the way Parley's chat provider does (`AsyncOpenAI.post` to the
endpoint's absolute URL, streamed, as a raw response, its lines read to `[DONE]`) through two
SDK clients side by side:

  httpx2    the SDK's default HTTP client (`openai.DefaultAsyncHttpxClient`): the raw baseline;
  aiohttp   Parley's (`backend.llm.transport.AiohttpClient`): the same client over aiohttp.

The upstream is a loopback aiohttp server in a process of its own, answering each call with a
short stream (a role chunk, one text delta, the finish, the usage, `[DONE]`). Calls run in
blocks of --calls, --concurrency at a time, on the event loop uvicorn picks here (uvloop when
installed); the sides' blocks alternate, A B B A ..., so the machine's drifts hit both. A
block's CPU per call is the process's CPU time over its calls: the SDK, the HTTP client and
the event loop, but not the upstream. Also reported: the median time from starting a call to
its first text line, per block. It exits 0 unless a call fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import time
from collections.abc import Callable
from importlib.metadata import version
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx2
import openai

from backend.llm.transport import AiohttpClient
from bench.api_overhead import machine_info
from bench.serve import fastest_implementations
from bench.stats import percentile

SIDES = ("httpx2", "aiohttp")
QUESTION = "When does the shop open on Saturdays? " * 20
BODY = {
    "model": "bench-model",
    "messages": [
        {"role": "system", "content": "Answer from the numbered passages. " * 40},
        {"role": "user", "content": QUESTION},
    ],
    "temperature": 0.2,
    "max_tokens": 512,
    "stream": True,
    "stream_options": {"include_usage": True},
}


def _events() -> bytes:
    envelope = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "model": "m"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**envelope, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    usage = {"prompt_tokens": 400, "completion_tokens": 2, "total_tokens": 402}
    events = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "At ten."}),
        chunk({}, "stop"),
        {**envelope, "choices": [], "usage": usage},
    ]
    return b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events) + b"data: [DONE]\n\n"


def _serve_upstream(ready: Connection) -> None:
    from aiohttp import web

    from bench.loopback import serve_on_loopback

    events = _events()

    async def completions(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(events)
        await response.write_eof()
        return response

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", completions)
        _runner, port = await serve_on_loopback(app)
        ready.send(port)
        await asyncio.Event().wait()

    asyncio.run(main())


def _client(side: str, base_url: str) -> openai.AsyncOpenAI:
    http = AiohttpClient() if side == "aiohttp" else openai.DefaultAsyncHttpxClient()
    return openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0, http_client=http)


async def _call(client: openai.AsyncOpenAI, url: str) -> float:
    """One call, read to `[DONE]`; returns the seconds to its first text line."""
    started = time.perf_counter()
    first = 0.0
    raw = await client.post(url, cast_to=httpx2.Response, body=BODY, stream=True, stream_cls=None)
    try:
        async for line in raw.aiter_lines():
            if not first and '"At ten."' in line:
                first = time.perf_counter() - started
            if line.startswith("data: [DONE]"):
                break
    finally:
        await raw.aclose()
    if not first:
        raise RuntimeError("the upstream's stream had no text")
    return first


async def _block(
    client: openai.AsyncOpenAI, url: str, calls: int, concurrency: int
) -> dict[str, float]:
    firsts: list[float] = []
    remaining = iter(range(calls))

    async def worker() -> None:
        for _ in remaining:
            firsts.append(await _call(client, url))

    cpu = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu = time.process_time() - cpu
    firsts.sort()
    return {"cpu_us": cpu / calls * 1e6, "first_line_ms": percentile(firsts, 50) * 1e3}


async def _measure(opts: argparse.Namespace, base_url: str) -> dict[str, Any]:
    clients = {side: _client(side, base_url) for side in SIDES}
    url = f"{base_url}/chat/completions"
    results: dict[str, Any] = {}
    try:
        for concurrency in opts.concurrency:
            for side in SIDES:  # warm-up: connections opened, code paths run
                await _block(clients[side], url, min(opts.calls, 300), concurrency)
            blocks: dict[str, list[dict[str, float]]] = {side: [] for side in SIDES}
            for index in range(opts.blocks):
                order = SIDES if index % 2 == 0 else tuple(reversed(SIDES))
                for side in order:
                    blocks[side].append(await _block(clients[side], url, opts.calls, concurrency))
            results[str(concurrency)] = blocks
    finally:
        for client in clients.values():
            await client.close()
    return results


def _summary(blocks: list[dict[str, float]], key: str) -> dict[str, float]:
    values = [block[key] for block in blocks]
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def render(report: dict[str, Any]) -> str:
    lines = [
        f"Command: `{report['command']}`",
        "",
        f"Machine: {report['machine']}; run {report['started']}.",
        "",
        "| concurrency | side | CPU per call, median (min–max) µs "
        "| first text line, median of blocks ms |",
        "| ---: | --- | ---: | ---: |",
    ]
    for concurrency, blocks in report["results"].items():
        for side in SIDES:
            cpu = _summary(blocks[side], "cpu_us")
            first = _summary(blocks[side], "first_line_ms")
            lines.append(
                f"| {concurrency} | {side} | {cpu['median']:.0f} "
                f"({cpu['min']:.0f}–{cpu['max']:.0f}) | {first['median']:.2f} |"
            )
        base = _summary(blocks["httpx2"], "cpu_us")["median"]
        ours = _summary(blocks["aiohttp"], "cpu_us")["median"]
        lines.append(f"| {concurrency} | aiohttp / httpx2 | {ours / base:.2f} | |")
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--calls", type=int, default=2000, help="calls per block")
    parser.add_argument("--blocks", type=int, default=6, help="blocks per side")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[1, 25], help="calls in flight"
    )
    parser.add_argument("--output", help="JSON results file (default .data/bench/...)")


def run(opts: argparse.Namespace) -> int:
    receiving, sending = multiprocessing.Pipe(duplex=False)
    upstream = multiprocessing.get_context("spawn").Process(
        target=_serve_upstream, args=(sending,), daemon=True
    )
    upstream.start()
    try:
        port = receiving.recv()
        loop_name, _http = fastest_implementations()
        runner: Callable[..., Any] = asyncio.run
        if loop_name == "uvloop":
            import uvloop

            runner = uvloop.run
        started = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        results = runner(_measure(opts, f"http://127.0.0.1:{port}/v1"))
    finally:
        upstream.terminate()
        upstream.join()
    machine = machine_info(None)
    report = {
        "command": "python -m bench sdk-transport "
        f"--calls {opts.calls} --blocks {opts.blocks} "
        f"--concurrency {' '.join(map(str, opts.concurrency))}",
        "machine": f"{machine['nproc']} CPUs ({machine['cpu_model']}), "
        f"Linux {machine['kernel']}, Python {machine['python']}, loop {loop_name}, "
        f"openai {openai.__version__}, aiohttp {version('aiohttp')}, httpx2 {version('httpx2')}",
        "started": started,
        "results": results,
    }
    output = Path(opts.output or f".data/bench/sdk-transport-{started}.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2))
    markdown = render(report)
    output.with_suffix(".md").write_text(markdown)
    print(markdown)
    print(f"Results written to {output} (and a Markdown summary, {output.with_suffix('.md')})")
    return 0
