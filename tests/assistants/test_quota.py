"""Quotas: held atomically before a reply and settled after, so concurrency cannot overspend."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select, update

from backend.config import get_settings
from backend.db import unit_of_work
from backend.models import Message, QuotaCounter, QuotaReservation, UsageRecord
from backend.tenancy.permissions import Permission
from backend.usage import quota
from backend.usage.tasks import release_stale_reservations
from tests.assistants.fixtures import KnowledgeMaker, PlanSetter, limits
from tests.factories.accounts import Account
from tests.factories.assistants import ask, create_assistant, open_conversation
from tests.factories.responses import assert_error
from tests.factories.tenancy import make_workspace
from tests.factories.workspaces import create_api_key

QUESTION = "When does the shop open on Saturdays?"


async def _plan_counter(owner: Account) -> QuotaCounter | None:
    assert owner.tenant_id is not None
    async with unit_of_work(tenant_id=owner.tenant_id) as session:
        found: QuotaCounter | None = await session.scalar(
            select(QuotaCounter).where(QuotaCounter.scope == quota.PLAN_SCOPE)
        )
        return found


async def _count(owner: Account, model: type[UsageRecord] | type[Message]) -> int:
    assert owner.tenant_id is not None
    async with unit_of_work(tenant_id=owner.tenant_id) as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.mark.parametrize("route", ["rest", "openai", "openai, own holds"])
async def test_200_concurrent_requests_at_the_edge_cannot_overspend(
    client: AsyncClient,
    handbook_kb: KnowledgeMaker,
    put_on_plan: PlanSetter,
    route: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Through the REST API (the quota held in the request's transaction) and through the
    OpenAI-compatible one (held by the process's leases, or, with leases off, by each reply
    in a SQL call of its own)."""
    if route == "openai, own holds":
        monkeypatch.setattr(get_settings(), "quota_lease_seconds", 0)
    owner = await make_workspace()
    kb_id = await handbook_kb(owner)
    assistant = await create_assistant(client, owner, knowledge_base_ids=[kb_id])
    conversations = [await open_conversation(client, owner, assistant["id"]) for _ in range(10)]
    key = await create_api_key(client, owner, [Permission.chat])
    allowed = 25
    await put_on_plan(owner, limits(replies=allowed))
    messages_before = await _count(owner, Message)

    q = QUESTION

    async def send(i: int) -> int:
        if route == "rest":
            response = await client.post(
                f"/api/v1/conversations/{conversations[i % 10]}/messages",
                json={"content": QUESTION},
                headers=owner.headers(),
            )
        else:
            response = await client.post(
                "/v1/chat/completions",
                json={"model": assistant["id"], "messages": [{"role": "user", "content": q}]},
                headers={"Authorization": f"Bearer {key.key}"},
            )
        if response.status_code == 402:
            assert_error(response, 402, "quota_exceeded")
        return response.status_code

    statuses = await asyncio.gather(*(send(i) for i in range(200)))

    assert statuses.count(200) == allowed, statuses
    assert statuses.count(402) == 200 - allowed, statuses
    counter = await _plan_counter(owner)
    assert counter is not None
    assert (counter.replies_used, counter.replies_reserved) == (allowed, 0)
    assert await _count(owner, UsageRecord) - 1 == allowed  # + the ingestion's embedding row
    # Only accepted questions were saved, each with its answer; refused ones left nothing.
    assert await _count(owner, Message) - messages_before == 2 * allowed
    assert owner.tenant_id is not None
    async with unit_of_work(tenant_id=owner.tenant_id) as session:
        assert await session.scalar(select(func.count()).select_from(QuotaReservation)) == 0


async def test_a_refusal_says_which_limit_and_when_it_resets(
    client: AsyncClient, handbook_kb: KnowledgeMaker, put_on_plan: PlanSetter
) -> None:
    owner = await make_workspace()
    assistant = await create_assistant(client, owner, knowledge_base_ids=[await handbook_kb(owner)])
    conversation = await open_conversation(client, owner, assistant["id"])
    await put_on_plan(owner, limits(replies=1))
    await ask(client, owner, conversation, QUESTION)
    refused = await client.post(
        f"/api/v1/conversations/{conversation}/messages",
        json={"content": QUESTION},
        headers=owner.headers(),
    )
    body = assert_error(refused, 402, "quota_exceeded")
    assert body["limit"] == "plan_monthly"
    now = datetime.now(UTC)
    first_of_next_month = (now.replace(day=1) + timedelta(days=32)).replace(day=1).date()
    assert body["resets_at"].startswith(first_of_next_month.isoformat()), body
    assert "resets" in body["detail"]


async def test_visitor_daily_cap_counts_per_visitor(
    client: AsyncClient, handbook_kb: KnowledgeMaker
) -> None:
    owner = await make_workspace()
    assistant = await create_assistant(
        client, owner, knowledge_base_ids=[await handbook_kb(owner)], visitor_daily_message_cap=2
    )
    first = await open_conversation(client, owner, assistant["id"], external_user_id="visitor-1")
    second = await open_conversation(client, owner, assistant["id"], external_user_id="visitor-1")
    other = await open_conversation(client, owner, assistant["id"], external_user_id="visitor-2")
    await ask(client, owner, first, QUESTION)
    await ask(client, owner, second, QUESTION)
    refused = await client.post(
        f"/api/v1/conversations/{first}/messages",
        json={"content": QUESTION},
        headers=owner.headers(),
    )
    body = assert_error(refused, 429, "visitor_cap_reached")
    assert body["limit"] == "visitor_daily"
    wait = int(refused.headers["retry-after"])
    assert 0 < wait <= 86_401
    await ask(client, owner, other, QUESTION)  # another visitor is not affected


