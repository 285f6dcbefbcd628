"""Retrieval at scale: vector search over many tenants of very different sizes, under load.

    python -m bench.retrieval_scale [--chunks 1000000] [--tenants 1000] [--clients 8]

What it does, in a database of its own (dropped at the end unless --keep):

1. Builds Parley's schema with the migrations and fills it straight through COPY: `--tenants`
   workspaces whose sizes follow a Zipf law (the i-th largest holds chunks proportional to
   1 / i^s), one knowledge base, source and documents of 50 chunks each per tenant, and
   `--chunks` chunks with one 384-dimension embedding each under the model
   'local:all-MiniLM-L6-v2'. Documents of all tenants are loaded in a shuffled order, so a
   tenant's rows are spread over the table as real ingestion spreads them.
   The vectors are SYNTHETIC: each tenant has a few topics (random unit vectors), and every
   chunk is its topic plus Gaussian noise, normalized (cosine to the topic about 0.64, two
   chunks of one topic about 0.4, of different topics about 0). Chunk text is a short
   synthetic sentence with an empty full-text vector.
2. Drops the model's HNSW index before the load and recreates it afterwards with the very
   definition the migration gave it (read from pg_indexes), with a raised
   maintenance_work_mem, timing the build and sampling the memory of the server processes
   that build it (read from /proc when the server runs on this machine).
3. Runs queries through Parley's own code path, backend.knowledge.retrieval.vector_search,
   connected as the app's login role with the tenant context set by unit_of_work() as a task
   or request does, from `--clients` concurrent clients: asyncio tasks spread over
   `--processes` client processes (separate from the PostgreSQL server's processes). A query
   asks for the candidates a top-10 search asks for (max(4 x top_k, 20) = 40). Its tenant is
   drawn with probability proportional to the tenant's size (big workspaces get more traffic)
   or uniformly (--traffic uniform); its vector is a stored vector of that tenant with noise
   added (--query-kind perturbed) or a random unit vector (--query-kind random).
4. Compares every result with an exact search of the same tenant (ORDER BY embedding <=> q
   with the same filter, which the HNSW expression index cannot serve), for recall@10, and
   counts short result lists (fewer than 10 rows, or fewer than asked for, although the
   tenant has that many).
5. Runs the same queries for each of `--variants` (see below): Parley as shipped, and with the
   changes this benchmark suggests applied to the bench database or settings only; the order
   of the variants alternates round by round. Each variant also runs `--serial-queries`
   queries from one client, for the latency without queueing.
6. Runs the raw baseline after each variant's queries (unless --no-raw): the same searches from
   pgbench, whose C client costs almost nothing, so the figures are PostgreSQL's alone. Each
   transaction is what Parley's unit of work sends (BEGIN, the tenant context, the search
   function with the arguments vector_search would pass under the variant's settings,
   COMMIT), as the app role, from as many clients. Each client first makes
   max(--warmup, --queries) / --clients searches that are not recorded, so its server process
   is as warm as it gets: a floor for Parley's figures. The queries are drawn at random from
   the same set. PostgreSQL's CPU is read from the postmaster's exited children.

Latency is measured per query around the whole unit of work: pool checkout, setting the
tenant context, the size check (a count, unless the client process counted that knowledge base
in the last PARLEY_SEARCH_SIZE_CACHE_SECONDS, as a warm Parley process would have), the search,
and the commit.

Needs PARLEY_TEST_ADMIN_DATABASE_URL (a superuser; `make bench` exports it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import multiprocessing
import os
import platform
import re
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import numpy as np
import numpy.typing as npt

DB_NAME = "parley_bench_scale"
APP_USER, APP_PASSWORD = "parley_bench_scale_app", "parley-bench-scale-app"
MODEL = "local:all-MiniLM-L6-v2"
DIMENSION = 384
CHUNKS_PER_DOCUMENT = 50
TOPIC_NOISE = 1.2  # chunk = normalize(topic + TOPIC_NOISE * g), g ~ N(0, I / d)
QUERY_NOISE = 0.5  # perturbed query = normalize(chunk + QUERY_NOISE * g)
CHUNKS_PER_TOPIC = 400
MAX_TOPICS = 64
LOAD_BATCH_DOCUMENTS = 400
# The candidates a top-k search asks vector_search for (see retrieval.search).
CANDIDATES_PER_RESULT = 4
MIN_CANDIDATES = 20

Matrix = npt.NDArray[np.float32]


# Database ---------------------------------------------------------------------------------


def _admin_server_url() -> str:
    admin = os.environ.get("PARLEY_TEST_ADMIN_DATABASE_URL")
    if not admin:
        sys.exit("PARLEY_TEST_ADMIN_DATABASE_URL must be set (`make bench` exports it)")
    return admin


def _urls(admin_server: str) -> tuple[str, str]:
    """The bench database's owner (admin) URL and the app role's URL, both for SQLAlchemy."""
    base = admin_server.rpartition("/")[0]
    host = base.rpartition("@")[2]
    scheme = base.partition("://")[0]
    if "+asyncpg" not in scheme:
        base = base.replace(scheme, "postgresql+asyncpg", 1)
        scheme = "postgresql+asyncpg"
    return f"{base}/{DB_NAME}", f"{scheme}://{APP_USER}:{APP_PASSWORD}@{host}/{DB_NAME}"


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def _recreate_database(admin_server: str) -> None:
    conn = await asyncpg.connect(_plain(admin_server))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    finally:
        await conn.close()


async def _drop_database(admin_server: str) -> None:
    conn = await asyncpg.connect(_plain(admin_server))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        await conn.execute(f'DROP ROLE IF EXISTS "{APP_USER}"')
    finally:
        await conn.close()


async def _prepare(admin_server: str, admin: str, app: str) -> None:
    from backend.migrate import ensure_app_role, run_migrations

    await _recreate_database(admin_server)
    await asyncio.to_thread(run_migrations, admin)
    await ensure_app_role(admin, app)


async def _connect(admin: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(_plain(admin))
    # Binary COPY: vectors arrive already encoded (see _vector_bytes), full-text vectors empty.
    await conn.set_type_codec(
        "vector", encoder=bytes, decoder=bytes, format="binary", schema="public"
    )
    await conn.set_type_codec(
        "tsvector", encoder=bytes, decoder=bytes, format="binary", schema="pg_catalog"
    )
    return conn


# Synthetic data ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TenantPlan:
    index: int
    tenant_id: uuid.UUID
    kb_id: uuid.UUID
    source_id: uuid.UUID
    chunks: int

    @property
    def documents(self) -> int:
        return math.ceil(self.chunks / CHUNKS_PER_DOCUMENT)

    def document_size(self, document: int) -> int:
        return min(CHUNKS_PER_DOCUMENT, self.chunks - document * CHUNKS_PER_DOCUMENT)


def zipf_sizes(total: int, tenants: int, exponent: float) -> list[int]:
    """Sizes proportional to 1 / rank^exponent, at least 1 each, summing to `total`."""
    if total < tenants:
        raise ValueError("need at least one chunk per tenant")
    weights = [1.0 / (rank**exponent) for rank in range(1, tenants + 1)]
    scale = (total - tenants) / sum(weights)
    raw = [1 + w * scale for w in weights]
    sizes = [int(r) for r in raw]
    # Largest remainders get the chunks that rounding down left over.
    order = sorted(range(tenants), key=lambda i: raw[i] - sizes[i], reverse=True)
    for i in order[: total - sum(sizes)]:
        sizes[i] += 1
    return sizes


def _stable_uuid(kind: int, number: int) -> uuid.UUID:
    return uuid.UUID(int=(0xB3 << 120) | (kind << 96) | number, version=4)


def plan_tenants(total: int, tenants: int, exponent: float) -> list[TenantPlan]:
    return [
        TenantPlan(
            index=i,
            tenant_id=_stable_uuid(1, i),
            kb_id=_stable_uuid(2, i),
            source_id=_stable_uuid(3, i),
            chunks=size,
        )
        for i, size in enumerate(zipf_sizes(total, tenants, exponent))
    ]


def _unit_rows(matrix: Matrix) -> Matrix:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    result: Matrix = (matrix / np.maximum(norms, np.float32(1e-12))).astype(np.float32)
    return result


def tenant_topics(seed: int, tenant: TenantPlan) -> Matrix:
    rng = np.random.default_rng([seed, 1, tenant.index])
    count = max(1, min(MAX_TOPICS, tenant.chunks // CHUNKS_PER_TOPIC))
    return _unit_rows(rng.standard_normal((count, DIMENSION), dtype=np.float32))


def document_vectors(seed: int, tenant: TenantPlan, topics: Matrix, document: int) -> Matrix:
    """The embeddings of one document's chunks, the same every time for the same seed."""
    rng = np.random.default_rng([seed, 2, tenant.index, document])
    size = tenant.document_size(document)
    assigned = rng.integers(0, len(topics), size)
    noise = rng.standard_normal((size, DIMENSION), dtype=np.float32)
    noise *= np.float32(TOPIC_NOISE / math.sqrt(DIMENSION))
    return _unit_rows(topics[assigned] + noise)


