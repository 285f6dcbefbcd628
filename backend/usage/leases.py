"""Quota leases: a plan's replies held for one API process in advance, so that an
OpenAI-compatible reply is admitted without a database round trip before its model call.

A lease is a quota reservation (`parley_lease_quota`, migration c5e8b3d1a9f4) on the plan's
monthly counter that holds several replies, each with the tokens of a reply of that size. It
is taken in PostgreSQL, under the counter's row lock, like a single reply's hold: leases and
holds together never hold more than the plan has left, so concurrent replies still cannot
overspend. The process then hands the lease's replies out one by one, in memory; each reply
settles its own share when it finishes (`parley_settle_quota_share`, in the reply's final
call). A lease is handed out for `quota_lease_seconds`; then, or when the process stops, its
unused rest is given back. A process that dies leaves its leases to the stale-hold sweep.

Sizes adapt: a workspace's first lease holds 2 replies, the next twice as many if the last
was used up in time (up to `quota_lease_max_replies`), else as many as were used. The database
never grants more than a quarter of what the plan has left (but at least one reply): near the
edge of a quota, leases shrink to single replies, and what one process holds unused is small.
That unused part is the cost: with several processes, a reply can be refused at the very edge
while another process still holds a few replies it has not used, until its lease ends.

Replies that count against more than the plan (an assistant's cap per visitor) hold their own
quota as before (backend/usage/quota.py).
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog

from backend.config import get_settings
from backend.db import in_workspace, raw_connection
from backend.kit.background import run_in_background
from backend.usage import quota

log = structlog.get_logger(__name__)

FIRST_LEASE = 2
# Each reply of a lease may hold up to this much more than the reply that took the lease.
TOKEN_MARGIN = 1.25

_LEASE = "SELECT parley_lease_quota($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
_GIVE_BACK = in_workspace("parley_settle_quota_share($2, $3, $4, 0, 0)")


@dataclass(eq=False)
class Lease:
    id: uuid.UUID
    tenant_id: uuid.UUID
    limit: quota.Limit
    granted: int
    replies_left: int
    tokens_left: int
    tokens_each: int
    until: float  # time.monotonic(): handed out until then
    retired: bool = False


@dataclass(frozen=True)
class Share:
    """One reply's part of a reservation: settled, with what the reply used, by the reply's
    final call."""

    reservation_id: uuid.UUID
    replies: int
    tokens: int


class LeaseBook:
    """The leases of this process, one per workspace."""

    def __init__(self) -> None:
        self._leases: dict[uuid.UUID, Lease] = {}
        self._want: dict[uuid.UUID, int] = {}
        self._locks: dict[uuid.UUID, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def take(self, tenant_id: uuid.UUID, limit: quota.Limit, tokens: int) -> Share:
        """One reply holding `tokens` on the plan's counter `limit`, from this process's
        lease, which is renewed first if it cannot serve the reply. Raises QuotaExceeded when
        the plan has no room for it."""
        lease = self._serving(tenant_id, limit, tokens)
        if lease is None:
            lock = self._locks.setdefault(tenant_id, asyncio.Lock())
            async with lock:
                lease = self._serving(tenant_id, limit, tokens)
                if lease is None:
                    lease = await self._renew(tenant_id, limit, tokens)
        lease.replies_left -= 1
        lease.tokens_left -= tokens
        return Share(lease.id, 1, tokens)

    def give_back(self, tenant_id: uuid.UUID, share: Share) -> None:
        """A reply that will not run after all: its share goes back, in the background."""
        run_in_background(
            self._give_back(tenant_id, share.reservation_id, share.replies, share.tokens),
            self._tasks,
        )

    def held(self, tenant_id: uuid.UUID) -> tuple[int, int]:
        """(replies, tokens) this process holds for the workspace and has not handed out."""
        lease = self._leases.get(tenant_id)
        return (lease.replies_left, lease.tokens_left) if lease is not None else (0, 0)

    def _serving(self, tenant_id: uuid.UUID, limit: quota.Limit, tokens: int) -> Lease | None:
        lease = self._leases.get(tenant_id)
        if (
            lease is None
            or lease.limit != limit
            or lease.replies_left < 1
            or lease.tokens_left < tokens
            or time.monotonic() >= lease.until
        ):
            return None
        return lease

    async def _renew(self, tenant_id: uuid.UUID, limit: quota.Limit, tokens: int) -> Lease:
        settings = get_settings()
        old = self._leases.get(tenant_id)
        want = self._next_want(tenant_id, old, settings.quota_lease_max_replies)
        tokens_each = math.ceil(tokens * TOKEN_MARGIN)
        lease_id = uuid.uuid4()
        window = settings.quota_lease_seconds
        expires_at = datetime.now(UTC) + timedelta(
            seconds=window + settings.quota_reservation_ttl_seconds
        )
        returned = (old.id, old.replies_left, old.tokens_left) if old else (None, 0, 0)
        async with raw_connection() as db:
            granted = await db.fetchval(
                _LEASE,
                tenant_id,
                lease_id,
                limit.scope,
                limit.period_start,
                limit.replies,
                limit.tokens,
                want,
                tokens_each,
                expires_at,
                *returned,
            )
        if old is not None:  # given back by that statement
            self._retire(old)
        if not granted:
            raise quota.refusal(limit)
        lease = Lease(
            lease_id,
            tenant_id,
            limit,
            granted,
            granted,
            granted * tokens_each,
            tokens_each,
            time.monotonic() + window,
        )
        self._leases[tenant_id] = lease
        asyncio.get_running_loop().call_later(window, self._expire, lease)
        return lease

    def _next_want(self, tenant_id: uuid.UUID, old: Lease | None, most: int) -> int:
        want = self._want.get(tenant_id, FIRST_LEASE)
        if old is not None and old.replies_left == 0 and time.monotonic() < old.until:
            want = min(most, old.granted * 2)  # used up in time: more next time
        self._want[tenant_id] = want
        return min(want, most)

    def _retire(self, lease: Lease) -> None:
        lease.retired = True
        lease.replies_left = lease.tokens_left = 0
        if self._leases.get(lease.tenant_id) is lease:
            del self._leases[lease.tenant_id]

    def _expire(self, lease: Lease) -> None:
        """The lease's time is up: its unused rest goes back."""
        if lease.retired:
            return
        used = lease.granted - lease.replies_left
        self._want[lease.tenant_id] = max(1, used)
        rest = (lease.replies_left, lease.tokens_left)
        self._retire(lease)
        lock = self._locks.get(lease.tenant_id)
        if lock is not None and not lock.locked() and lease.tenant_id not in self._leases:
            del self._locks[lease.tenant_id]
        if rest != (0, 0):
            run_in_background(self._give_back(lease.tenant_id, lease.id, *rest), self._tasks)

    async def _give_back(
        self, tenant_id: uuid.UUID, lease_id: uuid.UUID, replies: int, tokens: int
    ) -> None:
        try:
            async with raw_connection() as db:
                await db.fetchval(_GIVE_BACK, tenant_id, lease_id, replies, tokens)
        except Exception:
            # Still held in the database: the stale-hold sweep releases it once it expires.
            log.warning("quota_lease_not_given_back", lease_id=str(lease_id), exc_info=True)

    async def close(self) -> None:
        """Give back every lease's unused rest (the process is stopping)."""
        for lease in list(self._leases.values()):
            self._expire(lease)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


_book: LeaseBook | None = None


def lease_book() -> LeaseBook:
    global _book
    if _book is None:
        _book = LeaseBook()
    return _book


async def close_lease_book() -> None:
    global _book
    if _book is not None:
        book, _book = _book, None
        await book.close()
