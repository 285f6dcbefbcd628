"""The tenant context of a request: which tenant, who is acting, and what they may do.

Only this module creates a `TenantContext`, and always from what the database confirmed for
the request's credentials in the call that also set `app.tenant_id`, so row-level security
and the context always agree: the dependencies below, for the request's transaction, and
`context_entered`, for the row of a SQL function that authenticates and works in one
statement (the OpenAI-compatible replies' `parley_enter_chat`).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, NewType

import jwt
from fastapi import Depends, Header, Request
from fastapi_users.jwt import decode_jwt
from sqlalchemy import Uuid, bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from backend.auth.users import get_access_token_strategy
from backend.db import SessionDep
from backend.errors import BadRequest, Forbidden, NotAuthenticated, NotFound
from backend.kit.logcontext import bind_request_fields
from backend.kit.secrets import hash_token
from backend.models import ApiKey, Role
from backend.tenancy.permissions import API_KEY_SCOPES, ROLE_PERMISSIONS, Permission

TenantId = NewType("TenantId", uuid.UUID)

API_KEY_PREFIX = "prl_"
TENANT_HEADER = "X-Parley-Tenant"
# last_used_at is written at most this often per key, to keep hot API paths read-only.
LAST_USED_RESOLUTION = timedelta(minutes=1)
_ENTER_WORKSPACE = text(
    "SELECT role, is_active FROM parley_enter_workspace(:user_id, :tenant_id)"
).bindparams(bindparam("user_id", type_=Uuid()), bindparam("tenant_id", type_=Uuid()))
_ENTER_WITH_API_KEY = select(ApiKey).from_statement(
    text("SELECT * FROM parley_enter_with_api_key(:key_hash)").columns(*ApiKey.__table__.columns)
)


@dataclass(frozen=True)
class TenantContext:
    tenant_id: TenantId
    permissions: frozenset[Permission]
    user_id: uuid.UUID | None = None
    role: Role | None = None
    api_key_id: uuid.UUID | None = None
    ip: str | None = None
    user_agent: str | None = None

    def require(self, permission: Permission) -> None:
        if permission not in self.permissions:
            raise Forbidden(f"This action needs the '{permission.value}' permission.")


TenantHeader = Annotated[
    str | None,
    Header(
        alias=TENANT_HEADER,
        description="The workspace to act in (dashboard users). API keys imply it.",
    ),
]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _parse_tenant_header(value: str | None) -> uuid.UUID:
    if not value:
        raise BadRequest(f"Choose a workspace: send its id in the {TENANT_HEADER} header.")
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise BadRequest(f"The {TENANT_HEADER} header must be a workspace id (a UUID).") from exc


async def _context_from_api_key(
    session: AsyncSession, key_hash: str, request: Request
) -> TenantContext:
    # One call reveals the key whose hash we know and makes its workspace the transaction's
    # (migration 5b1e0c9d7f42); a revoked key's request ends right here.
    key = (await session.scalars(_ENTER_WITH_API_KEY, {"key_hash": key_hash})).first()
    if key is None or key.revoked_at is not None:
        raise NotAuthenticated(_BAD_KEY)
    now = datetime.now(UTC)
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        key.last_used_at = now
    return _key_context(key.tenant_id, key.id, key.scopes, request)


_BAD_KEY = "The API key is not valid or was revoked."


def _key_context(
    tenant_id: uuid.UUID, key_id: uuid.UUID, scopes: list[str], request: Request
) -> TenantContext:
    return TenantContext(
        tenant_id=TenantId(tenant_id),
        permissions=frozenset(Permission(s) for s in scopes if s in API_KEY_SCOPES),
        api_key_id=key_id,
        ip=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
    )


def _user_id_from_access_token(token: str | None) -> uuid.UUID:
    """The user an access token names, checked the way fastapi-users' strategy checks it.

    Workspace requests read the token here and check the account together with the membership
    in one query, instead of loading the user through fastapi-users first: one round trip less
    on every tenant-scoped request.
    """
    if token is None:
        raise NotAuthenticated()
    strategy = get_access_token_strategy()
    try:
        claims = decode_jwt(
            token, strategy.decode_key, strategy.token_audience, [strategy.algorithm]
        )
        return uuid.UUID(str(claims["sub"]))
    except (jwt.PyJWTError, KeyError, ValueError) as exc:
        raise NotAuthenticated() from exc


async def _context_from_member(
    session: AsyncSession, user_id: uuid.UUID, tenant_id: uuid.UUID, request: Request
) -> TenantContext:
    # Sets app.user_id and app.tenant_id, then reads the membership and the account, in one
    # call (migration 5b1e0c9d7f42).
    found = (
        await session.execute(_ENTER_WORKSPACE, {"user_id": user_id, "tenant_id": tenant_id})
    ).first()
    if found is None:
        raise NotAuthenticated()  # a valid token of an account that no longer exists
    return _member_context(user_id, tenant_id, found[0], found[1], request)


def _member_context(
    user_id: uuid.UUID, tenant_id: uuid.UUID, role: str | None, active: bool, request: Request
) -> TenantContext:
    if role is None:
        raise NotFound("Workspace not found, or you are not a member of it.")
    if not active:
        raise NotAuthenticated("The account is not active.")
    member_role = Role(role)
    return TenantContext(
        tenant_id=TenantId(tenant_id),
        permissions=ROLE_PERMISSIONS[member_role],
        user_id=user_id,
        role=member_role,
        ip=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
    )


def _bind_log_context(ctx: TenantContext) -> TenantContext:
    bind_request_fields(
        tenant_id=str(ctx.tenant_id),
        user_id=str(ctx.user_id) if ctx.user_id else None,
        api_key_id=str(ctx.api_key_id) if ctx.api_key_id else None,
    )
    return ctx


async def get_tenant_context(
    request: Request,
    session: SessionDep,
    x_parley_tenant: TenantHeader = None,
) -> TenantContext:
    credentials = credentials_of(request, x_parley_tenant)
    if isinstance(credentials, KeyCredentials):
        ctx = await _context_from_api_key(session, credentials.key_hash, request)
    else:
        ctx = await _context_from_member(
            session, credentials.user_id, credentials.tenant_id, request
        )
    return _bind_log_context(ctx)


@dataclass(frozen=True)
class KeyCredentials:
    """A request's API key, as its hash: not yet checked against the database."""

    key_hash: str


