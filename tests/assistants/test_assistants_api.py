"""Assistant configuration through the API: defaults, changes, validation, keys, audit."""

from __future__ import annotations

import uuid

from httpx import AsyncClient

from backend.assistants.schemas import DEFAULT_FALLBACK
from tests.factories.assistants import create_assistant
from tests.factories.knowledge import create_kb
from tests.factories.responses import assert_error, error_fields
from tests.factories.tenancy import make_workspace


async def test_create_takes_defaults_and_attaches_knowledge(client: AsyncClient) -> None:
    owner = await make_workspace()
    kb_id = await create_kb(client, owner)
    created = await create_assistant(
        client,
        owner,
        instructions="You are the help desk of Acme.",
        knowledge_base_ids=[kb_id],
        suggested_questions=["What are your hours?"],
        visitor_daily_message_cap=50,
        language="ru",
    )
    assert created["provider"] == "auto"
    assert created["model"] is None
    assert created["temperature"] == 0.2
    assert created["top_k"] == 5
    assert created["fallback_message"] == DEFAULT_FALLBACK
    assert created["knowledge_base_ids"] == [str(kb_id)]
    assert created["suggested_questions"] == ["What are your hours?"]
    assert created["visitor_daily_message_cap"] == 50
    assert created["language"] == "ru"
    assert created["public_key"].startswith("pk_")

    fetched = await client.get(f"/api/v1/assistants/{created['id']}", headers=owner.headers())
    assert fetched.json() == created


async def test_update_changes_only_what_is_sent(client: AsyncClient) -> None:
    owner = await make_workspace()
    first_kb, second_kb = await create_kb(client, owner), await create_kb(client, owner)
    created = await create_assistant(client, owner, knowledge_base_ids=[first_kb], top_k=3)
    url = f"/api/v1/assistants/{created['id']}"

    response = await client.patch(
        url,
        json={"temperature": 0.7, "knowledge_base_ids": [str(second_kb)], "threshold": 0.4},
        headers=owner.headers(),
    )
    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["temperature"] == 0.7
    assert changed["threshold"] == 0.4
    assert changed["knowledge_base_ids"] == [str(second_kb)]
    assert changed["top_k"] == 3  # untouched
    assert changed["name"] == created["name"]

    cleared = await client.patch(url, json={"threshold": None}, headers=owner.headers())
    assert cleared.json()["threshold"] is None


async def test_settings_that_cannot_be_null_are_refused(client: AsyncClient) -> None:
    owner = await make_workspace()
    created = await create_assistant(client, owner)
    response = await client.patch(
        f"/api/v1/assistants/{created['id']}",
        json={"name": None, "temperature": None},
        headers=owner.headers(),
    )
    body = assert_error(response, 422, "validation_error")
    assert set(error_fields(response)) == {"name", "temperature"}, body


async def test_invalid_settings_name_the_field(client: AsyncClient) -> None:
    owner = await make_workspace()
    cases = [
        ({"name": ""}, "body.name"),
        ({"name": "A", "temperature": 3}, "body.temperature"),
        ({"name": "A", "top_k": 0}, "body.top_k"),
        ({"name": "A", "provider": "anthropic"}, "body.provider"),
        ({"name": "A", "language": "xx"}, "body.language"),
        ({"name": "A", "unknown": 1}, "body.unknown"),
        ({"name": "A", "suggested_questions": ["q"] * 11}, "body.suggested_questions"),
        ({"name": "A\x00B"}, "body.name"),
    ]
    for body, field in cases:
        response = await client.post("/api/v1/assistants", json=body, headers=owner.headers())
        assert_error(response, 422, "validation_error")
        assert field in error_fields(response), (body, response.text)


async def test_knowledge_bases_of_another_workspace_cannot_be_attached(
    client: AsyncClient,
) -> None:
    owner, neighbour = await make_workspace(), await make_workspace()
    theirs = await create_kb(client, neighbour)
    response = await client.post(
        "/api/v1/assistants",
        json={"name": "Spy", "knowledge_base_ids": [str(theirs)]},
        headers=owner.headers(),
    )
    body = assert_error(response, 422, "validation_error")
    assert str(theirs) in body["detail"]
    unknown = await client.post(
        "/api/v1/assistants",
        json={"name": "Lost", "knowledge_base_ids": [str(uuid.uuid4())]},
        headers=owner.headers(),
    )
    assert_error(unknown, 422, "validation_error")


async def test_public_key_rotates(client: AsyncClient) -> None:
    owner = await make_workspace()
    created = await create_assistant(client, owner)
    response = await client.post(
        f"/api/v1/assistants/{created['id']}/rotate-public-key", headers=owner.headers()
    )
    assert response.status_code == 200, response.text
    assert response.json()["public_key"] != created["public_key"]
    assert response.json()["public_key"].startswith("pk_")


async def test_changes_are_audited(client: AsyncClient) -> None:
    owner = await make_workspace()
    created = await create_assistant(client, owner)
    url = f"/api/v1/assistants/{created['id']}"
    await client.patch(url, json={"instructions": "Be brief."}, headers=owner.headers())
    await client.post(f"{url}/rotate-public-key", headers=owner.headers())
    await client.delete(url, headers=owner.headers())
    events = (await client.get("/api/v1/audit-log", headers=owner.headers())).json()["items"]
    mine = [(e["action"], e["details"]) for e in events if e["object_id"] == created["id"]]
    actions = [action for action, _ in mine]
    assert actions == [
        "assistant.deleted",
        "assistant.public_key_rotated",
        "assistant.updated",
        "assistant.created",
    ], mine
    assert mine[2][1] == {"changed": ["instructions"]}


async def test_list_is_paginated_newest_first(client: AsyncClient) -> None:
    owner = await make_workspace()
    made = [(await create_assistant(client, owner))["id"] for _ in range(3)]
    first = await client.get("/api/v1/assistants?limit=2", headers=owner.headers())
    page = first.json()
    assert [a["id"] for a in page["items"]] == made[::-1][:2]
    second = await client.get(
        f"/api/v1/assistants?limit=2&cursor={page['next_cursor']}", headers=owner.headers()
    )
    assert [a["id"] for a in second.json()["items"]] == [made[0]]
    assert second.json()["next_cursor"] is None


async def test_deleting_a_knowledge_base_detaches_it(client: AsyncClient) -> None:
    owner = await make_workspace()
    kb_id = await create_kb(client, owner)
    created = await create_assistant(client, owner, knowledge_base_ids=[kb_id])
    deleted = await client.delete(f"/api/v1/knowledge-bases/{kb_id}", headers=owner.headers())
    assert deleted.status_code == 204
    fetched = await client.get(f"/api/v1/assistants/{created['id']}", headers=owner.headers())
    assert fetched.json()["knowledge_base_ids"] == []
