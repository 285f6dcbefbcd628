"""Knowledge-base endpoints: knowledge bases, sources, documents (uploads too), and search."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, File, Query, UploadFile, status
from sqlalchemy import select

from backend.config import get_settings
from backend.db import SessionDep
from backend.errors import BadRequest, ServiceUnavailable
from backend.kit.pagination import (
    Page,
    PageParams,
    next_cursor_of,
    page_params,
    paginate_newest_first,
)
from backend.knowledge import schemas, service
from backend.knowledge.retrieval import SearchFailed, search
from backend.models import Document, DocumentStatus, KnowledgeBase, Source, TenantEmbeddingSettings
from backend.tenancy.context import TenantContext, require
from backend.tenancy.permissions import Permission

router = APIRouter(prefix="/api/v1/knowledge-bases", tags=["knowledge"])

Read = Annotated[TenantContext, Depends(require(Permission.knowledge_read))]
Write = Annotated[TenantContext, Depends(require(Permission.knowledge_write))]
Paging = Annotated[PageParams, Depends(page_params)]

UPLOAD_PATH = re.compile(r"/api/v1/knowledge-bases/[^/]+/documents")
# Room for multipart boundaries and part headers around the files themselves.
MULTIPART_OVERHEAD = 1024 * 1024
MAX_FILES_PER_UPLOAD = 20
UPLOAD_READ_SIZE = 256 * 1024


def _detail(kb: KnowledgeBase, stats: schemas.KnowledgeBaseStats) -> schemas.KnowledgeBaseDetail:
    return schemas.KnowledgeBaseDetail(
        **schemas.KnowledgeBaseRead.model_validate(kb).model_dump(), stats=stats
    )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=schemas.KnowledgeBaseDetail)
async def create_knowledge_base(
    body: schemas.KnowledgeBaseCreate, ctx: Write, session: SessionDep
) -> schemas.KnowledgeBaseDetail:
    """Create a knowledge base. The embedding model defaults to the offline local model."""
    kb = await service.create_knowledge_base(session, ctx, body)
    return _detail(kb, await service.knowledge_base_stats(session, kb))


@router.get("", response_model=Page[schemas.KnowledgeBaseRead])
async def list_knowledge_bases(
    ctx: Read, session: SessionDep, page: Paging
) -> Page[schemas.KnowledgeBaseRead]:
    """The workspace's knowledge bases, newest first."""
    statement = paginate_newest_first(
        select(KnowledgeBase).where(KnowledgeBase.tenant_id == ctx.tenant_id),
        KnowledgeBase.created_at,
        KnowledgeBase.id,
        page,
    )
    rows, cursor = next_cursor_of(list(await session.scalars(statement)), page.limit)
    return Page(
        items=[schemas.KnowledgeBaseRead.model_validate(r) for r in rows], next_cursor=cursor
    )


@router.get("/{kb_id}", response_model=schemas.KnowledgeBaseDetail)
async def get_knowledge_base(
    kb_id: uuid.UUID, ctx: Read, session: SessionDep
) -> schemas.KnowledgeBaseDetail:
    """A knowledge base with its document counts by status and its chunk count."""
    kb = await service.get_knowledge_base(session, ctx, kb_id)
    return _detail(kb, await service.knowledge_base_stats(session, kb))


@router.patch("/{kb_id}", response_model=schemas.KnowledgeBaseDetail)
async def update_knowledge_base(
    kb_id: uuid.UUID, body: schemas.KnowledgeBaseUpdate, ctx: Write, session: SessionDep
) -> schemas.KnowledgeBaseDetail:
    """Change settings. A new embedding model re-embeds in the background (search keeps the old
    vectors until it is done); new chunk sizes or language re-process every document."""
    kb = await service.update_knowledge_base(session, ctx, kb_id, body)
    return _detail(kb, await service.knowledge_base_stats(session, kb))


