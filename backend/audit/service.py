"""Recording audit events. Called by services inside the same transaction as the change."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from backend.models import AuditEvent
from backend.tenancy.context import TenantContext


async def record(
    session: AsyncSession,
    ctx: TenantContext,
    action: str,
    object_type: str,
    object_id: object | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditEvent(
            tenant_id=ctx.tenant_id,
            actor_user_id=ctx.user_id,
            actor_api_key_id=ctx.api_key_id,
            action=action,
            object_type=object_type,
            object_id=None if object_id is None else str(object_id),
            ip=ctx.ip,
            user_agent=(ctx.user_agent or "")[:400] or None,
            details=details or {},
        )
    )
    await session.flush()