def _vector_bytes(matrix: Matrix) -> list[bytes]:
    """pgvector's binary format: dimension and a zero (uint16 each), then float32s, big-endian."""
    header = struct.pack(">HH", matrix.shape[1], 0)
    big_endian = matrix.astype(">f4")
    return [header + row.tobytes() for row in big_endian]


EMPTY_TSVECTOR = struct.pack(">i", 0)


def _chunk_id(tenant: TenantPlan, document: int, ordinal: int) -> uuid.UUID:
    return _stable_uuid(5, (tenant.index << 40) | (document << 12) | ordinal)


def _document_id(tenant: TenantPlan, document: int) -> uuid.UUID:
    return _stable_uuid(4, (tenant.index << 40) | document)


def _embedding_id(tenant: TenantPlan, document: int, ordinal: int) -> uuid.UUID:
    return _stable_uuid(6, (tenant.index << 40) | (document << 12) | ordinal)


# Loading ----------------------------------------------------------------------------------


async def load(conn: asyncpg.Connection, plans: list[TenantPlan], seed: int) -> dict[str, float]:
    """Fill the schema with COPY; returns timings in seconds."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    # Bulk load of consistent generated data: foreign-key triggers are skipped.
    await conn.execute("SET session_replication_role = replica")
    await conn.copy_records_to_table(
        "tenants",
        records=[(p.tenant_id, f"Scale {p.index}", f"scale-{p.index}", "business") for p in plans],
        columns=["id", "name", "slug", "plan"],
    )
    await conn.copy_records_to_table(
        "knowledge_bases",
        records=[
            (p.kb_id, p.tenant_id, f"KB {p.index}", "english", MODEL, DIMENSION, 200, 30)
            for p in plans
        ],
        columns=[
            "id",
            "tenant_id",
            "name",
            "language",
            "embedding_model",
            "embedding_dimension",
            "chunk_tokens",
            "chunk_overlap_tokens",
        ],
    )
    await conn.copy_records_to_table(
        "knowledge_sources",
        records=[(p.source_id, p.tenant_id, p.kb_id, "text", "Synthetic", "{}") for p in plans],
        columns=["id", "tenant_id", "knowledge_base_id", "kind", "title", "config"],
    )
    await conn.copy_records_to_table(
        "knowledge_documents",
        records=[
            (
                _document_id(p, d),
                p.tenant_id,
                p.kb_id,
                p.source_id,
                f"Document {d}",
                0,
                "ready",
                p.document_size(d),
                p.document_size(d),
                1,
            )
            for p in plans
            for d in range(p.documents)
        ],
        columns=[
            "id",
            "tenant_id",
            "knowledge_base_id",
            "source_id",
            "title",
            "size_bytes",
            "status",
            "chunks_total",
            "chunks_done",
            "version",
        ],
    )
    timings["small_tables_s"] = time.perf_counter() - started
    order = [(p, d) for p in plans for d in range(p.documents)]
    rng = np.random.default_rng([seed, 3])
    shuffled = [order[i] for i in rng.permutation(len(order))]
    topics = {p.index: tenant_topics(seed, p) for p in plans}
    loaded = 0
    copy_started = time.perf_counter()
    for start in range(0, len(shuffled), LOAD_BATCH_DOCUMENTS):
        chunk_rows: list[tuple[Any, ...]] = []
        embedding_rows: list[tuple[Any, ...]] = []
        for plan, document in shuffled[start : start + LOAD_BATCH_DOCUMENTS]:
            vectors = _vector_bytes(document_vectors(seed, plan, topics[plan.index], document))
            doc_id = _document_id(plan, document)
            for ordinal, vector in enumerate(vectors):
                chunk_id = _chunk_id(plan, document, ordinal)
                text = f"Synthetic passage {ordinal} of document {document} of tenant {plan.index}."
                chunk_rows.append(
                    (
                        chunk_id,
                        plan.tenant_id,
                        plan.kb_id,
                        doc_id,
                        ordinal,
                        text,
                        text,
                        [],
                        hashlib.sha256(text.encode()).hexdigest(),
                        12,
                        EMPTY_TSVECTOR,
                    )
                )
                embedding_rows.append(
                    (
                        _embedding_id(plan, document, ordinal),
                        chunk_id,
                        MODEL,
                        plan.kb_id,
                        plan.tenant_id,
                        vector,
                    )
                )
        await conn.copy_records_to_table(
            "knowledge_chunks",
            records=chunk_rows,
            columns=[
                "id",
                "tenant_id",
                "knowledge_base_id",
                "document_id",
                "ordinal",
                "text",
                "embed_text",
                "heading_path",
                "content_hash",
                "token_count",
                "tsv",
            ],
        )
        await conn.copy_records_to_table(
            "knowledge_chunk_embeddings",
            records=embedding_rows,
            columns=["id", "chunk_id", "model", "knowledge_base_id", "tenant_id", "embedding"],
        )
        loaded += len(embedding_rows)
        print(f"  loaded {loaded:,} chunks ({time.perf_counter() - copy_started:.0f} s)", end="\r")
    print()
    await conn.execute("RESET session_replication_role")
    timings["copy_s"] = time.perf_counter() - copy_started
    vacuum_started = time.perf_counter()
    for table in ("knowledge_chunks", "knowledge_chunk_embeddings", "knowledge_documents"):
        await conn.execute(f"VACUUM (ANALYZE) {table}")
    await conn.execute("ANALYZE")
    timings["vacuum_analyze_s"] = time.perf_counter() - vacuum_started
    return timings


async def hnsw_index_definition(conn: asyncpg.Connection) -> tuple[str, str]:
    """The name and CREATE INDEX statement of the model's HNSW index, as the migration made it."""
    row = await conn.fetchrow(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = "
        "'knowledge_chunk_embeddings' AND indexdef ILIKE '%USING hnsw%' AND indexdef LIKE $1",
        f"%{MODEL}%",
    )
    if row is None:
        raise RuntimeError(f"the migration made no HNSW index for {MODEL}")
    # A partitioned index reads back as `ON ONLY parent`, which would build no partition's.
    return str(row["indexname"]), str(row["indexdef"]).replace(" ON ONLY ", " ON ", 1)


