"""Vector search of knowledge bases above the exact-search size: the HNSW branch.

Chunk embeddings are hash-partitioned by knowledge base; a search must read one partition only,
and return what an exact search returns.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from backend.config import get_settings
from backend.db import PendingJob, unit_of_work
from backend.knowledge import retrieval
from backend.models import KnowledgeBase
from tests.factories.accounts import Account
from tests.factories.knowledge import add_text, create_kb, run_jobs
from tests.factories.tenancy import make_workspace

TOPICS = [
    "Parrots can live for more than fifty years in captivity.",
    "The office closes at six in the evening on Fridays.",
    "Invoices are sent on the first working day of each month.",
    "A standing desk costs 650 euros and is ordered by facilities.",
    "Passwords must be changed every ninety days.",
    "The cafeteria serves vegetarian lunch on Wednesdays.",
    "Parcels to Norway take five to seven days to arrive.",
    "Laptops are replaced every three years by the IT desk.",
]


async def _knowledge_of_topics(
    client: AsyncClient, recorded_jobs: list[PendingJob]
) -> tuple[Account, uuid.UUID]:
    """A workspace whose knowledge base holds TOPICS, one passage each, ingested."""
    owner = await make_workspace()
    kb_id = await create_kb(client, owner)
    for number, topic in enumerate(TOPICS):
        await add_text(client, owner, kb_id, topic, title=f"Note {number}")
    assert all(r.startswith("ready:") for r in await run_jobs(recorded_jobs))
    return owner, kb_id


async def _search(
    client: AsyncClient, headers: dict[str, str], kb_id: uuid.UUID, query: str
) -> dict[str, Any]:
    response = await client.post(
        f"/api/v1/knowledge-bases/{kb_id}/search",
        json={"query": query, "mode": "vector", "top_k": 5, "threshold": -1},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_hnsw_search_reads_one_partition_and_matches_exact_search(
    client: AsyncClient, recorded_jobs: list[PendingJob]
) -> None:
    owner, kb_id = await _knowledge_of_topics(client, recorded_jobs)
    question = "how long does a parcel to Norway take?"

    exact = await _search(client, owner.headers(), kb_id, question)
    settings = get_settings()
    saved = settings.exact_search_max_chunks
    settings.exact_search_max_chunks = 0
    try:
        hnsw = await _search(client, owner.headers(), kb_id, question)
    finally:
        settings.exact_search_max_chunks = saved

    assert exact["search"] == "exact"
    assert hnsw["search"] == "hnsw"
    assert len(hnsw["hits"]) == 5
    assert "Norway" in hnsw["hits"][0]["text"]
    assert [h["chunk_id"] for h in hnsw["hits"]] == [h["chunk_id"] for h in exact["hits"]]

    async with unit_of_work(tenant_id=owner.tenant_id) as session:
        kb = await session.get(KnowledgeBase, kb_id)
        assert kb is not None
        settings.exact_search_max_chunks = 0
        before = await _index_scans(session)
        try:
            rows, how = await retrieval.vector_search(session, kb, [0.05] * 384, 60)
        finally:
            settings.exact_search_max_chunks = saved
        # The search set its settings for the transaction, in the same statement.
        in_effect = await session.execute(
            text(
                "SELECT current_setting('hnsw.ef_search'), "
                "current_setting('hnsw.iterative_scan', true)"
            )
        )
        ef_search, iterative = in_effect.one()
        scanned = _scanned(before, await _index_scans(session))
    assert how == "hnsw"
    assert len(rows) == len(TOPICS)
    assert ef_search == str(max(settings.hnsw_ef_search, 60))
    assert iterative == "strict_order"  # the test server has pgvector 0.8
    # One partition only (the size check may also read its B-tree index), through its HNSW index.
    partition = await _partition_of(owner, kb_id)
    assert {table for table, _ in scanned} == {partition}, scanned
    assert scanned[(partition, "hnsw")] == 1


async def _partition_of(owner: Account, kb_id: uuid.UUID) -> str:
    async with unit_of_work(tenant_id=owner.tenant_id) as session:
        partition = await session.scalar(
            text(
                "SELECT tableoid::regclass::text FROM knowledge_chunk_embeddings "
                "WHERE knowledge_base_id = :kb LIMIT 1"
            ),
            {"kb": kb_id},
        )
    assert str(partition).startswith("knowledge_chunk_embeddings_p")
    return str(partition)


async def _index_scans(session: AsyncSession) -> dict[tuple[str, str], int]:
    """Scans of each chunk-embedding index by this backend: (table, access method) -> scans.

    PostgreSQL reports a backend's counts not yet sent with it, which may include earlier
    transactions', so compare two readings within one transaction."""
    rows = await session.execute(
        text(
            "SELECT t.relname, a.amname, pg_stat_get_xact_numscans(i.oid) "
            "FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
            "JOIN pg_class t ON t.oid = x.indrelid JOIN pg_am a ON a.oid = i.relam "
            "WHERE t.relname LIKE 'knowledge_chunk_embeddings%'"
        )
    )
    scans: dict[tuple[str, str], int] = {}
    for table, method, count in rows:
        scans[(table, method)] = scans.get((table, method), 0) + int(count)
    return scans


