"""The webhook's cached bot credentials: an update costs no database work once a bot is known,
and every change to the bot is seen by the very next update."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import event

from backend.db import UnitOfWork, get_engine
from backend.redis import get_redis
from backend.telegram.tasks import update_job_id
from tests.factories.responses import assert_error
from tests.standins.telegram_api import TelegramStandIn, make_text_update
from tests.telegram.conftest import ConnectedBot, deliver, run_worker

pytestmark = pytest.mark.usefixtures("real_arq")


@pytest.fixture
def statements() -> Iterator[list[str]]:
    """Every SQL statement the app sends while the test runs."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    engine = get_engine().sync_engine
    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


async def queued(bot: ConnectedBot, update: dict[str, Any]) -> bool:
    job_key = f"arq:job:{update_job_id(bot.id, update['update_id'])}"
    return bool(await get_redis().exists(job_key))


async def test_a_known_bot_costs_no_database_work(
    client: AsyncClient, connected: ConnectedBot, statements: list[str]
) -> None:
    first = make_text_update("hello")
    assert (await deliver(client, connected, first)).status_code == 200
    assert any("telegram_bots" in s for s in statements)
    statements.clear()
    second = make_text_update("hello again")
    assert (await deliver(client, connected, second)).status_code == 200
    assert statements == []
    assert await queued(connected, second)


async def test_a_wrong_secret_is_refused_from_the_cache_too(
    client: AsyncClient, connected: ConnectedBot
) -> None:
    assert (await deliver(client, connected, make_text_update("hello"))).status_code == 200
    update = make_text_update("hello")
    wrong = await client.post(
        connected.webhook_path(),
        json=update,
        headers={"X-Telegram-Bot-Api-Secret-Token": connected.secret + "x"},
    )
    assert_error(wrong, 401, "not_authenticated")
    assert not await queued(connected, update)


async def test_turning_the_bot_off_stops_the_next_update_at_the_door(
    client: AsyncClient, connected: ConnectedBot
) -> None:
    assert (await deliver(client, connected, make_text_update("hello"))).status_code == 200
    response = await client.patch(
        f"/api/v1/telegram/bots/{connected.id}",
        json={"enabled": False},
        headers=connected.owner.headers(),
    )
    assert response.status_code == 200
    update = make_text_update("are you there?")
    assert (await deliver(client, connected, update)).status_code == 200
    assert not await queued(connected, update)


async def test_a_bot_disabled_by_the_worker_is_seen_by_the_next_update(
    client: AsyncClient, telegram: TelegramStandIn, connected: ConnectedBot
) -> None:
    telegram.revoke(connected.info.token)
    assert (await deliver(client, connected, make_text_update("hello"))).status_code == 200
    await run_worker()  # Telegram refuses the answer: the worker disables the bot
    update = make_text_update("hello?")
    assert (await deliver(client, connected, update)).status_code == 200
    assert not await queued(connected, update)


async def test_a_disconnected_bot_is_refused_although_it_was_cached(
    client: AsyncClient, connected: ConnectedBot
) -> None:
    assert (await deliver(client, connected, make_text_update("hello"))).status_code == 200
    response = await client.delete(
        f"/api/v1/telegram/bots/{connected.id}", headers=connected.owner.headers()
    )
    assert response.status_code == 204
    assert_error(await deliver(client, connected, make_text_update("hi")), 401, "not_authenticated")


async def test_after_commit_hooks_run_on_commit_only_and_a_failing_one_is_contained() -> None:
    ran: list[str] = []

    async def note() -> None:
        ran.append("ran")

    async def fail() -> None:
        raise RuntimeError("cache unreachable")

    rolled_back = UnitOfWork(after_commit=[note])
    await rolled_back.rollback()
    await rolled_back.commit()
    assert ran == []
    committed = UnitOfWork(after_commit=[fail, note])
    await committed.commit()
    await committed.commit()
    assert ran == ["ran"]
