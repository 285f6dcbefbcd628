"""Telegram fixtures: the loopback Bot API stand-in as Parley's Telegram, a connected bot, and
a real ARQ worker to answer what the webhook queued."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from arq.worker import create_worker
from httpx import AsyncClient, Response

from backend.db import PendingJob, unit_of_work
from backend.jobs import set_job_sink
from backend.models import TelegramBot
from tests.assistants.fixtures import HANDBOOK
from tests.factories.accounts import Account
from tests.factories.assistants import create_assistant
from tests.factories.knowledge import add_text, create_kb
from tests.factories.tenancy import make_workspace
from tests.standins.telegram_api import BotInfo, TelegramStandIn
from worker.settings import WorkerSettings


@pytest.fixture
def real_arq(recorded_jobs: list[PendingJob]) -> None:
    """Webhook jobs go to the real ARQ queue in Redis (the recording sink is set back after)."""
    set_job_sink(None)


@dataclass
class ConnectedBot:
    owner: Account
    assistant: dict[str, Any]
    info: BotInfo
    id: str
    secret: str

    def webhook_path(self) -> str:
        return f"/telegram/webhook/{self.id}"


@pytest.fixture
async def connected(client: AsyncClient, telegram: TelegramStandIn, real_arq: None) -> ConnectedBot:
    owner = await make_workspace()
    kb_id = await create_kb(client, owner)
    await add_text(client, owner, kb_id, HANDBOOK, title="Shop handbook")
    await run_worker()  # the handbook is ingested before any update arrives
    assistant = await create_assistant(
        client,
        owner,
        knowledge_base_ids=[kb_id],
        max_answer_tokens=4000,
        welcome_message="Hello from the shop!",
        suggested_questions=["When are you open?"],
    )
    info = telegram.add_bot()
    response = await client.post(
        "/api/v1/telegram/bots",
        json={"token": info.token, "assistant_id": assistant["id"]},
        headers=owner.headers(),
    )
    assert response.status_code == 201, response.text
    hook = telegram.webhook(info.token)
    assert hook is not None
    assert hook.secret_token
    return ConnectedBot(owner, assistant, info, response.json()["id"], hook.secret_token)


async def deliver(client: AsyncClient, bot: ConnectedBot, update: dict[str, Any]) -> Response:
    return await client.post(
        bot.webhook_path(),
        json=update,
        headers={"X-Telegram-Bot-Api-Secret-Token": bot.secret},
    )


async def run_worker() -> int:
    # No startup hook: it configures logging for a worker process, not for the test session.
    worker = create_worker(
        WorkerSettings, burst=True, handle_signals=False, poll_delay=0.01, on_startup=None
    )
    try:
        await worker.main()
    finally:
        await worker.close()
    return int(worker.jobs_complete)


async def bot_row(bot: ConnectedBot) -> TelegramBot:
    assert bot.owner.tenant_id is not None
    async with unit_of_work(tenant_id=bot.owner.tenant_id) as session:
        row = await session.get(TelegramBot, uuid.UUID(bot.id))
    assert row is not None
    return row
