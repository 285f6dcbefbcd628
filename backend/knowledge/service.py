"""Knowledge bases, sources and documents: creating, changing, deleting, and queueing their work.

Every change that needs processing bumps the document's version and queues an ingestion job
after the commit; a job for a version that is no longer current does nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from fastapi import UploadFile
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit.service import record
from backend.config import PlanLimits, get_settings
from backend.errors import AppError, BadRequest, NotFound, ValidationFailed
from backend.jobs import enqueue
from backend.kit.crypto import encrypt
from backend.knowledge import schemas
from backend.knowledge.embeddings import EmbeddingError
from backend.knowledge.providers import provider_for
from backend.knowledge.storage import LocalDiskStorage, Storage
from backend.models import (
    Chunk,
    ChunkEmbedding,
    Document,
    DocumentStatus,
    KnowledgeBase,
    Source,
    SourceKind,
    SourceSchedule,
    TenantEmbeddingSettings,
)
from backend.tenancy.context import TenantContext
from backend.usage.plans import plan_for

URL_KINDS = (SourceKind.url, SourceKind.sitemap, SourceKind.crawl)
_InKb = TypeVar("_InKb", Source, Document)


class QuotaExceeded(AppError):
    status_code = 402
    code = "quota_exceeded"


def get_storage() -> Storage:
    return LocalDiskStorage(get_settings().resolved_storage_dir)


def original_key(tenant_id: uuid.UUID, document_id: uuid.UUID) -> str:
    return f"{tenant_id}/{document_id}/original"


async def plan_limits(session: AsyncSession, ctx: TenantContext) -> PlanLimits:
    return (await plan_for(session, ctx.tenant_id))[1]


async def check_document_quota(session: AsyncSession, ctx: TenantContext, adding: int) -> None:
    limits = await plan_limits(session, ctx)
    count = await session.scalar(
        select(func.count()).select_from(Document).where(Document.tenant_id == ctx.tenant_id)
    )
    if int(count or 0) + adding > limits.max_documents:
        raise QuotaExceeded(
            f"Your plan allows {limits.max_documents} documents and this workspace has {count}. "
            "Delete documents or upgrade the plan to add more."
        )


# Knowledge bases --------------------------------------------------------------------------


async def get_knowledge_base(
    session: AsyncSession, ctx: TenantContext, kb_id: uuid.UUID
) -> KnowledgeBase:
    kb = await session.scalar(
        select(KnowledgeBase).where(
            KnowledgeBase.id == kb_id, KnowledgeBase.tenant_id == ctx.tenant_id
        )
    )
    if kb is None:
        raise NotFound("Knowledge base not found.")
    return kb


def _check_model(spec: str) -> int:
    """The model's dimension, or a 422 saying why the model can't be used."""
    try:
        return provider_for(spec).dimension
    except EmbeddingError as exc:
        raise ValidationFailed(
            exc.reason, fields=[{"field": "embedding_model", "message": exc.reason}]
        ) from exc


async def create_knowledge_base(
    session: AsyncSession, ctx: TenantContext, body: schemas.KnowledgeBaseCreate
) -> KnowledgeBase:
    model = body.embedding_model or get_settings().embedding_model
    kb = KnowledgeBase(
        tenant_id=ctx.tenant_id,
        name=body.name,
        description=body.description,
        language=body.language,
        embedding_model=model,
        embedding_dimension=_check_model(model),
        chunk_tokens=body.chunk_tokens,
        chunk_overlap_tokens=body.chunk_overlap_tokens,
    )
    session.add(kb)
    await session.flush()
    await record(session, ctx, "knowledge_base.created", "knowledge_base", kb.id, {"name": kb.name})
    return kb


async def update_knowledge_base(
    session: AsyncSession,
    ctx: TenantContext,
    kb_id: uuid.UUID,
    body: schemas.KnowledgeBaseUpdate,
) -> KnowledgeBase:
    kb = await get_knowledge_base(session, ctx, kb_id)
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    tokens = changes.get("chunk_tokens", kb.chunk_tokens)
    overlap = changes.get("chunk_overlap_tokens", kb.chunk_overlap_tokens)
    if overlap >= tokens:
        raise ValidationFailed(
            "chunk_overlap_tokens must be smaller than chunk_tokens.",
            fields=[{"field": "chunk_overlap_tokens", "message": "must be below chunk_tokens"}],
        )
    new_model = changes.pop("embedding_model", None)
    rechunk = any(
        k in changes and changes[k] != getattr(kb, k)
        for k in ("chunk_tokens", "chunk_overlap_tokens", "language")
    )
    for key, value in changes.items():
        setattr(kb, key, value)
    if new_model is not None and new_model != kb.embedding_model:
        await _start_reembedding(session, ctx, kb, new_model)
    if rechunk:
        await reprocess_all_documents(session, ctx, kb)
    await session.flush()
    await record(
        session,
        ctx,
        "knowledge_base.updated",
        "knowledge_base",
        kb.id,
        {**changes, **({"embedding_model": new_model} if new_model else {})},
    )
    return kb


async def _start_reembedding(
    session: AsyncSession, ctx: TenantContext, kb: KnowledgeBase, model: str
) -> None:
    kb.pending_embedding_model = model
    kb.pending_embedding_dimension = _check_model(model)
    await session.flush()
    enqueue(
        "reembed_knowledge_base",
        str(ctx.tenant_id),
        str(kb.id),
        model,
        _job_id=f"reembed:{kb.id}:{model}",
    )


async def delete_knowledge_base(
    session: AsyncSession, ctx: TenantContext, kb_id: uuid.UUID
) -> None:
    kb = await get_knowledge_base(session, ctx, kb_id)
    keys = await session.scalars(
        select(Document.storage_key).where(
            Document.knowledge_base_id == kb.id, Document.storage_key.is_not(None)
        )
    )
    _delete_originals_later(ctx, [k for k in keys if k])
    await session.delete(kb)
    await record(session, ctx, "knowledge_base.deleted", "knowledge_base", kb.id, {"name": kb.name})


async def knowledge_base_stats(
    session: AsyncSession, kb: KnowledgeBase
) -> schemas.KnowledgeBaseStats:
    rows = await session.execute(
        select(Document.status, func.count())
        .where(Document.knowledge_base_id == kb.id)
        .group_by(Document.status)
    )
    by_status = {status.value: 0 for status in DocumentStatus}
    for status, count in rows.tuples():
        by_status[status.value] = count
    chunks = await session.scalar(
        select(func.count()).select_from(Chunk).where(Chunk.knowledge_base_id == kb.id)
    )
    reembedded = None
    if kb.pending_embedding_model:
        reembedded = await session.scalar(
            select(func.count())
            .select_from(ChunkEmbedding)
            .where(
                ChunkEmbedding.knowledge_base_id == kb.id,
                ChunkEmbedding.model == kb.pending_embedding_model,
            )
        )
    return schemas.KnowledgeBaseStats(
        documents=by_status,
        chunks=int(chunks or 0),
        reembedding=kb.pending_embedding_model is not None,
        reembedded_chunks=reembedded,
    )


# Sources ----------------------------------------------------------------------------------


async def _get_in_kb(
    session: AsyncSession,
    ctx: TenantContext,
    kb: KnowledgeBase,
    model: type[_InKb],
    object_id: uuid.UUID,
    label: str,
) -> _InKb:
    found = await session.scalar(
        select(model).where(
            model.id == object_id,
            model.knowledge_base_id == kb.id,
            model.tenant_id == ctx.tenant_id,
        )
    )
    if found is None:
        raise NotFound(f"{label} not found.")
    return found


async def get_source(
    session: AsyncSession, ctx: TenantContext, kb: KnowledgeBase, source_id: uuid.UUID
) -> Source:
    return await _get_in_kb(session, ctx, kb, Source, source_id, "Source")


async def create_source(
    session: AsyncSession, ctx: TenantContext, kb: KnowledgeBase, body: schemas.SourceCreate
) -> Source:
    kind = SourceKind(body.kind)
    config: dict[str, Any] = {}
    if kind is SourceKind.crawl:
        config = (body.crawl or schemas.CrawlSettings()).model_dump()
        settings = get_settings()
        config["max_pages"] = min(config["max_pages"], settings.crawl_max_pages)
        config["max_depth"] = min(config["max_depth"], settings.crawl_max_depth)
    source = Source(
        tenant_id=ctx.tenant_id,
        knowledge_base_id=kb.id,
        kind=kind,
        title=body.title,
        url=str(body.url) if body.url else None,
        config=config,
        sync_interval_minutes=body.sync_interval_minutes,
    )
    session.add(source)
    await session.flush()
    if kind in (SourceKind.text, SourceKind.qa):
        await check_document_quota(session, ctx, 1)
        content = body.text if kind is SourceKind.text else _qa_markdown(body.pairs or [])
        await add_inline_document(session, ctx, kb, source, body.title, content or "")
    elif kind is SourceKind.url:
        await check_document_quota(session, ctx, 1)
        document = Document(
            tenant_id=ctx.tenant_id,
            knowledge_base_id=kb.id,
            source_id=source.id,
            url=source.url,
            title=body.title,
        )
        session.add(document)
        await session.flush()
        queue_ingestion(ctx, document)
    else:
        queue_source_sync(ctx, source)
    await _schedule(session, ctx, source)
    await record(
        session,
        ctx,
        "knowledge_source.created",
        "knowledge_source",
        source.id,
        {"kind": kind.value, "url": source.url},
    )
    return source


def _qa_markdown(pairs: list[schemas.QAPair]) -> str:
    # One section per question: each pair becomes its own chunk with the question as heading.
    return "\n\n".join(f"## {p.question}\n\n{p.answer}" for p in pairs)


async def add_inline_document(
    session: AsyncSession,
    ctx: TenantContext,
    kb: KnowledgeBase,
    source: Source,
    title: str | None,
    content: str,
) -> Document:
    document = Document(
        tenant_id=ctx.tenant_id,
        knowledge_base_id=kb.id,
        source_id=source.id,
        title=title,
        content_type="text/markdown",
    )
    session.add(document)
    await session.flush()
    stored = await get_storage().put_stream(
        original_key(ctx.tenant_id, document.id),
        _one_chunk(content.encode("utf-8")),
        max_bytes=get_settings().upload_max_bytes,
    )
    document.storage_key = stored.key
    document.size_bytes = stored.size
    queue_ingestion(ctx, document)
    return document


async def add_upload(
    session: AsyncSession,
    ctx: TenantContext,
    kb: KnowledgeBase,
    upload: UploadFile,
    content: AsyncIterator[bytes],
) -> Document:
    """Store an uploaded file as a new document of a new upload source, and queue it."""
    filename = (upload.filename or "upload")[:500].replace("\x00", "")
    source = Source(
        tenant_id=ctx.tenant_id, knowledge_base_id=kb.id, kind=SourceKind.upload, title=filename
    )
    session.add(source)
    await session.flush()
    document = Document(
        tenant_id=ctx.tenant_id,
        knowledge_base_id=kb.id,
        source_id=source.id,
        title=filename,
        filename=filename,
    )
    session.add(document)
    await session.flush()
    stored = await get_storage().put_stream(
        original_key(ctx.tenant_id, document.id), content, max_bytes=get_settings().upload_max_bytes
    )
    document.storage_key = stored.key
    document.size_bytes = stored.size
    document.content_hash = stored.sha256
    queue_ingestion(ctx, document)
    await record(
        session,
        ctx,
        "knowledge_document.uploaded",
        "knowledge_document",
        document.id,
        {"filename": filename, "size": stored.size},
    )
    return document


async def _one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def update_source(
    session: AsyncSession,
    ctx: TenantContext,
    kb: KnowledgeBase,
    source_id: uuid.UUID,
    body: schemas.SourceUpdate,
) -> Source:
    source = await get_source(session, ctx, kb, source_id)
    changes = body.model_dump(exclude_unset=True)
    if "sync_interval_minutes" in changes and source.kind not in URL_KINDS:
        raise BadRequest("Only url, sitemap and crawl sources re-sync on a schedule.")
    for key, value in changes.items():
        setattr(source, key, value)
    await session.flush()
    await _schedule(session, ctx, source)
    return source


async def _schedule(session: AsyncSession, ctx: TenantContext, source: Source) -> None:
    await session.execute(delete(SourceSchedule).where(SourceSchedule.source_id == source.id))
    if source.kind in URL_KINDS and source.sync_interval_minutes:
        due = datetime.now(UTC) + timedelta(minutes=source.sync_interval_minutes)
        session.add(SourceSchedule(tenant_id=ctx.tenant_id, source_id=source.id, due_at=due))
        await session.flush()


async def next_sync_times(
    session: AsyncSession, source_ids: list[uuid.UUID]
) -> dict[uuid.UUID, datetime]:
    rows = await session.execute(
        select(SourceSchedule.source_id, SourceSchedule.due_at).where(
            SourceSchedule.source_id.in_(source_ids)
        )
    )
    return dict(rows.tuples().all())


async def sync_source_now(
    session: AsyncSession, ctx: TenantContext, kb: KnowledgeBase, source_id: uuid.UUID
) -> Source:
    source = await get_source(session, ctx, kb, source_id)
    if source.kind not in URL_KINDS:
        raise BadRequest(
            "Only url, sitemap and crawl sources can be re-synced; re-process "
            "their documents instead."
        )
    if source.kind is SourceKind.url:
        documents = await session.scalars(select(Document).where(Document.source_id == source.id))
        for document in documents:
            await mark_for_ingestion(ctx, document)
    else:
        queue_source_sync(ctx, source)
    await record(session, ctx, "knowledge_source.synced", "knowledge_source", source.id)
    return source


async def delete_source(
    session: AsyncSession, ctx: TenantContext, kb: KnowledgeBase, source_id: uuid.UUID
) -> None:
    source = await get_source(session, ctx, kb, source_id)
    keys = await session.scalars(
        select(Document.storage_key).where(
            Document.source_id == source.id, Document.storage_key.is_not(None)
        )
    )
    _delete_originals_later(ctx, [k for k in keys if k])
    await session.delete(source)  # documents, chunks and embeddings go by ON DELETE CASCADE
    await record(
        session,
        ctx,
        "knowledge_source.deleted",
        "knowledge_source",
        source.id,
        {"kind": source.kind.value, "url": source.url},
    )


def queue_source_sync(ctx: TenantContext, source: Source) -> None:
    stamp = int(datetime.now(UTC).timestamp())
    enqueue(
        "sync_source",
        str(ctx.tenant_id),
        str(source.id),
        _job_id=f"sync:{source.id}:{stamp}",
    )


# Documents --------------------------------------------------------------------------------


def queue_ingestion(ctx: TenantContext, document: Document, *, prefetched: bool = False) -> None:
    """Queue the pipeline for the document's current version (after the commit).

    `prefetched`: a crawl already stored the page, so the job reads storage instead of fetching.
    """
    enqueue(
        "ingest_document",
        str(ctx.tenant_id),
        str(document.id),
        document.version,
        prefetched,
        _job_id=f"ingest:{document.id}:{document.version}",
    )


async def mark_for_ingestion(
    ctx: TenantContext, document: Document, *, prefetched: bool = False
) -> None:
    document.version += 1
    document.status = DocumentStatus.queued
    document.error = None
    queue_ingestion(ctx, document, prefetched=prefetched)


async def get_document(
    session: AsyncSession, ctx: TenantContext, kb: KnowledgeBase, document_id: uuid.UUID
) -> Document:
    return await _get_in_kb(session, ctx, kb, Document, document_id, "Document")


async def reprocess_document(
    session: AsyncSession, ctx: TenantContext, kb: KnowledgeBase, document_id: uuid.UUID
) -> Document:
    document = await get_document(session, ctx, kb, document_id)
    await mark_for_ingestion(ctx, document)
    await session.flush()
    return document


async def reprocess_all_documents(
    session: AsyncSession, ctx: TenantContext, kb: KnowledgeBase
) -> None:
    documents = await session.scalars(select(Document).where(Document.knowledge_base_id == kb.id))
    for document in documents:
        await mark_for_ingestion(ctx, document)


async def delete_document(
    session: AsyncSession, ctx: TenantContext, kb: KnowledgeBase, document_id: uuid.UUID
) -> None:
    document = await get_document(session, ctx, kb, document_id)
    if document.storage_key:
        _delete_originals_later(ctx, [document.storage_key])
    await session.delete(document)
    await record(
        session,
        ctx,
        "knowledge_document.deleted",
        "knowledge_document",
        document.id,
        {"title": document.title, "filename": document.filename, "url": document.url},
    )


def _delete_originals_later(ctx: TenantContext, keys: list[str]) -> None:
    if keys:
        enqueue("delete_originals", str(ctx.tenant_id), keys)


# The workspace's own embedding endpoint ------------------------------------------------------


async def get_embedding_settings(
    session: AsyncSession, ctx: TenantContext
) -> TenantEmbeddingSettings | None:
    found: TenantEmbeddingSettings | None = await session.scalar(
        select(TenantEmbeddingSettings).where(TenantEmbeddingSettings.tenant_id == ctx.tenant_id)
    )
    return found


async def set_embedding_settings(
    session: AsyncSession, ctx: TenantContext, body: schemas.EmbeddingSettingsUpdate
) -> TenantEmbeddingSettings:
    row = await get_embedding_settings(session, ctx)
    if row is None:
        row = TenantEmbeddingSettings(tenant_id=ctx.tenant_id)
        session.add(row)
    row.openai_base_url = str(body.openai_base_url) if body.openai_base_url else None
    if body.openai_api_key is not None:
        row.openai_api_key_encrypted = encrypt(body.openai_api_key)
        row.openai_api_key_hint = body.openai_api_key[-4:]
    await session.flush()
    await record(
        session,
        ctx,
        "embedding_settings.updated",
        "embedding_settings",
        row.id,
        {"openai_base_url": row.openai_base_url, "key_changed": body.openai_api_key is not None},
    )
    return row


async def clear_embedding_settings(session: AsyncSession, ctx: TenantContext) -> None:
    row = await get_embedding_settings(session, ctx)
    if row is not None:
        await session.delete(row)
        await record(session, ctx, "embedding_settings.cleared", "embedding_settings", row.id)
