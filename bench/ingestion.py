"""Ingestion throughput: the whole pipeline against the bare embedding model, on the same texts.

    python -m bench.ingestion [--documents 30] [--rounds 3] [--concurrency 1]

Documents are real pages of the PostgreSQL manual (bench/corpus/pgdocs.py; install it with
`apt-get install postgresql-doc-15`), uploaded as HTML files into a knowledge base with the
default settings (local all-MiniLM-L6-v2, 200-token chunks, 30 tokens of overlap).

Two passes alternate, round by round (pipeline first in odd rounds, model first in even ones):

  pipeline  backend.knowledge.pipeline.ingest_document for every document, in this process, as
            the worker runs it: read the original from storage, parse, clean, chunk, embed in
            batches of 32, write chunks and vectors to PostgreSQL, finalize. The documents are
            uploaded (untimed) into a fresh knowledge base before each pass, so every chunk is
            embedded and written.
  model     provider.embed() on exactly the same chunk texts (each chunk's embed_text), in the
            same batches the pipeline sends: per document, 32 at a time.

Both count chunks per second over the wall time of the pass; the goal is pipeline / model >= 0.9
(parsing, chunking and writing cost at most 10 %). A last, separate pipeline pass, one document
at a time, times each stage of the pipeline (wrappers around its functions) to show where the
time goes; --profile also runs one under cProfile.

Needs PARLEY_TEST_ADMIN_DATABASE_URL (a superuser; `make bench` exports it). The benchmark makes
its own database and drops it at the end. No Redis is needed: queued jobs are discarded and the
pipeline is called directly.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import io
import json
import os
import platform
import pstats
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from bench.corpus import pgdocs

DB_NAME = "parley_bench_ingestion"
APP_USER, APP_PASSWORD = "parley_bench_ingestion_app", "parley-bench-ingestion-app"
MODEL = "local:all-MiniLM-L6-v2"


# The bench database -----------------------------------------------------------------------


@dataclass(frozen=True)
class BenchDatabase:
    """A database of the benchmark's own on the test server, with the app's login role."""

    name: str
    app_user: str
    app_password: str
    admin_server: str  # the superuser on the server's maintenance database

    @classmethod
    def from_env(cls, name: str, app_user: str, app_password: str) -> BenchDatabase:
        admin = os.environ.get("PARLEY_TEST_ADMIN_DATABASE_URL")
        if not admin:
            sys.exit("PARLEY_TEST_ADMIN_DATABASE_URL must be set (`make bench` exports it)")
        scheme, sep, rest = admin.partition("://")
        if "+asyncpg" not in scheme:
            admin = f"postgresql+asyncpg{sep}{rest}"
        return cls(name, app_user, app_password, admin)

    @property
    def admin(self) -> str:
        return f"{self.admin_server.rpartition('/')[0]}/{self.name}"

    @property
    def app(self) -> str:
        base = self.admin_server.rpartition("/")[0]
        scheme, _, rest = base.partition("://")
        host = rest.rpartition("@")[2]
        return f"{scheme}://{self.app_user}:{self.app_password}@{host}/{self.name}"

    @staticmethod
    def plain(url: str) -> str:
        return url.replace("postgresql+asyncpg://", "postgresql://")

    async def create(self) -> None:
        from backend.migrate import ensure_app_role, run_migrations

        conn = await asyncpg.connect(self.plain(self.admin_server))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{self.name}"')
        finally:
            await conn.close()
        await asyncio.to_thread(run_migrations, self.admin)
        await ensure_app_role(self.admin, self.app)

    async def drop(self) -> None:
        from backend.db import get_engine

        if os.environ.get("PARLEY_DATABASE_URL") == self.app:
            await get_engine().dispose()
        conn = await asyncpg.connect(self.plain(self.admin_server))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            await conn.execute(f'DROP ROLE IF EXISTS "{self.app_user}"')
        finally:
            await conn.close()

    def configure(self, data_dir: Path) -> None:
        """Point Parley's settings at this database (before anything reads them)."""
        os.environ.update(
            {
                "PARLEY_DATABASE_URL": self.app,
                "PARLEY_DATABASE_ADMIN_URL": self.admin,
                "PARLEY_DATA_DIR": str(data_dir),
                "PARLEY_LOG_LEVEL": "WARNING",
                "PARLEY_LOG_JSON": "false",
            }
        )