def _rss_kib(pid: int) -> dict[str, int]:
    """Resident memory of a process from /proc (KiB): total, anonymous, and shared memory."""
    fields = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "RssAnon", "RssShmem", "VmHWM"):
                fields[name] = int(value.split()[0])
    except OSError:
        return {}
    return fields


async def build_index(
    admin: str, definition: str, maintenance_work_mem: str, workers: int
) -> dict[str, Any]:
    """Run the index's CREATE INDEX, sampling the builders' memory; returns what was seen."""
    conn = await _connect(admin)
    monitor = await _connect(admin)
    notices: list[str] = []
    conn.add_log_listener(lambda _c, message: notices.append(str(message)))
    try:
        await conn.execute(f"SET maintenance_work_mem = '{maintenance_work_mem}'")
        await conn.execute(f"SET max_parallel_maintenance_workers = {int(workers)}")
        leader = int(await conn.fetchval("SELECT pg_backend_pid()"))
        local = Path(f"/proc/{leader}").exists()
        peak = {"rss_kib": 0, "anon_kib": 0}
        processes: set[int] = set()

        async def sample() -> None:
            while True:
                pids = [leader] + [
                    int(r["pid"])
                    for r in await monitor.fetch(
                        "SELECT pid FROM pg_stat_activity WHERE leader_pid = $1 AND pid <> $1",
                        leader,
                    )
                ]
                processes.update(pids)
                stats = [_rss_kib(pid) for pid in pids]
                peak["rss_kib"] = max(peak["rss_kib"], sum(s.get("VmRSS", 0) for s in stats))
                peak["anon_kib"] = max(peak["anon_kib"], sum(s.get("RssAnon", 0) for s in stats))
                await asyncio.sleep(0.5)

        sampler = asyncio.create_task(sample())
        started = time.perf_counter()
        await conn.execute(definition)
        seconds = time.perf_counter() - started
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
        hwm = _rss_kib(leader).get("VmHWM", 0)
    finally:
        await conn.close()
        await monitor.close()
    return {
        "build_s": seconds,
        "maintenance_work_mem": maintenance_work_mem,
        "max_parallel_maintenance_workers": workers,
        "builder_processes": len(processes),
        "server_memory_measured": local,
        "peak_rss_mib_all_builders": round(peak["rss_kib"] / 1024, 1) if local else None,
        "peak_anon_mib_all_builders": round(peak["anon_kib"] / 1024, 1) if local else None,
        "leader_peak_rss_mib": round(hwm / 1024, 1) if local else None,
        "notices": notices,
    }


# Queries ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    number: int
    tenant: int
    tenant_id: uuid.UUID
    kb_id: uuid.UUID
    vector: list[float]


@dataclass(frozen=True)
class Answer:
    number: int
    latency_ms: float
    how: str
    chunk_ids: list[str]


def make_queries(
    plans: list[TenantPlan], seed: int, count: int, traffic: str, kind: str, salt: int
) -> list[Query]:
    rng = np.random.default_rng([seed, 4, salt])
    sizes = np.array([p.chunks for p in plans], dtype=np.float64)
    weights = sizes / sizes.sum() if traffic == "size" else np.full(len(plans), 1.0 / len(plans))
    chosen = rng.choice(len(plans), size=count, p=weights)
    topics: dict[int, Matrix] = {}
    queries = []
    for number, index in enumerate(chosen):
        plan = plans[int(index)]
        if kind == "random":
            vector = _unit_rows(rng.standard_normal((1, DIMENSION), dtype=np.float32))[0]
        else:
            if plan.index not in topics:
                topics[plan.index] = tenant_topics(seed, plan)
            document = int(rng.integers(0, plan.documents))
            stored = document_vectors(seed, plan, topics[plan.index], document)
            base = stored[int(rng.integers(0, len(stored)))]
            noise = rng.standard_normal(DIMENSION, dtype=np.float32)
            noise *= np.float32(QUERY_NOISE / math.sqrt(DIMENSION))
            vector = _unit_rows((base + noise)[None, :])[0]
        queries.append(
            Query(number, plan.index, plan.tenant_id, plan.kb_id, [float(x) for x in vector])
        )
    return queries


async def _client_loop(
    queries: list[Query], warmup: list[Query], tasks: int, limit: int, barrier: Barrier
) -> tuple[list[Answer], float, float, float]:
    from backend.db import get_engine, unit_of_work
    from backend.knowledge.retrieval import vector_search
    from backend.models import KnowledgeBase

    kbs: dict[uuid.UUID, KnowledgeBase] = {}

    def kb_of(query: Query) -> KnowledgeBase:
        kb = kbs.get(query.kb_id)
        if kb is None:
            kb = KnowledgeBase(
                id=query.kb_id,
                tenant_id=query.tenant_id,
                embedding_model=MODEL,
                embedding_dimension=DIMENSION,
            )
            kbs[query.kb_id] = kb
        return kb

    async def run(pending: list[Query], answers: list[Answer]) -> None:
        while pending:
            query = pending.pop()
            started = time.perf_counter()
            async with unit_of_work(tenant_id=query.tenant_id) as session:
                rows, how = await vector_search(session, kb_of(query), query.vector, limit)
            elapsed = (time.perf_counter() - started) * 1000
            answers.append(Answer(query.number, elapsed, how, [str(r[0]) for r in rows]))

    warm: list[Answer] = []
    await asyncio.gather(*(run(warmup, warm) for _ in range(tasks)))
    await asyncio.to_thread(barrier.wait)
    answers: list[Answer] = []
    pending = list(reversed(queries))
    cpu = time.process_time()
    began = time.time()
    await asyncio.gather(*(run(pending, answers) for _ in range(tasks)))
    ended = time.time()
    cpu = time.process_time() - cpu
    await asyncio.to_thread(barrier.wait)  # all done: the parent reads the server's CPU time
    await get_engine().dispose()
    return answers, began, ended, cpu


