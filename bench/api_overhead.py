"""Benchmark: what an authenticated, tenant-scoped list endpoint costs next to a bare endpoint.

Three servers, started with identical uvicorn settings (bench/serve.py):

  bare     a bare FastAPI app answering a page shaped like the API-key list (bench/bare_app.py);
  rls      Parley, GET /api/v1/api-keys with a bearer token and X-Parley-Tenant, connected as
           the app's login role: row-level security applies to every query;
  no-rls   the same Parley, connected as the database owner, a superuser: PostgreSQL skips
           row-level security for it, so the same queries run with RLS off.

Each is measured at maximum throughput (closed loop, `wrk` when installed) and at a constant
request rate (open loop, latency counted from each request's due time). If Parley cannot take
that rate, RLS on and off are also compared, in paired rounds, at a rate both can sustain (60 %
of the lower of their max throughputs, or --rls-rate): beyond capacity, latency only shows how
long the queue grew. The load client is a separate process; when `taskset` is available and
each server has one worker, the servers run on CPU 0 and the client on CPU 1 (with --workers
above 1 nothing is pinned: pinned to one CPU, the workers would share it). Rounds alternate
the order of the servers (bare, rls, no-rls / rls, no-rls, bare / ...) so that drift spreads
over all three alike.

Machines are noisy: before each phase the benchmark waits for other load to stop (up to
--quiet-wait seconds), measures where the CPU went during the phase (server, its PostgreSQL
backends, load client, anything else), and flags phases that other programs disturbed.

The goals checked (from the platform-foundation issue): at the offered rate, p95 <= 25 ms;
throughput >= 0.5x the bare endpoint's; RLS adds <= 10 % to p95 against the same query with
RLS off.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench import bare_app, database
from bench.serve import fastest_implementations
from bench.stats import latency_summary, ratio

ROOT = Path(__file__).resolve().parent.parent
LIST_PATH = "/api/v1/api-keys"

P95_GOAL_MS = 25.0
GOAL_RATE = 500.0
THROUGHPUT_GOAL = 0.5
RLS_OVERHEAD_GOAL = 0.10
# The offered rate counts as held when at least this share of it was answered successfully.
RATE_HELD = 0.98
# When Parley cannot take the offered rate, RLS on/off are compared at this share of capacity.
RLS_LOAD = 0.6
# A phase is reported as noisy when other programs used more than this much CPU (% of a core).
OTHER_LOAD_WARN_PCT = 25.0
# Before each phase, wait (up to --quiet-wait seconds) until the idle machine is this quiet.
QUIET_PCT = 15.0
# The RLS verdict uses only undisturbed pairs of rounds when at least this many remain.
MIN_QUIET_PAIRS = 3

SERVER_CPU = "0"
CLIENT_CPU = "1"

APP_ROLE_USER = "parley_bench_app"
APP_ROLE_PASSWORD = "parley-bench-app-password"  # noqa: S105 (throwaway role, dropped at the end)
BENCH_SECRET_KEY = "parley-bench-secret-key-for-this-run-only"  # noqa: S105
TOKEN_MINUTES = 240


@dataclass(frozen=True)
class Target:
    name: str
    label: str
    factory: str
    path: str
    database_url: str | None


@dataclass
class Server:
    target: Target
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.target.path}"


# Machine facts -------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return math.nan


def _wrk_version(wrk: str | None) -> str | None:
    if wrk is None:
        return None
    result = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
    text = (result.stdout or result.stderr).strip().splitlines()
    return text[0] if text else "wrk"


def machine_info(wrk: str | None) -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
        "packages": {
            name: version(name)
            for name in ("fastapi", "starlette", "uvicorn", "sqlalchemy", "asyncpg", "pydantic")
        },
        "wrk": _wrk_version(wrk),
    }


# CPU accounting from /proc -------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def _process_seconds(root: int, database_name: str) -> tuple[float, float]:
    """CPU seconds so far of `root` with its descendants, and of the PostgreSQL backends
    serving `database_name` (their process title is "postgres: USER DATABASE HOST STATE")."""
    children: dict[int, list[int]] = {}
    ticks: dict[int, int] = {}
    backends = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        fields = _stat_fields(pid)
        if fields is None:
            continue
        children.setdefault(int(fields[1]), []).append(pid)
        ticks[pid] = int(fields[11]) + int(fields[12])
        if ticks[pid] and _cmdline(pid).startswith("postgres: "):
            words = _cmdline(pid).split()
            if len(words) > 2 and words[2] == database_name:
                backends += ticks[pid]
    total = 0
    pending = [root]
    while pending:
        pid = pending.pop()
        total += ticks.get(pid, 0)
        pending.extend(children.get(pid, []))
    return total / CLOCK_TICKS, backends / CLOCK_TICKS


def _children_seconds() -> float:
    """CPU seconds of this process's waited-for children: the load clients."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _cpu_times() -> dict[str, tuple[int, int]]:
    """(busy, total) clock ticks per CPU from /proc/stat."""
    times: dict[str, tuple[int, int]] = {}
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return times
    for line in lines:
        name, *values = line.split()
        if not name.startswith("cpu") or name == "cpu":
            continue
        numbers = [int(v) for v in values[:8]]
        idle = numbers[3] + numbers[4]
        times[name] = (sum(numbers) - idle, sum(numbers))
    return times