def discard_jobs() -> None:
    """Queued ingestion jobs go nowhere: the benchmarks call the pipeline themselves."""
    from backend.db import PendingJob
    from backend.jobs import set_job_sink

    async def drop(_job: PendingJob) -> None:
        return None

    set_job_sink(drop)


# Parley's services: a workspace, knowledge bases, uploads ---------------------------------


@dataclass(frozen=True)
class Workspace:
    tenant_id: uuid.UUID
    ctx: Any  # backend.tenancy.context.TenantContext


async def create_workspace(label: str) -> Workspace:
    from backend.auth.service import create_user
    from backend.db import unit_of_work
    from backend.tenancy.context import TenantContext, TenantId
    from backend.tenancy.permissions import Permission
    from backend.tenancy.service import create_tenant

    suffix = uuid.uuid4().hex[:8]
    async with unit_of_work() as session:
        user = await create_user(
            session, email=f"{label}-{suffix}@example.com", password="x" * 12, verified=True
        )
        tenant = await create_tenant(
            session, owner_id=user.id, name=label, slug=f"{label}-{suffix}", plan="business"
        )
    ctx = TenantContext(
        tenant_id=TenantId(tenant.id), permissions=frozenset(Permission), user_id=user.id
    )
    return Workspace(tenant.id, ctx)


async def create_knowledge_base(workspace: Workspace, name: str) -> uuid.UUID:
    from backend.db import unit_of_work
    from backend.knowledge import schemas, service

    async with unit_of_work(tenant_id=workspace.tenant_id) as session:
        kb = await service.create_knowledge_base(
            session, workspace.ctx, schemas.KnowledgeBaseCreate(name=name)
        )
        return kb.id


async def upload(
    workspace: Workspace, kb_id: uuid.UUID, files: list[tuple[str, bytes]]
) -> list[tuple[uuid.UUID, int]]:
    """Upload files as the upload endpoint does; returns (document id, version) of each."""
    from fastapi import UploadFile

    from backend.db import unit_of_work
    from backend.knowledge import service

    async def body(data: bytes) -> Any:
        yield data

    documents = []
    async with unit_of_work(tenant_id=workspace.tenant_id) as session:
        kb = await service.get_knowledge_base(session, workspace.ctx, kb_id)
        for filename, data in files:
            upload_file = UploadFile(file=io.BytesIO(data), filename=filename)
            document = await service.add_upload(session, workspace.ctx, kb, upload_file, body(data))
            documents.append((document.id, document.version))
    return documents