def client_process(
    queries: list[Query],
    warmup: list[Query],
    tasks: int,
    limit: int,
    barrier: Barrier,
    results: Any,
) -> None:
    """One client process: `tasks` concurrent asyncio clients sharing its connection pool."""
    results.put(asyncio.run(_client_loop(queries, warmup, tasks, limit, barrier)))


@dataclass
class Run:
    answers: list[Answer]
    wall_s: float
    client_cpu_s: float  # CPU time of the client processes while they ran the queries
    machine_busy: float | None  # the whole machine's CPU use in the same time, 0..1
    server_cpu_s: float | None  # CPU time of this database's server processes in that time


def _cpu_jiffies() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def _server_cpu_s() -> dict[int, float] | None:
    """CPU seconds used so far by each server process connected to the bench database (read
    from /proc: only when the server runs on this machine)."""
    ticks = os.sysconf("SC_CLK_TCK")
    found: dict[int, float] = {}
    try:
        entries = list(Path("/proc").iterdir())
    except OSError:
        return None
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
            if not command.startswith(b"postgres: ") or f" {DB_NAME} ".encode() not in command:
                continue
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        found[int(entry.name)] = (int(fields[11]) + int(fields[12])) / ticks
    return found


def run_clients(
    queries: list[Query], warmup: list[Query], clients: int, processes: int, limit: int
) -> Run:
    """Spread `clients` over `processes` and run every query once."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes + 1)
    results = context.Queue()
    per_process = [
        clients // processes + (1 if i < clients % processes else 0) for i in range(processes)
    ]
    workers = []
    for i in range(processes):
        mine = queries[i::processes]
        warm = warmup[i::processes]
        workers.append(
            context.Process(
                target=client_process,
                args=(mine, warm, per_process[i], limit, barrier, results),
            )
        )
    for worker in workers:
        worker.start()
    barrier.wait(timeout=3600)  # the clients have warmed up and start now
    before = _cpu_jiffies()
    server_before = _server_cpu_s()
    barrier.wait(timeout=3600)  # the clients are done
    after = _cpu_jiffies()
    server_after = _server_cpu_s()
    collected: list[tuple[list[Answer], float, float, float]] = [results.get() for _ in workers]
    server_cpu = None
    if server_before is not None and server_after is not None:
        server_cpu = sum(t - server_before.get(pid, 0.0) for pid, t in server_after.items())
    busy = None
    if before is not None and after is not None and after[1] > before[1]:
        busy = (after[0] - before[0]) / (after[1] - before[1])
    for worker in workers:
        worker.join()
        if worker.exitcode != 0:
            raise RuntimeError(f"a client process failed with exit code {worker.exitcode}")
    answers = [a for part in collected for a in part[0]]
    wall = max(part[2] for part in collected) - min(part[1] for part in collected)
    return Run(answers, wall, sum(part[3] for part in collected), busy, server_cpu)


async def exact_answers(
    admin: str, queries: Sequence[Query], k: int, connections: int
) -> dict[int, list[str]]:
    """The exact top-k per query: the same filter as the app's search, no index on the order."""
    from backend.knowledge.retrieval import vector_literal

    pending = list(queries)
    truth: dict[int, list[str]] = {}

    async def worker() -> None:
        conn = await asyncpg.connect(_plain(admin))
        # A generic plan would parse the query's text into a vector again for every row.
        await conn.execute("SET plan_cache_mode = force_custom_plan")
        try:
            while pending:
                query = pending.pop()
                literal = vector_literal(query.vector)
                rows = await conn.fetch(
                    "SELECT chunk_id FROM knowledge_chunk_embeddings "
                    "WHERE knowledge_base_id = $1 AND model = $2 "
                    "ORDER BY embedding <=> $3::text::vector LIMIT $4",
                    query.kb_id,
                    MODEL,
                    literal,
                    k,
                )
                truth[query.number] = [str(r["chunk_id"]) for r in rows]
        finally:
            await conn.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return truth


async def explain_plans(admin: str, plans: list[TenantPlan], exact_max: int) -> dict[str, str]:
    """EXPLAIN ANALYZE of the app's statements, as the app role, for the largest tenant and the
    largest one searched exactly. The searches run inside `parley_vector_search`, so their plans
    come from auto_explain (loaded by the superuser, then SET ROLE to the app role), which sends
    them as notices."""
    from backend.knowledge.retrieval import vector_literal

    rng = np.random.default_rng(7)
    literal = vector_literal(
        [float(x) for x in _unit_rows(rng.standard_normal((1, DIMENSION), dtype=np.float32))[0]]
    )
    biggest = plans[0]
    exact = next((p for p in plans if p.chunks <= exact_max), plans[-1])
    search = "SELECT * FROM parley_vector_search($1, $2, $3, 40, $4, 200, true)"
    statements = {
        "size_check": (
            biggest,
            "EXPLAIN (ANALYZE, BUFFERS) SELECT count(*) FROM (SELECT 1 FROM "
            "knowledge_chunk_embeddings WHERE knowledge_base_id = $1 AND model = $2 "
            "LIMIT $3) AS capped",
            (MODEL, exact_max + 1),
        ),
        "hnsw": (biggest, search, (MODEL, literal, DIMENSION)),
        "exact": (exact, search, (MODEL, literal, None)),
    }
    conn = await asyncpg.connect(_plain(admin))
    notices: list[str] = []
    conn.add_log_listener(lambda _conn, message: notices.append(str(message.message)))
    out: dict[str, str] = {}
    try:
        await conn.execute("LOAD 'auto_explain'")
        for setting in (
            "log_min_duration = 0",
            "log_analyze = on",
            "log_buffers = on",
            "log_nested_statements = on",
            "log_level = notice",
        ):
            await conn.execute(f"SET auto_explain.{setting}")
        await conn.execute(f'SET ROLE "{APP_USER}"')
        for name, (plan, sql, args) in statements.items():
            notices.clear()
            async with conn.transaction():
                await conn.execute(
                    "SELECT set_config('app.tenant_id', $1, true)", str(plan.tenant_id)
                )
                rows = await conn.fetch(sql, plan.kb_id, *args)
            await asyncio.sleep(0)  # let the notices arrive
            explained = (
                "\n".join(r[0] for r in rows) if sql.startswith("EXPLAIN") else "\n\n".join(notices)
            )
            out[f"{name} (tenant of {plan.chunks:,} chunks)"] = explained
    finally:
        await conn.close()
    return out