class CpuMeter:
    """Where the machine's CPU went during one phase.

    Server, load client and this benchmark's PostgreSQL backends are measured; whatever else
    kept the CPUs busy is "other load" (other programs on the machine, which make a phase
    noisy). Values are in % of one core.
    """

    def __init__(self, pid: int, database_name: str) -> None:
        self.pid = pid
        self.database_name = database_name
        self._server = self._postgres = self._client = self._wall = 0.0
        self._cpus: dict[str, tuple[int, int]] = {}

    def start(self) -> None:
        self._server, self._postgres = _process_seconds(self.pid, self.database_name)
        self._client = _children_seconds()
        self._cpus = _cpu_times()
        self._wall = time.perf_counter()

    def stop(self) -> dict[str, Any]:
        wall = time.perf_counter() - self._wall
        server, postgres = _process_seconds(self.pid, self.database_name)
        server -= self._server
        postgres -= self._postgres
        client = _children_seconds() - self._client
        busy: dict[str, float] = {}
        busy_seconds = 0.0
        for name, (busy_now, total_now) in _cpu_times().items():
            busy_then, total_then = self._cpus.get(name, (busy_now, total_now))
            elapsed = total_now - total_then
            busy[name] = round(100 * (busy_now - busy_then) / elapsed, 1) if elapsed else 0.0
            busy_seconds += (busy_now - busy_then) / CLOCK_TICKS
        other = max(0.0, busy_seconds - server - postgres - client)
        return {
            "wall_s": wall,
            "server_cpu_s": server,
            "postgres_cpu_s": postgres,
            "client_cpu_s": client,
            "cpu_busy_pct": busy,
            "other_load_pct": round(100 * other / wall, 1) if wall else 0.0,
        }


def machine_busy_pct(seconds: float = 0.5) -> float:
    """How busy all CPUs together were over `seconds`, in % of one core."""
    before = _cpu_times()
    time.sleep(seconds)
    after = _cpu_times()
    busy = sum(after[name][0] - before[name][0] for name in after if name in before)
    return 100 * busy / CLOCK_TICKS / seconds


def wait_for_quiet(limit: float) -> float:
    """Wait up to `limit` seconds for an idle machine (the servers idle too); returns the wait."""
    started = time.monotonic()
    announced = False
    while time.monotonic() - started < limit:
        if machine_busy_pct() <= QUIET_PCT:
            break
        if not announced:
            print(
                f"    waiting up to {limit:g} s for other load on the machine to stop", flush=True
            )
            announced = True
    return time.monotonic() - started


# Servers -------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pinned(cpu: str, argv: list[str], pin: bool) -> list[str]:
    return ["taskset", "-c", cpu, *argv] if pin else argv


def server_env(database_url: str, redis_url: str, items: int) -> dict[str, str]:
    """Settings shared by the benchmark process and every server (only the DB URL differs)."""
    env = dict(os.environ)
    env.update(
        {
            "PARLEY_ENVIRONMENT": "production",
            "PARLEY_DATABASE_URL": database_url,
            "PARLEY_DATABASE_ADMIN_URL": "",
            "PARLEY_REDIS_URL": redis_url,
            "PARLEY_LOG_LEVEL": "WARNING",
            "PARLEY_LOG_JSON": "true",
            "PARLEY_SECRET_KEY": BENCH_SECRET_KEY,
            "PARLEY_ACCESS_TOKEN_MINUTES": str(TOKEN_MINUTES),
            bare_app.ITEMS_ENV: str(items),
        }
    )
    return env


def start_server(
    target: Target, env: dict[str, str], opts: argparse.Namespace, log_dir: Path
) -> Server:
    port = _free_port()
    loop, http = fastest_implementations()
    argv = [
        sys.executable,
        "-m",
        "bench.serve",
        target.factory,
        "--port",
        str(port),
        "--workers",
        str(opts.workers),
        "--loop",
        loop,
        "--http",
        http,
    ]
    log_path = log_dir / f"server-{target.name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            _pinned(SERVER_CPU, argv, opts.pin),
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Server(target, port, process, log_path)


def wait_ready(server: Server, headers: dict[str, str], timeout: float = 60.0) -> bytes:
    """Wait until the server answers its benchmark URL with 200; returns that body."""
    deadline = time.monotonic() + timeout
    last_error = "no answer"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        request = urllib.request.Request(server.url, headers=headers)  # noqa: S310 (our http URL)
        try:
            with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310
                body: bytes = response.read()
                return body
        except urllib.error.HTTPError as exc:
            last_error = f"HTTP {exc.code}: {exc.read()[:300]!r}"
        except OSError as exc:
            last_error = str(exc)
        time.sleep(0.2)
    log = server.log_path.read_text(errors="replace")[-3000:]
    raise RuntimeError(
        f"the {server.target.name} server did not become ready ({last_error})\n{log}"
    )


def stop_server(server: Server) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


# Load phases ---------------------------------------------------------------------------------


