"""What the webhook needs to know about a bot (its workspace, secret hash and status), cached in
Redis so that an update costs one Redis read, not a database transaction.

Every change to a bot drops its entry once the change commits (`forget_after_commit`). A request
that read the old row just before such a commit could still write it back; the short expiry
bounds that, and the worker checks the bot's status again before answering.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select

from backend.db import after_commit, get_session, set_bot_context
from backend.models import BotStatus, TelegramBot
from backend.redis import get_redis

EXPIRY_SECONDS = 60


@dataclass(frozen=True, slots=True)
class WebhookCredentials:
    tenant_id: uuid.UUID
    secret_hash: str
    status: BotStatus


def _key(bot_id: uuid.UUID) -> str:
    return f"telegram:webhook:{bot_id}"


async def credentials_for(bot_id: uuid.UUID) -> WebhookCredentials | None:
    """The bot's credentials, from the cache or else the database (None: no such bot).

    Unknown ids are not cached, so made-up ids cannot fill Redis."""
    redis = get_redis()
    cached = await redis.get(_key(bot_id))
    if cached is not None:
        tenant_id, status, secret_hash = cached.split(" ")
        return WebhookCredentials(uuid.UUID(tenant_id), secret_hash, BotStatus(status))
    session = await get_session()
    await set_bot_context(session, bot_id)
    row = (
        await session.execute(
            select(
                TelegramBot.tenant_id, TelegramBot.webhook_secret_hash, TelegramBot.status
            ).where(TelegramBot.id == bot_id)
        )
    ).one_or_none()
    if row is None:
        return None
    found = WebhookCredentials(row.tenant_id, row.webhook_secret_hash, row.status)
    value = f"{found.tenant_id} {found.status.value} {found.secret_hash}"
    await redis.set(_key(bot_id), value, ex=EXPIRY_SECONDS)
    return found


def forget_after_commit(bot_id: uuid.UUID) -> None:
    """Drop the bot's cached credentials once the current transaction (which changes the bot)
    has committed."""

    async def forget() -> None:
        await get_redis().delete(_key(bot_id))

    after_commit(forget)