# Reporting --------------------------------------------------------------------------------


# Raw baseline: the same searches from pgbench, with no app code -------------------------

RAW_TABLE = "bench_raw_queries"
# One search as Parley's unit of work makes it (BEGIN, the tenant context, the search
# function with the arguments vector_search passes, COMMIT), from pgbench's C client. Each
# transaction picks one of the stored queries at random. pgbench reads ':name' as a variable,
# even inside quotes, so the model name (which has a colon) comes from the table too.
RAW_SCRIPT = """\\set n random(1, {count})
BEGIN;
SELECT set_config('app.tenant_id', (SELECT tenant_id FROM {table} WHERE n = :n::int), true);
SELECT s.chunk_id FROM {table} b, LATERAL parley_vector_search(b.kb, b.model, b.q, b.lim,
  b.dimension, b.ef_search, b.iterative) s WHERE b.n = :n::int;
COMMIT;
"""


@dataclass
class RawRun:
    latencies_ms: list[float]
    wall_s: float
    transactions: int  # all of them, the warm-up ones included
    server_cpu_s: float | None  # this database's server processes, the whole run
    client_cpu_s: float  # pgbench itself, the whole run


def pgbench_executable() -> str | None:
    found = shutil.which("pgbench")
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"))
    return str(candidates[-1]) if candidates else None


async def store_raw_queries(
    admin: str, queries: Sequence[Query], plans: list[TenantPlan], limit: int
) -> int | None:
    """The arguments Parley's vector_search would pass for each query, under the settings in
    the environment now (a variant's). Returns the server's postmaster pid (None if the server
    runs on another machine)."""
    from backend.config import Settings
    from backend.knowledge.retrieval import vector_literal

    settings = Settings()
    conn = await asyncpg.connect(_plain(admin))
    try:
        version = await conn.fetchval(
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
        )
        iterative = tuple(int(p) for p in str(version).split(".")[:2]) >= (0, 8)
        await conn.execute(f"DROP TABLE IF EXISTS {RAW_TABLE}")
        await conn.execute(
            f"CREATE TABLE {RAW_TABLE} (n integer PRIMARY KEY, tenant_id text, kb uuid, "
            "model text, q text, lim integer, dimension integer, ef_search integer, "
            "iterative boolean)"
        )
        rows = []
        for n, query in enumerate(queries, start=1):
            hnsw = plans[query.tenant].chunks > settings.exact_search_max_chunks
            rows.append(
                (
                    n,
                    str(query.tenant_id),
                    query.kb_id,
                    MODEL,
                    vector_literal(query.vector),
                    limit,
                    DIMENSION if hnsw else None,
                    max(settings.hnsw_ef_search, limit) if hnsw else None,
                    iterative and hnsw,
                )
            )
        await conn.copy_records_to_table(RAW_TABLE, records=rows)
        await conn.execute(f'GRANT SELECT ON {RAW_TABLE} TO "{APP_USER}"')
        # Read while this backend lives.
        return _parent_pid(int(await conn.fetchval("SELECT pg_backend_pid()")))
    finally:
        await conn.close()


