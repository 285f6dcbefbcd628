"""Vector search of knowledge bases above the exact-search size: the HNSW branch.

Chunk embeddings are hash-partitioned by knowledge base; a search must read one partition only,
and return what an exact search returns.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from httpx import AsyncClient
from sqlalchemy import text

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


def _relations(plan: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(plan, dict):
        if "Relation Name" in plan:
            found.add(plan["Relation Name"])
        for value in plan.values():
            found |= _relations(value)
    elif isinstance(plan, list):
        for item in plan:
            found |= _relations(item)
    return found


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
        try:
            rows, how = await retrieval.vector_search(session, kb, [0.05] * 384, 60)
        finally:
            settings.exact_search_max_chunks = saved
        # The size check set the search's settings for the transaction, in the same statement.
        in_effect = await session.execute(
            text(
                "SELECT current_setting('hnsw.ef_search'), current_setting('plan_cache_mode'), "
                "current_setting('hnsw.iterative_scan', true)"
            )
        )
        ef_search, plan_cache_mode, iterative = in_effect.one()
    assert how == "hnsw"
    assert len(rows) == len(TOPICS)
    assert ef_search == str(max(settings.hnsw_ef_search, 60))
    assert plan_cache_mode == "force_custom_plan"
    assert iterative == "strict_order"  # the test server has pgvector 0.8

    async with unit_of_work(tenant_id=owner.tenant_id) as session:
        partition = await session.scalar(
            text(
                "SELECT tableoid::regclass::text FROM knowledge_chunk_embeddings "
                "WHERE knowledge_base_id = :kb LIMIT 1"
            ),
            {"kb": kb_id},
        )
        await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
        plan = await session.scalar(
            text("EXPLAIN (FORMAT JSON) " + retrieval.hnsw_statement(384)),
            {"kb": kb_id, "model": "local:all-MiniLM-L6-v2", "q": str([0.05] * 384), "n": 40},
        )
    plan = json.loads(plan) if isinstance(plan, str) else plan
    assert str(partition).startswith("knowledge_chunk_embeddings_p")
    assert _relations(plan) == {partition}, plan


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
