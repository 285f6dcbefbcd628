"""Worker tasks: answer one Telegram update; poll for updates in polling mode; retry a dead
letter. Every task takes ids and sets its workspace's context, like a request."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import structlog
from aiogram import Bot
from aiogram.exceptions import TelegramUnauthorizedError
from aiogram.types import Update, User
from sqlalchemy import select, text

from backend.db import unit_of_work
from backend.kit.crypto import decrypt
from backend.models import BotStatus, TelegramBot
from backend.redis import get_redis
from backend.telegram.client import bot_for
from backend.telegram.credentials import forget_after_commit
from backend.telegram.sender import BotRevoked
from backend.telegram.updates import BotContext, build_dispatcher, context_for

log = structlog.get_logger(__name__)

# An update id is remembered this long: Telegram gives up redelivering long before.
SEEN_SECONDS = 7 * 24 * 3600
_dispatcher = build_dispatcher()


def update_job_id(bot_id: uuid.UUID | str, update_id: int) -> str:
    """ARQ keeps one job per id, so a repeated delivery of an update is queued once."""
    return f"telegram-update:{bot_id}:{update_id}"


async def process_telegram_update(
    ctx: dict[str, Any], tenant_id: str, bot_id: str, update: dict[str, Any]
) -> str:
    update_id = int(update.get("update_id", -1))
    loaded = await _load(uuid.UUID(tenant_id), uuid.UUID(bot_id))
    if loaded is None:
        log.info("telegram_update_dropped", bot_id=bot_id, update_id=update_id)
        return "dropped: the bot is disabled or gone"
    token, parley = loaded
    # A second guard behind the job id, which ARQ forgets once the result expires: the answer
    # goes out at most once. (A worker killed mid-answer loses that answer rather than
    # risking a second one.)
    first = await get_redis().set(
        f"telegram:seen:{bot_id}:{update_id}", 1, nx=True, ex=SEEN_SECONDS
    )
    if not first:
        return "skipped: already answered"
    bot = _bot(token, parley)
    try:
        await _dispatcher.feed_update(
            bot, Update.model_validate(update, context={"bot": bot}), parley=parley
        )
    except (BotRevoked, TelegramUnauthorizedError):
        await disable_bot(parley, "Telegram refused the token (401): it was revoked or replaced.")
        return "disabled: Telegram refused the token"
    return "answered"


def _bot(token: str, parley: BotContext) -> Bot:
    bot = bot_for(token)
    # The Dispatcher's command filters ask for the bot's own user; it is known already, so
    # no getMe call per update.
    bot._me = User(
        id=parley.telegram_id, is_bot=True, first_name=parley.username, username=parley.username
    )
    return bot


async def _load(tenant_id: uuid.UUID, bot_id: uuid.UUID) -> tuple[str, BotContext] | None:
    async with unit_of_work(tenant_id=tenant_id) as session:
        row = await session.get(TelegramBot, bot_id)
        if row is None or row.status is not BotStatus.active:
            return None
        return decrypt(row.token_encrypted), await context_for(session, row)


async def disable_bot(parley: BotContext, reason: str) -> None:
    log.warning("telegram_bot_disabled", bot_id=str(parley.bot_id), reason=reason)
    async with unit_of_work(tenant_id=parley.tenant_id) as session:
        row = await session.get(TelegramBot, parley.bot_id)
        if row is not None:
            row.status, row.disabled_reason = BotStatus.disabled, reason
        forget_after_commit(parley.bot_id)


async def poll_telegram_updates(ctx: dict[str, Any]) -> int:
    """Polling mode (development without a public URL): one long poll of every active bot,
    each update answered like a webhook's. Runs again and again from the worker's cron."""
    from backend.config import get_settings

    timeout = get_settings().telegram_poll_timeout_seconds
    async with unit_of_work() as session:
        await session.execute(text("SELECT set_config('app.scope', 'scheduler', true)"))
        bots = (
            await session.execute(
                select(TelegramBot.id, TelegramBot.tenant_id).where(
                    TelegramBot.status == BotStatus.active
                )
            )
        ).all()
    results = await asyncio.gather(
        *(_poll_one(row.tenant_id, row.id, timeout) for row in bots), return_exceptions=True
    )
    return sum(r for r in results if isinstance(r, int))


async def _poll_one(tenant_id: uuid.UUID, bot_id: uuid.UUID, wait_seconds: int) -> int:
    loaded = await _load(tenant_id, bot_id)
    if loaded is None:
        return 0
    token, parley = loaded
    redis = get_redis()
    # One long poll per bot at a time: Telegram answers a second one with 409.
    lock = f"telegram:polling:{bot_id}"
    if not await redis.set(lock, 1, nx=True, ex=wait_seconds + 15):
        return 0
    try:
        return await _poll_updates(token, parley, wait_seconds)
    finally:
        await redis.delete(lock)


async def _poll_updates(token: str, parley: BotContext, wait_seconds: int) -> int:
    redis = get_redis()
    tenant_id, bot_id = parley.tenant_id, parley.bot_id
    offset_key = f"telegram:offset:{bot_id}"
    offset = int(await redis.get(offset_key) or 0)
    try:
        updates = await bot_for(token).get_updates(offset=offset or None, timeout=wait_seconds)
    except TelegramUnauthorizedError:
        await disable_bot(parley, "Telegram refused the token (401): it was revoked or replaced.")
        return 0
    for update in updates:
        await redis.set(offset_key, update.update_id + 1)
        await process_telegram_update(
            {}, str(tenant_id), str(bot_id), update.model_dump(mode="json", exclude_none=True)
        )
    return len(updates)