def _scanned(
    before: dict[tuple[str, str], int], after: dict[tuple[str, str], int]
) -> dict[tuple[str, str], int]:
    return {key: n - before.get(key, 0) for key, n in after.items() if n != before.get(key, 0)}


async def test_repeated_searches_keep_using_their_own_plan(
    client: AsyncClient, recorded_jobs: list[PendingJob]
) -> None:
    """A prepared statement may switch to a generic plan after five runs, and a generic plan
    may sort a big knowledge base whole instead of reading its partition's HNSW index. The
    search function plans its statement on every call, so every run must use the index."""
    owner, kb_id = await _knowledge_of_topics(client, recorded_jobs)
    settings = get_settings()
    saved = settings.exact_search_max_chunks
    async with unit_of_work(tenant_id=owner.tenant_id) as session:
        kb = await session.get(KnowledgeBase, kb_id)
        assert kb is not None
        before = await _index_scans(session)
        try:
            settings.exact_search_max_chunks = 0
            for number in range(12):
                vector = [0.05] * 383 + [number / 12]
                rows, how = await retrieval.vector_search(session, kb, vector, 40)
                assert (how, len(rows)) == ("hnsw", len(TOPICS))
        finally:
            settings.exact_search_max_chunks = saved
        scanned = _scanned(before, await _index_scans(session))
    partition = await _partition_of(owner, kb_id)
    assert {table for table, _ in scanned} == {partition}, scanned
    assert scanned[(partition, "hnsw")] == 12


async def test_a_search_for_more_rows_than_ef_search_raises_it(
    client: AsyncClient, recorded_jobs: list[PendingJob]
) -> None:
    owner, kb_id = await _knowledge_of_topics(client, recorded_jobs)
    settings = get_settings()
    saved = settings.exact_search_max_chunks
    found: dict[int, str | None] = {}
    try:
        settings.exact_search_max_chunks = 0
        for limit in (40, settings.hnsw_ef_search + 100):
            async with unit_of_work(tenant_id=owner.tenant_id) as session:
                kb = await session.get(KnowledgeBase, kb_id)
                assert kb is not None
                rows, how = await retrieval.vector_search(session, kb, [0.05] * 384, limit)
                assert (how, len(rows)) == ("hnsw", len(TOPICS))
                found[limit] = await session.scalar(
                    text("SELECT current_setting('hnsw.ef_search')")
                )
    finally:
        settings.exact_search_max_chunks = saved
    assert found == {
        40: str(settings.hnsw_ef_search),
        settings.hnsw_ef_search + 100: str(settings.hnsw_ef_search + 100),
    }


