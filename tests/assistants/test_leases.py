"""Quota leases (backend/usage/leases.py): a process holds a plan's replies in advance, never
more than the plan has left, and gives back what it did not use."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select, text

from backend.config import PlanLimits, get_settings
from backend.db import unit_of_work
from backend.models import QuotaCounter, QuotaReservation
from backend.usage import quota
from backend.usage.leases import LeaseBook, Share
from tests.assistants.fixtures import limits
from tests.factories.tenancy import make_workspace


async def _workspace() -> uuid.UUID:
    owner = await make_workspace()
    assert owner.tenant_id is not None
    return owner.tenant_id


async def _state(tenant_id: uuid.UUID) -> dict[str, int]:
    async with unit_of_work(tenant_id=tenant_id) as session:
        counter = await session.scalar(
            select(QuotaCounter).where(QuotaCounter.scope == quota.PLAN_SCOPE)
        )
        rows = await session.scalar(select(func.count()).select_from(QuotaReservation))
    assert counter is not None
    return {
        "used": counter.replies_used,
        "reserved": counter.replies_reserved,
        "tokens_used": counter.tokens_used,
        "tokens_reserved": counter.tokens_reserved,
        "rows": rows or 0,
    }


async def _settle(tenant_id: uuid.UUID, share: Share, *, tokens: int = 0) -> None:
    """What a reply's final call does with its share."""
    async with unit_of_work(tenant_id=tenant_id) as session:
        await session.execute(
            text("SELECT parley_settle_quota_share(:id, :replies, :tokens, 1, :used)"),
            {
                "id": share.reservation_id,
                "replies": share.replies,
                "tokens": share.tokens,
                "used": tokens,
            },
        )


@pytest.fixture
def lease_seconds() -> Iterator[None]:
    settings = get_settings()
    saved = settings.quota_lease_seconds
    settings.quota_lease_seconds = 0.2
    yield
    settings.quota_lease_seconds = saved


def _plan(plan: PlanLimits) -> quota.Limit:
    return quota.month_limit(plan)


async def test_a_lease_grows_while_it_is_used_up_and_holds_a_quarter_of_the_room_at_most() -> None:
    tenant = await _workspace()
    plan = _plan(limits(replies=40))
    book = LeaseBook()
    first = [await book.take(tenant, plan, 0) for _ in range(2)]
    assert first[0].reservation_id == first[1].reservation_id
    assert await _state(tenant) == {**_none(), "reserved": 2, "rows": 1}
    # Used up in time: the next lease asks for twice as many, and gets them (38 / 4 = 9).
    second = await book.take(tenant, plan, 0)
    assert second.reservation_id != first[0].reservation_id
    assert book.held(tenant) == (3, 0)
    assert await _state(tenant) == {**_none(), "reserved": 6, "rows": 2}
    for share in [*first, second]:
        await _settle(tenant, share)
    await book.close()
    assert await _state(tenant) == {**_none(), "used": 3}


async def test_near_the_edge_leases_shrink_to_single_replies() -> None:
    tenant = await _workspace()
    plan = _plan(limits(replies=3))
    book = LeaseBook()
    shares = [await book.take(tenant, plan, 0) for _ in range(3)]
    assert len({share.reservation_id for share in shares}) == 3  # a quarter of 3 or less: 1
    with pytest.raises(quota.QuotaExceeded) as refused:
        await book.take(tenant, plan, 0)
    assert refused.value.limit == "plan_monthly"
    assert await _state(tenant) == {**_none(), "reserved": 3, "rows": 3}


async def test_tokens_are_leased_with_a_margin_and_limit_the_lease() -> None:
    tenant = await _workspace()
    plan = _plan(limits(replies=100, tokens=1000))
    book = LeaseBook()
    # 375 tokens a reply (300 and a quarter more): 2 replies fit, a quarter of that is 1.
    share = await book.take(tenant, plan, 300)
    assert await _state(tenant) == {**_none(), "reserved": 1, "tokens_reserved": 375, "rows": 1}
    await _settle(tenant, share, tokens=250)
    await book.close()
    assert await _state(tenant) == {**_none(), "used": 1, "tokens_used": 250}


async def test_a_lease_whose_time_is_up_gives_back_what_it_did_not_hand_out(
    lease_seconds: None,
) -> None:
    tenant = await _workspace()
    plan = _plan(limits(replies=40))
    book = LeaseBook()
    share = await book.take(tenant, plan, 0)
    assert await _state(tenant) == {**_none(), "reserved": 2, "rows": 1}
    await asyncio.sleep(0.4)
    assert await _state(tenant) == {**_none(), "reserved": 1, "rows": 1}  # the reply's own
    await _settle(tenant, share)
    assert await _state(tenant) == {**_none(), "used": 1}
    # An expired lease serves no more: the next reply takes a new one.
    again = await book.take(tenant, plan, 0)
    assert again.reservation_id != share.reservation_id
    await book.close()


async def test_a_reply_that_does_not_run_gives_its_share_back() -> None:
    """A request that fails after taking its share, before its model call: nothing stays held
    once the lease is given back."""
    tenant = await _workspace()
    plan = _plan(limits(replies=40))
    book = LeaseBook()
    share = await book.take(tenant, plan, 0)
    book.give_back(tenant, share)
    await book.close()
    assert await _state(tenant) == _none()


async def test_two_processes_at_the_edge_of_a_quota_never_overspend() -> None:
    tenant = await _workspace()
    plan = _plan(limits(replies=25))
    books = [LeaseBook(), LeaseBook()]

    async def take(i: int) -> Share | None:
        try:
            return await books[i % 2].take(tenant, plan, 0)
        except quota.QuotaExceeded:
            return None

    taken = [share for share in await asyncio.gather(*(take(i) for i in range(200))) if share]
    assert 0 < len(taken) <= 25
    state = await _state(tenant)
    assert state["reserved"] <= 25
    for share in taken:
        await _settle(tenant, share)
    for book in books:
        await book.close()
    assert await _state(tenant) == {**_none(), "used": len(taken)}


def _none() -> dict[str, int]:
    return {"used": 0, "reserved": 0, "tokens_used": 0, "tokens_reserved": 0, "rows": 0}
