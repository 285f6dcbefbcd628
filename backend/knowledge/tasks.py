"""Worker tasks of the knowledge bases. Each takes ids, opens its own tenant-scoped session and
calls the same services as the API; each is safe to run twice (ARQ delivers at least once)."""

from __future__ import annotations

import time
import uuid
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from arq import Retry
from sqlalchemy import delete, select, text, update

from backend.config import get_settings
from backend.db import unit_of_work
from backend.knowledge import pipeline, service
from backend.knowledge.fetching import FetchError, crawl, discover_sitemap_urls
from backend.knowledge.providers import embed_texts, endpoint_for, provider_for
from backend.models import (
    Chunk,
    ChunkEmbedding,
    Document,
    DocumentStatus,
    KnowledgeBase,
    Source,
    SourceKind,
    SourceSchedule,
)
from backend.tenancy.context import TenantContext, TenantId
from backend.usage.ledger import record_embedding

log = structlog.get_logger(__name__)

REEMBED_BATCH = 64
SCHEDULER_BATCH = 200


def _ctx(tenant_id: str) -> TenantContext:
    return TenantContext(tenant_id=TenantId(uuid.UUID(tenant_id)), permissions=frozenset())


INGEST_TRIES = 5


async def ingest_document(
    ctx: dict[str, Any], tenant_id: str, document_id: str, version: int, prefetched: bool = False
) -> str:
    job_try = int(ctx.get("job_try", 1))
    try:
        return await pipeline.ingest_document(
            uuid.UUID(tenant_id),
            uuid.UUID(document_id),
            version,
            prefetched=prefetched,
            last_try=job_try >= INGEST_TRIES,
        )
    except pipeline.RetryLater as exc:
        log.warning("ingestion_retry", document_id=document_id, reason=exc.reason, job_try=job_try)
        raise Retry(defer=min(300, 10 * 2**job_try)) from exc


async def delete_originals(ctx: dict[str, Any], tenant_id: str, keys: list[str]) -> int:
    storage = service.get_storage()
    prefix = f"{uuid.UUID(tenant_id)}/"
    removed = 0
    for key in keys:
        if key.startswith(prefix):  # a task only ever touches its own tenant's files
            await storage.delete(key)
            removed += 1
    return removed


async def sync_source(ctx: dict[str, Any], tenant_id: str, source_id: str) -> str:
    """Discover a sitemap's or a site's pages, add new ones, drop vanished ones, re-check all."""
    tenant = _ctx(tenant_id)
    async with unit_of_work(tenant_id=tenant.tenant_id) as session:
        source = await session.get(Source, uuid.UUID(source_id))
        if source is None or source.kind not in (SourceKind.sitemap, SourceKind.crawl):
            return "skipped"
        kind, url, config = source.kind, source.url or "", dict(source.config)
    try:
        pages: dict[str, str | None] | None
        if kind is SourceKind.sitemap:
            pages = {entry.url: None for entry in await _sitemap_pages(url)}
        else:
            pages = await _crawl_pages(tenant, uuid.UUID(source_id), url, config)
        error = None
    except FetchError as exc:
        pages, error = None, exc.reason
    async with unit_of_work(tenant_id=tenant.tenant_id) as session:
        source = await session.get(Source, uuid.UUID(source_id))
        if source is None:
            return "skipped: the source was deleted"
        source.last_synced_at = datetime.now(UTC)
        source.sync_error = error
        if pages is None:
            return f"failed: {error}"
        return await _reconcile(session, tenant, source, pages)


async def _sitemap_pages(url: str) -> list[Any]:
    settings = get_settings()
    return await discover_sitemap_urls(
        url,
        max_urls=settings.crawl_max_pages,
        max_bytes=settings.fetch_max_page_bytes,
        timeout_s=settings.fetch_timeout_seconds,
        allow_loopback=settings.fetch_allow_loopback,
        user_agent=settings.fetch_user_agent,
    )


