"""Quotas: reserve before generating, settle after, so concurrent replies cannot overspend.

A reservation raises the `*_reserved` columns of every counter it touches in one statement, a
call of the SQL function `parley_hold_quota`: an upsert per counter, whose WHERE clause checks
the limit against used + reserved + asked. The row lock serializes concurrent reservations of
one counter, and PostgreSQL checks the WHERE clause of ON CONFLICT DO UPDATE on the locked
row's newest version, so at the edge of a quota exactly as many requests win as fit. A counter
without room gives back what the call held on the counters before it: a refused reservation
holds nothing. Settling moves the actual use into `*_used` and releases the rest.

Counters are reserved in a fixed order (by scope), so two reservations never deadlock.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from backend.config import PlanLimits, get_settings
from backend.errors import AppError

# Tokens are counted on the plan's counter only; a visitor's cap counts messages.
PLAN_SCOPE = "plan"


@dataclass(frozen=True)
class Limit:
    """One limit in one period: `replies`/`tokens` of None mean unlimited."""

    scope: str
    period_start: date
    resets_at: datetime
    replies: int | None
    tokens: int | None
    name: str  # for people: "monthly replies of the plan", "daily messages per visitor"


class QuotaExceeded(AppError):
    """The workspace's plan is used up for this period: 402, as paying more would help."""

    status_code: ClassVar[int] = 402
    code: ClassVar[str] = "quota_exceeded"

    def __init__(self, detail: str, *, limit: str, resets_at: datetime) -> None:
        super().__init__(detail)
        self.limit = limit
        self.resets_at = resets_at

    def body(self) -> dict[str, Any]:
        return {**super().body(), "limit": self.limit, "resets_at": self.resets_at.isoformat()}


class VisitorCapReached(QuotaExceeded):
    """One visitor's daily messages are used up: 429 with Retry-After, as waiting helps."""

    status_code: ClassVar[int] = 429
    code: ClassVar[str] = "visitor_cap_reached"

    def __init__(self, detail: str, *, limit: str, resets_at: datetime) -> None:
        super().__init__(detail, limit=limit, resets_at=resets_at)
        wait = max(1, int((resets_at - datetime.now(UTC)).total_seconds()) + 1)
        self.headers = {"Retry-After": str(wait)}


@dataclass(frozen=True)
class Reservation:
    id: uuid.UUID
    tenant_id: uuid.UUID
    limits: tuple[Limit, ...]
    replies: int
    tokens: int


def month_limit(plan: PlanLimits, now: datetime | None = None) -> Limit:
    now = now or datetime.now(UTC)
    start = now.date().replace(day=1)
    following = (start + timedelta(days=32)).replace(day=1)
    return Limit(
        scope=PLAN_SCOPE,
        period_start=start,
        resets_at=datetime(following.year, following.month, 1, tzinfo=UTC),
        replies=plan.monthly_replies,
        tokens=plan.monthly_tokens,
        name="the plan's monthly replies and tokens",
    )


def visitor_day_limit(
    assistant_id: uuid.UUID, visitor: str, cap: int, now: datetime | None = None
) -> Limit:
    now = now or datetime.now(UTC)
    day = now.date()
    tomorrow = day + timedelta(days=1)
    return Limit(
        scope=f"visitor:{assistant_id}:{visitor}"[:300],
        period_start=day,
        resets_at=datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=UTC),
        replies=cap,
        tokens=None,
        name="the assistant's daily messages per visitor",
    )


# Holds a reply on every counter, in order, or on none, and records the reservation (migration
# e4a9c2f7b1d3). A period's first hold creates its counter; a later one raises the held amounts
# on the locked row, and either only if the limit has room. It answers 0, or the number of the
# first counter that had none.
_HOLD = text(
    "SELECT parley_hold_quota(:tenant, :id, CAST(:counters AS jsonb), :replies, :tokens,"
    " :expires_at)"
)
# Settles in one statement (migration f1c3a8e5d2b7): the hold's row deleted, its counters moved
# from held to used; false when the hold was no longer there.
_SETTLE = text("SELECT parley_settle_quota(:id, :replies, :tokens)")


