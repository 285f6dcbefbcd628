"""Benchmark: CPU time per request inside the app process, for two versions of Parley side by side.

    python -m bench request-cpu [--against DIR] [--path /api/v1/api-keys] [--blocks 10]

Each side is a process of its own that builds the app (`backend.main:create_app`), runs its
lifespan, and sends requests to it in-process through httpx's ASGI transport: no sockets, no
uvicorn, so what is measured is the app's own work (middleware, dependencies, SQLAlchemy and
asyncpg, pydantic, JSON) and nothing else. Requests run one at a time, in blocks of
--requests; a block's result is the process's CPU time (`time.process_time()`) divided by its
requests. The sides' blocks alternate, A B B A A B ..., so slow drifts of the machine hit both.
The PostgreSQL backend's own CPU is not counted: the figure is what the app's one core pays.
The in-process client's own work (httpx building each request and reading its answer) is
counted on every side, the bare one too. This machine's blocks spread widely (other virtual
machines share its CPUs), so the minimum is reported next to the median: two sides running the
same code agree best on it.

Sides:
  here     this checkout;
  against  another checkout of Parley (--against DIR, e.g. a `git worktree` of an older commit),
           so that a change's effect on CPU per request is measured, not guessed;
  bare     the bare FastAPI endpoint of bench/bare_app.py (the same response model, no database,
           no authentication): the framework's own floor.

Both Parley sides use one throwaway database built with this checkout's migrations, with the
app's login role (row-level security applies), one workspace with --keys API keys, and the
owner's access token. The request is GET --path with that token and the workspace header.

Reports, per side, the median and the spread of the blocks' CPU per request, and the ratio of
each side to `here`. With --profile FILE, `here` runs its blocks under cProfile (which slows it,
so its CPU figures are then not comparable) and the functions with the most own time are
printed. It exits 0 unless a request fails.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PATH = "/api/v1/api-keys"
PROFILE_ENV = "PARLEY_BENCH_PROFILE"


# The child: one side, measuring itself --------------------------------------------------------


async def _serve_blocks(factory: str, path: str, headers: dict[str, str]) -> None:
    import importlib

    import httpx

    module_name, _, attribute = factory.partition(":")
    app = getattr(importlib.import_module(module_name), attribute)()
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://bench") as client,
    ):
        print(json.dumps({"ready": True, "module": module_name}), flush=True)
        profile_path = os.environ.get(PROFILE_ENV)
        profiler = cProfile.Profile() if profile_path else None
        for line in sys.stdin:
            if profiler is not None:
                profiler.enable()
            count = int(line)
            statuses: set[int] = set()
            cpu_started = time.process_time()
            wall_started = time.perf_counter()
            for _ in range(count):
                response = await client.get(path, headers=headers)
                statuses.add(response.status_code)
            cpu = time.process_time() - cpu_started
            wall = time.perf_counter() - wall_started
            if profiler is not None:
                profiler.disable()
            reply = {"cpu_ms": cpu * 1000 / count, "wall_ms": wall * 1000 / count}
            print(json.dumps({**reply, "statuses": sorted(statuses)}), flush=True)
    if profiler is not None and profile_path:
        profiler.dump_stats(profile_path)


def child_main(argv: list[str]) -> int:
    factory, path, headers = argv[0], argv[1], json.loads(argv[2])
    asyncio.run(_serve_blocks(factory, path, headers))
    return 0


# The parent: setting up, alternating, reporting ----------------------------------------------


class Side:
    def __init__(self, name: str, code_dir: Path, factory: str, path: str, env: dict[str, str]):
        self.name = name
        self.code_dir = code_dir
        self.factory = factory
        self.path = path
        self.env = env
        self.blocks: list[dict[str, Any]] = []
        self.process: subprocess.Popen[str] | None = None

    def start(self, headers: dict[str, str], profile: str | None = None) -> None:
        env = {**self.env, "PYTHONPATH": str(self.code_dir)}
        if profile:
            env[PROFILE_ENV] = profile
        # Run as a script by path: its own directory (bench/) goes first on sys.path, not a
        # checkout, so `backend` is the one of `code_dir`.
        argv = [sys.executable, str(Path(__file__).resolve()), "--child"]
        argv += [self.factory, self.path, json.dumps(headers)]
        self.process = subprocess.Popen(
            argv,
            cwd=self.code_dir,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        ready = self._read()
        if not ready.get("ready"):
            raise RuntimeError(f"{self.name} did not start: {ready}")

    def _read(self) -> dict[str, Any]:
        assert self.process is not None
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name} exited (code {self.process.wait()})")
        result: dict[str, Any] = json.loads(line)
        return result

    def block(self, requests: int) -> dict[str, Any]:
        assert self.process is not None
        assert self.process.stdin is not None
        self.process.stdin.write(f"{requests}\n")
        self.process.stdin.flush()
        result = self._read()
        self.blocks.append(result)
        return result

    def stop(self) -> None:
        if self.process is not None and self.process.stdin is not None:
            self.process.stdin.close()
            self.process.wait(timeout=30)


def _order(sides: list[Side], blocks: int) -> list[Side]:
    """A B B A A B ...: each side goes first as often as the others."""
    order: list[Side] = []
    for number in range(blocks):
        order += sides if number % 2 == 0 else list(reversed(sides))
    return order


def _summary(side: Side, warmup: int) -> dict[str, Any]:
    kept = [b["cpu_ms"] for b in side.blocks[warmup:]]
    return {
        "median_cpu_ms": statistics.median(kept),
        "min_cpu_ms": min(kept),
        "max_cpu_ms": max(kept),
        "median_wall_ms": statistics.median(b["wall_ms"] for b in side.blocks[warmup:]),
        "blocks": len(kept),
    }


def run(opts: argparse.Namespace) -> int:
    from bench import bare_app
    from bench.api_overhead import APP_ROLE_PASSWORD, machine_busy_pct, server_env
    from bench.database import BenchDatabase, drop, migrate, recreate, seed

    admin = os.environ.get("PARLEY_TEST_ADMIN_DATABASE_URL")
    redis_url = os.environ.get("PARLEY_TEST_REDIS_URL")
    if not admin or not redis_url:
        print(
            "bench: set PARLEY_TEST_ADMIN_DATABASE_URL and PARLEY_TEST_REDIS_URL (make bench does)",
            file=sys.stderr,
        )
        return 2
    db = BenchDatabase(admin, "parley_bench_cpu", "parley_bench_cpu_app", APP_ROLE_PASSWORD)
    env = server_env(db.app_url, redis_url, opts.keys)
    # This process migrates and seeds with the sides' settings, through the app's role.
    os.environ.update(env)
    asyncio.run(recreate(db))
    sides: list[Side] = []
    try:
        migrate(db)
        workspace = asyncio.run(seed(1, opts.keys))[0]
        sides.append(Side("here", ROOT, "backend.main:create_app", opts.path, env))
        if opts.against:
            against = Path(opts.against).resolve()
            sides.append(Side("against", against, "backend.main:create_app", opts.path, env))
        if not opts.no_bare:
            sides.append(Side("bare", ROOT, "bench.bare_app:create_app", bare_app.PATH, env))
        for side in sides:
            side.start(workspace.headers(), opts.profile if side.name == "here" else None)
        busy_before = machine_busy_pct()
        for side in _order(sides, opts.blocks + opts.warmup_blocks):
            result = side.block(opts.requests)
            if result["statuses"] != [200]:
                print(f"{side.name}: statuses {result['statuses']}")
                return 1
        busy_after = machine_busy_pct()
    finally:
        for side in sides:
            side.stop()
        asyncio.run(drop(db))
    summaries = {s.name: _summary(s, opts.warmup_blocks) for s in sides}
    here = summaries["here"]["median_cpu_ms"]
    print(
        f"CPU per request in the app process, GET {opts.path} ({opts.keys} keys), "
        f"{opts.blocks} blocks of {opts.requests} requests per side after "
        f"{opts.warmup_blocks} warm-up block(s); machine busy {busy_before:.0f} % before, "
        f"{busy_after:.0f} % after"
    )
    print(f"{'side':<8} {'median ms':>10} {'min':>7} {'max':>7} {'wall ms':>8} {'vs here':>8}")
    for name, s in summaries.items():
        print(
            f"{name:<8} {s['median_cpu_ms']:>10.3f} {s['min_cpu_ms']:>7.3f} "
            f"{s['max_cpu_ms']:>7.3f} {s['median_wall_ms']:>8.3f} "
            f"{s['median_cpu_ms'] / here:>7.2f}x"
        )
    if opts.profile:
        print(f"\ncProfile of 'here' (its CPU figures include the profiler's cost): {opts.profile}")
        pstats.Stats(opts.profile).sort_stats("tottime").print_stats(opts.profile_lines)
    if opts.json:
        Path(opts.json).write_text(json.dumps(summaries, indent=2))
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--against", help="another Parley checkout to compare with")
    parser.add_argument("--path", default=DEFAULT_PATH, help="the GET path of both Parley sides")
    parser.add_argument("--keys", type=int, default=20, help="API keys seeded (the page size)")
    parser.add_argument("--requests", type=int, default=300, help="requests per block")
    parser.add_argument("--blocks", type=int, default=10, help="measured blocks per side")
    parser.add_argument("--warmup-blocks", type=int, default=1)
    parser.add_argument("--no-bare", action="store_true", help="leave out the bare endpoint")
    parser.add_argument("--json", help="write the summaries to this file")
    parser.add_argument("--profile", help="run 'here' under cProfile; write its stats to this file")
    parser.add_argument("--profile-lines", type=int, default=30, help="functions to print")


if __name__ == "__main__" and sys.argv[1:2] == ["--child"]:
    sys.exit(child_main(sys.argv[2:]))
