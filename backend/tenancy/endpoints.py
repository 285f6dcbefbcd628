"""Workspace, member and invitation endpoints.

Dashboard users pick the workspace per request with the X-Parley-Tenant header; API keys imply it.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, status

from backend.auth.endpoints import client_ip
from backend.auth.users import CurrentUser
from backend.db import SessionDep
from backend.errors import NotFound
from backend.models import Membership, Role, Tenant, User
from backend.tenancy import schemas, service
from backend.tenancy.context import TenantContext, require
from backend.tenancy.permissions import Permission

router = APIRouter(prefix="/api/v1", tags=["workspaces"])

ReadTenant = Annotated[TenantContext, Depends(require(Permission.tenant_read))]
ManageTenant = Annotated[TenantContext, Depends(require(Permission.tenant_manage))]
ReadMembers = Annotated[TenantContext, Depends(require(Permission.members_read))]
ManageMembers = Annotated[TenantContext, Depends(require(Permission.members_manage))]


class _WorkspaceWithRole(schemas.TenantRead):
    role: Role


@router.post("/tenants", status_code=status.HTTP_201_CREATED, response_model=schemas.TenantRead)
async def create_workspace(
    body: schemas.TenantCreate, user: CurrentUser, session: SessionDep, request: Request
) -> schemas.TenantRead:
    """Create a workspace; the caller becomes its owner."""
    tenant = await service.create_tenant(
        session, owner_id=user.id, name=body.name, slug=body.slug, ip=client_ip(request)
    )
    return schemas.TenantRead.model_validate(tenant)


@router.get("/tenants", response_model=list[_WorkspaceWithRole])
async def list_workspaces(user: CurrentUser, session: SessionDep) -> list[_WorkspaceWithRole]:
    """The workspaces the caller belongs to, with their role in each."""
    rows = await service.list_user_tenants(session, user.id)
    return [
        _WorkspaceWithRole(**schemas.TenantRead.model_validate(t).model_dump(), role=role)
        for t, role in rows
    ]


@router.get("/tenant", response_model=schemas.TenantRead)
async def get_workspace(ctx: ReadTenant, session: SessionDep) -> schemas.TenantRead:
    """The current workspace."""
    return schemas.TenantRead.model_validate(await service.get_tenant(session, ctx))


@router.patch("/tenant", response_model=schemas.TenantRead)
async def update_workspace(
    body: schemas.TenantUpdate, ctx: ManageTenant, session: SessionDep
) -> schemas.TenantRead:
    """Rename the current workspace."""
    return schemas.TenantRead.model_validate(await service.rename_tenant(session, ctx, body.name))


def _member_read(member: Membership, user: User) -> schemas.MemberRead:
    return schemas.MemberRead(
        id=member.id,
        user_id=member.user_id,
        email=user.email,
        full_name=user.full_name,
        role=member.role,
        created_at=member.created_at,
    )


@router.get("/members", response_model=list[schemas.MemberRead])
async def list_members(ctx: ReadMembers, session: SessionDep) -> list[schemas.MemberRead]:
    """Members of the current workspace."""
    return [_member_read(m, u) for m, u in await service.list_members(session, ctx)]


@router.patch("/members/{member_id}", response_model=schemas.MemberRead)
async def change_member_role(
    member_id: uuid.UUID, body: schemas.MemberUpdate, ctx: ManageMembers, session: SessionDep
) -> schemas.MemberRead:
    """Change a member's role. Only owners touch the owner role; the last owner stays."""
    member = await service.change_member_role(session, ctx, member_id, body.role)
    user = await session.get(User, member.user_id)
    if user is None:  # memberships reference users with ON DELETE CASCADE
        raise NotFound("Member not found.")
    return _member_read(member, user)


@router.delete("/members/{member_id}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_member(member_id: uuid.UUID, ctx: ManageMembers, session: SessionDep) -> None:
    """Remove a member from the workspace."""
    await service.remove_member(session, ctx, member_id)


@router.get("/invitations", response_model=list[schemas.InvitationRead])
async def list_invitations(ctx: ManageMembers, session: SessionDep) -> list[schemas.InvitationRead]:
    """Invitations of the current workspace, newest first."""
    return [
        schemas.InvitationRead.model_validate(i)
        for i in await service.list_invitations(session, ctx)
    ]


@router.post(
    "/invitations", status_code=status.HTTP_201_CREATED, response_model=schemas.InvitationCreated
)
async def create_invitation(
    body: schemas.InvitationCreate, ctx: ManageMembers, session: SessionDep
) -> schemas.InvitationCreated:
    """Invite someone by email. The link is emailed, and returned here once."""
    invitation, token = await service.invite(session, ctx, body.email, body.role)
    return schemas.InvitationCreated(
        **schemas.InvitationRead.model_validate(invitation).model_dump(),
        accept_url=service.invitation_link(token),
        token=token,
    )


@router.delete("/invitations/{invitation_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_invitation(
    invitation_id: uuid.UUID, ctx: ManageMembers, session: SessionDep
) -> None:
    """Revoke a pending invitation."""
    await service.revoke_invitation(session, ctx, invitation_id)


@router.post("/invitations/accept", response_model=schemas.TenantRead)
async def accept_invitation(
    body: schemas.InvitationAccept, user: CurrentUser, session: SessionDep, request: Request
) -> schemas.TenantRead:
    """Join a workspace with an invitation token sent to the caller's email address."""
    member = await service.accept_invitation(session, user, body.token, client_ip(request))
    tenant = await session.get(Tenant, member.tenant_id)
    return schemas.TenantRead.model_validate(tenant)