@router.delete("/{kb_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_knowledge_base(kb_id: uuid.UUID, ctx: Write, session: SessionDep) -> None:
    """Delete a knowledge base with all its sources, documents and passages."""
    await service.delete_knowledge_base(session, ctx, kb_id)


# Sources ----------------------------------------------------------------------------------


async def _source_reads(session: SessionDep, sources: list[Source]) -> list[schemas.SourceRead]:
    due = await service.next_sync_times(session, [s.id for s in sources])
    return [
        schemas.SourceRead.model_validate(s).model_copy(update={"next_sync_at": due.get(s.id)})
        for s in sources
    ]


@router.post(
    "/{kb_id}/sources", status_code=status.HTTP_201_CREATED, response_model=schemas.SourceRead
)
async def create_source(
    kb_id: uuid.UUID, body: schemas.SourceCreate, ctx: Write, session: SessionDep
) -> schemas.SourceRead:
    """Add a URL, a sitemap, a site to crawl, plain text, or question/answer pairs."""
    kb = await service.get_knowledge_base(session, ctx, kb_id)
    source = await service.create_source(session, ctx, kb, body)
    return (await _source_reads(session, [source]))[0]


@router.get("/{kb_id}/sources", response_model=Page[schemas.SourceRead])
async def list_sources(
    kb_id: uuid.UUID, ctx: Read, session: SessionDep, page: Paging
) -> Page[schemas.SourceRead]:
    """The knowledge base's sources, newest first, with their next scheduled sync."""
    kb = await service.get_knowledge_base(session, ctx, kb_id)
    statement = paginate_newest_first(
        select(Source).where(Source.knowledge_base_id == kb.id), Source.created_at, Source.id, page
    )
    rows, cursor = next_cursor_of(list(await session.scalars(statement)), page.limit)
    return Page(items=await _source_reads(session, rows), next_cursor=cursor)


@router.get("/{kb_id}/sources/{source_id}", response_model=schemas.SourceRead)
async def get_source(
    kb_id: uuid.UUID, source_id: uuid.UUID, ctx: Read, session: SessionDep
) -> schemas.SourceRead:
    kb = await service.get_knowledge_base(session, ctx, kb_id)
    return (await _source_reads(session, [await service.get_source(session, ctx, kb, source_id)]))[
        0
    ]


@router.patch("/{kb_id}/sources/{source_id}", response_model=schemas.SourceRead)
async def update_source(
    kb_id: uuid.UUID,
    source_id: uuid.UUID,
    body: schemas.SourceUpdate,
    ctx: Write,
    session: SessionDep,
) -> schemas.SourceRead:
    """Rename a source or change its re-sync period (null turns the schedule off)."""
    kb = await service.get_knowledge_base(session, ctx, kb_id)
    source = await service.update_source(session, ctx, kb, source_id, body)
    return (await _source_reads(session, [source]))[0]


@router.post(
    "/{kb_id}/sources/{source_id}/sync",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=schemas.SourceRead,
)
async def sync_source(
    kb_id: uuid.UUID, source_id: uuid.UUID, ctx: Write, session: SessionDep
) -> schemas.SourceRead:
    """Re-sync now: fetch again (conditionally), and re-process what changed."""
    kb = await service.get_knowledge_base(session, ctx, kb_id)
    source = await service.sync_source_now(session, ctx, kb, source_id)
    return (await _source_reads(session, [source]))[0]


@router.delete("/{kb_id}/sources/{source_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_source(
    kb_id: uuid.UUID, source_id: uuid.UUID, ctx: Write, session: SessionDep
) -> None:
    """Delete a source with its documents and their passages."""
    kb = await service.get_knowledge_base(session, ctx, kb_id)
    await service.delete_source(session, ctx, kb, source_id)


# Documents --------------------------------------------------------------------------------


async def _read_upload(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(UPLOAD_READ_SIZE):
        yield chunk


@router.post(
    "/{kb_id}/documents",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=list[schemas.DocumentRead],
)
async def upload_documents(
    kb_id: uuid.UUID,
    ctx: Write,
    session: SessionDep,
    files: Annotated[
        list[UploadFile], File(description="PDF, DOCX, TXT, Markdown, HTML, CSV, XLSX")
    ],
) -> list[schemas.DocumentRead]:
    """Upload files (multipart, field `files`; together at most the upload limit, 50 MB by
    default). Each becomes a document processed in the background; follow its status with
    GET .../documents/{id}. The type is detected from the content, not the file name."""
    if not files:
        raise BadRequest("Attach at least one file in the `files` field.")
    if len(files) > MAX_FILES_PER_UPLOAD:
        raise BadRequest(f"Upload at most {MAX_FILES_PER_UPLOAD} files at a time.")
    kb = await service.get_knowledge_base(session, ctx, kb_id)
    await service.check_document_quota(session, ctx, len(files))
    documents = [await service.add_upload(session, ctx, kb, f, _read_upload(f)) for f in files]
    return [schemas.DocumentRead.model_validate(d) for d in documents]


@router.get("/{kb_id}/documents", response_model=Page[schemas.DocumentRead])
async def list_documents(
    kb_id: uuid.UUID,
    ctx: Read,
    session: SessionDep,
    page: Paging,
    document_status: Annotated[DocumentStatus | None, Query(alias="status")] = None,
    source_id: uuid.UUID | None = None,
) -> Page[schemas.DocumentRead]:
    """Documents with their status and progress, newest first; filter by status or source."""
    kb = await service.get_knowledge_base(session, ctx, kb_id)
    statement = select(Document).where(Document.knowledge_base_id == kb.id)
    if document_status is not None:
        statement = statement.where(Document.status == document_status)
    if source_id is not None:
        statement = statement.where(Document.source_id == source_id)
    statement = paginate_newest_first(statement, Document.created_at, Document.id, page)
    rows, cursor = next_cursor_of(list(await session.scalars(statement)), page.limit)
    return Page(items=[schemas.DocumentRead.model_validate(r) for r in rows], next_cursor=cursor)


@router.get("/{kb_id}/documents/{document_id}", response_model=schemas.DocumentRead)
async def get_document(
    kb_id: uuid.UUID, document_id: uuid.UUID, ctx: Read, session: SessionDep
) -> schemas.DocumentRead:
    """A document's status (queued, processing, ready, failed), progress and failure reason."""
    kb = await service.get_knowledge_base(session, ctx, kb_id)
    return schemas.DocumentRead.model_validate(
        await service.get_document(session, ctx, kb, document_id)
    )


@router.post(
    "/{kb_id}/documents/{document_id}/reprocess",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=schemas.DocumentRead,
)
async def reprocess_document(
    kb_id: uuid.UUID, document_id: uuid.UUID, ctx: Write, session: SessionDep
) -> schemas.DocumentRead:
    """Process the document again from its stored original (or its URL)."""
    kb = await service.get_knowledge_base(session, ctx, kb_id)
    return schemas.DocumentRead.model_validate(
        await service.reprocess_document(session, ctx, kb, document_id)
    )


@router.delete("/{kb_id}/documents/{document_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_document(
    kb_id: uuid.UUID, document_id: uuid.UUID, ctx: Write, session: SessionDep
) -> None:
    """Delete a document and its passages."""
    kb = await service.get_knowledge_base(session, ctx, kb_id)
    await service.delete_document(session, ctx, kb, document_id)


# Search -----------------------------------------------------------------------------------


@router.post("/{kb_id}/search", response_model=schemas.SearchResponse)
async def search_knowledge_base(
    kb_id: uuid.UUID, body: schemas.SearchRequest, ctx: Read, session: SessionDep
) -> schemas.SearchResponse:
    """Try retrieval: the passages an assistant would get for this question, with scores and
    what a citation needs."""
    kb = await service.get_knowledge_base(session, ctx, kb_id)
    try:
        return await search(
            session, kb, body.query, top_k=body.top_k, threshold=body.threshold, mode=body.mode
        )
    except SearchFailed as exc:
        raise ServiceUnavailable(exc.reason) from exc


def upload_body_limit() -> tuple[re.Pattern[str], int]:
    """The body limit of the upload endpoint, for the body-size middleware."""
    return UPLOAD_PATH, get_settings().upload_max_bytes + MULTIPART_OVERHEAD


Manage = Annotated[TenantContext, Depends(require(Permission.tenant_manage))]


def _settings_read(row: TenantEmbeddingSettings | None) -> schemas.EmbeddingSettingsRead:
    return schemas.EmbeddingSettingsRead(
        openai_base_url=row.openai_base_url if row else None,
        has_openai_api_key=bool(row and row.openai_api_key_encrypted),
        openai_api_key_hint=row.openai_api_key_hint if row else None,
        updated_at=row.updated_at if row else None,
    )


async def get_embedding_settings(ctx: Manage, session: SessionDep) -> schemas.EmbeddingSettingsRead:
    """The workspace's own OpenAI-compatible endpoint, used for `openai:` embedding models and
    for assistants' replies (the key itself is never shown)."""
    return _settings_read(await service.get_embedding_settings(session, ctx))


async def set_embedding_settings(
    body: schemas.EmbeddingSettingsUpdate, ctx: Manage, session: SessionDep
) -> schemas.EmbeddingSettingsRead:
    """Use the workspace's own endpoint and key instead of the platform's. The key is stored
    encrypted; leave it out to keep the stored one."""
    return _settings_read(await service.set_embedding_settings(session, ctx, body))


async def clear_embedding_settings(ctx: Manage, session: SessionDep) -> None:
    """Go back to the platform's endpoint and key."""
    await service.clear_embedding_settings(session, ctx)


def provider_settings_router(prefix: str, *, deprecated: bool = False) -> APIRouter:
    """The workspace's own OpenAI-compatible endpoint and key, for embeddings and replies.

    Served at /api/v1/provider-settings, and at its first name, /api/v1/embedding-settings.
    Each path gets a router of its own, so that request logs and metrics name the route.
    """
    router = APIRouter(prefix=prefix, tags=["settings"], deprecated=deprecated)
    read = schemas.EmbeddingSettingsRead
    router.add_api_route("", get_embedding_settings, methods=["GET"], response_model=read)
    router.add_api_route("", set_embedding_settings, methods=["PUT"], response_model=read)
    router.add_api_route(
        "", clear_embedding_settings, methods=["DELETE"], status_code=status.HTTP_204_NO_CONTENT
    )
    return router
