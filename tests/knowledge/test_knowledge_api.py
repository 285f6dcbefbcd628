"""Knowledge bases end to end: upload or add content, ingest with the real pipeline and the local
model, search with citations; re-ingestion, web sources, hostile files, deletion and quotas."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select

from backend.config import PlanLimits, get_settings
from backend.db import PendingJob, unit_of_work
from backend.knowledge import pipeline
from backend.models import Chunk, ChunkEmbedding
from tests.factories.accounts import Account
from tests.factories.knowledge import add_text, create_kb, run_jobs
from tests.factories.tenancy import make_workspace
from tests.knowledge.sites import LoopbackSite, html_page

HANDBOOK = b"""# Employee handbook

## Holidays

Every employee gets 28 days of paid holiday a year. Unused days carry over until March.

## Equipment

Laptops are replaced every three years. Broken equipment is reported to the IT desk.

| Item | Owner | Budget |
| --- | --- | --- |
| Monitor | IT desk | 300 EUR |
| Standing desk | Facilities | 650 EUR |
"""


def _kb(kb_id: uuid.UUID) -> str:
    return f"/api/v1/knowledge-bases/{kb_id}"


async def _upload(
    client: AsyncClient, owner: Account, kb_id: uuid.UUID, name: str, data: bytes
) -> dict[str, Any]:
    response = await client.post(
        f"{_kb(kb_id)}/documents",
        files=[("files", (name, data, "application/octet-stream"))],
        headers=owner.headers(),
    )
    assert response.status_code == 202, response.text
    document: dict[str, Any] = response.json()[0]
    assert document["status"] == "queued"
    return document


async def _document(
    client: AsyncClient, owner: Account, kb_id: uuid.UUID, document_id: object
) -> dict[str, Any]:
    response = await client.get(f"{_kb(kb_id)}/documents/{document_id}", headers=owner.headers())
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _search(
    client: AsyncClient, owner: Account, kb_id: uuid.UUID, query: str, **extra: Any
) -> list[dict[str, Any]]:
    response = await client.post(
        f"{_kb(kb_id)}/search", json={"query": query, **extra}, headers=owner.headers()
    )
    assert response.status_code == 200, response.text
    hits: list[dict[str, Any]] = response.json()["hits"]
    return hits


async def _chunk_count(document_id: object, tenant_id: uuid.UUID | None) -> int:
    async with unit_of_work(tenant_id=tenant_id) as session:
        count = await session.scalar(
            select(func.count()).select_from(Chunk).where(Chunk.document_id == document_id)
        )
    return int(count or 0)


async def test_upload_ingest_and_search_with_citation(
    client: AsyncClient, recorded_jobs: list[PendingJob]
) -> None:
    owner = await make_workspace()
    kb_id = await create_kb(client, owner)
    document = await _upload(client, owner, kb_id, "handbook.bin", HANDBOOK)

    results = await run_jobs(recorded_jobs)
    assert results, "no ingestion job ran"
    assert results[0].startswith("ready:"), results
    ready = await _document(client, owner, kb_id, document["id"])
    assert ready["status"] == "ready", ready
    assert ready["chunks_total"] == ready["chunks_done"] > 0

    hits = await _search(client, owner, kb_id, "how many vacation days do I get?")
    assert hits, "the holiday passage was not found"
    top = hits[0]
    assert "28 days" in top["text"]
    assert top["citation"]["filename"] == "handbook.bin"
    assert top["citation"]["heading_path"][-1] == "Holidays"
    assert top["similarity"] >= 0.2

    # A question about a table cell finds the row, with the header kept.
    table_hits = await _search(client, owner, kb_id, "standing desk budget")
    assert any("650" in h["text"] and "Budget" in h["text"] for h in table_hits), table_hits


async def test_full_text_hits_carry_the_same_similarity_as_vector_hits(
    client: AsyncClient, recorded_jobs: list[PendingJob]
) -> None:
    """Full-text matches get their cosine similarity in the statement that finds them; it is
    the one vector search reports for the same passage, and the threshold applies to it."""
    owner = await make_workspace()
    kb_id = await create_kb(client, owner)
    await add_text(client, owner, kb_id, HANDBOOK.decode())
    assert (await run_jobs(recorded_jobs))[0].startswith("ready:")
    question = "how many vacation days do I get?"
    by_text = await _search(client, owner, kb_id, question, mode="text", threshold=0.0, top_k=20)
    by_vector = await _search(
        client, owner, kb_id, question, mode="vector", threshold=0.0, top_k=20
    )
    vector_similarity = {h["chunk_id"]: h["similarity"] for h in by_vector}
    shared = [h for h in by_text if h["chunk_id"] in vector_similarity]
    assert shared, (by_text, by_vector)
    for hit in shared:
        assert hit["text_rank"] is not None
        assert hit["text_rank"] > 0
        assert hit["similarity"] == pytest.approx(vector_similarity[hit["chunk_id"]], abs=1e-6)
    floor = max(h["similarity"] for h in by_text) - 1e-6
    strict = await _search(client, owner, kb_id, question, mode="text", threshold=floor)
    assert strict
    assert all(h["similarity"] >= floor for h in strict)
    assert len(strict) < len(by_text) or len(by_text) == 1


async def test_reingesting_an_unchanged_document_embeds_nothing(
    client: AsyncClient, recorded_jobs: list[PendingJob]
) -> None:
    owner = await make_workspace()
    kb_id = await create_kb(client, owner)
    _, document_id = await add_text(client, owner, kb_id, HANDBOOK.decode())
    first = await run_jobs(recorded_jobs)
    assert first[0].startswith("ready:")
    chunks_before = await _chunk_count(document_id, owner.tenant_id)

    again = await client.post(
        f"{_kb(kb_id)}/documents/{document_id}/reprocess", headers=owner.headers()
    )
    assert again.status_code == 202
    second = await run_jobs(recorded_jobs)
    assert second == [f"ready: {chunks_before} chunks, 0 embedded"]
    assert await _chunk_count(document_id, owner.tenant_id) == chunks_before


@pytest.mark.usefixtures("loopback_fetching")
async def test_changed_page_reembeds_only_what_changed(
    client: AsyncClient, recorded_jobs: list[PendingJob]
) -> None:
    owner = await make_workspace()
    kb_id = await create_kb(client, owner)
    sections = [f"<h2>Topic {i}</h2><p>{f'Fact number {i} is true. ' * 12}</p>" for i in range(6)]
    async with LoopbackSite() as site:
        site.page("/guide", html_page("Guide", body="".join(sections)))
        created = await client.post(
            f"{_kb(kb_id)}/sources",
            json={"kind": "url", "url": site.url("/guide"), "sync_interval_minutes": 60},
            headers=owner.headers(),
        )
        assert created.status_code == 201, created.text
        source = created.json()
        assert source["next_sync_at"] is not None
        first = await run_jobs(recorded_jobs)
        assert first[0].startswith("ready:"), first
        total = int(first[0].split()[1])

        # One section changes, one vanishes: only the changed one is embedded again.
        sections[2] = "<h2>Topic 2</h2><p>This section was rewritten entirely.</p>"
        del sections[4]
        site.page("/guide", html_page("Guide", body="".join(sections)))
        synced = await client.post(
            f"{_kb(kb_id)}/sources/{source['id']}/sync", headers=owner.headers()
        )
        assert synced.status_code == 202
        second = await run_jobs(recorded_jobs)
    assert second[0].startswith("ready:"), second
    embedded = int(second[0].rsplit(", ", 1)[1].split()[0])
    assert 1 <= embedded < total, second
    hits = await _search(client, owner, kb_id, "which section was rewritten?")
    assert "rewritten entirely" in hits[0]["text"]
    assert hits[0]["citation"]["url"] == site.url("/guide")
    gone = await _search(client, owner, kb_id, "fact number 4", mode="text")
    assert not any("number 4 " in h["text"] for h in gone), gone


async def test_hostile_files_fail_with_a_reason_and_others_carry_on(
    client: AsyncClient, recorded_jobs: list[PendingJob]
) -> None:
    owner = await make_workspace()
    kb_id = await create_kb(client, owner)
    empty = await _upload(client, owner, kb_id, "empty.pdf", b"")
    binary = await _upload(client, owner, kb_id, "photo.pdf", b"\x7fELF\x02\x01\x01" + bytes(4096))
    corrupt = await _upload(
        client, owner, kb_id, "broken.pdf", b"%PDF-1.7\n" + b"\x00garbage" * 500
    )
    good = await _upload(client, owner, kb_id, "notes.txt", b"The office opens at nine.")
    await run_jobs(recorded_jobs)

    for bad in (empty, binary, corrupt):
        state = await _document(client, owner, kb_id, bad["id"])
        assert state["status"] == "failed", state
        assert state["error"], state
        assert len(state["error"]) > 15, state
    assert (await _document(client, owner, kb_id, good["id"]))["status"] == "ready"


async def test_upload_over_the_limit_is_refused_before_reading(client: AsyncClient) -> None:
    owner = await make_workspace()
    kb_id = await create_kb(client, owner)
    declared = 200 * 1024 * 1024
    response = await client.post(
        f"{_kb(kb_id)}/documents",
        content=b"x" * 1024,
        headers={
            **owner.headers(),
            "content-type": "multipart/form-data; boundary=abc",
            "content-length": str(declared),
        },
    )
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


async def test_deleting_a_document_removes_its_chunks(
    client: AsyncClient, recorded_jobs: list[PendingJob]
) -> None:
    owner = await make_workspace()
    kb_id = await create_kb(client, owner)
    _, document_id = await add_text(client, owner, kb_id, "Parrots can live for eighty years.")
    await run_jobs(recorded_jobs)
    assert await _chunk_count(document_id, owner.tenant_id) > 0
    deleted = await client.delete(f"{_kb(kb_id)}/documents/{document_id}", headers=owner.headers())
    assert deleted.status_code == 204
    assert await _chunk_count(document_id, owner.tenant_id) == 0
    async with unit_of_work(tenant_id=owner.tenant_id) as session:
        vectors = await session.scalar(
            select(func.count())
            .select_from(ChunkEmbedding)
            .where(ChunkEmbedding.knowledge_base_id == kb_id)
        )
    assert vectors == 0
    assert await _search(client, owner, kb_id, "how long do parrots live") == []
    removed = await run_jobs(recorded_jobs)
    assert removed == [1]  # the stored original is deleted too


async def test_qa_pairs_are_answered(client: AsyncClient, recorded_jobs: list[PendingJob]) -> None:
    owner = await make_workspace()
    kb_id = await create_kb(client, owner)
    response = await client.post(
        f"{_kb(kb_id)}/sources",
        json={
            "kind": "qa",
            "pairs": [
                {"question": "Do you ship to Norway?", "answer": "Yes, within 5 working days."},
                {"question": "Can I pay by invoice?", "answer": "Only business customers can."},
            ],
        },
        headers=owner.headers(),
    )
    assert response.status_code == 201, response.text
    await run_jobs(recorded_jobs)
    hits = await _search(client, owner, kb_id, "delivery to Norway")
    assert "5 working days" in hits[0]["text"]
    assert hits[0]["citation"]["heading_path"] == ["Do you ship to Norway?"]


async def test_document_quota_is_refused_with_402(client: AsyncClient) -> None:
    owner = await make_workspace()
    kb_id = await create_kb(client, owner)
    settings = get_settings()
    previous = settings.plans["free"]
    settings.plans["free"] = PlanLimits(max_documents=1, max_chunks=previous.max_chunks)
    try:
        await add_text(client, owner, kb_id, "first")
        refused = await client.post(
            f"{_kb(kb_id)}/sources",
            json={"kind": "text", "text": "second"},
            headers=owner.headers(),
        )
    finally:
        settings.plans["free"] = previous
    assert refused.status_code == 402
    assert "1 documents" in refused.json()["detail"]


async def test_bad_source_bodies_are_422(client: AsyncClient) -> None:
    owner = await make_workspace()
    kb_id = await create_kb(client, owner)
    for body in (
        {"kind": "url"},
        {"kind": "text"},
        {"kind": "qa", "pairs": []},
        {"kind": "text", "text": "x", "sync_interval_minutes": 60},
        {"kind": "url", "url": "ftp://example.com/file"},
        {"kind": "smoke-signals"},
    ):
        response = await client.post(f"{_kb(kb_id)}/sources", json=body, headers=owner.headers())
        assert response.status_code == 422, (body, response.text)
    unknown_model = await client.post(
        "/api/v1/knowledge-bases",
        json={"name": "x", "embedding_model": "magic:model"},
        headers=owner.headers(),
    )
    assert unknown_model.status_code == 422
    assert unknown_model.json()["fields"][0]["field"] == "embedding_model"


async def test_a_stopped_job_leaves_the_document_failed_not_processing(
    client: AsyncClient, recorded_jobs: list[PendingJob]
) -> None:
    owner = await make_workspace()
    kb_id = await create_kb(client, owner)
    words = " ".join(f"word{i}" for i in range(20000))
    _, document_id = await add_text(client, owner, kb_id, f"# Long\n\n{words}")
    job = next(j for j in recorded_jobs if j.function == "ingest_document")
    recorded_jobs.clear()
    tenant_id, doc, version, _ = job.args
    with pytest.raises(TimeoutError):
        # What ARQ does when a job passes its time limit: cancel it.
        await asyncio.wait_for(
            pipeline.ingest_document(uuid.UUID(tenant_id), uuid.UUID(doc), version), 0.3
        )
    state = await _document(client, owner, kb_id, document_id)
    assert state["status"] == "failed", state
    assert "stopped before it finished" in state["error"]


async def test_chunk_quota_fails_the_document_with_the_numbers(
    client: AsyncClient, recorded_jobs: list[PendingJob]
) -> None:
    owner = await make_workspace()
    kb_id = await create_kb(client, owner)
    settings = get_settings()
    previous = settings.plans["free"]
    settings.plans["free"] = PlanLimits(max_documents=previous.max_documents, max_chunks=2)
    try:
        _, document_id = await add_text(client, owner, kb_id, HANDBOOK.decode() * 3)
        await run_jobs(recorded_jobs)
    finally:
        settings.plans["free"] = previous
    state = await _document(client, owner, kb_id, document_id)
    assert state["status"] == "failed", state
    assert "up to 2 passages" in state["error"]
    assert await _chunk_count(document_id, owner.tenant_id) == 0