async def _crawl_pages(
    tenant: TenantContext, source_id: uuid.UUID, url: str, config: dict[str, Any]
) -> dict[str, str | None]:
    """Crawl the site; store each page now (so ingestion needn't fetch it again).

    Returns page URL -> the stored page's sha256.
    """
    settings = get_settings()
    stored: dict[str, str | None] = {}
    pages = crawl(
        url,
        max_depth=int(config.get("max_depth", 2)),
        max_pages=int(config.get("max_pages", 50)),
        max_bytes=settings.fetch_max_page_bytes,
        timeout_s=settings.fetch_timeout_seconds,
        allow_loopback=settings.fetch_allow_loopback,
        include=list(config.get("include", [])),
        exclude=list(config.get("exclude", [])),
        user_agent=settings.fetch_user_agent,
    )
    async with aclosing(pages):
        async for page in pages:
            stored[page.url] = await _store_crawled_page(tenant, source_id, page)
    return stored


async def _store_crawled_page(tenant: TenantContext, source_id: uuid.UUID, page: Any) -> str:
    async with unit_of_work(tenant_id=tenant.tenant_id) as session:
        document = await _document_for(session, tenant, source_id, page.url)
        if document is None:
            return str(page.sha256)
        stored = await service.get_storage().put_stream(
            service.original_key(tenant.tenant_id, document.id),
            _one(page.body),
            max_bytes=get_settings().fetch_max_page_bytes,
        )
        changed = document.content_hash != stored.sha256
        document.storage_key = stored.key
        document.size_bytes = stored.size
        document.etag = page.etag
        document.last_modified = page.last_modified
        document.content_type = (page.content_type or "")[:100] or None
        if changed or document.status is DocumentStatus.failed:
            document.content_hash = stored.sha256
            await service.mark_for_ingestion(tenant, document, prefetched=True)
        return stored.sha256


async def _one(data: bytes) -> Any:
    yield data


async def _document_for(
    session: Any, tenant: TenantContext, source_id: uuid.UUID, url: str
) -> Document | None:
    """The source's document for `url`, created if the plan allows one more."""
    document: Document | None = await session.scalar(
        select(Document).where(Document.source_id == source_id, Document.url == url)
    )
    if document is not None:
        return document
    source = await session.get(Source, source_id)
    if source is None:
        return None
    try:
        await service.check_document_quota(session, tenant, 1)
    except service.QuotaExceeded as exc:
        source.sync_error = exc.detail
        return None
    document = Document(
        tenant_id=tenant.tenant_id,
        knowledge_base_id=source.knowledge_base_id,
        source_id=source_id,
        url=url,
        title=url,
    )
    session.add(document)
    await session.flush()
    return document


async def _reconcile(
    session: Any, tenant: TenantContext, source: Source, pages: dict[str, str | None]
) -> str:
    documents = list(await session.scalars(select(Document).where(Document.source_id == source.id)))
    known = {d.url: d for d in documents}
    removed = 0
    for document in documents:
        if document.url not in pages:
            await session.delete(document)
            removed += 1
    added = 0
    if source.kind is SourceKind.sitemap:
        for url in pages:
            document = known.get(url)
            if document is None:
                document = await _document_for(session, tenant, source.id, url)
                if document is None:
                    break
                added += 1
                service.queue_ingestion(tenant, document)
            else:
                await service.mark_for_ingestion(tenant, document)
    return f"synced: {len(pages)} pages, {added} new, {removed} removed"


