"""Hybrid retrieval: pgvector cosine search and PostgreSQL full text, fused by reciprocal rank.

Every query is filtered by knowledge base (and, through row-level security, by tenant) in the
same statement as the vector ordering. A filtered HNSW scan can return fewer rows than asked
for, so:
- small knowledge bases (up to `exact_search_max_chunks`) are searched exactly;
- larger ones use the model's HNSW index, with pgvector 0.8's iterative scan where available,
  and fall back to an exact search whenever the index returns fewer than k rows although k
  exist. A search therefore returns k results whenever k exist.
Full-text search ORs the query's words (PostgreSQL's own query parsers AND them, which finds
nothing for most natural-language questions) and ranks with ts_rank.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from backend.config import get_settings
from backend.kit.lru import LRU
from backend.knowledge.embeddings import EmbeddingError
from backend.knowledge.providers import OpenAIEndpoint, embed_texts, endpoint_for
from backend.knowledge.query_cache import key_of, query_vectors
from backend.knowledge.schemas import Citation, SearchHit, SearchMode, SearchResponse
from backend.models import KnowledgeBase

# Models with an HNSW index (see the knowledge-bases migration), and their dimensions.
INDEXED_MODELS = {"local:all-MiniLM-L6-v2": 384, "openai:text-embedding-3-small": 1536}
RRF_K = 60
DEFAULT_THRESHOLD = 0.2
CANDIDATES_PER_RESULT = 4

_pgvector_iterative: bool | None = None

_COUNT = (
    "SELECT count(*) FROM (SELECT 1 FROM knowledge_chunk_embeddings "
    "WHERE knowledge_base_id = :kb AND model = :model LIMIT :cap) AS capped"
)


_SizeKey = tuple[uuid.UUID, str, int]


class _SizeCache:
    """Knowledge-base sizes this process counted lately, each trusted for a while.

    A size only steers a search between exact and HNSW, and both return k results whenever k
    exist, so an out-of-date one never shortens an answer.
    """

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self._sizes: LRU[_SizeKey, tuple[int, float]] = LRU()

    def get(self, key: _SizeKey, ttl: float) -> int | None:
        found = self._sizes.get(key)
        if found is None:
            return None
        size, counted_at = found
        if time.monotonic() - counted_at >= ttl:
            self._sizes.discard(key)
            return None
        return size

    def put(self, key: _SizeKey, size: int) -> None:
        self._sizes.put(key, (size, time.monotonic()), self.limit)

    def clear(self) -> None:
        self._sizes.clear()


kb_sizes = _SizeCache()


@dataclass
class _Candidate:
    chunk_id: uuid.UUID
    similarity: float | None = None
    text_rank: float | None = None
    score: float = 0.0


class SearchFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def search(
    session: AsyncSession,
    kb: KnowledgeBase,
    query: str,
    *,
    top_k: int,
    threshold: float | None = None,
    mode: SearchMode = SearchMode.hybrid,
) -> SearchResponse:
    started = time.perf_counter()
    limit = max(top_k * CANDIDATES_PER_RESULT, 20)
    endpoint = await endpoint_for(session, kb.tenant_id, kb.embedding_model)
    vector = await _embed_query(kb.tenant_id, kb.embedding_model, query, endpoint)
    candidates: dict[uuid.UUID, _Candidate] = {}
    how: Literal["exact", "hnsw"] = "exact"
    if mode in (SearchMode.hybrid, SearchMode.vector):
        rows, how = await vector_search(session, kb, vector, limit)
        _fuse(candidates, rows, "similarity", 1.0)
    if mode in (SearchMode.hybrid, SearchMode.text):
        weight = get_settings().hybrid_text_weight if mode is SearchMode.hybrid else 1.0
        ranked = await text_search(session, kb, query, vector, limit)
        _fuse(candidates, [(chunk_id, rank) for chunk_id, rank, _ in ranked], "text_rank", weight)
        for chunk_id, _, similarity in ranked:
            if candidates[chunk_id].similarity is None:
                candidates[chunk_id].similarity = similarity
    # Every candidate now has its similarity, except a passage without a vector of this model
    # (one still being re-embedded): it has none to compare, and the threshold drops it.
    floor = DEFAULT_THRESHOLD if threshold is None else threshold
    kept = [c for c in candidates.values() if c.similarity is not None and c.similarity >= floor]
    kept.sort(key=lambda c: (-c.score, -(c.similarity or 0.0)))
    hits = await _hits(session, kept[:top_k])
    return SearchResponse(
        hits=hits,
        embedding_model=kb.embedding_model,
        search=how,
        took_ms=round((time.perf_counter() - started) * 1000, 2),
    )


async def _embed_query(
    tenant_id: uuid.UUID, model: str, query: str, endpoint: OpenAIEndpoint | None
) -> list[float]:
    caching = get_settings().query_embedding_cache_size > 0
    key = key_of(tenant_id, model, endpoint.base_url if endpoint else None, query)
    if caching and (known := query_vectors.get(key)) is not None:
        return known
    try:
        vector = (await embed_texts(model, [query], endpoint))[0]
    except EmbeddingError as exc:
        raise SearchFailed(exc.reason) from exc
    if caching:
        query_vectors.put(key, vector)
    return vector


def _fuse(
    candidates: dict[uuid.UUID, _Candidate],
    ranked: list[tuple[uuid.UUID, float]],
    field: Literal["similarity", "text_rank"],
    weight: float,
) -> None:
    for rank, (chunk_id, value) in enumerate(ranked, start=1):
        candidate = candidates.setdefault(chunk_id, _Candidate(chunk_id))
        setattr(candidate, field, value)
        candidate.score += weight / (RRF_K + rank)


def vector_literal(vector: list[float]) -> str:
    """A vector in pgvector's text form, as searches send it."""
    return _literal_format(len(vector)) % tuple(vector)


