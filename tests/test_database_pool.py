"""Pooled connections that the database server closed, or that break during a request."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from httpx import AsyncClient
from sqlalchemy import event
from sqlalchemy.exc import TimeoutError as PoolTimeout

from backend.db import get_engine
from backend.tenancy.permissions import Permission
from tests.conftest import APP_ROLE_USER, TEST_ADMIN_URL, _plain
from tests.factories.assistants import create_assistant
from tests.factories.tenancy import make_workspace
from tests.factories.workspaces import create_api_key


async def _terminate_app_backends() -> int:
    admin = await asyncpg.connect(_plain(TEST_ADMIN_URL))
    try:
        killed: int = await admin.fetchval(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE usename = $1 AND datname = current_database()) AS t",
            APP_ROLE_USER,
        )
        return killed
    finally:
        await admin.close()


async def test_connections_the_server_closed_are_replaced_at_checkout(
    client: AsyncClient,
) -> None:
    owner = await make_workspace()
    assert (await client.get("/api/v1/tenant", headers=owner.headers())).status_code == 200
    assert get_engine().pool.checkedin() >= 1  # type: ignore[attr-defined]

    assert await _terminate_app_backends() >= 1
    await asyncio.sleep(0.3)  # the sockets' end of file reaches asyncpg

    # Without a pre-ping: every request still finds a live connection.
    for _ in range(3):
        answer = await client.get("/api/v1/tenant", headers=owner.headers())
        assert answer.status_code == 200, answer.text


@pytest.fixture
def break_next_checkout() -> Iterator[list[bool]]:
    """Set `[0] = True` to close the next connection handed out, after the pool's check."""
    engine = get_engine().sync_engine
    armed = [False]

    def close_it(dbapi_connection: Any, record: object, proxy: object) -> None:
        if armed[0]:
            armed[0] = False
            dbapi_connection.driver_connection.terminate()

    event.listen(engine, "checkout", close_it)
    yield armed
    event.remove(engine, "checkout", close_it)


async def test_a_connection_lost_mid_request_answers_503_and_the_next_request_works(
    client: AsyncClient, break_next_checkout: list[bool]
) -> None:
    owner = await make_workspace()
    break_next_checkout[0] = True
    lost = await client.get("/api/v1/tenant", headers=owner.headers())
    assert lost.status_code == 503, lost.text
    assert lost.json() == {
        "error": "service_unavailable",
        "detail": "The connection to the database was lost; try again.",
    }
    assert lost.headers["retry-after"] == "1"
    assert (await client.get("/api/v1/tenant", headers=owner.headers())).status_code == 200


async def test_a_connection_lost_in_a_chat_completion_answers_503_and_the_next_works(
    client: AsyncClient, break_next_checkout: list[bool]
) -> None:
    """The OpenAI-compatible API talks to asyncpg directly (backend.db.RawConnection): a
    broken connection is answered and discarded as the ORM's are."""
    owner = await make_workspace()
    assistant = await create_assistant(client, owner)
    key = await create_api_key(client, owner, [Permission.chat])
    body = {"model": assistant["id"], "messages": [{"role": "user", "content": "Hello?"}]}
    headers = {"Authorization": f"Bearer {key.key}"}
    break_next_checkout[0] = True
    lost = await client.post("/v1/chat/completions", json=body, headers=headers)
    assert lost.status_code == 503, lost.text
    assert lost.json()["error"]["message"] == "The connection to the database was lost; try again."
    assert lost.headers["retry-after"] == "1"
    answered = await client.post("/v1/chat/completions", json=body, headers=headers)
    assert answered.status_code == 200, answered.text


async def test_a_pool_with_no_connection_to_spare_answers_503(client: AsyncClient) -> None:
    owner = await make_workspace()
    engine = get_engine().sync_engine

    def exhausted(dbapi_connection: Any, record: object, proxy: object) -> None:
        raise PoolTimeout("QueuePool limit reached, connection timed out")

    event.listen(engine, "checkout", exhausted)
    try:
        busy = await client.get("/api/v1/tenant", headers=owner.headers())
    finally:
        event.remove(engine, "checkout", exhausted)
    assert busy.status_code == 503, busy.text
    assert busy.json() == {
        "error": "service_unavailable",
        "detail": "The database is busy; try again shortly.",
    }
    assert busy.headers["retry-after"] == "1"
