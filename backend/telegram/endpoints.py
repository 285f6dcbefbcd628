"""Telegram endpoints: the workspace's bots and dead letters, and the webhook for all bots."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Header, Request, status
from sqlalchemy import select

from backend.db import SessionDep
from backend.errors import BadRequest, NotAuthenticated, NotFound
from backend.jobs import enqueue_now
from backend.kit.crypto import decrypt
from backend.kit.pagination import Page, PageParams, next_cursor_of, page_params
from backend.kit.pagination import paginate_newest_first as newest_first
from backend.models import BotStatus, TelegramBot, TelegramDeadLetter
from backend.redis import get_redis
from backend.telegram import schemas, service
from backend.telegram.client import bot_for
from backend.telegram.credentials import credentials_for
from backend.telegram.sender import BotRevoked, send_html
from backend.telegram.tasks import update_job_id
from backend.tenancy.context import TenantContext, require
from backend.tenancy.permissions import Permission

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/api/v1/telegram", tags=["telegram"])
webhook_router = APIRouter(tags=["telegram"])

Read = Annotated[TenantContext, Depends(require(Permission.channels_read))]
Manage = Annotated[TenantContext, Depends(require(Permission.channels_manage))]
Paging = Annotated[PageParams, Depends(page_params)]
MAX_UPDATE_BYTES = 1024 * 1024


@router.post("/bots", status_code=status.HTTP_201_CREATED, response_model=schemas.BotRead)
async def connect_bot(body: schemas.BotConnect, ctx: Manage, session: SessionDep) -> TelegramBot:
    """Connect a bot by its BotFather token: checked with getMe, stored encrypted, and set up
    (webhook, commands, description from the assistant)."""
    return await service.connect_bot(session, ctx, body)


@router.get("/bots", response_model=Page[schemas.BotRead])
async def list_bots(ctx: Read, session: SessionDep, page: Paging) -> Page[schemas.BotRead]:
    statement = newest_first(
        select(TelegramBot).where(TelegramBot.tenant_id == ctx.tenant_id),
        TelegramBot.created_at,
        TelegramBot.id,
        page,
    )
    rows, cursor = next_cursor_of(list(await session.scalars(statement)), page.limit)
    return Page(items=[schemas.BotRead.model_validate(r) for r in rows], next_cursor=cursor)


@router.get("/bots/{bot_id}", response_model=schemas.BotRead)
async def get_bot(bot_id: uuid.UUID, ctx: Read, session: SessionDep) -> TelegramBot:
    """A bot with its status: a bot Telegram refused is `disabled`, with the reason."""
    return await service.get_bot(session, ctx, bot_id)


@router.patch("/bots/{bot_id}", response_model=schemas.BotRead)
async def update_bot(
    bot_id: uuid.UUID, body: schemas.BotUpdate, ctx: Manage, session: SessionDep
) -> TelegramBot:
    return await service.update_bot(session, ctx, bot_id, body)


@router.delete("/bots/{bot_id}", status_code=status.HTTP_204_NO_CONTENT)
async def disconnect_bot(bot_id: uuid.UUID, ctx: Manage, session: SessionDep) -> None:
    """Remove the webhook and forget the bot (its conversations stay)."""
    await service.disconnect_bot(session, ctx, bot_id)


@router.get("/dead-letters", response_model=Page[schemas.DeadLetterRead])
async def list_dead_letters(
    ctx: Read, session: SessionDep, page: Paging
) -> Page[schemas.DeadLetterRead]:
    """Messages that could not be delivered after their retries, newest first."""
    statement = newest_first(
        select(TelegramDeadLetter).where(
            TelegramDeadLetter.tenant_id == ctx.tenant_id,
            TelegramDeadLetter.resolved_at.is_(None),
        ),
        TelegramDeadLetter.created_at,
        TelegramDeadLetter.id,
        page,
    )
    rows, cursor = next_cursor_of(list(await session.scalars(statement)), page.limit)
    return Page(items=[schemas.DeadLetterRead.model_validate(r) for r in rows], next_cursor=cursor)


@router.post("/dead-letters/{letter_id}/retry", response_model=schemas.DeadLetterRead)
async def retry_dead_letter(
    letter_id: uuid.UUID, ctx: Manage, session: SessionDep
) -> TelegramDeadLetter:
    """Try to deliver the message again; on success it leaves the list."""
    letter = await session.scalar(
        select(TelegramDeadLetter).where(
            TelegramDeadLetter.id == letter_id, TelegramDeadLetter.tenant_id == ctx.tenant_id
        )
    )
    if letter is None or letter.resolved_at is not None:
        raise NotFound("Dead letter not found.")
    bot_row = await service.get_bot(session, ctx, letter.bot_id)
    if bot_row.status is not BotStatus.active:
        raise BadRequest(f"@{bot_row.username} is disabled: {bot_row.disabled_reason}")
    try:
        outcome = await send_html(
            get_redis(),
            bot_for(decrypt(bot_row.token_encrypted)),
            bot_row.id,
            letter.chat_id,
            letter.html,
        )
    except BotRevoked as exc:
        raise BadRequest("Telegram refused the bot's token; reconnect the bot.") from exc
    letter.attempts += outcome.attempts
    if outcome.sent:
        letter.resolved_at = datetime.now(UTC)
    else:
        letter.error = outcome.error or letter.error
    await session.flush()
    return letter


@webhook_router.post("/telegram/webhook/{bot_id}", include_in_schema=False)
async def telegram_webhook(
    bot_id: uuid.UUID,
    request: Request,
    secret: Annotated[str | None, Header(alias="X-Telegram-Bot-Api-Secret-Token")] = None,
) -> dict[str, Any]:
    """Telegram's updates for one bot. Answered once the update is durably queued (an ARQ job
    whose id holds the bot and update id, so a repeated delivery is queued once). A wrong
    secret is refused; an update for a disabled or deleted bot is dropped with a log line.
    The bot's credentials usually come from Redis: an update touches no database."""
    found = await credentials_for(bot_id)
    expected = found.secret_hash if found is not None else "0" * 64
    given = hashlib.sha256((secret or "").encode()).hexdigest()
    # Compared in constant time, and the same work whether or not the bot exists.
    if not hmac.compare_digest(given, expected) or found is None:
        raise NotAuthenticated("Wrong or missing secret token.")
    update = await _update_body(request)
    if found.status is not BotStatus.active:
        log.info("telegram_update_dropped", bot_id=str(bot_id), reason=found.status.value)
        return {"ok": True}
    await enqueue_now(
        "process_telegram_update",
        str(found.tenant_id),
        str(bot_id),
        update,
        _job_id=update_job_id(bot_id, int(update["update_id"])),
    )
    return {"ok": True}


async def _update_body(request: Request) -> dict[str, Any]:
    try:
        update = await request.json()
    except ValueError as exc:
        raise BadRequest("The update is not JSON.") from exc
    if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
        raise BadRequest("An update needs an integer update_id.")
    return update