@lru_cache(maxsize=8)
def _literal_format(dimension: int) -> str:
    """One format for a whole vector: about half the time of formatting each number alone."""
    return "[" + ",".join(["%.7g"] * dimension) + "]"


async def vector_search(
    session: AsyncSession, kb: KnowledgeBase, vector: list[float], limit: int
) -> tuple[list[tuple[uuid.UUID, float]], Literal["exact", "hnsw"]]:
    """The `limit` nearest passages and their similarities, through the database function
    `parley_vector_search` (see its migration): one statement, planned for this knowledge
    base on every call."""
    dimension = INDEXED_MODELS.get(kb.embedding_model)
    params = {
        "kb": kb.id,
        "model": kb.embedding_model,
        "q": vector_literal(vector),
        "n": limit,
        "dimension": None,
        "ef_search": None,
        "iterative": False,
    }
    if dimension is not None and dimension == len(vector):
        exact_max = get_settings().exact_search_max_chunks
        size = await _size(session, kb, exact_max + 1)
        if size > exact_max:
            hnsw = params | {
                "dimension": dimension,
                "ef_search": max(get_settings().hnsw_ef_search, limit),
                "iterative": await _has_iterative_scan(session),
            }
            rows = await _search(session, hnsw)
            if len(rows) >= min(limit, size):
                return rows, "hnsw"
    return await _search(session, params), "exact"


async def _size(session: AsyncSession, kb: KnowledgeBase, cap: int) -> int:
    """The knowledge base's vector count (up to `cap`), counted by this process at most once
    in PARLEY_SEARCH_SIZE_CACHE_SECONDS."""
    ttl = get_settings().search_size_cache_seconds
    key = (kb.id, kb.embedding_model, cap)
    if ttl > 0 and (known := kb_sizes.get(key, ttl)) is not None:
        return known
    count = await session.scalar(
        text(_COUNT), {"kb": kb.id, "model": kb.embedding_model, "cap": cap}
    )
    size = int(count or 0)
    if ttl > 0:
        kb_sizes.put(key, size)
    return size


async def _search(
    session: AsyncSession, params: dict[str, object]
) -> list[tuple[uuid.UUID, float]]:
    rows = await session.execute(
        text(
            "SELECT chunk_id, similarity FROM parley_vector_search("
            ":kb, :model, :q, :n, :dimension, :ef_search, :iterative)"
        ),
        params,
    )
    return [(r[0], float(r[1])) for r in rows]


async def _has_iterative_scan(session: AsyncSession) -> bool:
    """pgvector 0.8 and newer can keep scanning the index until the filter is satisfied."""
    global _pgvector_iterative
    if _pgvector_iterative is None:
        version = await session.scalar(
            text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        )
        parts = tuple(int(p) for p in str(version or "0").split(".")[:2] if p.isdigit())
        _pgvector_iterative = parts >= (0, 8)
    return _pgvector_iterative


async def text_search(
    session: AsyncSession, kb: KnowledgeBase, query: str, vector: list[float], limit: int
) -> list[tuple[uuid.UUID, float, float | None]]:
    """The best full-text matches, with their rank and, in the same statement, their cosine
    similarity to `vector` (None for a passage without a vector of the model)."""
    rows = await session.execute(
        text(
            "SELECT t.id, t.rank, 1 - (e.embedding <=> CAST(:q AS vector)) FROM ("
            "  SELECT c.id, ts_rank(c.tsv, q) AS rank "
            "  FROM knowledge_chunks c, "
            "  to_tsquery(CAST(:lang AS regconfig), "
            "    replace(plainto_tsquery(CAST(:lang AS regconfig), :query)::text, ' & ', ' | ')) q "
            "  WHERE c.knowledge_base_id = :kb AND c.tsv @@ q "
            "  ORDER BY rank DESC, c.id LIMIT :n"
            ") t LEFT JOIN knowledge_chunk_embeddings e ON e.chunk_id = t.id "
            "  AND e.knowledge_base_id = :kb AND e.model = :model "
            "ORDER BY t.rank DESC, t.id"
        ),
        {
            "lang": kb.language,
            "query": query,
            "kb": kb.id,
            "n": limit,
            "q": vector_literal(vector),
            "model": kb.embedding_model,
        },
    )
    return [(r[0], float(r[1]), None if r[2] is None else float(r[2])) for r in rows]


async def _hits(session: AsyncSession, ranked: list[_Candidate]) -> list[SearchHit]:
    if not ranked:
        return []
    rows = await session.execute(
        text(
            "SELECT c.id, c.text, c.page, c.heading_path, d.id, d.source_id, d.title, d.url, "
            "d.filename FROM knowledge_chunks c JOIN knowledge_documents d ON d.id = c.document_id "
            "WHERE c.id = ANY(:ids)"
        ),
        {"ids": [c.chunk_id for c in ranked]},
    )
    details = {r[0]: r for r in rows}
    hits = []
    for candidate in ranked:
        row = details.get(candidate.chunk_id)
        if row is None:
            continue
        hits.append(
            SearchHit(
                chunk_id=candidate.chunk_id,
                text=row[1],
                score=round(candidate.score, 6),
                similarity=round(candidate.similarity or 0.0, 6),
                text_rank=candidate.text_rank,
                citation=Citation(
                    document_id=row[4],
                    source_id=row[5],
                    title=row[6],
                    url=row[7],
                    filename=row[8],
                    page=row[2],
                    heading_path=list(row[3] or []),
                ),
            )
        )
    return hits
