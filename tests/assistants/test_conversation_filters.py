"""The conversation list's filters (the dashboard's search): words, rating, period, and that
they never reach another workspace's conversations."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from httpx import AsyncClient

from tests.factories.accounts import Account
from tests.factories.assistants import ask, create_assistant, open_conversation
from tests.factories.tenancy import make_workspace


async def _conversation_saying(
    client: AsyncClient, owner: Account, assistant_id: str, words: str, rating: str | None = None
) -> str:
    conversation = await open_conversation(client, owner, assistant_id)
    reply = await ask(client, owner, conversation, words)
    if rating is not None:
        rated = await client.put(
            f"/api/v1/messages/{reply['answer']['id']}/feedback",
            json={"rating": rating},
            headers=owner.headers(),
        )
        assert rated.status_code == 200, rated.text
    return str(conversation)


async def _listed(client: AsyncClient, owner: Account, **query: str) -> list[str]:
    response = await client.get("/api/v1/conversations", params=query, headers=owner.headers())
    assert response.status_code == 200, response.text
    return [c["id"] for c in response.json()["items"]]


async def test_search_rating_and_period_filters(client: AsyncClient) -> None:
    owner = await make_workspace()
    assistant = await create_assistant(client, owner)
    word = f"zebra{uuid.uuid4().hex[:6]}"
    liked = await _conversation_saying(
        client, owner, assistant["id"], f"Do you sell {word}s?", "up"
    )
    disliked = await _conversation_saying(client, owner, assistant["id"], "Opening hours?", "down")
    plain = await _conversation_saying(client, owner, assistant["id"], "Where is the shop?")

    assert await _listed(client, owner, q=word.upper()) == [liked]  # case-insensitive
    assert await _listed(client, owner, q="100%") == []  # % is a character, not a wildcard
    assert await _listed(client, owner, feedback="up") == [liked]
    assert await _listed(client, owner, feedback="down") == [disliked]
    today = datetime.now(UTC).date()
    assert await _listed(client, owner, since=str(today), until=str(today)) == [
        plain,
        disliked,
        liked,
    ]
    assert await _listed(client, owner, since=str(today + timedelta(days=1))) == []
    assert await _listed(client, owner, until=str(today - timedelta(days=1))) == []


async def test_filters_never_reach_another_workspace(client: AsyncClient) -> None:
    a = await make_workspace()
    b = await make_workspace()
    word = f"quokka{uuid.uuid4().hex[:6]}"
    assistant_a = await create_assistant(client, a)
    await _conversation_saying(client, a, assistant_a["id"], f"A {word}?", "up")
    assert await _listed(client, b, q=word) == []
    assert await _listed(client, b, feedback="up") == []
    assert await _listed(client, b, assistant_id=assistant_a["id"]) == []
