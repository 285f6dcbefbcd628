"""Fixtures of the assistant and widget tests: an ingested knowledge base, plans with small
limits, and a loopback chat model. Loaded by `pytest_plugins` in tests/conftest.py."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
from httpx import AsyncClient
from pydantic import SecretStr
from sqlalchemy import update

from backend.config import PlanLimits, get_settings
from backend.db import PendingJob, unit_of_work
from backend.llm import reset_breakers
from backend.models import Tenant
from tests.factories.accounts import Account
from tests.factories.knowledge import add_text, create_kb, run_jobs
from tests.standins.openai_chat import ChatStandIn

HANDBOOK = """# Opening hours

The Harbour Street shop opens at 9:00 and closes at 18:00 from Monday to Friday.
On Saturdays it opens at 10:00 and closes at 14:00. It is closed on Sundays.

# Returns

Unworn shoes can be returned within 30 days with the receipt. Refunds reach the card
within five working days.
"""

KnowledgeMaker = Callable[[Account], Awaitable[uuid.UUID]]


@pytest.fixture
def handbook_kb(client: AsyncClient, recorded_jobs: list[PendingJob]) -> KnowledgeMaker:
    """Makes a knowledge base holding the shop handbook, ingested with the local model."""

    async def make(owner: Account) -> uuid.UUID:
        kb_id = await create_kb(client, owner)
        await add_text(client, owner, kb_id, HANDBOOK, title="Shop handbook")
        await run_jobs(recorded_jobs)
        return kb_id

    return make


PlanSetter = Callable[[Account, PlanLimits], Awaitable[None]]


@pytest.fixture
def put_on_plan() -> Iterator[PlanSetter]:
    """Puts a workspace on a plan of its own with the given limits."""
    plans = get_settings().plans
    added: list[str] = []

    async def put(owner: Account, limits: PlanLimits) -> None:
        assert owner.tenant_id is not None
        name = f"test-{uuid.uuid4().hex[:8]}"
        plans[name] = limits
        added.append(name)
        async with unit_of_work(tenant_id=owner.tenant_id) as session:
            await session.execute(
                update(Tenant).where(Tenant.id == owner.tenant_id).values(plan=name)
            )

    yield put
    for name in added:
        plans.pop(name, None)


def limits(replies: int, tokens: int = 10_000_000) -> PlanLimits:
    return PlanLimits(
        max_documents=100, max_chunks=10_000, monthly_replies=replies, monthly_tokens=tokens
    )


@pytest.fixture
async def chat_server() -> AsyncIterator[ChatStandIn]:
    """A loopback OpenAI-compatible chat server, configured as the platform's provider."""
    settings = get_settings()
    saved = settings.model_copy()
    async with ChatStandIn() as server:
        settings.openai_base_url = server.base_url
        settings.openai_api_key = SecretStr(server.api_key)
        settings.llm_retry_base_delay_seconds = 0.01
        settings.llm_retry_max_delay_seconds = 0.05
        settings.llm_timeout_seconds = 2.0
        reset_breakers()
        yield server
    for name in CHAT_SETTINGS:
        setattr(settings, name, getattr(saved, name))
    reset_breakers()


CHAT_SETTINGS = (
    "openai_base_url",
    "openai_api_key",
    "llm_retry_base_delay_seconds",
    "llm_retry_max_delay_seconds",
    "llm_timeout_seconds",
    "llm_max_retries",
    "llm_breaker_failures",
    "llm_breaker_reset_seconds",
)
