"""Which plan a workspace is on, and that plan's limits from the `plans` setting."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.config import PlanLimits, get_settings
from backend.models import Tenant


async def plan_for(session: AsyncSession, tenant_id: uuid.UUID) -> tuple[str, PlanLimits]:
    """The workspace's plan name and limits; an unknown plan name gets the free plan's."""
    return limits_of(await session.scalar(select(Tenant.plan).where(Tenant.id == tenant_id)))


def limits_of(plan: str | None) -> tuple[str, PlanLimits]:
    """A plan name read from `tenants.plan`, and its limits."""
    name = plan or "free"
    plans = get_settings().plans
    limits = plans.get(name) or plans.get("free") or next(iter(plans.values()))
    return name, limits
