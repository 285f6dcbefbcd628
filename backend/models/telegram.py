"""Workspaces' Telegram bots, the Telegram users and chats they talk with, and the sends that
kept failing (the dead-letter list)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from backend.models.base import Base, CreatedAtMixin, IdMixin, TenantOwnedMixin, str_enum
from backend.models.knowledge import UpdatedAtMixin


class BotStatus(StrEnum):
    active = "active"
    # Telegram refused the token (revoked in BotFather), or the workspace turned it off.
    disabled = "disabled"


class GroupMode(StrEnum):
    # In groups, answer only when mentioned or replied to.
    mention = "mention"
    all = "all"


class TelegramBot(IdMixin, TenantOwnedMixin, CreatedAtMixin, UpdatedAtMixin, Base):
    __tablename__ = "telegram_bots"
    __table_args__ = (UniqueConstraint("tenant_id", "telegram_id"),)

    assistant_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("assistants.id", ondelete="CASCADE"), index=True
    )
    telegram_id: Mapped[int] = mapped_column(BigInteger)
    username: Mapped[str] = mapped_column(String(64))
    # The BotFather token, encrypted (backend/kit/crypto.py); never logged, never in a URL.
    token_encrypted: Mapped[str] = mapped_column(Text)
    # sha256 of the webhook's secret_token; the secret itself is only ever sent to Telegram.
    webhook_secret_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[BotStatus] = mapped_column(
        str_enum(BotStatus, "telegram_bot_status"), default=BotStatus.active
    )
    disabled_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    group_mode: Mapped[GroupMode] = mapped_column(
        str_enum(GroupMode, "telegram_group_mode"), default=GroupMode.mention
    )
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_error_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class TelegramUser(IdMixin, TenantOwnedMixin, CreatedAtMixin, Base):
    __tablename__ = "telegram_users"
    __table_args__ = (UniqueConstraint("bot_id", "telegram_id"),)

    bot_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("telegram_bots.id", ondelete="CASCADE")
    )
    telegram_id: Mapped[int] = mapped_column(BigInteger)
    username: Mapped[str | None] = mapped_column(String(64), nullable=True)
    first_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    last_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    language_code: Mapped[str | None] = mapped_column(String(16), nullable=True)
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Set by /human: the person asked for a human; the operator inbox will pick it up.
    wants_human_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class TelegramChat(IdMixin, TenantOwnedMixin, CreatedAtMixin, Base):
    """A chat with a bot and its current conversation (/reset starts a new one)."""

    __tablename__ = "telegram_chats"
    __table_args__ = (UniqueConstraint("bot_id", "chat_id"),)

    bot_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("telegram_bots.id", ondelete="CASCADE")
    )
    chat_id: Mapped[int] = mapped_column(BigInteger)
    chat_type: Mapped[str] = mapped_column(String(20))
    conversation_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("conversations.id", ondelete="SET NULL"), nullable=True
    )


class TelegramDeadLetter(IdMixin, TenantOwnedMixin, CreatedAtMixin, Base):
    """A message Parley could not deliver after its retries; it can be retried by hand."""

    __tablename__ = "telegram_dead_letters"

    bot_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("telegram_bots.id", ondelete="CASCADE"), index=True
    )
    chat_id: Mapped[int] = mapped_column(BigInteger)
    html: Mapped[str] = mapped_column(Text)
    error: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