@dataclass(frozen=True)
class MemberCredentials:
    """A signed-in account (its access token checked) and the workspace it asks for: the
    membership not yet checked against the database."""

    user_id: uuid.UUID
    tenant_id: uuid.UUID


Credentials = KeyCredentials | MemberCredentials


def credentials_of(request: Request, tenant_header: str | None) -> Credentials:
    token = _bearer(request)
    if token is not None and token.startswith(API_KEY_PREFIX):
        return KeyCredentials(hash_token(token))
    return MemberCredentials(_user_id_from_access_token(token), _parse_tenant_header(tenant_header))


def context_entered(
    credentials: Credentials, found: Mapping[str, Any] | None, request: Request
) -> TenantContext:
    """The context a database function confirmed for `credentials` (`parley_enter_chat`: no
    row for an unknown or revoked key or an unknown account; `member_role` and
    `account_active` for an account), refused as `get_tenant_context` refuses."""
    if isinstance(credentials, KeyCredentials):
        if found is None:
            raise NotAuthenticated(_BAD_KEY)
        ctx = _key_context(found["workspace_id"], found["key_id"], found["key_scopes"], request)
    else:
        if found is None:
            raise NotAuthenticated()  # a valid token of an account that no longer exists
        ctx = _member_context(
            credentials.user_id,
            credentials.tenant_id,
            found["member_role"],
            found["account_active"],
            request,
        )
    return _bind_log_context(ctx)


TenantContextDep = Annotated[TenantContext, Depends(get_tenant_context)]


def require(permission: Permission) -> Callable[[TenantContext], Awaitable[TenantContext]]:
    """A dependency: the tenant context, after checking that it has `permission`."""

    async def dependency(ctx: TenantContextDep) -> TenantContext:
        ctx.require(permission)
        return ctx

    dependency.__name__ = f"require_{permission.name}"
    return dependency