async def reembed_knowledge_base(
    ctx: dict[str, Any], tenant_id: str, kb_id: str, model: str, part: int = 0
) -> str:
    """Embed every chunk with `model`, then switch search to it and drop the old vectors.

    Works for a bounded time, then queues its own continuation: a crashed part is retried after
    its short timeout instead of blocking the knowledge base for hours.
    """
    tenant = _ctx(tenant_id)
    async with unit_of_work(tenant_id=tenant.tenant_id) as session:
        endpoint = await endpoint_for(session, tenant.tenant_id, model)
    # Half the job's time limit, then hand over to a continuation.
    deadline = time.monotonic() + get_settings().ingest_job_timeout_seconds / 2
    while True:
        if time.monotonic() > deadline:
            await ctx["redis"].enqueue_job(
                "reembed_knowledge_base",
                tenant_id,
                kb_id,
                model,
                part + 1,
                _job_id=f"reembed:{kb_id}:{model}:{part + 1}",
            )
            return f"continued in part {part + 1}"
        async with unit_of_work(tenant_id=tenant.tenant_id) as session:
            kb = await session.get(KnowledgeBase, uuid.UUID(kb_id))
            if kb is None or kb.pending_embedding_model != model:
                return "skipped: the model change was replaced or the knowledge base deleted"
            rows = (
                (
                    await session.execute(
                        select(Chunk.id, Chunk.embed_text, Chunk.token_count)
                        .where(Chunk.knowledge_base_id == kb.id)
                        .where(
                            ~select(ChunkEmbedding.chunk_id)
                            .where(
                                ChunkEmbedding.knowledge_base_id == kb.id,
                                ChunkEmbedding.chunk_id == Chunk.id,
                                ChunkEmbedding.model == model,
                            )
                            .exists()
                        )
                        .limit(REEMBED_BATCH)
                    )
                )
                .tuples()
                .all()
            )
            if not rows:
                return await _switch_model(session, kb, model)
        vectors = await embed_texts(model, [t for _, t, _ in rows], endpoint)
        async with unit_of_work(tenant_id=tenant.tenant_id) as session:
            await session.execute(
                text(
                    "INSERT INTO knowledge_chunk_embeddings "
                    "(id, chunk_id, model, tenant_id, knowledge_base_id, embedding) "
                    "SELECT gen_random_uuid(), :chunk_id, :model, :tenant_id, :kb_id, "
                    "CAST(:embedding AS vector) "
                    "WHERE EXISTS (SELECT 1 FROM knowledge_chunks WHERE id = :chunk_id) "
                    "ON CONFLICT DO NOTHING"
                ),
                [
                    {
                        "chunk_id": chunk_id,
                        "model": model,
                        "tenant_id": tenant.tenant_id,
                        "kb_id": uuid.UUID(kb_id),
                        "embedding": "[" + ",".join(f"{x:.7g}" for x in vector) + "]",
                    }
                    for (chunk_id, _, _), vector in zip(rows, vectors, strict=True)
                ],
            )
            await record_embedding(
                session,
                tenant_id=tenant.tenant_id,
                knowledge_base_id=uuid.UUID(kb_id),
                model=model,
                tokens=sum(count for _, _, count in rows),
            )


async def _switch_model(session: Any, kb: KnowledgeBase, model: str) -> str:
    old = kb.embedding_model
    kb.embedding_model = model
    kb.embedding_dimension = kb.pending_embedding_dimension or provider_for(model).dimension
    kb.pending_embedding_model = None
    kb.pending_embedding_dimension = None
    await session.execute(
        delete(ChunkEmbedding).where(
            ChunkEmbedding.knowledge_base_id == kb.id, ChunkEmbedding.model == old
        )
    )
    return f"switched from {old} to {model}"


async def schedule_due_syncs(ctx: dict[str, Any]) -> int:
    """Cron: queue the re-sync of every source whose time has come, across tenants.

    The scheduler scope reveals only (source, tenant, due time); each source is then handled in
    its own tenant's context. A deterministic job id makes two schedulers queue it once.
    """
    now = datetime.now(UTC)
    async with unit_of_work() as session:
        await session.execute(text("SELECT set_config('app.scope', 'scheduler', true)"))
        due = (
            (
                await session.execute(
                    select(
                        SourceSchedule.source_id, SourceSchedule.tenant_id, SourceSchedule.due_at
                    )
                    .where(SourceSchedule.due_at <= now)
                    .order_by(SourceSchedule.due_at)
                    .limit(SCHEDULER_BATCH)
                )
            )
            .tuples()
            .all()
        )
    for source_id, tenant_id, due_at in due:
        await _queue_due(source_id, tenant_id, due_at, now)
    return len(due)


async def _queue_due(
    source_id: uuid.UUID, tenant_id: uuid.UUID, due_at: datetime, now: datetime
) -> None:
    tenant = _ctx(str(tenant_id))
    async with unit_of_work(tenant_id=tenant_id) as session:
        source = await session.get(Source, source_id)
        if source is None or not source.sync_interval_minutes:
            return
        await session.execute(
            update(SourceSchedule)
            .where(SourceSchedule.source_id == source_id, SourceSchedule.due_at == due_at)
            .values(due_at=now + timedelta(minutes=source.sync_interval_minutes))
        )
        if source.kind is SourceKind.url:
            documents = await session.scalars(
                select(Document).where(Document.source_id == source.id)
            )
            for document in documents:
                await service.mark_for_ingestion(tenant, document)
        else:
            service.queue_source_sync(tenant, source)
