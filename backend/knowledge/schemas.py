"""Request and response bodies of the knowledge-base endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

from backend.kit.text import PlainText
from backend.models import DocumentStatus, SourceKind

# PostgreSQL text search configurations offered for knowledge bases.
LANGUAGES = ("english", "russian", "simple")
Language = Literal["english", "russian", "simple"]


class KnowledgeBaseCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: PlainText = Field(min_length=1, max_length=200)
    description: PlainText | None = Field(default=None, max_length=2000)
    language: Language = Field(
        default="english", description="Full-text search language: english, russian or simple."
    )
    embedding_model: PlainText | None = Field(
        default=None,
        max_length=200,
        description="'local:all-MiniLM-L6-v2' (default, offline) or 'openai:<model>'.",
    )
    chunk_tokens: int = Field(default=200, ge=32, le=2000)
    chunk_overlap_tokens: int = Field(default=30, ge=0, le=500)

    @model_validator(mode="after")
    def _overlap_below_size(self) -> KnowledgeBaseCreate:
        if self.chunk_overlap_tokens >= self.chunk_tokens:
            raise ValueError("chunk_overlap_tokens must be smaller than chunk_tokens")
        return self


class KnowledgeBaseUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: PlainText | None = Field(default=None, min_length=1, max_length=200)
    description: PlainText | None = Field(default=None, max_length=2000)
    language: Language | None = None
    embedding_model: PlainText | None = Field(
        default=None,
        max_length=200,
        description="Changing it re-embeds everything in the background.",
    )
    chunk_tokens: int | None = Field(default=None, ge=32, le=2000)
    chunk_overlap_tokens: int | None = Field(default=None, ge=0, le=500)


class KnowledgeBaseRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    description: str | None
    language: str
    embedding_model: str
    embedding_dimension: int
    pending_embedding_model: str | None
    chunk_tokens: int
    chunk_overlap_tokens: int
    created_at: datetime
    updated_at: datetime


class KnowledgeBaseStats(BaseModel):
    documents: dict[str, int] = Field(description="Documents by status")
    chunks: int
    reembedding: bool = Field(description="True while content is re-embedded with a new model")
    reembedded_chunks: int | None = None


class KnowledgeBaseDetail(KnowledgeBaseRead):
    stats: KnowledgeBaseStats


class QAPair(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: PlainText = Field(min_length=1, max_length=2000)
    answer: PlainText = Field(min_length=1, max_length=20000)


class CrawlSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_depth: int = Field(default=2, ge=0, le=20)
    max_pages: int = Field(default=50, ge=1, le=100_000)
    include: list[PlainText] = Field(
        default_factory=list, max_length=50, description="Glob patterns of URLs to follow"
    )
    exclude: list[PlainText] = Field(
        default_factory=list, max_length=50, description="Glob patterns of URLs to skip"
    )


class SourceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["url", "sitemap", "crawl", "text", "qa"]
    title: PlainText | None = Field(default=None, max_length=500)
    url: HttpUrl | None = None
    text: PlainText | None = Field(default=None, max_length=2_000_000)
    pairs: list[QAPair] | None = Field(default=None, max_length=5000)
    crawl: CrawlSettings | None = None
    sync_interval_minutes: int | None = Field(
        default=None, ge=15, le=60 * 24 * 90, description="Re-sync period for url/sitemap/crawl"
    )

    @model_validator(mode="after")
    def _fields_match_kind(self) -> SourceCreate:
        needs_url = self.kind in ("url", "sitemap", "crawl")
        if needs_url and self.url is None:
            raise ValueError(f"a {self.kind} source needs a url")
        if self.kind == "text" and not self.text:
            raise ValueError("a text source needs text")
        if self.kind == "qa" and not self.pairs:
            raise ValueError("a qa source needs pairs")
        if not needs_url and self.sync_interval_minutes is not None:
            raise ValueError("only url, sitemap and crawl sources re-sync on a schedule")
        return self


class SourceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: PlainText | None = Field(default=None, max_length=500)
    sync_interval_minutes: int | None = Field(default=None, ge=15, le=60 * 24 * 90)


class SourceRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    knowledge_base_id: uuid.UUID
    kind: SourceKind
    title: str | None
    url: str | None
    config: dict[str, object]
    sync_interval_minutes: int | None
    next_sync_at: datetime | None = None
    last_synced_at: datetime | None
    sync_error: str | None
    created_at: datetime


class DocumentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    knowledge_base_id: uuid.UUID
    source_id: uuid.UUID
    title: str | None
    url: str | None
    filename: str | None
    content_type: str | None
    size_bytes: int
    status: DocumentStatus
    error: str | None
    chunks_total: int
    chunks_done: int
    ingested_at: datetime | None
    created_at: datetime
    updated_at: datetime


class SearchMode(StrEnum):
    hybrid = "hybrid"
    vector = "vector"
    text = "text"


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: PlainText = Field(min_length=1, max_length=2000)
    top_k: int = Field(default=5, ge=1, le=50)
    threshold: float | None = Field(
        default=None, ge=-1, le=1, description="Minimum cosine similarity (default 0.2)"
    )
    mode: SearchMode = SearchMode.hybrid


class Citation(BaseModel):
    document_id: uuid.UUID
    source_id: uuid.UUID
    title: str | None
    url: str | None
    filename: str | None
    page: int | None
    heading_path: list[str]


class SearchHit(BaseModel):
    chunk_id: uuid.UUID
    text: str
    score: float = Field(description="Reciprocal-rank-fusion score; higher is better")
    similarity: float = Field(description="Cosine similarity of the passage to the query")
    text_rank: float | None = Field(description="Full-text rank, when the words matched")
    citation: Citation


class SearchResponse(BaseModel):
    hits: list[SearchHit]
    embedding_model: str
    search: Literal["exact", "hnsw"]
    took_ms: float


class EmbeddingSettingsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    openai_base_url: HttpUrl | None = Field(
        default=None, description="The workspace's OpenAI-compatible server; null for OpenAI's"
    )
    openai_api_key: PlainText | None = Field(
        default=None, min_length=1, max_length=500, description="Stored encrypted; never shown"
    )


class EmbeddingSettingsRead(BaseModel):
    openai_base_url: str | None
    has_openai_api_key: bool
    openai_api_key_hint: str | None = Field(description="The key's last 4 characters")
    updated_at: datetime | None
