"""Benchmark: embedding concurrent search queries with the local model, side by side.

    python -m bench query-embedding [--clients 1,8,32] [--queries 240] [--rounds 3]

Every search embeds its query first, so under concurrent searches the local model gets many
short calls at once. Three sides embed the same distinct questions (one per call), in the same
process, in alternating rounds:

  raw        the model alone: `embed_sync([query])` one after another on this thread, no event
             loop; the floor for one query per forward pass;
  alone      Parley's provider with coalescing off: each call runs its own pass on the
             provider's thread (`LocalMiniLMProvider(coalesce=False)`);
  coalesced  Parley's provider as shipped: calls that arrive while the model is busy share its
             next forward pass.

`alone` and `coalesced` run N concurrent clients (asyncio tasks), each embedding its share of
the questions one call at a time; `raw` runs once per round, as it has no concurrency. Reported
per side and concurrency: the process's CPU time per query (all threads, OpenBLAS's included),
queries per second, and the latency of each call (p50 / p95). No database is needed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.stats import latency_summary

ROOT = Path(__file__).resolve().parent.parent

TOPICS = (
    "opening hours",
    "refunds",
    "delivery to Norway",
    "the warranty",
    "invoices",
    "gift cards",
    "the loyalty programme",
    "changing an order",
)


def questions(count: int) -> list[str]:
    """Distinct, chat-like questions of 8 to 16 words."""
    return [
        f"Hello, question {n}: what does your shop say about {TOPICS[n % len(TOPICS)]} "
        f"for customers in region {n // len(TOPICS)}?"
        for n in range(count)
    ]


def _measure_raw(provider: Any, texts: list[str]) -> dict[str, Any]:
    latencies: list[float] = []
    cpu = time.process_time()
    began = time.perf_counter()
    for text in texts:
        started = time.perf_counter()
        provider.embed_sync([text])
        latencies.append((time.perf_counter() - started) * 1000)
    wall = time.perf_counter() - began
    cpu = time.process_time() - cpu
    return {"cpu_ms": cpu * 1000 / len(texts), "qps": len(texts) / wall, "latencies": latencies}


async def _measure_concurrent(provider: Any, texts: list[str], clients: int) -> dict[str, Any]:
    latencies: list[float] = []
    shares = [texts[i::clients] for i in range(clients)]

    async def client(share: list[str]) -> None:
        for text in share:
            started = time.perf_counter()
            await provider.embed([text])
            latencies.append((time.perf_counter() - started) * 1000)

    cpu = time.process_time()
    began = time.perf_counter()
    await asyncio.gather(*(client(share) for share in shares))
    wall = time.perf_counter() - began
    cpu = time.process_time() - cpu
    return {"cpu_ms": cpu * 1000 / len(texts), "qps": len(texts) / wall, "latencies": latencies}


def _merge(runs: list[dict[str, Any]]) -> dict[str, Any]:
    latencies = [ms for run in runs for ms in run["latencies"]]
    summary = latency_summary(latencies)
    cpu = sorted(run["cpu_ms"] for run in runs)
    return {
        "cpu_ms_per_query_median": cpu[len(cpu) // 2],
        "cpu_ms_per_query_by_round": [round(run["cpu_ms"], 2) for run in runs],
        "qps_by_round": [round(run["qps"], 1) for run in runs],
        "p50_ms": summary["p50_ms"],
        "p95_ms": summary["p95_ms"],
        "queries": len(latencies),
    }


def run(opts: argparse.Namespace) -> int:
    from backend.knowledge.embeddings.local import LocalMiniLMProvider

    cache = Path(opts.cache_dir or tempfile.mkdtemp(prefix="parley-bench-embed-"))
    shipped = LocalMiniLMProvider(cache)
    alone = LocalMiniLMProvider(cache, coalesce=False)
    for provider in (shipped, alone):
        provider.load()
        provider.embed_sync(questions(8))  # warm: BLAS threads, caches
    texts = questions(opts.queries)
    concurrency = [int(c) for c in opts.clients.split(",") if c.strip()]
    runs: dict[str, list[dict[str, Any]]] = {"raw": []}
    for clients in concurrency:
        runs[f"alone, {clients} clients"] = []
        runs[f"coalesced, {clients} clients"] = []

    async def concurrent_round(round_number: int) -> None:
        for clients in concurrency:
            sides = [("alone", alone), ("coalesced", shipped)]
            if round_number % 2:
                sides.reverse()
            for name, provider in sides:
                result = await _measure_concurrent(provider, texts, clients)
                runs[f"{name}, {clients} clients"].append(result)

    for round_number in range(opts.rounds):
        print(f"round {round_number + 1} of {opts.rounds} ...", flush=True)
        runs["raw"].append(_measure_raw(alone, texts))
        asyncio.run(concurrent_round(round_number))

    results = {name: _merge(side_runs) for name, side_runs in runs.items()}
    raw_cpu = results["raw"]["cpu_ms_per_query_median"]
    print(
        f"\nQuery embedding, local model: {opts.queries} distinct questions per side and round, "
        f"{opts.rounds} rounds"
    )
    header = f"{'side':<24} {'CPU ms/query':>13} {'vs raw':>7} {'QPS by round':>22}"
    print(header + f" {'p50 ms':>8} {'p95 ms':>8}")
    for name, r in results.items():
        qps = "/".join(f"{q:.0f}" for q in r["qps_by_round"])
        print(
            f"{name:<24} {r['cpu_ms_per_query_median']:>13.2f} "
            f"{r['cpu_ms_per_query_median'] / raw_cpu:>6.2f}x {qps:>22} "
            f"{r['p50_ms']:>8.2f} {r['p95_ms']:>8.2f}"
        )
    output = Path(opts.output) if opts.output else None
    if output is None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        output = ROOT / ".data" / "bench" / f"query-embedding-{stamp}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"benchmark": "query_embedding", "results": results}, indent=2))
    print(f"\nResults written to {output}")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clients", default="1,8,32", help="comma-separated concurrency levels")
    parser.add_argument("--queries", type=int, default=240, help="questions per side and round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--cache-dir", help="where to unpack the model (default: a temp dir)")
    parser.add_argument("--output", help="JSON results file (default .data/bench/...)")
