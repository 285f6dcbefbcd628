"""Ingestion: fetch or load the original, parse, clean, chunk, embed in batches, write.

Idempotent, since ARQ delivers at least once and a worker may die mid-way:
- a job carries the document version it was queued for; an older version does nothing;
- chunks are matched by content hash, so a re-run (or an unchanged document) re-embeds
  nothing it already has, and only new or changed passages are embedded;
- each batch of chunks is written with its embeddings in one transaction, so a chunk never
  exists without its vector; the last step removes vanished chunks and fixes the order.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import cast, delete, func, insert, literal, select, update
from sqlalchemy.dialects.postgresql import REGCONFIG

from backend.config import get_settings
from backend.db import unit_of_work
from backend.knowledge.chunking import Chunk as PlannedChunk
from backend.knowledge.chunking import chunk_document
from backend.knowledge.embeddings import EmbeddingError, EmbeddingProvider
from backend.knowledge.fetching import FetchError, fetch
from backend.knowledge.parsing import ParseError, parse_document
from backend.knowledge.providers import OpenAIEndpoint, embed_texts, endpoint_for, provider_for
from backend.knowledge.service import get_storage, original_key, plan_limits
from backend.models import (
    Chunk,
    ChunkEmbedding,
    Document,
    DocumentStatus,
    KnowledgeBase,
    Source,
    SourceKind,
)
from backend.tenancy.context import TenantContext, TenantId
from backend.usage.ledger import record_embedding

log = structlog.get_logger(__name__)

EMBED_BATCH = 32


class IngestionFailed(Exception):
    """Ends the document as `failed`; `reason` is shown to the tenant."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Job:
    tenant_id: uuid.UUID
    document_id: uuid.UUID
    version: int
    prefetched: bool = False


def _task_context(tenant_id: uuid.UUID) -> TenantContext:
    return TenantContext(tenant_id=TenantId(tenant_id), permissions=frozenset())


