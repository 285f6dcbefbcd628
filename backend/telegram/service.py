"""Connecting, changing and disconnecting a workspace's Telegram bots.

Connecting checks the token with getMe, stores it encrypted, and sets the bot up: its webhook
(in webhook mode) at Parley's opaque bot id with a secret of its own, its commands, and its
description from the assistant.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid

import structlog
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError, TelegramUnauthorizedError
from aiogram.types import BotCommand, User
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backend.assistants import service as assistants
from backend.audit.service import record
from backend.config import TelegramMode, get_settings
from backend.errors import AppError, Conflict, NotFound, ServiceUnavailable, ValidationFailed
from backend.kit.crypto import decrypt, encrypt
from backend.models import Assistant, BotStatus, TelegramBot
from backend.telegram import schemas
from backend.telegram.client import bot_for
from backend.telegram.credentials import forget_after_commit
from backend.tenancy.context import TenantContext

log = structlog.get_logger(__name__)

COMMANDS = {
    "en": [
        ("start", "Start over with a greeting"),
        ("help", "What this bot can do"),
        ("reset", "Start a new conversation"),
        ("human", "Ask for a person"),
    ],
    "ru": [
        ("start", "Начать с приветствия"),
        ("help", "Что умеет бот"),
        ("reset", "Начать новый разговор"),
        ("human", "Позвать человека"),
    ],
}


class TokenRefused(ValidationFailed):
    def __init__(self) -> None:
        super().__init__(
            "Telegram refused this token: copy it again from BotFather (/token).",
            fields=[{"field": "token", "message": "refused by Telegram"}],
        )


class TelegramUnreachable(ServiceUnavailable):
    code = "telegram_unreachable"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def webhook_url(bot_id: uuid.UUID) -> str:
    settings = get_settings()
    base = (settings.telegram_webhook_base_url or settings.public_url).rstrip("/")
    return f"{base}/telegram/webhook/{bot_id}"


async def get_bot(session: AsyncSession, ctx: TenantContext, bot_id: uuid.UUID) -> TelegramBot:
    found = await session.scalar(
        select(TelegramBot).where(TelegramBot.id == bot_id, TelegramBot.tenant_id == ctx.tenant_id)
    )
    if found is None:
        raise NotFound("Bot not found.")
    return found


async def connect_bot(
    session: AsyncSession, ctx: TenantContext, body: schemas.BotConnect
) -> TelegramBot:
    assistant = await assistants.get_assistant(session, ctx, body.assistant_id)
    me = await _check_token(body.token)
    row = TelegramBot(
        tenant_id=ctx.tenant_id,
        assistant_id=assistant.id,
        telegram_id=me.id,
        username=me.username or str(me.id),
        token_encrypted=encrypt(body.token),
        webhook_secret_hash="",
        status=BotStatus.active,
        group_mode=body.group_mode,
    )
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"@{row.username} is already connected to this workspace.") from exc
    await _set_up(row, body.token, assistant)
    await record(
        session,
        ctx,
        "telegram_bot.connected",
        "telegram_bot",
        row.id,
        {"username": row.username, "assistant_id": str(assistant.id)},
    )
    return row


async def _check_token(token: str) -> User:
    try:
        return await bot_for(token).get_me()
    except TelegramUnauthorizedError as exc:
        raise TokenRefused() from exc
    except (TelegramNetworkError, TelegramAPIError) as exc:
        raise TelegramUnreachable(f"Telegram could not be reached: {type(exc).__name__}.") from exc


async def _set_up(row: TelegramBot, token: str, assistant: Assistant) -> None:
    """Webhook with a fresh secret (webhook mode), commands and description. Telegram
    compares nothing: the secret comes back in each update's header, and Parley checks it."""
    bot = bot_for(token)
    language = assistant.language if assistant.language in COMMANDS else "en"
    try:
        if get_settings().telegram_mode is TelegramMode.webhook:
            secret = secrets.token_urlsafe(32)
            await bot.set_webhook(
                webhook_url(row.id),
                secret_token=secret,
                allowed_updates=["message", "edited_message"],
                drop_pending_updates=False,
            )
            row.webhook_secret_hash = hash_secret(secret)
        else:
            await bot.delete_webhook()
        await bot.set_my_commands(
            [BotCommand(command=c, description=d) for c, d in COMMANDS[language]]
        )
        description = (assistant.welcome_message or assistant.name)[:512]
        await bot.set_my_description(description=description)
    except TelegramUnauthorizedError as exc:
        raise TokenRefused() from exc
    except (TelegramNetworkError, TelegramAPIError) as exc:
        raise TelegramUnreachable(f"Telegram could not be reached: {type(exc).__name__}.") from exc


async def update_bot(
    session: AsyncSession, ctx: TenantContext, bot_id: uuid.UUID, body: schemas.BotUpdate
) -> TelegramBot:
    row = await get_bot(session, ctx, bot_id)
    assistant = await assistants.get_assistant(session, ctx, body.assistant_id or row.assistant_id)
    row.assistant_id = assistant.id
    if body.group_mode is not None:
        row.group_mode = body.group_mode
    if body.enabled is False:
        row.status, row.disabled_reason = BotStatus.disabled, "Turned off by the workspace."
    elif body.enabled is True:
        token = decrypt(row.token_encrypted)
        await _check_token(token)
        await _set_up(row, token, assistant)
        row.status, row.disabled_reason = BotStatus.active, None
    await session.flush()
    forget_after_commit(row.id)
    await record(
        session,
        ctx,
        "telegram_bot.updated",
        "telegram_bot",
        row.id,
        body.model_dump(mode="json", exclude_none=True),
    )
    return row


async def disconnect_bot(session: AsyncSession, ctx: TenantContext, bot_id: uuid.UUID) -> None:
    """Remove the webhook (best effort: a revoked token cannot), then forget the bot."""
    row = await get_bot(session, ctx, bot_id)
    try:
        await bot_for(decrypt(row.token_encrypted)).delete_webhook()
    except (TelegramAPIError, TelegramNetworkError, AppError):
        log.warning("telegram_delete_webhook_failed", bot_id=str(row.id))
    await session.delete(row)
    forget_after_commit(row.id)
    await record(
        session,
        ctx,
        "telegram_bot.disconnected",
        "telegram_bot",
        bot_id,
        {"username": row.username},
    )