def planned_texts(data: bytes, chunk_tokens: int = 200, overlap_tokens: int = 30) -> list[str]:
    """The embed_text of every chunk the pipeline makes of `data` with a default knowledge base
    (the same parse and chunk calls, with the budget the pipeline computes)."""
    from backend.knowledge.chunking import chunk_document
    from backend.knowledge.parsing import parse_document
    from backend.knowledge.providers import provider_for

    provider = provider_for(MODEL)
    budget = min(chunk_tokens, provider.max_tokens)
    parsed = parse_document(data, filename=None, declared_type=None)
    chunks = chunk_document(
        parsed,
        count_tokens=provider.count_tokens,
        chunk_tokens=budget,
        overlap_tokens=min(overlap_tokens, budget // 2),
    )
    return [c.embed_text for c in chunks]


# The passes -------------------------------------------------------------------------------


@dataclass
class Pass:
    kind: str
    round: int
    chunks: int
    seconds: float
    outcomes: Counter[str] = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        return self.chunks / self.seconds


async def _in_parallel(
    items: list[Any], concurrency: int, work: Callable[[Any], Awaitable[None]]
) -> None:
    pending = list(reversed(items))

    async def worker() -> None:
        while pending:
            await work(pending.pop())

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def pipeline_pass(
    workspace: Workspace,
    files: list[tuple[str, bytes]],
    chunks: int,
    concurrency: int,
    label: str,
    round_number: int,
) -> tuple[Pass, uuid.UUID]:
    from backend.knowledge.pipeline import ingest_document

    kb_id = await create_knowledge_base(workspace, label)
    documents = await upload(workspace, kb_id, files)
    outcomes: Counter[str] = Counter()

    async def ingest(document: tuple[uuid.UUID, int]) -> None:
        outcome = await ingest_document(workspace.tenant_id, document[0], document[1])
        outcomes[outcome.partition(":")[0]] += 1

    started = time.perf_counter()
    await _in_parallel(documents, concurrency, ingest)
    seconds = time.perf_counter() - started
    return Pass("pipeline", round_number, chunks, seconds, outcomes), kb_id


async def model_pass(texts: list[list[str]], concurrency: int, round_number: int) -> Pass:
    from backend.knowledge.pipeline import EMBED_BATCH
    from backend.knowledge.providers import provider_for

    provider = provider_for(MODEL)

    async def embed(document: list[str]) -> None:
        for start in range(0, len(document), EMBED_BATCH):
            await provider.embed(document[start : start + EMBED_BATCH])

    started = time.perf_counter()
    await _in_parallel(texts, concurrency, embed)
    seconds = time.perf_counter() - started
    return Pass("model", round_number, sum(len(t) for t in texts), seconds)


STAGES = (
    "_start",
    "_load_original",
    "_parse_and_chunk",
    "_existing_chunks",
    "_check_chunk_quota",
    "_set_progress",
    "_embed",
    "_write_batch",
    "_finalize",
)


@contextmanager
def timed_stages() -> Iterator[dict[str, float]]:
    """Wrap the pipeline's stage functions with timers (this process only), restore them after."""
    from backend.knowledge import pipeline

    totals = dict.fromkeys(STAGES, 0.0)
    originals = {name: getattr(pipeline, name) for name in STAGES}

    def wrap(name: str, function: Any) -> Any:
        if asyncio.iscoroutinefunction(function):

            @functools.wraps(function)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return await function(*args, **kwargs)
                finally:
                    totals[name] += time.perf_counter() - started

            return timed_async

        @functools.wraps(function)
        def timed_sync(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                totals[name] += time.perf_counter() - started

        return timed_sync

    for name, function in originals.items():
        setattr(pipeline, name, wrap(name, function))
    try:
        yield totals
    finally:
        for name, function in originals.items():
            setattr(pipeline, name, function)


async def stored_texts(database: BenchDatabase, kb_id: uuid.UUID) -> Counter[str]:
    conn = await asyncpg.connect(database.plain(database.admin))
    try:
        rows = await conn.fetch(
            "SELECT embed_text FROM knowledge_chunks WHERE knowledge_base_id = $1", kb_id
        )
    finally:
        await conn.close()
    return Counter(r["embed_text"] for r in rows)


# Reporting --------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version()}


async def server_versions(database: BenchDatabase) -> dict[str, Any]:
    conn = await asyncpg.connect(database.plain(database.admin))
    try:
        return {
            "postgresql": await conn.fetchval("SHOW server_version"),
            "pgvector": await conn.fetchval(
                "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
            ),
        }
    finally:
        await conn.close()


def print_report(result: dict[str, Any]) -> None:
    print()
    print(
        f"Ingestion: {result['documents']} pages of the PostgreSQL manual, {result['chunks']} "
        f"chunks, {result['megabytes']:.2f} MB of HTML; concurrency {result['concurrency']}"
    )
    print()
    print(f"  {'round':<7}{'pass':<10}{'seconds':>9}{'chunks/s':>10}")
    for row in result["passes"]:
        print(f"  {row['round']:<7}{row['kind']:<10}{row['seconds']:>9.2f}{row['rate']:>10.2f}")
    print()
    print(f"  {'round':<7}{'pipeline / model':>17}")
    for number, value in enumerate(result["ratios"], start=1):
        print(f"  {number:<7}{value:>17.3f}")
    print(
        f"  total: pipeline {result['pipeline_rate']:.2f} chunks/s, model "
        f"{result['model_rate']:.2f} chunks/s, ratio {result['ratio']:.3f} "
        f"(median of rounds {result['median_ratio']:.3f})"
    )
    breakdown = result.get("breakdown")
    if breakdown:
        print()
        print(
            f"  where a pipeline pass spends its time, one document at a time "
            f"({breakdown['seconds']:.2f} s):"
        )
        for name, seconds in breakdown["stages"].items():
            share = seconds / breakdown["seconds"]
            print(f"    {name:<20}{seconds:>8.2f} s{share:>8.1%}")
    print()
    print(f"  goal pipeline / model >= 0.9: {result['verdict']}")


# Main -------------------------------------------------------------------------------------


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    parser.add_argument("--documents", type=int, default=30, help="pages of the manual")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=1, help="documents at a time")
    parser.add_argument("--corpus-dir", help=f"default: {pgdocs.DEFAULT_DIR}")
    parser.add_argument("--no-breakdown", action="store_true", help="skip the stage timing pass")
    parser.add_argument("--profile", metavar="FILE", help="also cProfile a pipeline pass to FILE")
    args = parser.parse_args(argv)

    # The manual is XHTML; Parley parses it as HTML, which makes BeautifulSoup warn once.
    warnings.filterwarnings("ignore", message=".*looks like you're using an HTML parser")
    directory = pgdocs.corpus_dir(args.corpus_dir)
    chosen = pgdocs.sample(pgdocs.pages(directory), args.documents)
    files = [(page.name, page.read_bytes()) for page in chosen]
    database = BenchDatabase.from_env(DB_NAME, APP_USER, APP_PASSWORD)
    database.configure(Path(tempfile.mkdtemp(prefix="parley-bench-ingestion-")))
    discard_jobs()

    from backend.knowledge.providers import provider_for

    provider = provider_for(MODEL)
    await asyncio.to_thread(getattr(provider, "load", lambda: None))
    texts = [planned_texts(data) for _, data in files]
    chunks = sum(len(t) for t in texts)
    await provider.embed(texts[0][:8])  # warm up
    print(f"{len(files)} pages, {chunks} chunks. Preparing {DB_NAME} ...")
    await database.create()
    passes: list[Pass] = []
    breakdown = None
    try:
        workspace = await create_workspace("ingestion")
        texts_match = None
        for round_number in range(1, args.rounds + 1):
            order = ("pipeline", "model") if round_number % 2 else ("model", "pipeline")
            for kind in order:
                if kind == "pipeline":
                    done, kb_id = await pipeline_pass(
                        workspace,
                        files,
                        chunks,
                        args.concurrency,
                        f"Round {round_number}",
                        round_number,
                    )
                    if texts_match is None:
                        expected = Counter(t for document in texts for t in document)
                        texts_match = await stored_texts(database, kb_id) == expected
                else:
                    done = await model_pass(texts, args.concurrency, round_number)
                passes.append(done)
                print(
                    f"  round {round_number} {kind:<8} {done.seconds:7.2f} s "
                    f"{done.rate:7.2f} chunks/s"
                )
        if not args.no_breakdown:
            with timed_stages() as totals:
                # One document at a time, so that the stages' times add up to the pass's.
                done, _ = await pipeline_pass(workspace, files, chunks, 1, "Breakdown", 0)
            stages = {name.lstrip("_"): round(seconds, 3) for name, seconds in totals.items()}
            stages["other (loop, commits between stages)"] = round(
                done.seconds - sum(totals.values()), 3
            )
            breakdown = {"seconds": round(done.seconds, 3), "stages": stages}
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            await pipeline_pass(workspace, files, chunks, args.concurrency, "Profile", 0)
            profiler.disable()
            profiler.dump_stats(args.profile)
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
            print(out.getvalue())
        versions = await server_versions(database)
    finally:
        await database.drop()

    pipeline = [p for p in passes if p.kind == "pipeline"]
    model = [p for p in passes if p.kind == "model"]
    ratios = [p.rate / m.rate for p, m in zip(pipeline, model, strict=True)]
    pipeline_rate = sum(p.chunks for p in pipeline) / sum(p.seconds for p in pipeline)
    model_rate = sum(m.chunks for m in model) / sum(m.seconds for m in model)
    ratio = pipeline_rate / model_rate
    failures = sum(p.outcomes.get("failed", 0) for p in pipeline)
    result = {
        "benchmark": "ingestion",
        "corpus": str(directory),
        "documents": len(files),
        "pages": [name for name, _ in files],
        "megabytes": sum(len(data) for _, data in files) / 1e6,
        "chunks": chunks,
        "concurrency": args.concurrency,
        "rounds": args.rounds,
        "texts_match": texts_match,
        "failed_documents": failures,
        "passes": [
            {
                "round": p.round,
                "kind": p.kind,
                "seconds": round(p.seconds, 3),
                "rate": round(p.rate, 3),
            }
            for p in passes
        ],
        "ratios": [round(r, 4) for r in ratios],
        "pipeline_rate": round(pipeline_rate, 3),
        "model_rate": round(model_rate, 3),
        "ratio": round(ratio, 4),
        "median_ratio": round(statistics.median(ratios), 4),
        "breakdown": breakdown,
        "machine": machine(),
        "server": versions,
        "verdict": f"{'PASS' if ratio >= 0.9 and failures == 0 else 'FAIL'} ({ratio:.3f})",
    }
    print_report(result)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
