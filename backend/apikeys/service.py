"""Creating, listing and revoking API keys, stored as SHA-256 hashes with a visible prefix."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit.service import record
from backend.errors import NotFound, ValidationFailed
from backend.kit.pagination import PageParams, next_cursor_of, paginate_newest_first
from backend.kit.secrets import hash_token, new_token
from backend.models import ApiKey
from backend.tenancy.context import API_KEY_PREFIX, TenantContext
from backend.tenancy.permissions import API_KEY_SCOPES, Permission

VISIBLE_PREFIX_LENGTH = 12


async def create_api_key(
    session: AsyncSession, ctx: TenantContext, name: str, scopes: list[Permission]
) -> tuple[ApiKey, str]:
    not_allowed = sorted({s.value for s in scopes} - {s.value for s in API_KEY_SCOPES})
    if not_allowed:
        raise ValidationFailed(
            f"API keys cannot carry these scopes: {', '.join(not_allowed)}.",
            fields=[{"field": "scopes", "message": f"not allowed: {', '.join(not_allowed)}"}],
        )
    key = new_token(API_KEY_PREFIX)
    api_key = ApiKey(
        tenant_id=ctx.tenant_id,
        name=name,
        prefix=key[:VISIBLE_PREFIX_LENGTH],
        key_hash=hash_token(key),
        scopes=sorted({s.value for s in scopes}),
        created_by_id=ctx.user_id,
    )
    session.add(api_key)
    await session.flush()
    await record(
        session,
        ctx,
        "api_key.created",
        "api_key",
        api_key.id,
        {"name": name, "scopes": api_key.scopes, "prefix": api_key.prefix},
    )
    return api_key, key


async def list_api_keys(
    session: AsyncSession, ctx: TenantContext, page: PageParams
) -> tuple[list[ApiKey], str | None]:
    statement = paginate_newest_first(
        select(ApiKey).where(ApiKey.tenant_id == ctx.tenant_id), ApiKey.created_at, ApiKey.id, page
    )
    return next_cursor_of(list(await session.scalars(statement)), page.limit)


async def revoke_api_key(session: AsyncSession, ctx: TenantContext, key_id: uuid.UUID) -> ApiKey:
    api_key = await session.scalar(
        select(ApiKey).where(ApiKey.id == key_id, ApiKey.tenant_id == ctx.tenant_id)
    )
    if api_key is None:
        raise NotFound("API key not found.")
    if api_key.revoked_at is None:
        api_key.revoked_at = datetime.now(UTC)
        await record(session, ctx, "api_key.revoked", "api_key", api_key.id, {"name": api_key.name})
    return api_key