def run_open_phase(
    server: Server,
    opts: argparse.Namespace,
    headers_file: Path,
    rate: float,
    duration: float,
    warmup: float,
) -> dict[str, Any]:
    argv = [
        sys.executable,
        "-m",
        "bench.load",
        "open",
        "--url",
        server.url,
        "--rate",
        str(rate),
        "--duration",
        str(duration),
        "--warmup",
        str(warmup),
        "--connections",
        str(opts.open_connections),
        "--headers-file",
        str(headers_file),
    ]
    meter = CpuMeter(server.process.pid, opts.database)
    meter.start()
    result = subprocess.run(
        _pinned(CLIENT_CPU, argv, opts.pin), cwd=ROOT, capture_output=True, text=True, check=False
    )
    cpu = meter.stop()
    if result.returncode != 0:
        raise RuntimeError(
            f"the load client failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )
    phase: dict[str, Any] = json.loads(result.stdout)
    phase.update(cpu)
    return phase


WRK_SCRIPT = """
local sets = {__HEADER_SETS__}
local requests = {}
local next_index = 0

init = function(args)
  for i, headers in ipairs(sets) do
    requests[i] = wrk.format("GET", nil, headers)
  end
end

request = function()
  next_index = next_index % #requests + 1
  return requests[next_index]
end

done = function(summary, latency, _)
  local e = summary.errors
  local fields = {
    requests = summary.requests, duration_us = summary.duration, bytes = summary.bytes,
    connect = e.connect, read = e.read, write = e.write, status = e.status, timeout = e.timeout,
    p50_us = latency:percentile(50), p95_us = latency:percentile(95),
    p99_us = latency:percentile(99), max_us = latency.max, mean_us = latency.mean,
  }
  for name, value in pairs(fields) do
    io.write(string.format("BENCH %s %.1f\\n", name, value))
  end
end
"""


def _lua_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def write_wrk_script(path: Path, header_sets: list[dict[str, str]]) -> None:
    tables = ", ".join(
        "{" + ", ".join(f"[{_lua_string(k)}] = {_lua_string(v)}" for k, v in s.items()) + "}"
        for s in header_sets
    )
    path.write_text(WRK_SCRIPT.replace("__HEADER_SETS__", tables))


def run_max_phase(
    server: Server,
    opts: argparse.Namespace,
    headers_file: Path,
    wrk_script: Path,
    wrk: str | None,
) -> dict[str, Any]:
    meter = CpuMeter(server.process.pid, opts.database)
    if wrk is not None:
        argv = [
            wrk,
            "-t1",
            f"-c{opts.connections}",
            f"-d{opts.max_duration}s",
            "--timeout",
            "5s",
            "-s",
            str(wrk_script),
            server.url,
        ]
    else:
        argv = [
            sys.executable,
            "-m",
            "bench.load",
            "closed",
            "--url",
            server.url,
            "--connections",
            str(opts.connections),
            "--duration",
            str(opts.max_duration),
            "--headers-file",
            str(headers_file),
        ]
    meter.start()
    result = subprocess.run(
        _pinned(CLIENT_CPU, argv, opts.pin), cwd=ROOT, capture_output=True, text=True, check=False
    )
    cpu = meter.stop()
    if result.returncode != 0:
        raise RuntimeError(
            f"the load client failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )
    phase: dict[str, Any]
    if wrk is None:
        phase = json.loads(result.stdout)
        phase.pop("latencies_ms", None)
        phase["rps"] = phase.pop("achieved_rps")
    else:
        phase = _parse_wrk(result.stdout)
    phase.update(cpu)
    return phase


def _parse_wrk(stdout: str) -> dict[str, Any]:
    raw: dict[str, float] = {}
    for line in stdout.splitlines():
        marker, _, rest = line.partition(" ")
        if marker == "BENCH":
            name, _, value = rest.partition(" ")
            raw[name] = float(value)
    if "requests" not in raw:
        raise RuntimeError(f"wrk printed no summary:\n{stdout[-3000:]}")
    errors = {
        kind: int(raw[kind])
        for kind in ("connect", "read", "write", "status", "timeout")
        if raw.get(kind)
    }
    seconds = raw["duration_us"] / 1e6
    return {
        "mode": "closed",
        "client": "wrk",
        "requests": int(raw["requests"]),
        "rps": raw["requests"] / seconds if seconds else 0.0,
        "errors": sum(errors.values()),
        "errors_by_kind": errors,
        "p50_ms": raw["p50_us"] / 1000,
        "p95_ms": raw["p95_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "mean_ms": raw["mean_us"] / 1000,
    }


# Aggregation and verdicts --------------------------------------------------------------------


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def _sum_counts(counts: list[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for count in counts:
        for kind, number in count.items():
            total[kind] = total.get(kind, 0) + number
    return total


def _cpu_shares(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    wall = sum(r["wall_s"] for r in rounds)

    def share(key: str) -> float:
        return 100 * ratio(sum(r[key] for r in rounds), wall)

    return {
        "server_cpu_pct": share("server_cpu_s"),
        "postgres_cpu_pct": share("postgres_cpu_s"),
        "client_cpu_pct": share("client_cpu_s"),
        "other_load_pct_by_round": [r["other_load_pct"] for r in rounds],
    }


def aggregate_open(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    latencies = [v for r in rounds for v in r["latencies_ms"]]
    server_cpu = sum(r["server_cpu_s"] for r in rounds)
    return {
        "target_rps": rounds[0]["target_rps"],
        "achieved_rps": _mean([r["achieved_rps"] for r in rounds]),
        "ok": sum(r["ok"] for r in rounds),
        "errors": sum(r["errors"] for r in rounds),
        **latency_summary(latencies),
        "p50_ms_by_round": [round(r["p50_ms"], 2) for r in rounds],
        "p95_ms_by_round": [round(r["p95_ms"], 2) for r in rounds],
        **_cpu_shares(rounds),
        "errors_by_kind": _sum_counts([r["errors_by_kind"] for r in rounds]),
        # Per answered request, warm-ups included (the CPU meter saw them), timeouts not.
        "server_cpu_ms_per_request": 1000
        * ratio(server_cpu, sum(r["answered_including_warmup"] for r in rounds)),
        "send_lag_max_ms": max(r["send_lag_max_ms"] for r in rounds),
        "mean_body_bytes": _mean([r["mean_body_bytes"] for r in rounds]),
    }


def aggregate_max(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    rps = [r["rps"] for r in rounds]
    server_cpu = sum(r["server_cpu_s"] for r in rounds)
    return {
        "rps": _mean(rps),
        "rps_by_round": [round(v, 1) for v in rps],
        "p50_ms": _mean([r["p50_ms"] for r in rounds]),
        "p99_ms": _mean([r["p99_ms"] for r in rounds]),
        "errors": sum(r["errors"] for r in rounds),
        **_cpu_shares(rounds),
        "server_cpu_ms_per_request": 1000 * ratio(server_cpu, sum(r["requests"] for r in rounds)),
    }


def held(stats: dict[str, Any]) -> bool:
    """Whether a server answered the offered rate, all of it successfully."""
    return bool(stats["achieved_rps"] >= RATE_HELD * stats["target_rps"] and stats["errors"] == 0)


def choose_rls_rate(opts: argparse.Namespace, max_stats: dict[str, dict[str, Any]]) -> float:
    """The rate at which RLS on and off are compared.

    Latency under an offered load beyond capacity only measures how long the queue grew during
    the phase, so when Parley cannot take --rate, the comparison runs at RLS_LOAD of the lower
    of the two Parley max throughputs (rounded down to 10 req/s) instead, unless --rls-rate says
    otherwise.
    """
    if opts.rls_rate:
        return float(opts.rls_rate)
    capacity = min(max_stats["rls"]["rps"], max_stats["no-rls"]["rps"])
    if opts.rate <= RLS_LOAD * capacity:
        return float(opts.rate)
    return float(max(10, math.floor(RLS_LOAD * capacity / 10) * 10))


def paired_overheads(
    on_rounds: list[dict[str, Any]], off_rounds: list[dict[str, Any]], key: str
) -> list[float]:
    """RLS on / RLS off - 1 for each round; the two phases of a round ran back to back."""
    return [ratio(on[key], off[key]) - 1 for on, off in zip(on_rounds, off_rounds, strict=True)]


def _quiet(phase: dict[str, Any]) -> bool:
    return bool(phase["other_load_pct"] <= OTHER_LOAD_WARN_PCT)


def quiet_pairs(
    on_rounds: list[dict[str, Any]], off_rounds: list[dict[str, Any]]
) -> tuple[list[int], bool]:
    """Indexes of the rounds in which no other program disturbed either phase, if there are
    at least MIN_QUIET_PAIRS of them; else all rounds. The flag says which it is."""
    quiet = [
        i
        for i, pair in enumerate(zip(on_rounds, off_rounds, strict=True))
        if all(_quiet(phase) for phase in pair)
    ]
    if len(quiet) >= MIN_QUIET_PAIRS:
        return quiet, True
    return list(range(len(on_rounds))), False


def verdicts(
    measured: dict[str, dict[str, dict[str, Any]]],
    rls_section: str,
    rls_rounds: dict[str, list[dict[str, Any]]],
    query: dict[str, Any],
) -> list[dict[str, Any]]:
    max_stats = measured["max_throughput"]
    rls, bare = measured["open_loop"]["rls"], measured["open_loop"]["bare"]
    rate = rls["target_rps"]
    rate_note = "" if rate == GOAL_RATE else f" (the goal is stated at {GOAL_RATE:.0f} req/s)"
    saturated = "" if held(rls) else "; the rate was not held: the server is saturated"
    kinds = ", ".join(f"{kind}: {n}" for kind, n in sorted(rls["errors_by_kind"].items()))
    throughput = ratio(max_stats["rls"]["rps"], max_stats["bare"]["rps"])

    on, off = measured[rls_section]["rls"], measured[rls_section]["no-rls"]
    pairs, quiet_only = quiet_pairs(rls_rounds["rls"], rls_rounds["no-rls"])
    by_round_p95 = paired_overheads(rls_rounds["rls"], rls_rounds["no-rls"], "p95_ms")
    by_round_p50 = paired_overheads(rls_rounds["rls"], rls_rounds["no-rls"], "p50_ms")
    overhead_p95 = statistics.median(by_round_p95[i] for i in pairs)
    overhead_p50 = statistics.median(by_round_p50[i] for i in pairs)
    which = (
        f"the {len(pairs)} quiet ones of {len(by_round_p95)} paired rounds"
        if quiet_only
        else f"all {len(by_round_p95)} paired rounds (too few were quiet)"
    )
    merged_p95 = ratio(on["p95_ms"], off["p95_ms"]) - 1
    throughput_change = ratio(max_stats["rls"]["rps"], max_stats["no-rls"]["rps"]) - 1
    rls_held = held(on) and held(off)
    return [
        {
            "goal": f"p95 <= {P95_GOAL_MS:.0f} ms at {rate:.0f} req/s{rate_note}",
            "passed": held(rls) and rls["p95_ms"] <= P95_GOAL_MS,
            "value": rls["p95_ms"],
            "detail": f"p95 {rls['p95_ms']:.1f} ms (p50 {rls['p50_ms']:.1f}, "
            f"p99 {rls['p99_ms']:.1f}; bare p95 {bare['p95_ms']:.1f}), achieved "
            f"{rls['achieved_rps']:.1f} of {rate:.0f} req/s, {rls['errors']} errors"
            + (f" ({kinds})" if kinds else "")
            + saturated,
        },
        {
            "goal": f"throughput >= {THROUGHPUT_GOAL}x the bare endpoint's",
            "passed": throughput >= THROUGHPUT_GOAL,
            "value": throughput,
            "detail": f"{max_stats['rls']['rps']:.0f} / {max_stats['bare']['rps']:.0f} req/s "
            f"= {throughput:.3f}x",
        },
        {
            "goal": f"RLS adds <= {RLS_OVERHEAD_GOAL:.0%} to p95 (vs the same query, RLS off)",
            "passed": rls_held and overhead_p95 <= RLS_OVERHEAD_GOAL,
            "value": overhead_p95,
            "rate": on["target_rps"],
            "p95_overhead_by_round": by_round_p95,
            "p50_overhead_by_round": by_round_p50,
            "rounds_used": [i + 1 for i in pairs],
            "detail": f"at {on['target_rps']:.0f} req/s, median over {which}: p95 "
            f"{overhead_p95:+.1%}, p50 {overhead_p50:+.1%} (p95 by round: "
            + ", ".join(
                f"{v:+.1%}" + ("" if i in pairs else " noisy") for i, v in enumerate(by_round_p95)
            )
            + f"); all samples merged: p95 {on['p95_ms']:.2f} vs "
            f"{off['p95_ms']:.2f} ms ({merged_p95:+.1%}); max throughput "
            f"{max_stats['rls']['rps']:.0f} vs {max_stats['no-rls']['rps']:.0f} req/s "
            f"({throughput_change:+.1%}); the query alone at the database: p50 "
            f"{query['rls']['p50_us']:.0f} vs {query['no-rls']['p50_us']:.0f} us "
            f"({ratio(query['rls']['p50_us'], query['no-rls']['p50_us']) - 1:+.1%})"
            + ("" if rls_held else "; the rate was not held"),
        },
    ]


def noisy_phases(phases: dict[str, dict[str, list[dict[str, Any]]]]) -> list[str]:
    """Phases during which something besides the benchmark kept a CPU noticeably busy."""
    noisy = []
    for section, by_target in phases.items():
        for name, rounds in by_target.items():
            for number, phase in enumerate(rounds, start=1):
                if phase["other_load_pct"] > OTHER_LOAD_WARN_PCT:
                    noisy.append(
                        f"{section} {name} round {number}: other load "
                        f"{phase['other_load_pct']:.0f}% of a core"
                    )
    return noisy


# Report --------------------------------------------------------------------------------------


Row = tuple[str, list[str]]


def _section(
    names: list[str], stats: dict[str, dict[str, Any]], rows: list[tuple[str, str, str]]
) -> list[Row]:
    lines: list[Row] = []
    for label, key, fmt in rows:
        values = []
        for name in names:
            value = stats.get(name, {}).get(key)
            if value is None:
                values.append("-")
            elif isinstance(value, list):
                values.append("/".join(format(v, fmt) for v in value))
            else:
                values.append(format(value, fmt))
        lines.append((label, values))
    return lines


def _render(lines: list[Row | str]) -> str:
    """Rows as aligned columns, wide enough for the widest cell; strings as section titles."""
    cells = [value for line in lines if not isinstance(line, str) for value in line[1]]
    width = max([18, *(len(c) + 2 for c in cells)])
    out = []
    for line in lines:
        if isinstance(line, str):
            out.append(line)
        else:
            label, values = line
            out.append(f"  {label:<26}" + "".join(f"{v:>{width}}" for v in values))
    return "\n".join(out)


CPU_ROWS = [
    ("CPU %: server", "server_cpu_pct", ".0f"),
    ("CPU %: its PostgreSQL", "postgres_cpu_pct", ".0f"),
    ("CPU %: load client", "client_cpu_pct", ".0f"),
    ("CPU %: other, by round", "other_load_pct_by_round", ".0f"),
]
OPEN_ROWS = [
    ("achieved req/s", "achieved_rps", ".1f"),
    ("p50 ms", "p50_ms", ".2f"),
    ("p95 ms", "p95_ms", ".2f"),
    ("p99 ms", "p99_ms", ".2f"),
    ("max ms", "max_ms", ".1f"),
    ("p95 ms by round", "p95_ms_by_round", ".1f"),
    ("errors", "errors", "d"),
    ("server CPU ms / request", "server_cpu_ms_per_request", ".2f"),
    *CPU_ROWS,
]
MAX_ROWS = [
    ("req/s", "rps", ".0f"),
    ("req/s by round", "rps_by_round", ".0f"),
    ("p50 ms", "p50_ms", ".2f"),
    ("p99 ms", "p99_ms", ".2f"),
    ("errors", "errors", "d"),
    ("server CPU ms / request", "server_cpu_ms_per_request", ".2f"),
    *CPU_ROWS,
]


def table_rows(
    targets: list[Target],
    measured: dict[str, dict[str, dict[str, Any]]],
    opts: argparse.Namespace,
    max_client: str,
    query: dict[str, Any],
) -> list[Row | str]:
    names = [t.name for t in targets]
    lines: list[Row | str] = [("", [t.label for t in targets])]
    lines.append(
        f"max throughput: {max_client}, {opts.connections} connections, "
        f"{opts.rounds} x {opts.max_duration:g} s per server"
    )
    lines += _section(names, measured["max_throughput"], MAX_ROWS)
    lines.append(
        f"open loop at {opts.rate:g} req/s: {opts.rounds} x {opts.duration:g} s per server"
    )
    lines += _section(names, measured["open_loop"], OPEN_ROWS)
    if "rls_comparison" in measured:
        rate = measured["rls_comparison"]["rls"]["target_rps"]
        lines.append(
            f"open loop at {rate:g} req/s (RLS on vs off): "
            f"{opts.rls_rounds} x {opts.rls_duration:g} s per server"
        )
        lines += _section(names, measured["rls_comparison"], OPEN_ROWS)
    lines.append(
        f"the list query alone over asyncpg, {query['executions_each']} executions each "
        "(RLS on: app role; off: superuser)"
    )
    lines += _section(names, query, [("p50 us", "p50_us", ".0f"), ("p95 us", "p95_us", ".0f")])
    return lines


def render_markdown(report: dict[str, Any], rows: list[Row | str]) -> str:
    """The command, machine, table and verdicts, ready for docs/performance.md."""
    machine = report["machine"]
    header, *body = rows
    assert not isinstance(header, str)
    lines = [
        f"Command: `{report['command']}`",
        "",
        f"Machine: {machine['nproc']} CPUs ({machine['cpu_model']}), "
        f"{machine['memory_gib']} GiB RAM, Linux {machine['kernel']}, "
        f"Python {machine['python']}, PostgreSQL {machine['postgresql']}; "
        f"run {report['started_at']}.",
        "",
        "| | " + " | ".join(header[1]) + " |",
        "|---|" + "---:|" * len(header[1]),
    ]
    for row in body:
        if isinstance(row, str):
            lines.append(f"| **{row}** |" + " |" * len(header[1]))
        else:
            lines.append(f"| {row[0]} | " + " | ".join(row[1]) + " |")
    lines.append("")
    lines += [
        f"- **{'PASS' if v['passed'] else 'FAIL'}** {v['goal']}: {v['detail']}"
        for v in report["verdicts"]
    ]
    lines += [f"- noisy phase: {line}" for line in report["noisy_phases"]]
    return "\n".join(lines) + "\n"


def render_verdicts(results: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{'PASS' if v['passed'] else 'FAIL'}  {v['goal']}: {v['detail']}" for v in results
    )


# The run -------------------------------------------------------------------------------------


def _round_orders(targets: list[Target], rounds: int) -> list[list[Target]]:
    return [targets[r % len(targets) :] + targets[: r % len(targets)] for r in range(rounds)]


def _check_bodies(bodies: dict[str, bytes], keys: int) -> dict[str, Any]:
    pages = {name: json.loads(body) for name, body in bodies.items()}
    counts = {name: len(page["items"]) for name, page in pages.items()}
    if any(count != keys for count in counts.values()):
        raise RuntimeError(f"unexpected page sizes: {counts} (expected {keys} items each)")
    ids = {name: [item["id"] for item in pages[name]["items"]] for name in ("rls", "no-rls")}
    if ids["rls"] != ids["no-rls"]:
        raise RuntimeError("Parley with and without RLS returned different keys")
    return {
        "items_per_page": counts,
        "body_bytes": {name: len(body) for name, body in bodies.items()},
        "rls_and_no_rls_identical": True,
    }


def _describe_rls(facts: dict[str, Any]) -> str:
    app, owner = facts["app_role"], facts["owner_role"]
    return (
        f"RLS check: {app['role']} (is_superuser={'on' if app['is_superuser'] else 'off'}, "
        f"bypassrls={app['bypassrls']}) sees {app['api_keys_visible_without_tenant']} keys "
        f"without a tenant and {app['api_keys_visible_with_tenant']} of "
        f"{facts['api_keys_total']} with one: RLS applies. {owner['role']} (is_superuser="
        f"{'on' if owner['is_superuser'] else 'off'}) sees all "
        f"{owner['api_keys_visible_without_tenant']} either way: RLS is bypassed."
    )


@dataclass
class Bench:
    """The servers, the load files, and the phases run against them."""

    opts: argparse.Namespace
    targets: list[Target]
    servers: dict[str, Server]
    headers_file: Path
    wrk_script: Path
    wrk: str | None
    phases: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)

    def open_loop(
        self, section: str, targets: list[Target], rate: float, rounds: int, duration: float
    ) -> None:
        for number, order in enumerate(_round_orders(targets, rounds), start=1):
            for target in order:
                print(f"  round {number}: {rate:g} req/s, {target.label}", flush=True)
                waited = wait_for_quiet(self.opts.quiet_wait)
                phase = run_open_phase(
                    self.servers[target.name],
                    self.opts,
                    self.headers_file,
                    rate,
                    duration,
                    self.opts.phase_warmup,
                )
                phase["waited_for_quiet_s"] = round(waited, 1)
                self.phases.setdefault(section, {}).setdefault(target.name, []).append(phase)
                time.sleep(self.opts.pause)

    def max_throughput(self) -> None:
        for number, order in enumerate(_round_orders(self.targets, self.opts.rounds), start=1):
            for target in order:
                print(f"  round {number}: max throughput, {target.label}", flush=True)
                waited = wait_for_quiet(self.opts.quiet_wait)
                phase = run_max_phase(
                    self.servers[target.name],
                    self.opts,
                    self.headers_file,
                    self.wrk_script,
                    self.wrk,
                )
                phase["waited_for_quiet_s"] = round(waited, 1)
                self.phases.setdefault("max_throughput", {}).setdefault(target.name, []).append(
                    phase
                )
                time.sleep(self.opts.pause)

    def aggregated(self) -> dict[str, dict[str, dict[str, Any]]]:
        return {
            section: {
                name: (aggregate_max if section == "max_throughput" else aggregate_open)(rounds)
                for name, rounds in by_target.items()
            }
            for section, by_target in self.phases.items()
        }

    def raw_rounds(self) -> dict[str, dict[str, list[dict[str, Any]]]]:
        return {
            section: {
                name: [{k: v for k, v in r.items() if k != "latencies_ms"} for r in rounds]
                for name, rounds in by_target.items()
            }
            for section, by_target in self.phases.items()
        }


def _measure(
    opts: argparse.Namespace,
    targets: list[Target],
    db: database.BenchDatabase,
    redis_url: str,
    wrk: str | None,
    work: Path,
) -> tuple[Bench, dict[str, Any]]:
    """Start the servers, then run every phase; returns the phases and the response checks."""
    workspaces = asyncio.run(database.seed(opts.workspaces, opts.keys))
    header_sets = [w.headers() for w in workspaces]
    headers_file = work / "headers.json"
    headers_file.write_text(json.dumps(header_sets))
    wrk_script = work / "requests.lua"
    write_wrk_script(wrk_script, header_sets)
    facts: dict[str, Any] = {
        "rls_check": asyncio.run(database.check_rls(db, workspaces[0].tenant_id))
    }
    print(_describe_rls(facts["rls_check"]), flush=True)
    if not (facts["rls_check"]["app_role_under_rls"] and facts["rls_check"]["owner_bypasses_rls"]):
        raise RuntimeError(f"RLS is not set up as this benchmark expects: {facts['rls_check']}")
    print("The list query alone, RLS on vs off, at the database...", flush=True)
    wait_for_quiet(opts.quiet_wait)
    facts["database_query"] = asyncio.run(database.query_cost(db, workspaces[0].tenant_id))

    bench = Bench(opts, targets, {}, headers_file, wrk_script, wrk)
    bodies: dict[str, bytes] = {}
    try:
        for target in targets:
            env = server_env(target.database_url or db.app_url, redis_url, opts.keys)
            server = start_server(target, env, opts, work)
            bench.servers[target.name] = server
            bodies[target.name] = wait_ready(server, header_sets[0])
        facts["responses"] = _check_bodies(bodies, opts.keys)

        print(f"Warming up ({opts.warmup:g} s each)...", flush=True)
        for server in bench.servers.values():
            run_open_phase(server, opts, headers_file, opts.rate, opts.warmup, 0.0)
        print("Max throughput (closed loop):", flush=True)
        bench.max_throughput()
        print(f"Open loop at {opts.rate:g} req/s:", flush=True)
        bench.open_loop("open_loop", targets, opts.rate, opts.rounds, opts.duration)
        rls_rate = choose_rls_rate(opts, bench.aggregated()["max_throughput"])
        if rls_rate != opts.rate:
            print(
                f"Open loop at {rls_rate:g} req/s, RLS on vs off ({opts.rate:g} req/s is above "
                f"{RLS_LOAD:.0%} of the lower Parley max throughput; see --rls-rate):",
                flush=True,
            )
            parley = [t for t in targets if t.name != "bare"]
            bench.open_loop("rls_comparison", parley, rls_rate, opts.rls_rounds, opts.rls_duration)
    finally:
        for server in bench.servers.values():
            stop_server(server)
    return bench, facts


def can_pin(opts: argparse.Namespace) -> bool:
    """Whether to pin the servers to one CPU and the load client to another (--no-pin says no)."""
    if not opts.pin:
        return False
    if shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        print("bench: taskset or a second CPU is missing; running unpinned", file=sys.stderr)
        return False
    if opts.workers > 1:
        # Pinned to CPU 0, every worker would share that one CPU: a second worker could add
        # nothing. Several workers run where the scheduler puts them, and so does the client.
        print("bench: --workers above 1 runs unpinned", file=sys.stderr)
        return False
    return True


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
    wrk = None if opts.max_client == "python" else shutil.which("wrk")
    if opts.max_client == "wrk" and wrk is None:
        print("bench: wrk is not installed", file=sys.stderr)
        return 2
    max_client = "wrk -t1" if wrk else "Python closed loop"

    db = database.BenchDatabase(admin_url, opts.database, APP_ROLE_USER, APP_ROLE_PASSWORD)
    targets = [
        Target("bare", "bare FastAPI", "bench.bare_app:create_app", bare_app.PATH, None),
        Target("rls", "Parley, RLS", "backend.main:create_app", LIST_PATH, db.app_url),
        Target("no-rls", "Parley, RLS off", "backend.main:create_app", LIST_PATH, db.owner_url),
    ]
    machine = machine_info(wrk)
    started_at = datetime.now(UTC)
    print(
        f"bench api-overhead: {machine['nproc']} CPUs ({machine['cpu_model']}), "
        f"load average {machine['load_average_at_start']}",
        flush=True,
    )
    # This process migrates and seeds with the servers' settings, through the app's role.
    os.environ.update(server_env(db.app_url, redis_url, opts.keys))
    with tempfile.TemporaryDirectory(prefix="parley-bench-") as tmp:
        try:
            print(f"Creating database {db.name}, migrating, seeding...", flush=True)
            asyncio.run(database.recreate(db))
            database.migrate(db)
            bench, facts = _measure(opts, targets, db, redis_url, wrk, Path(tmp))
        finally:
            if not opts.keep_database:
                asyncio.run(database.drop(db))

    measured = bench.aggregated()
    rls_section = "rls_comparison" if "rls_comparison" in measured else "open_loop"
    checked = verdicts(measured, rls_section, bench.phases[rls_section], facts["database_query"])
    noisy = noisy_phases(bench.phases)
    print()
    rows = table_rows(targets, measured, opts, max_client, facts["database_query"])
    print(_render(rows))
    print()
    print(render_verdicts(checked))
    for line in noisy:
        print(f"warning: noisy phase, {line}")

    loop, http = fastest_implementations()
    report = {
        "benchmark": "api-overhead",
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["python", "-m", "bench", *opts.argv]),
        "machine": {**machine, "postgresql": facts["rls_check"]["postgresql_version"]},
        "settings": {
            "rate": opts.rate,
            "duration_s": opts.duration,
            "phase_warmup_s": opts.phase_warmup,
            "rounds": opts.rounds,
            "rls_rounds": opts.rls_rounds,
            "rls_duration_s": opts.rls_duration,
            "max_duration_s": opts.max_duration,
            "max_connections": opts.connections,
            "open_connections": opts.open_connections,
            "max_client": max_client,
            "workspaces": opts.workspaces,
            "keys_per_workspace": opts.keys,
            "uvicorn": {"workers": opts.workers, "loop": loop, "http": http, "access_log": False},
            "pinned": {"server_cpu": SERVER_CPU, "client_cpu": CLIENT_CPU} if opts.pin else None,
        },
        **facts,
        **measured,
        "verdicts": checked,
        "noisy_phases": noisy,
        "rounds": bench.raw_rounds(),
    }
    output = Path(opts.output) if opts.output else default_output(started_at)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    output.with_suffix(".md").write_text(render_markdown(report, rows))
    print(f"\nResults written to {output} (and a Markdown summary, {output.with_suffix('.md')})")
    return 0 if all(v["passed"] for v in checked) else 1


def default_output(started_at: datetime) -> Path:
    return ROOT / ".data" / "bench" / f"api-overhead-{started_at:%Y%m%dT%H%M%SZ}.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rate", type=float, default=GOAL_RATE, help="open-loop req/s")
    parser.add_argument(
        "--rls-rate",
        type=float,
        help="req/s for comparing RLS on and off (default: --rate, or if Parley cannot take "
        f"that, {RLS_LOAD * 100:.0f} %% of its measured max throughput)",
    )
    parser.add_argument(
        "--duration", type=float, default=10.0, help="recorded seconds per open-loop phase"
    )
    parser.add_argument(
        "--max-duration", type=int, default=10, help="seconds per max-throughput phase"
    )
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per server")
    parser.add_argument(
        "--rls-rounds", type=int, default=6, help="paired rounds of the RLS comparison"
    )
    parser.add_argument(
        "--rls-duration", type=float, default=6.0, help="recorded seconds per RLS phase"
    )
    parser.add_argument("--warmup", type=float, default=3.0, help="initial warm-up per server")
    parser.add_argument(
        "--phase-warmup", type=float, default=1.0, help="unrecorded seconds before each phase"
    )
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between phases")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=60.0,
        help="before each phase, wait up to this long for other load on the machine to stop",
    )
    parser.add_argument(
        "--connections", type=int, default=32, help="max-throughput concurrent connections"
    )
    parser.add_argument(
        "--open-connections", type=int, default=64, help="open-loop connection pool size"
    )
    parser.add_argument(
        "--max-client",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="max-throughput client (auto: wrk when installed)",
    )
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers per server")
    parser.add_argument("--workspaces", type=int, default=5, help="seeded workspaces")
    parser.add_argument("--keys", type=int, default=20, help="API keys per workspace")
    parser.add_argument(
        "--no-pin", dest="pin", action="store_false", help="do not pin server/client to CPUs"
    )
    parser.add_argument("--database", default="parley_bench", help="database to (re)create")
    parser.add_argument("--keep-database", action="store_true", help="do not drop it at the end")
    parser.add_argument(
        "--admin-url", help="superuser URL (default PARLEY_TEST_ADMIN_DATABASE_URL)"
    )
    parser.add_argument("--redis-url", help="Redis URL (default PARLEY_TEST_REDIS_URL)")
    parser.add_argument("--output", help="JSON results file (default .data/bench/...)")