class RetryLater(Exception):
    """A passing problem (the embedding server is overloaded or down): try the job again."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Documents processed at once by one worker process. They share one CPU-bound model, so more
# at a time only makes each slower (and closer to its time limit), not the sum faster.
_PROCESSING_SLOTS = asyncio.Semaphore(2)


async def ingest_document(
    tenant_id: uuid.UUID,
    document_id: uuid.UUID,
    version: int,
    *,
    prefetched: bool = False,
    last_try: bool = True,
) -> str:
    """Run the pipeline for one document version. Returns what happened, for the job result.

    Raises RetryLater for a passing embedding failure unless `last_try`. If the job is cancelled
    (its time limit, or a worker shutting down), the document ends `failed` with the reason
    rather than staying `processing` for ever.
    """
    job = _Job(tenant_id, document_id, version, prefetched)
    async with _PROCESSING_SLOTS:
        started = await _start(job)
        if started is None:
            return "skipped: a newer version is queued or the document is gone"
        try:
            return await _run(job, started)
        except asyncio.CancelledError:
            await asyncio.shield(
                _finish_failed(
                    job,
                    "Processing was stopped before it finished (it took longer than "
                    f"{get_settings().ingest_job_timeout_seconds} s, or the worker shut down). "
                    "Re-process the document; split a very large one into parts.",
                )
            )
            raise
        except EmbeddingError as exc:
            if not last_try:
                raise RetryLater(exc.reason) from exc
            await _finish_failed(job, exc.reason)
            return f"failed: {exc.reason}"
        except IngestionFailed as exc:
            await _finish_failed(job, exc.reason)
            return f"failed: {exc.reason}"
        except Exception:
            log.exception("ingestion_crashed", document_id=str(document_id))
            await _finish_failed(
                job,
                "Processing failed unexpectedly. Re-process the document; if it fails again, "
                "contact support with the document id.",
            )
            return "failed: unexpected error"


@dataclass
class _Started:
    kb_id: uuid.UUID
    language: str
    model: str
    pending_model: str | None
    chunk_tokens: int
    overlap_tokens: int
    source_kind: SourceKind
    url: str | None
    storage_key: str | None
    etag: str | None
    last_modified: str | None
    content_hash: str | None
    has_chunks: bool
    endpoints: dict[str, OpenAIEndpoint | None]


async def _start(job: _Job) -> _Started | None:
    async with unit_of_work(tenant_id=job.tenant_id) as session:
        row = await session.execute(
            select(Document, KnowledgeBase, Source.kind)
            .join(KnowledgeBase, KnowledgeBase.id == Document.knowledge_base_id)
            .join(Source, Source.id == Document.source_id)
            .where(Document.id == job.document_id)
            .with_for_update(of=Document)
        )
        found = row.first()
        if found is None:
            return None
        document, kb, kind = found
        if document.version != job.version:
            return None
        document.status = DocumentStatus.processing
        document.error = None
        has_chunks = await session.scalar(
            select(func.count()).select_from(Chunk).where(Chunk.document_id == document.id)
        )
        return _Started(
            kb_id=kb.id,
            language=kb.language,
            model=kb.embedding_model,
            pending_model=kb.pending_embedding_model,
            chunk_tokens=kb.chunk_tokens,
            overlap_tokens=kb.chunk_overlap_tokens,
            source_kind=kind,
            url=document.url,
            storage_key=document.storage_key,
            etag=document.etag,
            last_modified=document.last_modified,
            content_hash=document.content_hash,
            has_chunks=bool(has_chunks),
            endpoints={
                model: await endpoint_for(session, job.tenant_id, model)
                for model in (kb.embedding_model, kb.pending_embedding_model)
                if model
            },
        )


async def _run(job: _Job, started: _Started) -> str:
    data = await _load_original(job, started)
    if data is None:
        await _finish_unchanged(job)
        return "unchanged: the page was not modified"
    provider = _provider(started.model)
    budget = min(started.chunk_tokens, provider.max_tokens)
    planned = await asyncio.to_thread(_parse_and_chunk, data, started, provider, budget)
    existing = await _existing_chunks(job)
    to_embed = _new_chunks(planned, existing)
    await _check_chunk_quota(job, len(planned) - len(existing))
    await _set_progress(job, total=len(planned), done=len(planned) - len(to_embed))
    models = [started.model] + ([started.pending_model] if started.pending_model else [])
    for start in range(0, len(to_embed), EMBED_BATCH):
        batch = to_embed[start : start + EMBED_BATCH]
        texts = [c.embed_text for c in batch]
        vectors = {m: await _embed(m, texts, started.endpoints.get(m)) for m in models}
        if not await _write_batch(job, started, batch, vectors):
            return "skipped: a newer version was queued while processing"
    await _finalize(job, planned)
    return f"ready: {len(planned)} chunks, {len(to_embed)} embedded"


def _provider(model: str) -> EmbeddingProvider:
    try:
        return provider_for(model)
    except EmbeddingError as exc:
        raise IngestionFailed(exc.reason) from exc


async def _load_original(job: _Job, started: _Started) -> bytes | None:
    """The document's bytes: fetched for web sources (None when unchanged), else from storage."""
    storage = get_storage()
    web = started.source_kind in (SourceKind.url, SourceKind.sitemap, SourceKind.crawl)
    if web and not job.prefetched:
        if started.url is None:
            raise IngestionFailed("This document has no URL to fetch.")
        settings = get_settings()
        try:
            result = await fetch(
                started.url,
                etag=started.etag if started.has_chunks else None,
                last_modified=started.last_modified if started.has_chunks else None,
                max_bytes=settings.fetch_max_page_bytes,
                timeout_s=settings.fetch_timeout_seconds,
                allow_loopback=settings.fetch_allow_loopback,
                user_agent=settings.fetch_user_agent,
            )
        except FetchError as exc:
            raise IngestionFailed(exc.reason) from exc
        if result.not_modified or (started.has_chunks and result.sha256 == started.content_hash):
            return None
        stored = await storage.put_stream(
            original_key(job.tenant_id, job.document_id),
            _one(result.body),
            max_bytes=settings.fetch_max_page_bytes,
        )
        await _record_fetch(
            job,
            result.etag,
            result.last_modified,
            stored.key,
            stored.size,
            stored.sha256,
            result.content_type,
        )
        return result.body
    if started.storage_key is None:
        raise IngestionFailed("The original file is missing; upload it again.")
    data = await storage.get(started.storage_key)
    return data


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _record_fetch(
    job: _Job,
    etag: str | None,
    last_modified: str | None,
    key: str,
    size: int,
    sha256: str,
    content_type: str | None,
) -> None:
    async with unit_of_work(tenant_id=job.tenant_id) as session:
        await session.execute(
            update(Document)
            .where(Document.id == job.document_id, Document.version == job.version)
            .values(
                etag=etag,
                last_modified=last_modified,
                storage_key=key,
                size_bytes=size,
                content_hash=sha256,
                content_type=(content_type or "")[:100] or None,
            )
        )


