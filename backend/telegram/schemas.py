"""Request and response bodies of the Telegram bot endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from backend.models import BotStatus, GroupMode

# BotFather tokens: "<bot id>:<35 characters>".
TOKEN_PATTERN = r"^[0-9]{3,20}:[A-Za-z0-9_-]{20,100}$"  # noqa: S105 (a shape, not a secret)


class BotConnect(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(pattern=TOKEN_PATTERN, description="The token from BotFather; never shown")
    assistant_id: uuid.UUID
    group_mode: GroupMode = GroupMode.mention


class BotUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    assistant_id: uuid.UUID | None = None
    group_mode: GroupMode | None = None
    enabled: bool | None = Field(
        default=None,
        description="false turns the bot off; true turns it back on (checks the token)",
    )


class BotRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    assistant_id: uuid.UUID
    telegram_id: int
    username: str
    status: BotStatus
    disabled_reason: str | None
    group_mode: GroupMode
    last_error: str | None
    last_error_at: datetime | None
    created_at: datetime


class DeadLetterRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    bot_id: uuid.UUID
    chat_id: int
    html: str
    error: str
    attempts: int
    created_at: datetime
    resolved_at: datetime | None
