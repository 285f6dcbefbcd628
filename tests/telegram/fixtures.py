"""The loopback Bot API stand-in as Parley's Telegram, for the Telegram tests and the access
matrix. Loaded by `pytest_plugins` in tests/conftest.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from backend.config import TelegramMode, get_settings
from backend.telegram.client import close_sessions
from tests.standins.telegram_api import TelegramStandIn

WEBHOOK_BASE = "https://parley.example.com"
SAVED = ("telegram_api_base", "telegram_webhook_base_url", "telegram_mode")


@pytest.fixture
async def telegram() -> AsyncIterator[TelegramStandIn]:
    settings = get_settings()
    saved = {name: getattr(settings, name) for name in SAVED}
    async with TelegramStandIn() as server:
        settings.telegram_api_base = server.base_url
        settings.telegram_webhook_base_url = WEBHOOK_BASE
        settings.telegram_mode = TelegramMode.webhook
        yield server
        await close_sessions()
    for name, value in saved.items():
        setattr(settings, name, value)