@dataclass(frozen=True)
class Hold:
    """A reservation about to be made: what `parley_hold_quota` (and the functions that call
    it) take, besides the tenant."""

    reservation: Reservation
    counters: str  # JSON: the counters in locking order, with their limits and tokens
    expires_at: datetime

    def refused(self, number: int) -> QuotaExceeded:
        """The refusal for the function's answer `number` (1 for the first counter)."""
        return refusal(self.reservation.limits[number - 1])


def hold_for(tenant_id: uuid.UUID, limits: list[Limit], *, replies: int, tokens: int) -> Hold:
    """`replies` and `tokens` to hold on every limit (tokens on the plan's counter only), in a
    fixed order (by scope), so that two reservations never deadlock."""
    if not limits:
        raise ValueError("a reservation holds at least one limit")
    ordered = tuple(sorted(limits, key=lambda limit: (limit.scope, limit.period_start)))
    counters = [
        {
            "scope": limit.scope,
            "period": limit.period_start.isoformat(),
            "replies_limit": limit.replies,
            "tokens_limit": limit.tokens,
            "tokens": tokens if limit.scope == PLAN_SCOPE else 0,
        }
        for limit in ordered
    ]
    ttl = timedelta(seconds=get_settings().quota_reservation_ttl_seconds)
    return Hold(
        reservation=Reservation(uuid.uuid4(), tenant_id, ordered, replies, tokens),
        counters=json.dumps(counters),
        expires_at=datetime.now(UTC) + ttl,
    )


async def reserve(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    limits: list[Limit],
    *,
    replies: int = 1,
    tokens: int = 0,
) -> Reservation:
    """Hold `replies` and `tokens` on every limit, or raise QuotaExceeded naming the first
    limit that has no room (nothing is held then). Call it in a transaction of its own: the
    caller commits it at once, so the hold is visible to every other request while the reply
    is generated."""
    hold = hold_for(tenant_id, limits, replies=replies, tokens=tokens)
    refused = await session.scalar(
        _HOLD,
        {
            "tenant": tenant_id,
            "id": hold.reservation.id,
            "counters": hold.counters,
            "replies": replies,
            "tokens": tokens,
            "expires_at": hold.expires_at,
        },
    )
    if refused:
        raise hold.refused(refused)
    return hold.reservation


def refusal(limit: Limit) -> QuotaExceeded:
    when = limit.resets_at.strftime("%Y-%m-%d %H:%M UTC")
    if limit.scope == PLAN_SCOPE:
        return QuotaExceeded(
            f"This workspace has used up {limit.name}; it resets on {when}. "
            "Upgrade the plan for more.",
            limit="plan_monthly",
            resets_at=limit.resets_at,
        )
    return VisitorCapReached(
        f"This visitor has reached {limit.name}; it resets at {when}.",
        limit="visitor_daily",
        resets_at=limit.resets_at,
    )


async def settle(
    session: AsyncSession, reservation_id: uuid.UUID, *, replies: int, tokens: int
) -> bool:
    """Turn a hold into actual use (0 and 0 to release it). Idempotent: a reservation that was
    already settled, or released by the sweep, changes nothing; returns whether it was held."""
    held = await session.scalar(
        _SETTLE, {"id": reservation_id, "replies": replies, "tokens": tokens}
    )
    return bool(held)


async def expired_reservations(
    session: AsyncSession, now: datetime | None = None, limit: int = 1000
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """(reservation, tenant) of holds whose reply never settled (its process died). Read in
    the scheduler's scope, which sees reservations of every workspace but changes nothing."""
    rows = await session.execute(
        text(
            "SELECT id, tenant_id FROM quota_reservations WHERE expires_at < :now"
            " ORDER BY expires_at LIMIT :limit"
        ),
        {"now": now or datetime.now(UTC), "limit": limit},
    )
    return [(row.id, row.tenant_id) for row in rows]
