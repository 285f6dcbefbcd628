"""Reading the audit log: owners and admins of the tenant only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select

from backend.audit.schemas import AuditEventRead
from backend.db import SessionDep
from backend.kit.pagination import (
    Page,
    PageParams,
    next_cursor_of,
    page_params,
    paginate_newest_first,
)
from backend.kit.text import PlainText
from backend.models import AuditEvent
from backend.tenancy.context import TenantContext, require
from backend.tenancy.permissions import Permission

router = APIRouter(prefix="/api/v1", tags=["audit"])


@router.get("/audit-log", response_model=Page[AuditEventRead])
async def list_audit_events(
    session: SessionDep,
    ctx: Annotated[TenantContext, Depends(require(Permission.audit_read))],
    page: Annotated[PageParams, Depends(page_params)],
    action: Annotated[PlainText | None, Query(max_length=80)] = None,
) -> Page[AuditEventRead]:
    """Administrative actions in this workspace, newest first."""
    statement = select(AuditEvent).where(AuditEvent.tenant_id == ctx.tenant_id)
    if action:
        statement = statement.where(AuditEvent.action == action)
    statement = paginate_newest_first(statement, AuditEvent.created_at, AuditEvent.id, page)
    rows, cursor = next_cursor_of(list(await session.scalars(statement)), page.limit)
    return Page(items=[AuditEventRead.model_validate(r) for r in rows], next_cursor=cursor)
