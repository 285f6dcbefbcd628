"""Refresh tokens: opaque, stored hashed, rotated on every use.

Each login starts a family. Refreshing marks the token used and issues the next one in the same
family. Presenting a token that was already used means it leaked (or a client raced itself): the
whole family is revoked, so a thief and the owner are both logged out of that login.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.auth.users import get_access_token_strategy
from backend.config import get_settings
from backend.db import commit_despite_error
from backend.errors import NotAuthenticated
from backend.kit.secrets import hash_token, new_token
from backend.models import RefreshToken, User

REFRESH_PREFIX = "prt_"


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


async def issue_token_pair(
    session: AsyncSession, user: User, family_id: uuid.UUID | None = None
) -> TokenPair:
    settings = get_settings()
    refresh = new_token(REFRESH_PREFIX)
    session.add(
        RefreshToken(
            user_id=user.id,
            family_id=family_id or uuid.uuid4(),
            token_hash=hash_token(refresh),
            expires_at=datetime.now(UTC) + timedelta(days=settings.refresh_token_days),
        )
    )
    await session.flush()
    access = await get_access_token_strategy().write_token(user)
    return TokenPair(access, refresh, settings.access_token_minutes * 60)


async def rotate_refresh_token(session: AsyncSession, refresh_token: str) -> TokenPair:
    now = datetime.now(UTC)
    # FOR UPDATE: two concurrent refreshes with one token must not both succeed.
    row = await session.scalar(
        select(RefreshToken)
        .where(RefreshToken.token_hash == hash_token(refresh_token))
        .with_for_update()
    )
    if row is None:
        raise NotAuthenticated("The refresh token is not valid. Log in again.")
    if row.revoked_at is not None:
        raise NotAuthenticated("The refresh token was revoked. Log in again.")
    if row.used_at is not None:
        await _revoke_family(session, row.family_id, now)
        commit_despite_error()
        raise NotAuthenticated(
            "The refresh token was already used; every session from that login is now revoked. "
            "Log in again."
        )
    if row.expires_at <= now:
        raise NotAuthenticated("The refresh token has expired. Log in again.")
    user = await session.get(User, row.user_id)
    if user is None or not user.is_active:
        raise NotAuthenticated("The account is not active.")
    row.used_at = now
    return await issue_token_pair(session, user, family_id=row.family_id)


async def revoke_refresh_token(session: AsyncSession, refresh_token: str) -> None:
    """Logout: revoke this token's family. Unknown tokens are ignored: logout is idempotent."""
    family_id = await session.scalar(
        select(RefreshToken.family_id).where(RefreshToken.token_hash == hash_token(refresh_token))
    )
    if family_id is not None:
        await _revoke_family(session, family_id, datetime.now(UTC))


async def _revoke_family(session: AsyncSession, family_id: uuid.UUID, now: datetime) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
