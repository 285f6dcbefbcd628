"""Scheduled metering work: releasing quota holds whose reply never settled."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from backend.db import unit_of_work
from backend.usage import quota


async def release_stale_reservations(ctx: dict[str, Any]) -> int:
    """Cron: a reply whose process died keeps its quota hold until this releases it.

    The scheduler scope lists expired holds across workspaces; each is released in its own
    workspace's context. Settling is idempotent, so two sweeps never release one hold twice.
    """
    async with unit_of_work() as session:
        await session.execute(text("SELECT set_config('app.scope', 'scheduler', true)"))
        expired = await quota.expired_reservations(session)
    released = 0
    for reservation_id, tenant_id in expired:
        async with unit_of_work(tenant_id=tenant_id) as session:
            released += await quota.settle(session, reservation_id, replies=0, tokens=0)
    return released