async def test_without_iterative_scans_a_search_still_returns_k_rows(
    client: AsyncClient, recorded_jobs: list[PendingJob], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on pgvector before 0.8 (the embedded server of `make run`): the function leaves the
    setting alone, and a filtered index scan that comes back short falls back to exact."""
    owner, kb_id = await _knowledge_of_topics(client, recorded_jobs)
    monkeypatch.setattr(retrieval, "_pgvector_iterative", False)
    monkeypatch.setattr(get_settings(), "exact_search_max_chunks", 0)
    async with unit_of_work(tenant_id=owner.tenant_id) as session:
        kb = await session.get(KnowledgeBase, kb_id)
        assert kb is not None
        rows, _ = await retrieval.vector_search(session, kb, [0.05] * 384, 40)
        iterative = await session.scalar(
            text("SELECT current_setting('hnsw.iterative_scan', true)")
        )
        monkeypatch.setattr(get_settings(), "exact_search_max_chunks", 100)
        exact, how = await retrieval.vector_search(session, kb, [0.05] * 384, 40)
    assert iterative in (None, "", "off")
    assert how == "exact"
    assert len(rows) == len(TOPICS)
    assert sorted(r[0] for r in rows) == sorted(r[0] for r in exact)


async def test_a_counted_size_is_trusted_for_a_while(
    client: AsyncClient, recorded_jobs: list[PendingJob]
) -> None:
    owner, kb_id = await _knowledge_of_topics(client, recorded_jobs)
    settings = get_settings()
    saved = settings.exact_search_max_chunks, settings.search_size_cache_seconds
    retrieval.kb_sizes.clear()
    try:
        settings.exact_search_max_chunks = 0
        async with unit_of_work(tenant_id=owner.tenant_id) as session:
            kb = await session.get(KnowledgeBase, kb_id)
            assert kb is not None
            _, counted = await retrieval.vector_search(session, kb, [0.05] * 384, 40)
            cached = retrieval.kb_sizes.get((kb.id, kb.embedding_model, 1), ttl=60)
            # As if the knowledge base had been empty when this process counted it.
            retrieval.kb_sizes.put((kb.id, kb.embedding_model, 1), 0)
            trusted_rows, trusted = await retrieval.vector_search(session, kb, [0.05] * 384, 40)
            settings.search_size_cache_seconds = 0
            _, recounted = await retrieval.vector_search(session, kb, [0.05] * 384, 40)
    finally:
        settings.exact_search_max_chunks, settings.search_size_cache_seconds = saved
        retrieval.kb_sizes.clear()
    assert (counted, cached) == ("hnsw", 1)  # counted up to the cap: exact_max + 1
    assert (trusted, len(trusted_rows)) == ("exact", len(TOPICS))
    assert recounted == "hnsw"


def test_size_cache_forgets_old_and_least_recently_used_sizes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    cache = retrieval._SizeCache(limit=2)
    a, b, c = ((uuid.uuid4(), "m", 1) for _ in range(3))
    cache.put(a, 10)
    cache.put(b, 20)
    assert cache.get(a, ttl=60) == 10  # a is now the most recent
    cache.put(c, 30)
    assert (cache.get(a, ttl=60), cache.get(b, ttl=60), cache.get(c, ttl=60)) == (10, None, 30)
    now[0] += 59.9
    assert cache.get(a, ttl=60) == 10
    now[0] += 0.1
    assert cache.get(a, ttl=60) is None
    assert cache.get(c, ttl=120) == 30


async def test_hybrid_text_weight_sets_how_much_full_text_counts(
    client: AsyncClient, recorded_jobs: list[PendingJob]
) -> None:
    owner, kb_id = await _knowledge_of_topics(client, recorded_jobs)
    # Full text finds "day" in three passages, which vectors rank far apart; vectors rank all.
    question = "how many days until my password expires?"

    async def ranked(mode: str) -> list[str]:
        response = await client.post(
            f"/api/v1/knowledge-bases/{kb_id}/search",
            json={"query": question, "mode": mode, "top_k": 8, "threshold": -1},
            headers=owner.headers(),
        )
        assert response.status_code == 200, response.text
        return [h["chunk_id"] for h in response.json()["hits"]]

    settings = get_settings()
    saved = settings.hybrid_text_weight
    try:
        settings.hybrid_text_weight = 0.0
        without_text = await ranked("hybrid")
        settings.hybrid_text_weight = 5.0
        text_first = await ranked("hybrid")
    finally:
        settings.hybrid_text_weight = saved
    vector, text_only = await ranked("vector"), await ranked("text")
    assert len(text_only) == 3
    assert set(text_only) != set(vector[:3]), "the weight would change nothing here"
    assert without_text == vector
    assert set(text_first[:3]) == set(text_only)


async def test_full_text_matches_come_with_their_similarity(
    client: AsyncClient, recorded_jobs: list[PendingJob]
) -> None:
    """The full-text statement also returns each match's cosine similarity to the query vector
    (so no second statement is needed), equal to the one vector search computes."""
    owner, kb_id = await _knowledge_of_topics(client, recorded_jobs)
    vector = [0.05] * 384
    async with unit_of_work(tenant_id=owner.tenant_id) as session:
        kb = await session.get(KnowledgeBase, kb_id)
        assert kb is not None
        matches = await retrieval.text_search(session, kb, "days", vector, 10)
        by_vector, how = await retrieval.vector_search(session, kb, vector, len(TOPICS))
    assert how == "exact"
    similarity = dict(by_vector)
    assert len(matches) == 3  # "days", "day", "days": the three passages naming days
    for chunk_id, rank, text_similarity in matches:
        assert rank > 0
        assert text_similarity is not None
        assert abs(text_similarity - similarity[chunk_id]) < 1e-6
