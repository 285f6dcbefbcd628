"""Metering: the append-only usage ledger, and the quota counters with their reservations.

A ledger row's id is stable from the moment it is written, so billing can use it as an
idempotency key. The ledger keeps plain ids of assistants and conversations (no foreign keys),
so deleting either never rewrites billing history.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Date, DateTime, Index, Integer, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from backend.models.base import Base, CreatedAtMixin, IdMixin, TenantOwnedMixin, str_enum


class UsageKind(StrEnum):
    reply = "reply"
    embedding = "embedding"


class UsageOutcome(StrEnum):
    charged = "charged"
    # Recorded for the record, at no cost: a provider failure or a fallback answer.
    free = "free"


class UsageRecord(IdMixin, TenantOwnedMixin, CreatedAtMixin, Base):
    __tablename__ = "usage_records"
    __table_args__ = (Index("ix_usage_records_tenant_id_created_at", "tenant_id", "created_at"),)

    kind: Mapped[UsageKind] = mapped_column(str_enum(UsageKind, "usage_kind"))
    outcome: Mapped[UsageOutcome] = mapped_column(str_enum(UsageOutcome, "usage_outcome"))
    assistant_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), nullable=True)
    conversation_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), nullable=True)
    message_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), nullable=True)
    knowledge_base_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), nullable=True)
    model: Mapped[str] = mapped_column(String(200))
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    embedding_tokens: Mapped[int] = mapped_column(Integer, default=0)
    # Millionths of the price table's currency unit, rounded up per row.
    cost_micros: Mapped[int] = mapped_column(BigInteger, default=0)


class QuotaCounter(IdMixin, TenantOwnedMixin, CreatedAtMixin, Base):
    """Use of one limit in one period: a workspace's month, or one visitor's day.

    `scope` is "plan" for the workspace's plan, or "visitor:<assistant id>:<visitor>".
    Reserving raises `*_reserved` under a row lock, checked against the limit in the same
    statement; settling moves the actual use into `*_used`.
    """

    __tablename__ = "quota_counters"
    __table_args__ = (UniqueConstraint("tenant_id", "scope", "period_start"),)

    scope: Mapped[str] = mapped_column(String(300))
    period_start: Mapped[date] = mapped_column(Date)
    replies_used: Mapped[int] = mapped_column(Integer, default=0)
    replies_reserved: Mapped[int] = mapped_column(Integer, default=0)
    tokens_used: Mapped[int] = mapped_column(BigInteger, default=0)
    tokens_reserved: Mapped[int] = mapped_column(BigInteger, default=0)


class QuotaReservation(IdMixin, TenantOwnedMixin, CreatedAtMixin, Base):
    """What one reply holds on its counters until it settles; a reply that never settles (a
    crashed process) is released by a scheduled sweep after `expires_at`."""

    __tablename__ = "quota_reservations"

    # [[scope, "YYYY-MM-DD"], ...]: the counters this reservation holds.
    counters: Mapped[list[Any]] = mapped_column(JSONB)
    replies: Mapped[int] = mapped_column(Integer)
    tokens: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
