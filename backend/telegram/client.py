"""aiogram Bot objects for workspaces' bots, all on one HTTP session per process (per API
server), talking to `telegram_api_base`: Telegram's own server, or a local Bot API server."""

from __future__ import annotations

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from backend.config import get_settings

_sessions: dict[str, AiohttpSession] = {}


def _shared_session() -> AiohttpSession:
    base = get_settings().telegram_api_base.rstrip("/")
    session = _sessions.get(base)
    if session is None:
        session = _sessions[base] = AiohttpSession(api=TelegramAPIServer.from_base(base))
    return session


def bot_for(token: str) -> Bot:
    """A Bot for `token`. Cheap: it shares the process's session, so there is nothing to close."""
    return Bot(token, session=_shared_session())


async def close_sessions() -> None:
    while _sessions:
        _, session = _sessions.popitem()
        await session.close()