async def test_a_reservation_fails_as_a_whole(put_on_plan: PlanSetter) -> None:
    """When the visitor's cap refuses, the plan's hold taken before it is not kept."""
    owner = await make_workspace()
    assert owner.tenant_id is not None
    await put_on_plan(owner, limits(replies=10))
    plan = quota.month_limit(limits(replies=10))
    visitor = quota.visitor_day_limit(uuid.uuid4(), "v", cap=0)
    async with unit_of_work(tenant_id=owner.tenant_id) as session:
        with pytest.raises(quota.VisitorCapReached):
            await quota.reserve(session, owner.tenant_id, [plan, visitor])
        # The transaction goes on and commits: the refused call itself gave its hold back.
    counter = await _plan_counter(owner)
    assert counter is not None
    assert (counter.replies_reserved, counter.tokens_reserved) == (0, 0)
    async with unit_of_work(tenant_id=owner.tenant_id) as session:
        assert await session.scalar(select(func.count()).select_from(QuotaReservation)) == 0


async def test_a_reservation_records_what_it_holds() -> None:
    """The hold is one row naming every counter it raised, in the order they were raised, and
    a refused counter records none (the upsert of the last counter writes the row too)."""
    owner = await make_workspace()
    assert owner.tenant_id is not None
    plan = quota.month_limit(limits(replies=10, tokens=1000))
    visitor = quota.visitor_day_limit(uuid.uuid4(), "visitor-1", cap=1)
    before = datetime.now(UTC)
    async with unit_of_work(tenant_id=owner.tenant_id) as session:
        held = await quota.reserve(session, owner.tenant_id, [visitor, plan], tokens=300)
    with pytest.raises(quota.VisitorCapReached):
        async with unit_of_work(tenant_id=owner.tenant_id) as session:
            await quota.reserve(session, owner.tenant_id, [visitor, plan], tokens=300)
    async with unit_of_work(tenant_id=owner.tenant_id) as session:
        rows = list(await session.scalars(select(QuotaReservation)))
    assert [row.id for row in rows] == [held.id]
    row = rows[0]
    assert row.tenant_id == owner.tenant_id
    assert row.counters == [
        [plan.scope, plan.period_start.isoformat()],
        [visitor.scope, visitor.period_start.isoformat()],
    ]
    assert (row.replies, row.tokens) == (1, 300)
    assert row.expires_at > before
    assert [limit.scope for limit in held.limits] == [plan.scope, visitor.scope]


async def test_token_limit_counts_the_most_a_reply_can_use() -> None:
    owner = await make_workspace()
    assert owner.tenant_id is not None
    plan = quota.month_limit(limits(replies=100, tokens=1000))
    async with unit_of_work(tenant_id=owner.tenant_id) as session:
        held = await quota.reserve(session, owner.tenant_id, [plan], tokens=700)
    with pytest.raises(quota.QuotaExceeded):
        async with unit_of_work(tenant_id=owner.tenant_id) as session:
            await quota.reserve(session, owner.tenant_id, [plan], tokens=400)
    async with unit_of_work(tenant_id=owner.tenant_id) as session:
        assert await quota.settle(session, held.id, replies=1, tokens=250)
    async with unit_of_work(tenant_id=owner.tenant_id) as session:
        await quota.reserve(session, owner.tenant_id, [plan], tokens=400)  # fits after settling
    counter = await _plan_counter(owner)
    assert counter is not None
    assert (counter.tokens_used, counter.tokens_reserved) == (250, 400)


async def test_stale_holds_are_released_once() -> None:
    owner = await make_workspace()
    assert owner.tenant_id is not None
    plan = quota.month_limit(limits(replies=5))
    async with unit_of_work(tenant_id=owner.tenant_id) as session:
        held = await quota.reserve(session, owner.tenant_id, [plan], tokens=50)
        await session.execute(
            update(QuotaReservation)
            .where(QuotaReservation.id == held.id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert await release_stale_reservations({}) >= 1
    counter = await _plan_counter(owner)
    assert counter is not None
    assert (counter.replies_reserved, counter.tokens_reserved, counter.replies_used) == (0, 0, 0)
    async with unit_of_work(tenant_id=owner.tenant_id) as session:
        assert not await quota.settle(session, held.id, replies=1, tokens=50)
    counter = await _plan_counter(owner)
    assert counter is not None
    assert counter.replies_used == 0  # the late settle changed nothing


async def test_fallback_answers_are_not_counted(
    client: AsyncClient, handbook_kb: KnowledgeMaker
) -> None:
    owner = await make_workspace()
    assistant = await create_assistant(client, owner, knowledge_base_ids=[await handbook_kb(owner)])
    conversation = await open_conversation(client, owner, assistant["id"])
    reply = await ask(client, owner, conversation, "zebra quantum saxophone orbit?")
    assert reply["answer"]["status"] == "fallback"
    assert reply["answer"]["content"] == assistant["fallback_message"]
    assert reply["usage_id"] is None
    counter = await _plan_counter(owner)
    assert counter is not None
    assert (counter.replies_used, counter.replies_reserved) == (0, 0)
