"""Knowledge bases, their sources and documents, the chunks cut from them and their embeddings.

Embeddings live in their own table keyed by (chunk, model), so a knowledge base can re-embed
with a new model in the background while search keeps using the old vectors until the switch.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR, UUID
from sqlalchemy.orm import Mapped, mapped_column

from backend.models.base import Base, CreatedAtMixin, IdMixin, TenantOwnedMixin, str_enum


class SourceKind(StrEnum):
    upload = "upload"
    url = "url"
    sitemap = "sitemap"
    crawl = "crawl"
    text = "text"
    qa = "qa"


class DocumentStatus(StrEnum):
    queued = "queued"
    processing = "processing"
    ready = "ready"
    failed = "failed"


class UpdatedAtMixin:
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True),
        server_default=func.now(),
        # Set in Python, so the object holds the new value without a reload after an update.
        onupdate=lambda: datetime.now(UTC),
        nullable=False,
    )


class KnowledgeBase(IdMixin, TenantOwnedMixin, CreatedAtMixin, UpdatedAtMixin, Base):
    __tablename__ = "knowledge_bases"

    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    # A PostgreSQL text search configuration: "english", "russian", "simple"...
    language: Mapped[str] = mapped_column(String(40), default="english")
    embedding_model: Mapped[str] = mapped_column(String(200))
    embedding_dimension: Mapped[int] = mapped_column(Integer)
    # Set while the content is re-embedded with another model; search uses embedding_model.
    pending_embedding_model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    pending_embedding_dimension: Mapped[int | None] = mapped_column(Integer, nullable=True)
    chunk_tokens: Mapped[int] = mapped_column(Integer, default=200)
    chunk_overlap_tokens: Mapped[int] = mapped_column(Integer, default=30)


class Source(IdMixin, TenantOwnedMixin, CreatedAtMixin, UpdatedAtMixin, Base):
    __tablename__ = "knowledge_sources"

    knowledge_base_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("knowledge_bases.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[SourceKind] = mapped_column(str_enum(SourceKind, "source_kind"))
    title: Mapped[str | None] = mapped_column(String(500), nullable=True)
    url: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Crawl settings: depth, page limit, include/exclude patterns.
    config: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    sync_interval_minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_synced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    sync_error: Mapped[str | None] = mapped_column(Text, nullable=True)


class Document(IdMixin, TenantOwnedMixin, CreatedAtMixin, UpdatedAtMixin, Base):
    __tablename__ = "knowledge_documents"
    __table_args__ = (UniqueConstraint("source_id", "url"),)

    knowledge_base_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("knowledge_bases.id", ondelete="CASCADE"), index=True
    )
    source_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("knowledge_sources.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str | None] = mapped_column(String(500), nullable=True)
    url: Mapped[str | None] = mapped_column(Text, nullable=True)
    filename: Mapped[str | None] = mapped_column(String(500), nullable=True)
    content_type: Mapped[str | None] = mapped_column(String(100), nullable=True)
    storage_key: Mapped[str | None] = mapped_column(String(300), nullable=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    # sha256 of the original bytes: an unchanged re-fetch is skipped before parsing.
    content_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    etag: Mapped[str | None] = mapped_column(String(500), nullable=True)
    last_modified: Mapped[str | None] = mapped_column(String(100), nullable=True)
    status: Mapped[DocumentStatus] = mapped_column(
        str_enum(DocumentStatus, "document_status"), default=DocumentStatus.queued
    )
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    chunks_total: Mapped[int] = mapped_column(Integer, default=0)
    chunks_done: Mapped[int] = mapped_column(Integer, default=0)
    # Bumped by every ingestion request; a job for an older version does nothing.
    version: Mapped[int] = mapped_column(Integer, default=1)
    ingested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class SourceSchedule(IdMixin, TenantOwnedMixin, CreatedAtMixin, Base):
    """When a URL or site source is next due for a re-sync.

    Kept apart from the sources so the scheduler, which looks across tenants, reads only ids
    and times: its extra RLS policy covers this table and nothing else.
    """

    __tablename__ = "knowledge_source_schedules"

    source_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("knowledge_sources.id", ondelete="CASCADE"), unique=True
    )
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class Chunk(IdMixin, TenantOwnedMixin, CreatedAtMixin, Base):
    __tablename__ = "knowledge_chunks"
    __table_args__ = (
        Index("ix_knowledge_chunks_document_id_ordinal", "document_id", "ordinal"),
        Index("ix_knowledge_chunks_tsv", "tsv", postgresql_using="gin"),
        Index("ix_knowledge_chunks_kb_hash", "knowledge_base_id", "content_hash"),
    )

    knowledge_base_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("knowledge_bases.id", ondelete="CASCADE"), index=True
    )
    document_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("knowledge_documents.id", ondelete="CASCADE")
    )
    ordinal: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    embed_text: Mapped[str] = mapped_column(Text)
    heading_path: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    page: Mapped[int | None] = mapped_column(Integer, nullable=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    token_count: Mapped[int] = mapped_column(Integer)
    tsv: Mapped[Any] = mapped_column(TSVECTOR)


class ChunkEmbedding(IdMixin, TenantOwnedMixin, CreatedAtMixin, Base):
    """One chunk's vector under one model.

    Hash-partitioned by knowledge base (128 partitions, each with its own per-model HNSW
    indexes): a search names its knowledge base, so it reads one partition's index, in which a
    big knowledge base is a large share. The partition key must be part of every unique key.
    """

    __tablename__ = "knowledge_chunk_embeddings"
    __table_args__ = (
        UniqueConstraint("chunk_id", "model", "knowledge_base_id"),
        # Lets retrieval's size check count a knowledge base's vectors from the index alone
        # (tenant_id included for the row-level security filter).
        Index("ix_knowledge_chunk_embeddings_kb_model", "knowledge_base_id", "model", "tenant_id"),
        {"postgresql_partition_by": "HASH (knowledge_base_id)"},
    )

    chunk_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("knowledge_chunks.id", ondelete="CASCADE")
    )
    model: Mapped[str] = mapped_column(String(200))
    knowledge_base_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("knowledge_bases.id", ondelete="CASCADE"), primary_key=True
    )
    # No fixed dimension: models differ. HNSW indexes are per model, on a cast expression.
    embedding: Mapped[Any] = mapped_column(Vector())


class TenantEmbeddingSettings(IdMixin, TenantOwnedMixin, CreatedAtMixin, UpdatedAtMixin, Base):
    """A workspace's own OpenAI-compatible endpoint and key for `openai:` embedding models.

    The key is stored encrypted (backend/kit/crypto.py); without a row the platform's apply.
    """

    __tablename__ = "tenant_embedding_settings"
    __table_args__ = (UniqueConstraint("tenant_id"),)

    openai_base_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    openai_api_key_encrypted: Mapped[str | None] = mapped_column(Text, nullable=True)
    openai_api_key_hint: Mapped[str | None] = mapped_column(String(8), nullable=True)
