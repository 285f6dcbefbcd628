"""Website sources (sitemap and crawl), the re-sync scheduler, and switching embedding models."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from pydantic import SecretStr
from sqlalchemy import func, select, update

from backend.config import get_settings
from backend.db import PendingJob, unit_of_work
from backend.knowledge import tasks
from backend.models import ChunkEmbedding, SourceSchedule
from tests.factories.knowledge import add_text, create_kb, run_jobs
from tests.factories.tenancy import make_workspace
from tests.knowledge.openai_standin import OpenAIStandIn
from tests.knowledge.sites import LoopbackSite, html_page, urlset


def _kb(kb_id: uuid.UUID) -> str:
    return f"/api/v1/knowledge-bases/{kb_id}"


async def _documents(
    client: AsyncClient, headers: dict[str, str], kb_id: uuid.UUID
) -> list[dict[str, Any]]:
    response = await client.get(f"{_kb(kb_id)}/documents?limit=200", headers=headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


@pytest.mark.usefixtures("loopback_fetching")
async def test_sitemap_source_adds_and_removes_pages(
    client: AsyncClient, recorded_jobs: list[PendingJob]
) -> None:
    owner = await make_workspace()
    kb_id = await create_kb(client, owner)
    async with LoopbackSite() as site:
        for name in ("alpha", "beta", "gamma"):
            site.page(
                f"/{name}", html_page(name, body=f"<p>The {name} page talks about {name}.</p>")
            )
        site.page("/robots.txt", b"User-agent: *\nAllow: /\n", content_type="text/plain")
        site.page(
            "/sitemap.xml",
            urlset([site.url(f"/{n}") for n in ("alpha", "beta", "gamma")]),
            content_type="application/xml",
        )
        created = await client.post(
            f"{_kb(kb_id)}/sources",
            json={"kind": "sitemap", "url": site.url("/sitemap.xml")},
            headers=owner.headers(),
        )
        assert created.status_code == 201, created.text
        results = await run_jobs(recorded_jobs)
        assert results[0] == "synced: 3 pages, 3 new, 0 removed", results
        documents = await _documents(client, owner.headers(), kb_id)
        assert sorted(d["status"] for d in documents) == ["ready"] * 3

        # gamma leaves the sitemap: the next sync deletes its document and passages.
        site.page(
            "/sitemap.xml",
            urlset([site.url("/alpha"), site.url("/beta")]),
            content_type="application/xml",
        )
        synced = await client.post(
            f"{_kb(kb_id)}/sources/{created.json()['id']}/sync", headers=owner.headers()
        )
        assert synced.status_code == 202
        results = await run_jobs(recorded_jobs)
    assert results[0] == "synced: 2 pages, 0 new, 1 removed", results
    # The unchanged pages answered 304 to the conditional re-fetch: nothing re-processed.
    assert all(r.startswith("unchanged") for r in results[1:]), results
    urls = sorted(d["url"] for d in await _documents(client, owner.headers(), kb_id))
    assert urls == [site.url("/alpha"), site.url("/beta")]


@pytest.mark.usefixtures("loopback_fetching")
async def test_crawl_source_follows_links_within_limits(
    client: AsyncClient, recorded_jobs: list[PendingJob]
) -> None:
    owner = await make_workspace()
    kb_id = await create_kb(client, owner)
    async with LoopbackSite() as site:
        site.page("/robots.txt", b"User-agent: *\nDisallow: /private\n", content_type="text/plain")
        site.page(
            "/",
            html_page(
                "Home",
                links=["/docs", "/private/secret", "/blog"],
                body="<p>Welcome to the shop.</p>",
            ),
        )
        site.page(
            "/docs", html_page("Docs", links=["/docs/deep"], body="<p>Returns take 30 days.</p>")
        )
        site.page("/docs/deep", html_page("Deep", body="<p>Too deep for the crawl.</p>"))
        site.page("/private/secret", html_page("Secret", body="<p>Robots keep this out.</p>"))
        site.page("/blog", html_page("Blog", body="<p>Excluded by pattern.</p>"))
        created = await client.post(
            f"{_kb(kb_id)}/sources",
            json={
                "kind": "crawl",
                "url": site.url("/"),
                "crawl": {"max_depth": 1, "max_pages": 10, "exclude": ["/blog*"]},
            },
            headers=owner.headers(),
        )
        assert created.status_code == 201, created.text
        await run_jobs(recorded_jobs)
        requested = site.paths_requested()
    urls = sorted(d["url"] for d in await _documents(client, owner.headers(), kb_id))
    assert urls == [site.url("/"), site.url("/docs")]
    assert "/private/secret" not in requested
    assert "/docs/deep" not in requested
    # Crawled pages were stored during the crawl and ingested without a second fetch.
    assert requested.count("/docs") == 1, requested
    hits = await client.post(
        f"{_kb(kb_id)}/search", json={"query": "how long do returns take"}, headers=owner.headers()
    )
    assert "30 days" in hits.json()["hits"][0]["text"]


@pytest.mark.usefixtures("loopback_fetching")
async def test_scheduler_queues_due_sources_once(
    client: AsyncClient, recorded_jobs: list[PendingJob]
) -> None:
    owner = await make_workspace()
    kb_id = await create_kb(client, owner)
    async with LoopbackSite() as site:
        site.page("/faq", html_page("FAQ", body="<p>We open at nine.</p>"))
        created = await client.post(
            f"{_kb(kb_id)}/sources",
            json={"kind": "url", "url": site.url("/faq"), "sync_interval_minutes": 30},
            headers=owner.headers(),
        )
        source_id = uuid.UUID(created.json()["id"])
        await run_jobs(recorded_jobs)
        async with unit_of_work(tenant_id=owner.tenant_id) as session:
            await session.execute(
                update(SourceSchedule)
                .where(SourceSchedule.source_id == source_id)
                .values(due_at=datetime.now(UTC) - timedelta(minutes=1))
            )
        assert await tasks.schedule_due_syncs({}) == 1
        assert [j.function for j in recorded_jobs] == ["ingest_document"]
        # Its next time moved on, so a second scheduler run does not queue it again.
        assert await tasks.schedule_due_syncs({}) == 0
        assert len(recorded_jobs) == 1
        results = await run_jobs(recorded_jobs)
    assert results == ["unchanged: the page was not modified"]
    source = await client.get(f"{_kb(kb_id)}/sources/{source_id}", headers=owner.headers())
    next_sync = datetime.fromisoformat(source.json()["next_sync_at"])
    assert next_sync > datetime.now(UTC) + timedelta(minutes=25)


async def test_switching_the_embedding_model_keeps_search_working(
    client: AsyncClient, recorded_jobs: list[PendingJob]
) -> None:
    owner = await make_workspace()
    kb_id = await create_kb(client, owner)
    await add_text(client, owner, kb_id, "# Shipping\n\nParcels to Norway take five days.")
    await run_jobs(recorded_jobs)
    settings = get_settings()
    saved = settings.model_copy()
    async with OpenAIStandIn(dimension=16, model="parley-test-embed") as server:
        settings.openai_base_url = server.base_url
        settings.openai_api_key = SecretStr(server.api_key)
        settings.openai_embedding_model = "parley-test-embed"
        settings.openai_embedding_dimension = 16
        try:
            changed = await client.patch(
                _kb(kb_id),
                json={"embedding_model": "openai:parley-test-embed"},
                headers=owner.headers(),
            )
            assert changed.status_code == 200, changed.text
            assert changed.json()["pending_embedding_model"] == "openai:parley-test-embed"
            assert changed.json()["embedding_model"] == "local:all-MiniLM-L6-v2"
            # Before the re-embedding runs, search still answers from the old vectors.
            before = await client.post(
                f"{_kb(kb_id)}/search",
                json={"query": "delivery to Norway"},
                headers=owner.headers(),
            )
            assert "five days" in before.json()["hits"][0]["text"]
            results = await run_jobs(recorded_jobs)
            assert results == ["switched from local:all-MiniLM-L6-v2 to openai:parley-test-embed"]
            after = await client.get(_kb(kb_id), headers=owner.headers())
            assert after.json()["embedding_model"] == "openai:parley-test-embed"
            assert after.json()["embedding_dimension"] == 16
            assert after.json()["pending_embedding_model"] is None
            searched = await client.post(
                f"{_kb(kb_id)}/search",
                json={"query": "Parcels to Norway take five days.", "threshold": -1},
                headers=owner.headers(),
            )
            assert searched.status_code == 200, searched.text
            assert searched.json()["embedding_model"] == "openai:parley-test-embed"
            assert searched.json()["hits"], searched.json()
        finally:
            for name in (
                "openai_base_url",
                "openai_api_key",
                "openai_embedding_model",
                "openai_embedding_dimension",
            ):
                setattr(settings, name, getattr(saved, name))
    async with unit_of_work(tenant_id=owner.tenant_id) as session:
        models = (
            (
                await session.execute(
                    select(ChunkEmbedding.model, func.count())
                    .where(ChunkEmbedding.knowledge_base_id == kb_id)
                    .group_by(ChunkEmbedding.model)
                )
            )
            .tuples()
            .all()
        )
    assert [m for m, _ in models] == ["openai:parley-test-embed"]
