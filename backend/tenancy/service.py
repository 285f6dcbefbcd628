"""Workspaces, members and invitations. Services flush; the request's transaction commits."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit.service import record
from backend.config import get_settings
from backend.db import set_lookup_context, set_tenant_context, set_user_context
from backend.errors import Conflict, Forbidden, Gone, NotFound
from backend.jobs import enqueue
from backend.kit.secrets import hash_token, new_token
from backend.models import Invitation, Membership, Role, Tenant, User
from backend.tenancy.context import TenantContext, TenantId
from backend.tenancy.permissions import ROLE_PERMISSIONS

INVITATION_PREFIX = "pin_"


async def create_tenant(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID,
    name: str,
    slug: str,
    plan: str = "free",
    ip: str | None = None,
) -> Tenant:
    """Create a workspace owned by `owner_id`, and switch the transaction to its tenant context."""
    tenant_id = uuid.uuid4()
    await set_tenant_context(session, tenant_id)
    tenant = Tenant(id=tenant_id, name=name, slug=slug, plan=plan)
    try:
        async with session.begin_nested():
            session.add(tenant)
            await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"The workspace address '{slug}' is taken; choose another slug.") from exc
    session.add(Membership(tenant_id=tenant_id, user_id=owner_id, role=Role.owner))
    ctx = TenantContext(
        tenant_id=TenantId(tenant_id),
        permissions=ROLE_PERMISSIONS[Role.owner],
        user_id=owner_id,
        role=Role.owner,
        ip=ip,
    )
    await record(session, ctx, "tenant.created", "tenant", tenant_id, {"name": name, "slug": slug})
    return tenant


async def list_user_tenants(session: AsyncSession, user_id: uuid.UUID) -> list[tuple[Tenant, Role]]:
    await set_user_context(session, user_id)
    rows = await session.execute(
        select(Tenant, Membership.role)
        .join(Membership, Membership.tenant_id == Tenant.id)
        .where(Membership.user_id == user_id)
        .order_by(Tenant.created_at)
    )
    return [(tenant, role) for tenant, role in rows.tuples()]


async def get_tenant(session: AsyncSession, ctx: TenantContext) -> Tenant:
    tenant = await session.get(Tenant, ctx.tenant_id)
    if tenant is None:
        raise NotFound("Workspace not found.")
    return tenant


async def rename_tenant(session: AsyncSession, ctx: TenantContext, name: str) -> Tenant:
    tenant = await get_tenant(session, ctx)
    old = tenant.name
    tenant.name = name
    await record(session, ctx, "tenant.renamed", "tenant", tenant.id, {"from": old, "to": name})
    return tenant


async def list_members(session: AsyncSession, ctx: TenantContext) -> list[tuple[Membership, User]]:
    rows = await session.execute(
        select(Membership, User)
        .join(User, Membership.user_id == User.id)
        .where(Membership.tenant_id == ctx.tenant_id)
        .order_by(Membership.created_at, Membership.id)
    )
    return [(m, u) for m, u in rows.tuples()]


async def _get_membership(
    session: AsyncSession, ctx: TenantContext, member_id: uuid.UUID
) -> Membership:
    member = await session.scalar(
        select(Membership).where(Membership.id == member_id, Membership.tenant_id == ctx.tenant_id)
    )
    if member is None:
        raise NotFound("Member not found.")
    return member


async def _count_owners(session: AsyncSession, ctx: TenantContext) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(Membership)
        .where(Membership.tenant_id == ctx.tenant_id, Membership.role == Role.owner)
    )
    return int(count or 0)


async def _check_owner_rules(
    session: AsyncSession, ctx: TenantContext, member: Membership, new_role: Role | None
) -> None:
    touches_owner = member.role is Role.owner or new_role is Role.owner
    if touches_owner and ctx.role is not Role.owner:
        raise Forbidden("Only an owner can grant, change or remove the owner role.")
    demotes_owner = member.role is Role.owner and new_role is not Role.owner
    if demotes_owner and await _count_owners(session, ctx) <= 1:
        raise Conflict("A workspace needs at least one owner; make someone else owner first.")


async def change_member_role(
    session: AsyncSession, ctx: TenantContext, member_id: uuid.UUID, role: Role
) -> Membership:
    member = await _get_membership(session, ctx, member_id)
    await _check_owner_rules(session, ctx, member, role)
    old = member.role
    member.role = role
    await record(
        session,
        ctx,
        "member.role_changed",
        "membership",
        member.id,
        {"user_id": str(member.user_id), "from": old.value, "to": role.value},
    )
    return member


async def remove_member(session: AsyncSession, ctx: TenantContext, member_id: uuid.UUID) -> None:
    member = await _get_membership(session, ctx, member_id)
    await _check_owner_rules(session, ctx, member, None)
    await session.delete(member)
    await record(
        session,
        ctx,
        "member.removed",
        "membership",
        member.id,
        {"user_id": str(member.user_id), "role": member.role.value},
    )


async def invite(
    session: AsyncSession, ctx: TenantContext, email: str, role: Role
) -> tuple[Invitation, str]:
    """Create an invitation and queue its email. Returns the invitation and its one-time token."""
    if role is Role.owner and ctx.role is not Role.owner:
        raise Forbidden("Only an owner can invite another owner.")
    token = new_token(INVITATION_PREFIX)
    invitation = Invitation(
        tenant_id=ctx.tenant_id,
        email=email.lower(),
        role=role,
        token_hash=hash_token(token),
        invited_by_id=ctx.user_id,
        expires_at=datetime.now(UTC) + timedelta(days=get_settings().invitation_days),
    )
    session.add(invitation)
    await session.flush()
    tenant = await get_tenant(session, ctx)
    link = invitation_link(token)
    enqueue(
        "send_email",
        invitation.email,
        f"You are invited to {tenant.name} on Parley",
        f"You have been invited to join the workspace '{tenant.name}' on Parley as {role.value}.\n"
        f"Accept within {get_settings().invitation_days} days: {link}",
    )
    await record(
        session,
        ctx,
        "invitation.created",
        "invitation",
        invitation.id,
        {"email": invitation.email, "role": role.value},
    )
    return invitation, token


def invitation_link(token: str) -> str:
    return f"{get_settings().public_url}/app/invitations/accept?token={token}"


async def list_invitations(session: AsyncSession, ctx: TenantContext) -> list[Invitation]:
    rows = await session.scalars(
        select(Invitation)
        .where(Invitation.tenant_id == ctx.tenant_id)
        .order_by(Invitation.created_at.desc(), Invitation.id)
    )
    return list(rows)


async def revoke_invitation(
    session: AsyncSession, ctx: TenantContext, invitation_id: uuid.UUID
) -> None:
    invitation = await session.scalar(
        select(Invitation).where(
            Invitation.id == invitation_id, Invitation.tenant_id == ctx.tenant_id
        )
    )
    if invitation is None:
        raise NotFound("Invitation not found.")
    if invitation.accepted_at is not None:
        raise Conflict("This invitation was already accepted; remove the member instead.")
    if invitation.revoked_at is None:
        invitation.revoked_at = datetime.now(UTC)
        await record(session, ctx, "invitation.revoked", "invitation", invitation.id)


async def accept_invitation(
    session: AsyncSession, user: User, token: str, ip: str | None
) -> Membership:
    await set_lookup_context(session, hash_token(token))
    invitation = await session.scalar(
        select(Invitation).where(Invitation.token_hash == hash_token(token))
    )
    if invitation is None:
        raise NotFound("This invitation does not exist.")
    if invitation.revoked_at is not None:
        raise Gone("This invitation was revoked. Ask for a new one.")
    if invitation.accepted_at is not None:
        raise Gone("This invitation was already used.")
    if invitation.expires_at <= datetime.now(UTC):
        raise Gone("This invitation has expired. Ask for a new one.")
    if invitation.email.lower() != user.email.lower():
        raise Forbidden("This invitation was sent to a different email address.")
    await set_tenant_context(session, invitation.tenant_id)
    existing = await session.scalar(
        select(Membership.id).where(
            Membership.tenant_id == invitation.tenant_id, Membership.user_id == user.id
        )
    )
    if existing is not None:
        raise Conflict("You are already a member of this workspace.")
    member = Membership(tenant_id=invitation.tenant_id, user_id=user.id, role=invitation.role)
    try:
        # Two concurrent accepts: the unique (tenant, user) index decides, not a 500.
        async with session.begin_nested():
            session.add(member)
            await session.flush()
    except IntegrityError as exc:
        raise Conflict("You are already a member of this workspace.") from exc
    invitation.accepted_at = datetime.now(UTC)
    await session.flush()
    ctx = TenantContext(
        tenant_id=TenantId(invitation.tenant_id),
        permissions=ROLE_PERMISSIONS[invitation.role],
        user_id=user.id,
        role=invitation.role,
        ip=ip,
    )
    await record(
        session,
        ctx,
        "invitation.accepted",
        "membership",
        member.id,
        {"invitation_id": str(invitation.id), "role": invitation.role.value},
    )
    return member
