"""The usage summary: per day, per assistant and per model, and the period against the plan."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import Date, case, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.assistants.schemas import PeriodUsage, UsageBucket, UsageSummary
from backend.db import SessionDep
from backend.errors import ValidationFailed
from backend.models import QuotaCounter, UsageKind, UsageRecord
from backend.tenancy.context import TenantContext, require
from backend.tenancy.permissions import Permission
from backend.usage.plans import plan_for
from backend.usage.quota import PLAN_SCOPE, month_limit

router = APIRouter(prefix="/api/v1/usage", tags=["usage"])
Read = Annotated[TenantContext, Depends(require(Permission.usage_read))]
MAX_DAYS = 366


@router.get("", response_model=UsageSummary)
async def usage_summary(
    ctx: Read,
    session: SessionDep,
    since: Annotated[
        date | None, Query(description="First day (UTC); default: 30 days ago")
    ] = None,
    until: Annotated[
        date | None, Query(description="Last day (UTC), included; default: today")
    ] = None,
) -> UsageSummary:
    """Replies, tokens and cost from the usage ledger, and this month's use of the plan."""
    until = until or datetime.now(UTC).date()
    since = since or until - timedelta(days=29)
    if since > until or (until - since).days >= MAX_DAYS:
        raise ValidationFailed(
            f"'since' must be on or before 'until', at most {MAX_DAYS} days apart.",
            fields=[{"field": "since", "message": "out of range"}],
        )
    start = datetime.combine(since, time.min, tzinfo=UTC)
    end = datetime.combine(until + timedelta(days=1), time.min, tzinfo=UTC)
    day = cast(func.timezone("UTC", UsageRecord.created_at), Date)
    return UsageSummary(
        since=since,
        until=until,
        by_day=await _buckets(session, ctx, day, start, end),
        by_assistant=await _buckets(session, ctx, UsageRecord.assistant_id, start, end),
        by_model=await _buckets(session, ctx, UsageRecord.model, start, end),
        period=await _period(session, ctx),
    )


async def _buckets(
    session: AsyncSession, ctx: TenantContext, key: Any, start: datetime, end: datetime
) -> list[UsageBucket]:
    replies = func.count(case((UsageRecord.kind == UsageKind.reply, 1)))
    rows = await session.execute(
        select(
            key,
            replies,
            func.coalesce(func.sum(UsageRecord.prompt_tokens), 0),
            func.coalesce(func.sum(UsageRecord.completion_tokens), 0),
            func.coalesce(func.sum(UsageRecord.embedding_tokens), 0),
            func.coalesce(func.sum(UsageRecord.cost_micros), 0),
        )
        .where(
            UsageRecord.tenant_id == ctx.tenant_id,
            UsageRecord.created_at >= start,
            UsageRecord.created_at < end,
        )
        .group_by(key)
        .order_by(key)
    )
    return [
        UsageBucket(
            key=str(k) if k is not None else "none",
            replies=r,
            prompt_tokens=p,
            completion_tokens=c,
            embedding_tokens=e,
            cost_micros=cost,
        )
        for k, r, p, c, e, cost in rows
    ]


async def _period(session: AsyncSession, ctx: TenantContext) -> PeriodUsage:
    name, limits = await plan_for(session, ctx.tenant_id)
    month = month_limit(limits)
    counter = await session.scalar(
        select(QuotaCounter).where(
            QuotaCounter.tenant_id == ctx.tenant_id,
            QuotaCounter.scope == PLAN_SCOPE,
            QuotaCounter.period_start == month.period_start,
        )
    )
    return PeriodUsage(
        plan=name,
        period_start=month.period_start,
        resets_at=month.resets_at,
        replies_used=counter.replies_used if counter else 0,
        replies_limit=limits.monthly_replies,
        tokens_used=counter.tokens_used if counter else 0,
        tokens_limit=limits.monthly_tokens,
    )
