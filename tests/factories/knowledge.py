"""Knowledge bases, sources and documents for tests, and running their queued jobs in-process."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from httpx import AsyncClient

from backend.db import PendingJob
from backend.jobs import get_arq_pool
from backend.knowledge import tasks
from tests.factories.accounts import Account

TASKS: dict[str, Callable[..., Awaitable[Any]]] = {
    "ingest_document": tasks.ingest_document,
    "sync_source": tasks.sync_source,
    "reembed_knowledge_base": tasks.reembed_knowledge_base,
    "delete_originals": tasks.delete_originals,
}


async def create_kb(client: AsyncClient, owner: Account, **fields: Any) -> uuid.UUID:
    body = {"name": f"KB {uuid.uuid4().hex[:8]}", **fields}
    response = await client.post("/api/v1/knowledge-bases", json=body, headers=owner.headers())
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["id"])


async def add_text(
    client: AsyncClient, owner: Account, kb_id: uuid.UUID, text: str, title: str = "Notes"
) -> tuple[uuid.UUID, uuid.UUID]:
    """A text source with one document; returns (source id, document id)."""
    response = await client.post(
        f"/api/v1/knowledge-bases/{kb_id}/sources",
        json={"kind": "text", "title": title, "text": text},
        headers=owner.headers(),
    )
    assert response.status_code == 201, response.text
    source_id = uuid.UUID(response.json()["id"])
    documents = await client.get(
        f"/api/v1/knowledge-bases/{kb_id}/documents?source_id={source_id}", headers=owner.headers()
    )
    return source_id, uuid.UUID(documents.json()["items"][0]["id"])


async def add_url_source(
    client: AsyncClient, owner: Account, kb_id: uuid.UUID, url: str = "https://example.com/page"
) -> uuid.UUID:
    response = await client.post(
        f"/api/v1/knowledge-bases/{kb_id}/sources",
        json={"kind": "url", "url": url},
        headers=owner.headers(),
    )
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["id"])


async def run_jobs(jobs: list[PendingJob], *, only: tuple[str, ...] = tuple(TASKS)) -> list[Any]:
    """Run the recorded jobs of the knowledge tasks, and the ones they queue, until none are left.

    Other recorded jobs (emails) stay in the list.
    """
    results: list[Any] = []
    ctx = {"redis": await get_arq_pool()}
    while True:
        runnable = [job for job in jobs if job.function in only]
        if not runnable:
            return results
        for job in runnable:
            jobs.remove(job)
            kwargs = {k: v for k, v in job.kwargs.items() if not k.startswith("_")}
            results.append(await TASKS[job.function](ctx, *job.args, **kwargs))
