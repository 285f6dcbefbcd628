"""Crash test of ingestion: 200 documents ingest, the worker is SIGKILLed mid-way and restarted.

Then every document must end `ready`, with exactly the chunks its text gives (none missing, none
duplicated) and exactly one embedding per chunk.

    python -m bench.ingest_crash [--documents 200] [--kill-after 0.3]

Needs PARLEY_TEST_ADMIN_DATABASE_URL and PARLEY_TEST_REDIS_URL (`make bench` exports them).
A job that was running when the worker died is retried once its ARQ in-progress key expires
(the job timeout + 10 s), so the worker here runs with a 60 s ingestion timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg

VOCABULARY = (
    "parley assistant knowledge answer customer order delivery invoice refund account "
    "password widget telegram operator channel message passage citation search retrieval "
    "embedding chunk document source crawl sitemap schedule quota plan usage tenant member"
)
DB_NAME = "parley_ingest_crash"
APP_USER, APP_PASSWORD = "parley_crash_app", "parley-crash-app"


def _text(seed: int) -> str:
    rng = random.Random(seed)
    vocabulary = VOCABULARY.split()
    sections = []
    for s in range(rng.randint(1, 3)):
        words = " ".join(rng.choice(vocabulary) for _ in range(rng.randint(60, 180)))
        sections.append(f"## Section {seed}-{s}\n\n{words.capitalize()}.")
    return f"# Document {seed}\n\n" + "\n\n".join(sections)


def _urls() -> tuple[str, str, str]:
    admin = os.environ.get("PARLEY_TEST_ADMIN_DATABASE_URL")
    redis = os.environ.get("PARLEY_TEST_REDIS_URL")
    if not admin or not redis:
        sys.exit("PARLEY_TEST_ADMIN_DATABASE_URL and PARLEY_TEST_REDIS_URL must be set")
    base, _, _ = admin.rpartition("/")
    host = base.rpartition("@")[2]
    app = f"postgresql+asyncpg://{APP_USER}:{APP_PASSWORD}@{host}/{DB_NAME}"
    return f"{base}/{DB_NAME}", app, redis.rpartition("/")[0] + "/7"


async def _prepare(admin_server: str, admin: str, app: str) -> None:
    from backend.migrate import ensure_app_role, run_migrations

    conn = await asyncpg.connect(admin_server.replace("+asyncpg", ""))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    finally:
        await conn.close()
    await asyncio.to_thread(run_migrations, admin)
    await ensure_app_role(admin, app)


async def _seed(count: int) -> tuple[uuid.UUID, list[uuid.UUID], dict[uuid.UUID, int]]:
    """A workspace with one knowledge base and `count` text documents, queued for ingestion."""
    from sqlalchemy import select

    from backend.auth.service import create_user
    from backend.db import unit_of_work
    from backend.knowledge import schemas, service
    from backend.knowledge.chunking import chunk_document
    from backend.knowledge.parsing import parse_document
    from backend.knowledge.providers import provider_for
    from backend.models import Document
    from backend.redis import get_redis
    from backend.tenancy.context import TenantContext, TenantId
    from backend.tenancy.permissions import Permission
    from backend.tenancy.service import create_tenant

    await get_redis().flushdb()
    async with unit_of_work() as session:
        user = await create_user(
            session,
            email=f"crash-{uuid.uuid4().hex[:8]}@example.com",
            password="x" * 12,
            verified=True,
        )
        tenant = await create_tenant(
            session,
            owner_id=user.id,
            name="Crash",
            slug=f"crash-{uuid.uuid4().hex[:8]}",
            plan="pro",
        )
    ctx = TenantContext(tenant_id=TenantId(tenant.id), permissions=frozenset(Permission))
    provider = provider_for("local:all-MiniLM-L6-v2")
    expected: dict[uuid.UUID, int] = {}
    documents = []
    async with unit_of_work(tenant_id=tenant.id) as session:
        kb = await service.create_knowledge_base(
            session, ctx, schemas.KnowledgeBaseCreate(name="Crash test")
        )
        for i in range(count):
            source_body = schemas.SourceCreate(kind="text", title=f"Doc {i}", text=_text(i))
            source = await service.create_source(session, ctx, kb, source_body)
            doc = (
                await session.execute(select(Document).where(Document.source_id == source.id))
            ).scalar_one()
            documents.append(doc.id)
            parsed = parse_document(_text(i).encode(), filename=None, declared_type=None)
            budget = min(kb.chunk_tokens, provider.max_tokens)  # as the pipeline sizes them
            chunks = chunk_document(
                parsed,
                count_tokens=provider.count_tokens,
                chunk_tokens=budget,
                overlap_tokens=min(kb.chunk_overlap_tokens, budget // 2),
            )
            expected[doc.id] = len(chunks)
    return tenant.id, documents, expected


async def _status(tenant_id: uuid.UUID) -> dict[str, int]:
    from sqlalchemy import func, select

    from backend.db import unit_of_work
    from backend.models import Document

    async with unit_of_work(tenant_id=tenant_id) as session:
        rows = await session.execute(
            select(Document.status, func.count()).group_by(Document.status)
        )
        return {status.value: n for status, n in rows.tuples()}


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "backend.cli", "worker"],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


async def _wait(tenant_id: uuid.UUID, total: int, until: float, timeout: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    status: dict[str, int] = {}
    while time.monotonic() < deadline:
        status = await _status(tenant_id)
        done = status.get("ready", 0) + status.get("failed", 0)
        if done >= until * total:
            break
        await asyncio.sleep(0.5)
    return status


async def _verify(
    admin: str, tenant_id: uuid.UUID, expected: dict[uuid.UUID, int]
) -> dict[str, Any]:
    conn = await asyncpg.connect(admin.replace("+asyncpg", ""))
    try:
        docs = await conn.fetch(
            "SELECT id, status, chunks_total FROM knowledge_documents WHERE tenant_id = $1",
            tenant_id,
        )
        counts = dict(
            await conn.fetch(
                "SELECT document_id, count(*) FROM knowledge_chunks WHERE tenant_id = $1 "
                "GROUP BY document_id",
                tenant_id,
            )
        )
        duplicate_ordinals = await conn.fetchval(
            "SELECT count(*) FROM (SELECT document_id, ordinal FROM knowledge_chunks "
            "WHERE tenant_id = $1 GROUP BY 1, 2 HAVING count(*) > 1) d",
            tenant_id,
        )
        embeddings_off = await conn.fetchval(
            "SELECT count(*) FROM knowledge_chunks c WHERE c.tenant_id = $1 AND "
            "(SELECT count(*) FROM knowledge_chunk_embeddings e WHERE e.chunk_id = c.id) <> 1",
            tenant_id,
        )
    finally:
        await conn.close()
    not_ready = [str(d["id"]) for d in docs if d["status"] != "ready"]
    wrong = [str(d["id"]) for d in docs if counts.get(d["id"], 0) != expected[d["id"]]]
    return {
        "documents": len(docs),
        "not_ready": len(not_ready),
        "wrong_chunk_count": len(wrong),
        "duplicate_ordinals": int(duplicate_ordinals),
        "chunks_without_exactly_one_embedding": int(embeddings_off),
        "chunks": sum(counts.values()),
        "expected_chunks": sum(expected.values()),
    }


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=200)
    parser.add_argument("--kill-after", type=float, default=0.3, help="fraction done at the kill")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args(argv)

    admin_server = os.environ["PARLEY_TEST_ADMIN_DATABASE_URL"]
    admin, app, redis = _urls()
    data_dir = Path(os.environ.get("PARLEY_BENCH_DATA_DIR") or tempfile.mkdtemp("-ingest-crash"))
    env = {
        **os.environ,
        "PARLEY_DATABASE_URL": app,
        "PARLEY_DATABASE_ADMIN_URL": admin,
        "PARLEY_REDIS_URL": redis,
        "PARLEY_DATA_DIR": str(data_dir),
        "PARLEY_INGEST_JOB_TIMEOUT_SECONDS": "60",
        "PARLEY_LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    await _prepare(admin_server, admin, app)
    tenant_id, documents, expected = await _seed(args.documents)
    from backend.jobs import close_arq_pool

    await close_arq_pool()  # the queued jobs were sent after the seeding commit
    log = data_dir / "worker.log"
    started = time.monotonic()
    worker = _start_worker(env, log)
    before_kill = await _wait(tenant_id, len(documents), args.kill_after, args.timeout)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    killed_at = time.monotonic() - started
    worker = _start_worker(env, log)
    after = await _wait(tenant_id, len(documents), 1.0, args.timeout)
    finished_at = time.monotonic() - started
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=60)
    result = {
        "killed_at_s": round(killed_at, 1),
        "status_at_kill": before_kill,
        "finished_at_s": round(finished_at, 1),
        "status_at_end": after,
        **await _verify(admin, tenant_id, expected),
    }
    ok = (
        result["not_ready"] == 0
        and result["wrong_chunk_count"] == 0
        and result["duplicate_ordinals"] == 0
        and result["chunks_without_exactly_one_embedding"] == 0
    )
    result["verdict"] = "PASS" if ok else "FAIL"
    print(json.dumps(result, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
