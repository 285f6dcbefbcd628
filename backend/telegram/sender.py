"""Sending within Telegram's limits: about 1 message/s per chat, 30/s per bot, 20/min per group.

Slots are taken in Redis, so every worker process shares one schedule per bot and chat: a
single Lua script finds the first moment all of the message's limits allow, books it on each,
and says how long to wait. A 429 still happens now and then (Telegram's limits are not exact);
its `retry_after` is honoured. Network trouble and 5xx are retried with backoff; a send that
keeps failing goes to the dead-letter list, visible through the API and retryable.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

import structlog
from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.types import LinkPreviewOptions
from redis.asyncio import Redis

from backend.config import get_settings

log = structlog.get_logger(__name__)

# KEYS: the limits' "next free moment" keys; ARGV: their intervals. Times are whole
# microseconds, written with %.0f: Lua's tostring keeps 14 digits, which would round a Unix
# time to 0.1 ms and run every limit slightly fast. Returns the wait in microseconds.
_BOOK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local at = now
for i, key in ipairs(KEYS) do
  local free = tonumber(redis.call('GET', key) or '0')
  if free > at then at = free end
end
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[i])
  redis.call('SET', key, string.format('%.0f', at + interval), 'PX',
             math.ceil(interval / 1000) + 60000)
end
return at - now
"""
MAX_RETRY_AFTER = 60.0


class BotRevoked(Exception):
    """Telegram answered 401: the token was revoked or replaced in BotFather."""


@dataclass(frozen=True)
class SendOutcome:
    sent: bool
    error: str | None = None
    attempts: int = 0


async def book_slot(redis: Redis, bot_id: uuid.UUID, chat_id: int) -> float:
    """Seconds to wait before this message may go."""
    settings = get_settings()
    keys = [f"tg:limit:{bot_id}:bot", f"tg:limit:{bot_id}:chat:{chat_id}"]
    intervals = [1 / settings.telegram_bot_messages_per_second]
    intervals.append(1 / settings.telegram_chat_messages_per_second)
    if chat_id < 0:  # groups and channels have negative ids
        keys.append(f"tg:limit:{bot_id}:group:{chat_id}")
        intervals.append(60 / settings.telegram_group_messages_per_minute)
    micros = [str(round(i * 1_000_000)) for i in intervals]
    wait = await redis.eval(_BOOK, len(keys), *keys, *micros)  # type: ignore[misc]
    return max(0.0, int(wait) / 1_000_000)


async def send_html(
    redis: Redis, bot: Bot, bot_id: uuid.UUID, chat_id: int, html: str
) -> SendOutcome:
    """Send one message of Telegram HTML, within the limits, with retries. Raises BotRevoked."""
    attempts = get_settings().telegram_send_attempts
    error = "not sent"
    for attempt in range(1, attempts + 1):
        await asyncio.sleep(await book_slot(redis, bot_id, chat_id))
        try:
            await bot.send_message(
                chat_id,
                html,
                parse_mode="HTML",
                link_preview_options=LinkPreviewOptions(is_disabled=True),
            )
            return SendOutcome(True, attempts=attempt)
        except TelegramRetryAfter as exc:
            error = f"Telegram asked to wait {exc.retry_after} s (429)"
            await asyncio.sleep(min(float(exc.retry_after), MAX_RETRY_AFTER))
        except TelegramUnauthorizedError as exc:
            raise BotRevoked(str(exc)) from exc
        except (TelegramBadRequest, TelegramForbiddenError) as exc:
            # A malformed message, or a user who blocked the bot: trying again cannot help.
            return SendOutcome(False, f"Telegram refused the message: {exc.message}", attempt)
        except (TelegramNetworkError, TelegramServerError) as exc:
            error = f"{type(exc).__name__}: {exc.message}"
            await asyncio.sleep(min(0.5 * 2 ** (attempt - 1), 8.0))
    log.warning("telegram_send_gave_up", bot_id=str(bot_id), error=error)
    return SendOutcome(False, error, attempts)
