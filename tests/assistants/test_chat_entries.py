"""The API process's entries for OpenAI-compatible callers (backend/assistants/chat_entries.py):
used while their listener listens, dropped by every change that could make them wrong."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from httpx import AsyncClient, Response
from sqlalchemy import select, text

from backend.assistants.chat_entries import EntryCache, entry_cache, stop_entry_cache
from backend.db import unit_of_work
from backend.models import ApiKey
from backend.tenancy.permissions import Permission
from tests.assistants.fixtures import PlanSetter, limits
from tests.factories.accounts import Account
from tests.factories.assistants import create_assistant
from tests.factories.responses import assert_error
from tests.factories.tenancy import make_workspace
from tests.factories.workspaces import create_api_key

QUESTION = [{"role": "user", "content": "Hello?"}]


@pytest.fixture
async def entries() -> AsyncIterator[EntryCache]:
    cache = entry_cache()
    await cache.start()
    assert cache.listening
    yield cache
    await stop_entry_cache()


async def _complete(client: AsyncClient, key: str, model: str) -> Response:
    return await client.post(
        "/v1/chat/completions",
        json={"model": model, "messages": QUESTION},
        headers={"Authorization": f"Bearer {key}"},
    )


async def _answered_twice(
    client: AsyncClient, entries: EntryCache, key: str, model: str
) -> dict[str, Any]:
    """Two replies; the second from the cache."""
    assert (await _complete(client, key, model)).status_code == 200
    hits = entries.hits
    second = await _complete(client, key, model)
    assert second.status_code == 200, second.text
    assert entries.hits == hits + 1
    body: dict[str, Any] = second.json()
    return body


async def _setup(client: AsyncClient) -> tuple[Account, dict[str, Any], Any]:
    owner = await make_workspace()
    assistant = await create_assistant(client, owner)
    key = await create_api_key(client, owner, [Permission.chat])
    return owner, assistant, key


async def test_a_known_caller_is_answered_from_the_cache_and_saved_as_before(
    client: AsyncClient, entries: EntryCache
) -> None:
    owner, assistant, key = await _setup(client)
    body = await _answered_twice(client, entries, key.key, assistant["name"])
    conversation = body["parley"]["conversation_id"]
    messages = await client.get(
        f"/api/v1/conversations/{conversation}/messages", headers=owner.headers()
    )
    # Newest first: the question, saved with its answer, dates from when the reply began.
    assert [m["role"] for m in messages.json()["items"]] == ["assistant", "user"]


async def test_a_revoked_key_is_refused_once_the_change_arrives(
    client: AsyncClient, entries: EntryCache
) -> None:
    owner, assistant, key = await _setup(client)
    await _answered_twice(client, entries, key.key, assistant["id"])
    revoked = await client.delete(f"/api/v1/api-keys/{key.id}", headers=owner.headers())
    assert revoked.status_code == 200, revoked.text
    await entries.caught_up()
    assert_error(await _complete(client, key.key, assistant["id"]), 401)


async def test_a_renamed_assistant_and_a_narrowed_key_take_effect(
    client: AsyncClient, entries: EntryCache
) -> None:
    owner, assistant, key = await _setup(client)
    await _answered_twice(client, entries, key.key, assistant["name"])
    renamed = await client.patch(
        f"/api/v1/assistants/{assistant['id']}",
        json={"name": "Renamed"},
        headers=owner.headers(),
    )
    assert renamed.status_code == 200, renamed.text
    await entries.caught_up()
    assert_error(await _complete(client, key.key, assistant["name"]), 404)
    assert (await _complete(client, key.key, "Renamed")).status_code == 200

    # Another assistant of the same name makes the name ambiguous at once.
    await create_assistant(client, owner, name="Renamed")
    await entries.caught_up()
    assert_error(await _complete(client, key.key, "Renamed"), 400)

    async with unit_of_work(tenant_id=owner.tenant_id) as session:
        await session.execute(
            text("UPDATE api_keys SET scopes = :scopes WHERE id = :id"),
            {"scopes": [Permission.assistants_read.value], "id": key.id},
        )
    await entries.caught_up()
    assert_error(await _complete(client, key.key, assistant["id"]), 403)


async def test_a_new_plan_applies_to_the_next_reply(
    client: AsyncClient, entries: EntryCache, put_on_plan: PlanSetter
) -> None:
    owner, assistant, key = await _setup(client)
    await _answered_twice(client, entries, key.key, assistant["id"])
    await put_on_plan(owner, limits(replies=0))
    await entries.caught_up()
    body = assert_error(await _complete(client, key.key, assistant["id"]), 402, "quota_exceeded")
    assert body["limit"] == "plan_monthly"
    assert datetime.fromisoformat(body["resets_at"]) > datetime.now(UTC)


async def test_without_its_listener_nothing_is_cached_until_it_is_back(
    client: AsyncClient, entries: EntryCache
) -> None:
    owner, assistant, key = await _setup(client)
    await _answered_twice(client, entries, key.key, assistant["id"])
    async with unit_of_work() as session:
        await session.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE query LIKE 'LISTEN %parley_entries%'"
            )
        )
    await _until(lambda: not entries.listening)
    # Meanwhile every reply reads the database: a revocation counts at once.
    hits = entries.hits
    revoked = await client.delete(f"/api/v1/api-keys/{key.id}", headers=owner.headers())
    assert revoked.status_code == 200
    assert_error(await _complete(client, key.key, assistant["id"]), 401)
    assert entries.hits == hits
    await _until(lambda: entries.listening)
    other = await create_api_key(client, owner, [Permission.chat])
    await _answered_twice(client, entries, other.key, assistant["id"])


async def test_a_cached_key_is_still_marked_used(client: AsyncClient, entries: EntryCache) -> None:
    owner, assistant, key = await _setup(client)
    await _answered_twice(client, entries, key.key, assistant["id"])
    async with unit_of_work(tenant_id=owner.tenant_id) as session:
        await session.execute(
            text("UPDATE api_keys SET last_used_at = now() - interval '1 day' WHERE id = :id"),
            {"id": key.id},
        )
    # A last-used change is not a change of the entry, so the entry stays.
    await entries.caught_up()
    for entry in entries._entries.values():
        entry.marked = time.monotonic() - 3600
    hits = entries.hits
    assert (await _complete(client, key.key, assistant["id"])).status_code == 200
    assert entries.hits == hits + 1
    async with unit_of_work(tenant_id=owner.tenant_id) as session:
        marked = await session.scalar(select(ApiKey.last_used_at).where(ApiKey.id == key.id))
        fresh = await session.scalar(text("SELECT now() - interval '1 minute'"))
    assert marked is not None
    assert marked > fresh


def test_an_entry_read_while_something_changed_is_not_kept() -> None:
    cache = EntryCache(ttl=30)
    cache._set_listening(True)
    tenant = uuid.uuid4()
    row = {"workspace_id": tenant}
    generation = cache.generation
    cache._changed(str(uuid.uuid4()))  # any workspace's change, meanwhile
    assert cache.put(("hash", "model"), row, generation) is None
    assert cache.put(("hash", "model"), row, cache.generation) is not None
    assert cache.get(("hash", "model")) is not None
    cache._changed(str(tenant))
    assert cache.get(("hash", "model")) is None


def test_entries_expire_and_are_not_kept_while_not_listening() -> None:
    cache = EntryCache(ttl=0.05)
    row = {"workspace_id": uuid.uuid4()}
    assert cache.put(("hash", "model"), row, cache.generation) is None  # not listening
    cache._set_listening(True)
    assert cache.put(("hash", "model"), row, cache.generation) is not None
    time.sleep(0.06)
    assert cache.get(("hash", "model")) is None


async def _until(condition: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)
