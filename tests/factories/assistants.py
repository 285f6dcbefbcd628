"""Assistants and conversations for tests, made through the API like a tenant would."""

from __future__ import annotations

import uuid
from typing import Any

from httpx import AsyncClient

from tests.factories.accounts import Account


async def create_assistant(client: AsyncClient, owner: Account, **fields: Any) -> dict[str, Any]:
    body = {"name": f"Assistant {uuid.uuid4().hex[:8]}", **fields}
    if "knowledge_base_ids" in body:
        body["knowledge_base_ids"] = [str(k) for k in body["knowledge_base_ids"]]
    response = await client.post("/api/v1/assistants", json=body, headers=owner.headers())
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def open_conversation(
    client: AsyncClient, owner: Account, assistant_id: uuid.UUID | str, **fields: Any
) -> uuid.UUID:
    response = await client.post(
        "/api/v1/conversations",
        json={"assistant_id": str(assistant_id), **fields},
        headers=owner.headers(),
    )
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["id"])


async def ask(
    client: AsyncClient, owner: Account, conversation_id: uuid.UUID, content: str
) -> dict[str, Any]:
    """Send a message and return the JSON reply ({question, answer, usage_id})."""
    response = await client.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"content": content},
        headers=owner.headers(),
    )
    assert response.status_code == 200, response.text
    reply: dict[str, Any] = response.json()
    return reply