def _parent_pid(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    return None


def _reaped_children_cpu_s(pid: int) -> float | None:
    """CPU seconds of the process's children that have exited (cutime + cstime): for the
    postmaster, the backends of connections that have closed."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def run_raw(
    executable: str,
    app: str,
    postmaster: int | None,
    count: int,
    clients: int,
    per_client: int,
    warmup_per_client: int,
) -> RawRun:
    """`clients` pgbench clients, each making warmup_per_client + per_client searches on one
    connection; the first warmup_per_client of each are left out of the latencies. The server's
    CPU is that of the backends pgbench connected to, which have exited by the end: the
    postmaster's reaped children."""
    url = urlsplit(_plain(app))
    env = {**os.environ, "PGPASSWORD": url.password or ""}
    with tempfile.TemporaryDirectory(prefix="parley-bench-raw-") as tmp:
        script = Path(tmp) / "search.sql"
        script.write_text(RAW_SCRIPT.format(count=count, table=RAW_TABLE))
        command = [
            executable, "-h", url.hostname or "127.0.0.1", "-p", str(url.port or 5432),
            "-U", url.username or "", "-n", "-M", "prepared", "-f", str(script),
            "-c", str(clients), "-j", str(min(clients, os.cpu_count() or 1)),
            "-t", str(warmup_per_client + per_client), "-l", "--log-prefix", f"{tmp}/log",
            DB_NAME,
        ]  # fmt: skip
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        server_before = _reaped_children_cpu_s(postmaster) if postmaster else None
        subprocess.run(command, check=True, capture_output=True, env=env, cwd=tmp)
        server_after = _reaped_children_cpu_s(postmaster) if postmaster else None
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        measured: list[tuple[float, float]] = []  # (latency ms, completed at)
        transactions = 0
        for log in Path(tmp).glob("log*"):
            for line in log.read_text().splitlines():
                # client_id transaction_no latency_us script_no epoch_s epoch_us
                fields = line.split()
                transactions += 1
                if int(fields[1]) >= warmup_per_client:
                    measured.append((int(fields[2]) / 1000, int(fields[4]) + int(fields[5]) / 1e6))
    server_cpu = None
    if server_before is not None and server_after is not None:
        server_cpu = server_after - server_before
    first_start = min(end - ms / 1000 for ms, end in measured)
    return RawRun(
        latencies_ms=[ms for ms, _ in measured],
        wall_s=max(end for _, end in measured) - first_start,
        transactions=transactions,
        server_cpu_s=server_cpu,
        client_cpu_s=(after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime),
    )


def summarize_raw(runs: list[RawRun]) -> dict[str, Any]:
    transactions = sum(r.transactions for r in runs)
    wall = sum(r.wall_s for r in runs)
    servers = [r.server_cpu_s for r in runs if r.server_cpu_s is not None]
    latencies = [ms for r in runs for ms in r.latencies_ms]
    return {
        **latency(latencies),
        "qps": round(len(latencies) / wall, 1) if wall > 0 else None,
        # Per search, over the whole runs (warm-up included): pgbench's own CPU, and the CPU
        # of its server processes.
        "client_cpu_ms_per_query": round(sum(r.client_cpu_s for r in runs) / transactions * 1e3, 3),
        "server_cpu_ms_per_query": (
            round(sum(servers) / transactions * 1e3, 3) if len(servers) == len(runs) else None
        ),
    }


def _percentile(ordered: Sequence[float], pct: float) -> float:
    rank = math.ceil(pct / 100 * len(ordered))
    return float(ordered[min(max(rank, 1), len(ordered)) - 1])


def latency(values: Sequence[float]) -> dict[str, float | int | None]:
    ordered = sorted(values)
    if not ordered:
        return {"queries": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    return {
        "queries": len(ordered),
        "p50_ms": round(_percentile(ordered, 50), 2),
        "p95_ms": round(_percentile(ordered, 95), 2),
        "p99_ms": round(_percentile(ordered, 99), 2),
        "max_ms": round(ordered[-1], 2),
    }


def summarize(
    run: Run,
    queries: list[Query],
    truth: dict[int, list[str]],
    plans: list[TenantPlan],
    exact_max: int,
    top_k: int,
    limit: int,
) -> dict[str, Any]:
    by_number = {q.number: q for q in queries}
    recalls: dict[str, list[float]] = {"all": [], "hnsw": [], "exact": []}
    short_k = short_limit = fallbacks = 0
    by_path: dict[str, list[float]] = {"hnsw": [], "exact": []}
    for answer in run.answers:
        size = plans[by_number[answer.number].tenant].chunks
        by_path[answer.how].append(answer.latency_ms)
        if size > exact_max and answer.how == "exact":
            fallbacks += 1
        if len(answer.chunk_ids) < min(top_k, size):
            short_k += 1
        if len(answer.chunk_ids) < min(limit, size):
            short_limit += 1
        expected = truth.get(answer.number)
        if expected is None:
            continue
        found = set(answer.chunk_ids[:top_k])
        recall = len(found.intersection(expected)) / max(1, min(top_k, len(expected)))
        recalls["all"].append(recall)
        recalls[answer.how].append(recall)
    return {
        **latency([a.latency_ms for a in run.answers]),
        "wall_s": round(run.wall_s, 2),
        "qps": round(len(run.answers) / run.wall_s, 1) if run.wall_s > 0 else None,
        "client_cpu_cores": round(run.client_cpu_s / run.wall_s, 2) if run.wall_s > 0 else None,
        "server_cpu_cores": (
            round(run.server_cpu_s / run.wall_s, 2)
            if run.server_cpu_s is not None and run.wall_s > 0
            else None
        ),
        "machine_cpu_busy": round(run.machine_busy, 2) if run.machine_busy is not None else None,
        "by_path": {path: latency(values) for path, values in by_path.items()},
        "recall_at_10": {
            path: (round(sum(v) / len(v), 4) if v else None) for path, v in recalls.items()
        },
        "recall_at_10_min_hnsw": round(min(recalls["hnsw"]), 2) if recalls["hnsw"] else None,
        "queries_compared": len(recalls["all"]),
        "short_lists_top10": short_k,
        "short_lists_limit": short_limit,
        "hnsw_fallbacks_to_exact": fallbacks,
    }


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    memory = None
    try:
        first = Path("/proc/meminfo").read_text().splitlines()[0]
        memory = round(int(first.split()[1]) / 1024 / 1024, 1)
    except (OSError, IndexError, ValueError):
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": memory,
        "python": platform.python_version(),
    }


async def server_info(admin: str) -> dict[str, Any]:
    conn = await asyncpg.connect(_plain(admin))
    try:
        return {
            "postgresql": await conn.fetchval("SHOW server_version"),
            "pgvector": await conn.fetchval(
                "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
            ),
            "shared_buffers": await conn.fetchval("SHOW shared_buffers"),
            "jit": await conn.fetchval("SHOW jit"),
        }
    finally:
        await conn.close()


def _ms(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, float) else "-"


def print_table(result: dict[str, Any]) -> None:
    print()
    print(f"Retrieval at scale: {result['chunks']:,} chunks, {result['tenants']:,} tenants")
    print(
        f"  tenants hold {result['smallest_tenant']:,} to {result['largest_tenant']:,} chunks; "
        f"{result['hnsw_tenants']} hold more than {result['exact_search_max_chunks']:,} "
        f"({result['hnsw_tenant_chunks']:,} chunks, searched with HNSW), the rest exactly"
    )
    load, b = result["load"], result["index"]
    if load and b:
        print(
            f"  load: COPY {load['copy_s']:.1f} s, "
            f"VACUUM + ANALYZE {load['vacuum_analyze_s']:.1f} s"
        )
        print(
            f"  HNSW build: {b['build_s']:.1f} s over {b.get('partitions', 1)} partition(s); "
            f"index {b['index_mib']:,.0f} MiB, table "
            f"{b['table_mib']:,.0f} MiB; peak RSS of the building backend "
            f"{b['leader_peak_rss_mib']} MiB (its shared-memory graph included)"
        )
    width = max(len(v) for v in result["search"]) + 2
    print()
    print(
        f"  {'variant':<{width}}{'clients':<9}{'path':<7}{'queries':>8}{'QPS':>8}"
        f"{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'recall@10':>11}"
    )
    for kind, clients in (("search", str(result["clients"])), ("serial", "1")):
        for variant, s in result[kind].items():
            rows = [("all", s), *s["by_path"].items()]
            for path, row in rows:
                recall = s["recall_at_10"].get(path)
                qps = s["qps"] if path == "all" else None
                print(
                    f"  {variant:<{width}}{clients:<9}{path:<7}{row['queries']:>8}"
                    f"{(f'{qps:.0f}' if qps else ''):>8}{_ms(row['p50_ms']):>9}"
                    f"{_ms(row['p95_ms']):>9}{_ms(row['p99_ms']):>9}"
                    f"{(f'{recall:.4f}' if recall is not None else ''):>11}"
                )
    print()
    for variant, s in result["search"].items():
        print(
            f"  {variant}: CPU cores used by the clients {s['client_cpu_cores']}, by their "
            f"server processes {s['server_cpu_cores']}; the machine's CPUs were "
            f"{s['machine_cpu_busy']:.0%} busy; short lists {s['short_lists_top10']} below 10, "
            f"{s['short_lists_limit']} below the {result['limit']} asked for; HNSW fallbacks "
            f"to exact {s['hnsw_fallbacks_to_exact']}"
        )
    if result["raw"]:
        print()
        print(
            f"  The same searches from {result['clients']} pgbench clients (no app code: "
            "BEGIN, the tenant context, the search function, COMMIT):"
        )
        for variant, r in result["raw"].items():
            print(
                f"  {variant:<{width}}{r['queries']:>8} searches, {r['qps'] or 0:.0f} QPS, "
                f"p50 {_ms(r['p50_ms'])} ms, p95 {_ms(r['p95_ms'])} ms, p99 "
                f"{_ms(r['p99_ms'])} ms; CPU per search: PostgreSQL "
                f"{r['server_cpu_ms_per_query']} ms, pgbench {r['client_cpu_ms_per_query']} ms"
            )
    print()
    for goal, verdict in result["verdicts"].items():
        print(f"  {goal}: {verdict}")


def _short_plan(plan: str) -> str:
    return re.sub(r"'\[[-0-9.e,]+\]'", "'[...]'", plan)


# Main -------------------------------------------------------------------------------------


VARIANT_HELP = """Variants: 'shipped' is Parley as it is. The others add changes, joined with '+':
  custom-plans   the app role gets plan_cache_mode = force_custom_plan (Parley's search
                 function now plans every search itself);
  count-index    a second index on knowledge_chunk_embeddings (knowledge_base_id, model,
                 tenant_id) (Parley now has one);
  exact-N        exact_search_max_chunks = N (PARLEY_EXACT_SEARCH_MAX_CHUNKS);
  ef-N           hnsw_ef_search = N (PARLEY_HNSW_EF_SEARCH);
  recount        every search counts its knowledge base's size again
                 (PARLEY_SEARCH_SIZE_CACHE_SECONDS = 0), as Parley did before it kept them."""
COUNT_INDEX = "bench_ix_chunk_emb_kb_model_tenant"


@dataclass(frozen=True)
class Variant:
    name: str
    custom_plans: bool
    count_index: bool
    exact_max: int | None
    ef_search: int | None
    recount: bool = False


def parse_variant(name: str) -> Variant:
    parts = [] if name == "shipped" else name.split("+")
    exact = [p for p in parts if p.startswith("exact-")]
    ef = [p for p in parts if p.startswith("ef-")]
    known = ("custom-plans", "count-index", "recount")
    unknown = [p for p in parts if p not in known and p not in exact and p not in ef]
    if unknown or len(exact) > 1 or len(ef) > 1 or not (name == "shipped" or parts):
        raise ValueError(name)
    return Variant(
        name=name,
        custom_plans="custom-plans" in parts,
        count_index="count-index" in parts,
        exact_max=int(exact[0].removeprefix("exact-")) if exact else None,
        ef_search=int(ef[0].removeprefix("ef-")) if ef else None,
        recount="recount" in parts,
    )


async def apply_variant(admin: str, variant: Variant | None) -> None:
    """Put the bench database in the state `variant` describes (None: as shipped)."""
    conn = await asyncpg.connect(_plain(admin))
    try:
        await conn.execute(f'ALTER ROLE "{APP_USER}" IN DATABASE "{DB_NAME}" RESET ALL')
        if variant is not None and variant.custom_plans:
            await conn.execute(
                f'ALTER ROLE "{APP_USER}" IN DATABASE "{DB_NAME}" '
                "SET plan_cache_mode = force_custom_plan"
            )
        if variant is not None and variant.count_index:
            await conn.execute(
                f"CREATE INDEX IF NOT EXISTS {COUNT_INDEX} ON knowledge_chunk_embeddings "
                "(knowledge_base_id, model, tenant_id)"
            )
            await conn.execute("VACUUM (ANALYZE) knowledge_chunk_embeddings")
        else:
            await conn.execute(f"DROP INDEX IF EXISTS {COUNT_INDEX}")
    finally:
        await conn.close()
    for name, value in (
        ("PARLEY_EXACT_SEARCH_MAX_CHUNKS", variant.exact_max if variant else None),
        ("PARLEY_HNSW_EF_SEARCH", variant.ef_search if variant else None),
        ("PARLEY_SEARCH_SIZE_CACHE_SECONDS", 0 if variant and variant.recount else None),
    ):
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = str(value)


def merge_runs(runs: list[Run]) -> Run:
    busy = [r.machine_busy for r in runs if r.machine_busy is not None]
    server = [r.server_cpu_s for r in runs if r.server_cpu_s is not None]
    return Run(
        answers=[a for r in runs for a in r.answers],
        wall_s=sum(r.wall_s for r in runs),
        client_cpu_s=sum(r.client_cpu_s for r in runs),
        machine_busy=sum(busy) / len(busy) if busy else None,
        server_cpu_s=sum(server) if len(server) == len(runs) else None,
    )


async def build(
    args: argparse.Namespace, admin_server: str, admin: str, app: str, plans: list[TenantPlan]
) -> tuple[str, dict[str, float], dict[str, Any]]:
    """A fresh database, loaded and indexed; returns the index name, load timings, index stats."""
    print(f"Preparing {DB_NAME} ...")
    await _prepare(admin_server, admin, app)
    conn = await _connect(admin)
    try:
        index_name, definition = await hnsw_index_definition(conn)
        await conn.execute(f"DROP INDEX {index_name}")
        load_started = time.perf_counter()
        print(f"Loading {args.chunks:,} chunks for {args.tenants:,} tenants with COPY ...")
        timings = await load(conn, plans, args.seed)
        timings["total_s"] = time.perf_counter() - load_started
    finally:
        await conn.close()
    print(f"Building the HNSW index: {definition}")
    index = await build_index(admin, definition, args.maintenance_work_mem, args.build_workers)
    print(f"  {index['build_s']:.1f} s")
    conn = await _connect(admin)
    try:
        # Summed over the partitions (a partitioned table or index has no storage of its own).
        index["index_mib"] = (
            int(
                await conn.fetchval(
                    "SELECT sum(pg_relation_size(relid)) FROM pg_partition_tree($1::regclass)",
                    index_name,
                )
            )
            / 2**20
        )
        index["table_mib"] = (
            int(
                await conn.fetchval(
                    "SELECT sum(pg_table_size(relid)) "
                    "FROM pg_partition_tree('knowledge_chunk_embeddings')"
                )
            )
            / 2**20
        )
        if not index["index_mib"]:
            raise RuntimeError(f"the build left {index_name} without storage: {definition}")
        index["partitions"] = int(
            await conn.fetchval(
                "SELECT count(*) FROM pg_partition_tree('knowledge_chunk_embeddings') WHERE isleaf"
            )
        )
        await conn.execute("ANALYZE knowledge_chunk_embeddings")
    finally:
        await conn.close()
    return index_name, timings, index


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(__doc__ or "") + "\n" + VARIANT_HELP,
    )
    parser.add_argument("--chunks", type=int, default=1_000_000)
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--zipf", type=float, default=1.0, help="Zipf exponent of tenant sizes")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--processes", type=int, default=2, help="client processes")
    parser.add_argument("--queries", type=int, default=2000, help="per variant and round")
    parser.add_argument("--serial-queries", type=int, default=500, help="1 client; 0 skips")
    parser.add_argument("--warmup", type=int, default=400)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--traffic", choices=("size", "uniform"), default="size")
    parser.add_argument("--query-kind", choices=("perturbed", "random"), default="perturbed")
    parser.add_argument(
        "--variants",
        default="shipped,exact-20000,exact-5000",
        help="comma-separated (see below); the verdicts judge the first",
    )
    parser.add_argument("--rounds", type=int, default=2, help="variants alternate per round")
    parser.add_argument("--maintenance-work-mem", default="4GB")
    parser.add_argument("--build-workers", type=int, default=1, help="parallel index workers")
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE plans")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--reuse", action="store_true", help="query a database kept by --keep (same sizes)"
    )
    parser.add_argument(
        "--no-raw",
        dest="raw",
        action="store_false",
        help="skip the raw baseline (the same searches from pgbench, no app code)",
    )
    args = parser.parse_args(argv)
    try:
        variants = [parse_variant(v.strip()) for v in args.variants.split(",") if v.strip()]
    except ValueError as exc:
        parser.error(f"unknown variant {exc}")
    if not variants:
        parser.error("--variants names none")

    admin_server = _admin_server_url()
    admin, app = _urls(admin_server)
    os.environ.update(
        {
            "PARLEY_DATABASE_URL": app,
            "PARLEY_DATABASE_ADMIN_URL": admin,
            "PARLEY_DATA_DIR": tempfile.mkdtemp(prefix="parley-bench-scale-"),
            "PARLEY_LOG_LEVEL": "WARNING",
            "PARLEY_DATABASE_POOL_SIZE": str(max(1, math.ceil(args.clients / args.processes))),
        }
    )
    from backend.config import get_settings

    exact_max = get_settings().exact_search_max_chunks
    limit = max(args.top_k * CANDIDATES_PER_RESULT, MIN_CANDIDATES)
    plans = plan_tenants(args.chunks, args.tenants, args.zipf)
    timings: dict[str, float] = {}
    index: dict[str, Any] = {}
    try:
        if not args.reuse:
            _, timings, index = await build(args, admin_server, admin, app, plans)
        plans_text = await explain_plans(admin, plans, exact_max) if args.explain else {}
        for name, plan_text in plans_text.items():
            print(f"\nEXPLAIN ANALYZE, {name}:\n{_short_plan(plan_text)}")
        queries = make_queries(plans, args.seed, args.queries, args.traffic, args.query_kind, 1)
        warmup = make_queries(plans, args.seed, args.warmup, args.traffic, args.query_kind, 2)
        serial = make_queries(
            plans, args.seed, args.serial_queries, args.traffic, args.query_kind, 3
        )
        concurrent_runs: dict[str, list[Run]] = {v.name: [] for v in variants}
        serial_runs: dict[str, list[Run]] = {v.name: [] for v in variants}
        raw_runs: dict[str, list[RawRun]] = {v.name: [] for v in variants}
        pgbench = pgbench_executable() if args.raw else None
        if args.raw and pgbench is None:
            print("pgbench was not found: no raw baseline")
        for round_number in range(args.rounds):
            order = variants if round_number % 2 == 0 else list(reversed(variants))
            for variant in order:
                await apply_variant(admin, variant)
                print(
                    f"[{variant.name}] {len(queries):,} queries from {args.clients} clients "
                    f"(round {round_number + 1}) ..."
                )
                run = run_clients(queries, warmup, args.clients, args.processes, limit)
                print(f"  p95 {latency([a.latency_ms for a in run.answers])['p95_ms']} ms")
                concurrent_runs[variant.name].append(run)
                if serial:
                    print(f"[{variant.name}] {len(serial):,} queries from 1 client ...")
                    serial_runs[variant.name].append(run_clients(serial, warmup[:50], 1, 1, limit))
                if pgbench is not None:
                    print(f"[{variant.name}] the same searches from {args.clients} pgbench clients")
                    postmaster = await store_raw_queries(admin, queries, plans, limit)
                    raw = run_raw(
                        pgbench,
                        app,
                        postmaster,
                        len(queries),
                        args.clients,
                        max(1, len(queries) // args.clients),
                        # As warm as it gets: a floor for Parley's figures, not a rival.
                        max(args.warmup, len(queries)) // args.clients,
                    )
                    print(f"  p95 {latency(raw.latencies_ms)['p95_ms']} ms")
                    raw_runs[variant.name].append(raw)
        await apply_variant(admin, None)
        print("Computing exact answers for recall ...")
        truth_started = time.perf_counter()
        truth = await exact_answers(admin, queries, args.top_k, 2)
        truth_s = time.perf_counter() - truth_started
        limits = {v.name: v.exact_max if v.exact_max is not None else exact_max for v in variants}
        searches = {
            v: summarize(merge_runs(runs), queries, truth, plans, limits[v], args.top_k, limit)
            for v, runs in concurrent_runs.items()
        }
        serials = {
            v: summarize(merge_runs(runs), serial, {}, plans, limits[v], args.top_k, limit)
            for v, runs in serial_runs.items()
            if runs
        }
        info = await server_info(admin)
    finally:
        if not args.keep:
            await _drop_database(admin_server)
    sizes = [p.chunks for p in plans]
    judged = variants[0].name
    search = searches[judged]
    hnsw_recall = search["recall_at_10"]["hnsw"]
    all_recall = search["recall_at_10"]["all"]
    no_short = search["short_lists_top10"] == 0 and search["short_lists_limit"] == 0
    verdicts = {
        f"p95 <= 15 ms, {args.clients} clients ({judged})": (
            f"{'PASS' if search['p95_ms'] <= 15 else 'FAIL'} ({search['p95_ms']} ms)"
        ),
        f"recall@10 >= 0.95, HNSW queries ({judged})": (
            "n/a (no HNSW queries)"
            if hnsw_recall is None
            else f"{'PASS' if hnsw_recall >= 0.95 else 'FAIL'} ({hnsw_recall})"
        ),
        f"recall@10 >= 0.95, all queries ({judged})": (
            f"{'PASS' if (all_recall or 0) >= 0.95 else 'FAIL'} ({all_recall})"
        ),
        f"zero short result lists ({judged})": (
            f"{'PASS' if no_short else 'FAIL'} "
            f"({search['short_lists_top10']} below 10, {search['short_lists_limit']} below {limit})"
        ),
    }
    result = {
        "benchmark": "retrieval_scale",
        "chunks": args.chunks,
        "tenants": args.tenants,
        "zipf_exponent": args.zipf,
        "largest_tenant": max(sizes),
        "smallest_tenant": min(sizes),
        "exact_search_max_chunks": exact_max,
        "hnsw_tenants": sum(1 for s in sizes if s > exact_max),
        "hnsw_tenant_chunks": sum(s for s in sizes if s > exact_max),
        "vectors": "synthetic (topic + Gaussian noise, normalized)",
        "query_kind": args.query_kind,
        "traffic": args.traffic,
        "clients": args.clients,
        "processes": args.processes,
        "rounds": args.rounds,
        "limit": limit,
        "top_k": args.top_k,
        "variants": [v.__dict__ for v in variants],
        "reused_database": args.reuse,
        "load": {k: round(v, 1) for k, v in timings.items()},
        "index": {k: (round(v, 1) if isinstance(v, float) else v) for k, v in index.items()},
        "search": searches,
        "serial": serials,
        "raw": {v: summarize_raw(runs) for v, runs in raw_runs.items() if runs},
        "exact_answers_s": round(truth_s, 1),
        "machine": machine(),
        "server": info,
        "verdicts": verdicts,
    }
    print_table(result)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
