"""A workspace's own OpenAI-compatible endpoint and key: stored encrypted, never shown, used for
its `openai:` knowledge bases instead of the platform's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet
from httpx import AsyncClient
from pydantic import SecretStr
from sqlalchemy import select

from backend.config import Settings, get_settings
from backend.db import PendingJob, unit_of_work
from backend.kit import crypto
from backend.models import TenantEmbeddingSettings
from tests.factories.knowledge import add_text, create_kb, run_jobs
from tests.factories.tenancy import make_workspace
from tests.knowledge.openai_standin import OpenAIStandIn

MODEL = "parley-tenant-embed"


@pytest.fixture
def platform_openai() -> Iterator[Settings]:
    """Parley's own OpenAI settings for the test; the stand-in's URL is filled in by the test."""
    settings = get_settings()
    saved = settings.model_copy()
    settings.openai_api_key = SecretStr("platform-key")
    settings.openai_embedding_model = MODEL
    settings.openai_embedding_dimension = 12
    yield settings
    for name in (
        "openai_base_url",
        "openai_api_key",
        "openai_embedding_model",
        "openai_embedding_dimension",
        "encryption_keys",
    ):
        setattr(settings, name, getattr(saved, name))


def test_secrets_survive_a_key_rotation(platform_openai: Settings) -> None:
    sealed = crypto.encrypt("sk-tenant-secret")
    assert "sk-tenant-secret" not in sealed
    old_keys = platform_openai.encryption_keys
    assert old_keys is not None
    newest = Fernet.generate_key().decode()
    platform_openai.encryption_keys = SecretStr(f"{newest},{old_keys.get_secret_value()}")
    assert crypto.decrypt(sealed) == "sk-tenant-secret"
    rotated = crypto.rotate(sealed)
    platform_openai.encryption_keys = SecretStr(newest)
    assert crypto.decrypt(rotated) == "sk-tenant-secret"
    with pytest.raises(crypto.SecretsUnavailable):
        crypto.decrypt(sealed)  # the old key is gone now


async def test_key_is_stored_encrypted_and_never_shown(client: AsyncClient) -> None:
    owner = await make_workspace()
    saved = await client.put(
        "/api/v1/embedding-settings",
        json={"openai_base_url": "https://llm.example.com/v1", "openai_api_key": "sk-abc-12345"},
        headers=owner.headers(),
    )
    assert saved.status_code == 200, saved.text
    assert "sk-abc" not in saved.text
    assert saved.json()["has_openai_api_key"] is True
    assert saved.json()["openai_api_key_hint"] == "2345"
    async with unit_of_work(tenant_id=owner.tenant_id) as session:
        row = await session.scalar(select(TenantEmbeddingSettings))
    assert row is not None
    assert row.openai_api_key_encrypted is not None
    assert "sk-abc" not in row.openai_api_key_encrypted
    # Changing only the URL keeps the stored key.
    moved = await client.put(
        "/api/v1/embedding-settings",
        json={"openai_base_url": "https://other.example.com/v1"},
        headers=owner.headers(),
    )
    assert moved.json()["has_openai_api_key"] is True
    cleared = await client.delete("/api/v1/embedding-settings", headers=owner.headers())
    assert cleared.status_code == 204
    shown = await client.get("/api/v1/embedding-settings", headers=owner.headers())
    assert shown.json() == {
        "openai_base_url": None,
        "has_openai_api_key": False,
        "openai_api_key_hint": None,
        "updated_at": None,
    }


async def test_each_workspace_embeds_with_its_own_key(
    client: AsyncClient, recorded_jobs: list[PendingJob], platform_openai: Settings
) -> None:
    async with OpenAIStandIn(dimension=12, model=MODEL, api_key="tenant-a-key") as server:
        platform_openai.openai_base_url = server.base_url
        own = await make_workspace()
        await client.put(
            "/api/v1/embedding-settings",
            json={"openai_base_url": server.base_url, "openai_api_key": "tenant-a-key"},
            headers=own.headers(),
        )
        platform = await make_workspace()
        for workspace in (own, platform):
            kb_id = await create_kb(client, workspace, embedding_model=f"openai:{MODEL}")
            await add_text(client, workspace, kb_id, "Deliveries arrive on Tuesdays.")
            workspace.extra_headers["x-test-kb"] = str(kb_id)
        results = await run_jobs(recorded_jobs)
        searched = await client.post(
            f"/api/v1/knowledge-bases/{own.extra_headers['x-test-kb']}/search",
            json={"query": "Deliveries arrive on Tuesdays.", "threshold": -1},
            headers=own.headers(),
        )
    # The workspace with its own key got its text embedded; the other one used the platform's
    # key, which this server refuses, and failed with a reason.
    assert results[0].startswith("ready:"), results
    assert results[1].startswith("failed:"), results
    assert searched.status_code == 200, searched.text
    assert searched.json()["hits"][0]["text"] == "Deliveries arrive on Tuesdays."