def _parse_and_chunk(
    data: bytes, started: _Started, provider: EmbeddingProvider, budget: int
) -> list[PlannedChunk]:
    try:
        parsed = parse_document(data, filename=None, declared_type=None)
    except ParseError as exc:
        raise IngestionFailed(exc.reason) from exc
    chunks = chunk_document(
        parsed,
        count_tokens=provider.count_tokens,
        chunk_tokens=budget,
        overlap_tokens=min(started.overlap_tokens, budget // 2),
    )
    if not chunks:
        raise IngestionFailed("No text was found in this document.")
    return chunks


async def _existing_chunks(job: _Job) -> Counter[str]:
    async with unit_of_work(tenant_id=job.tenant_id) as session:
        hashes = await session.scalars(
            select(Chunk.content_hash).where(Chunk.document_id == job.document_id)
        )
        return Counter(hashes)


def _new_chunks(planned: Sequence[PlannedChunk], existing: Counter[str]) -> list[PlannedChunk]:
    """Planned chunks with no stored twin (hashes are matched as a multiset)."""
    available = Counter(existing)
    fresh = []
    for chunk in planned:
        if available[chunk.content_hash] > 0:
            available[chunk.content_hash] -= 1
        else:
            fresh.append(chunk)
    return fresh


async def _check_chunk_quota(job: _Job, adding: int) -> None:
    if adding <= 0:
        return
    async with unit_of_work(tenant_id=job.tenant_id) as session:
        limits = await plan_limits(session, _task_context(job.tenant_id))
        stored = await session.scalar(
            select(func.count()).select_from(Chunk).where(Chunk.tenant_id == job.tenant_id)
        )
        if int(stored or 0) + adding > limits.max_chunks:
            raise IngestionFailed(
                f"Your plan stores up to {limits.max_chunks} passages and this workspace has "
                f"{stored}; this document needs {adding} more. Delete documents or upgrade."
            )


async def _set_progress(job: _Job, *, total: int, done: int) -> None:
    async with unit_of_work(tenant_id=job.tenant_id) as session:
        await session.execute(
            update(Document)
            .where(Document.id == job.document_id, Document.version == job.version)
            .values(chunks_total=total, chunks_done=done)
        )


async def _embed(
    model: str, texts: list[str], endpoint: OpenAIEndpoint | None
) -> list[list[float]]:
    try:
        vectors: list[list[float]] = await embed_texts(model, texts, endpoint)
    except EmbeddingError as exc:
        if exc.retryable:
            raise  # ingest_document asks for a retry later
        raise IngestionFailed(exc.reason) from exc
    return vectors


async def _write_batch(
    job: _Job,
    started: _Started,
    batch: Sequence[PlannedChunk],
    vectors: dict[str, list[list[float]]],
) -> bool:
    """Write chunks with their embeddings; False if the document moved to a newer version."""
    async with unit_of_work(tenant_id=job.tenant_id) as session:
        current = await session.scalar(
            select(Document.version).where(Document.id == job.document_id).with_for_update()
        )
        if current != job.version:
            return False
        ids = [uuid.uuid4() for _ in batch]
        await session.execute(
            insert(Chunk).values(
                [
                    _chunk_row(job, started, chunk_id, c)
                    for chunk_id, c in zip(ids, batch, strict=True)
                ]
            )
        )
        for model, model_vectors in vectors.items():
            await session.execute(
                insert(ChunkEmbedding).values(
                    [
                        {
                            "id": uuid.uuid4(),
                            "chunk_id": chunk_id,
                            "model": model,
                            "tenant_id": job.tenant_id,
                            "knowledge_base_id": started.kb_id,
                            "embedding": vector,
                        }
                        for chunk_id, vector in zip(ids, model_vectors, strict=True)
                    ]
                )
            )
        await session.execute(
            update(Document)
            .where(Document.id == job.document_id)
            .values(chunks_done=Document.chunks_done + len(batch))
        )
        # Metered in the batch's own transaction: a batch written is a batch recorded, once.
        tokens = sum(c.token_count for c in batch)
        for model in vectors:
            await record_embedding(
                session,
                tenant_id=job.tenant_id,
                knowledge_base_id=started.kb_id,
                model=model,
                tokens=tokens,
            )
        return True


def _chunk_row(
    job: _Job, started: _Started, chunk_id: uuid.UUID, chunk: PlannedChunk
) -> dict[str, Any]:
    return {
        "id": chunk_id,
        "tenant_id": job.tenant_id,
        "knowledge_base_id": started.kb_id,
        "document_id": job.document_id,
        "ordinal": chunk.ordinal,
        "text": chunk.text,
        "embed_text": chunk.embed_text,
        "heading_path": list(chunk.heading_path),
        "page": chunk.page,
        "content_hash": chunk.content_hash,
        "token_count": chunk.token_count,
        "tsv": func.to_tsvector(cast(literal(started.language), REGCONFIG), chunk.embed_text),
    }


async def _finalize(job: _Job, planned: Sequence[PlannedChunk]) -> None:
    """Drop chunks that vanished (and surplus twins), put the rest in the new order, mark ready."""
    async with unit_of_work(tenant_id=job.tenant_id) as session:
        current = await session.scalar(
            select(Document.version).where(Document.id == job.document_id).with_for_update()
        )
        if current != job.version:
            return
        rows = (
            (
                await session.execute(
                    select(Chunk.id, Chunk.content_hash)
                    .where(Chunk.document_id == job.document_id)
                    .order_by(Chunk.created_at, Chunk.id)
                )
            )
            .tuples()
            .all()
        )
        pool: dict[str, list[uuid.UUID]] = {}
        for chunk_id, content_hash in rows:
            pool.setdefault(content_hash, []).append(chunk_id)
        order = []
        for chunk in planned:
            ids = pool.get(chunk.content_hash)
            if ids:
                order.append({"id": ids.pop(0), "ordinal": chunk.ordinal})
        if order:
            await session.execute(update(Chunk), order)  # bulk UPDATE by primary key
        leftovers = [chunk_id for ids in pool.values() for chunk_id in ids]
        if leftovers:
            await session.execute(delete(Chunk).where(Chunk.id.in_(leftovers)))
        await session.execute(
            update(Document)
            .where(Document.id == job.document_id)
            .values(
                status=DocumentStatus.ready,
                error=None,
                chunks_total=len(planned),
                chunks_done=len(planned),
                ingested_at=datetime.now(UTC),
            )
        )


async def _finish_unchanged(job: _Job) -> None:
    async with unit_of_work(tenant_id=job.tenant_id) as session:
        await session.execute(
            update(Document)
            .where(Document.id == job.document_id, Document.version == job.version)
            .values(status=DocumentStatus.ready, error=None, ingested_at=datetime.now(UTC))
        )


async def _finish_failed(job: _Job, reason: str) -> None:
    async with unit_of_work(tenant_id=job.tenant_id) as session:
        await session.execute(
            update(Document)
            .where(Document.id == job.document_id, Document.version == job.version)
            .values(status=DocumentStatus.failed, error=reason[:2000])
        )
