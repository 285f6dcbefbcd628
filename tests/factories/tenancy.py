"""Workspaces and members for tests."""

from __future__ import annotations

import uuid

from httpx import AsyncClient

from backend.db import unit_of_work
from backend.models import Role
from backend.tenancy.service import create_tenant
from tests.factories.accounts import Account, make_account


async def make_workspace(owner: Account | None = None) -> Account:
    """An owner with a fresh workspace; the owner's headers then select it."""
    owner = owner or await make_account()
    slug = f"ws-{uuid.uuid4().hex[:12]}"
    async with unit_of_work() as session:
        tenant = await create_tenant(
            session, owner_id=owner.user_id, name=f"Workspace {slug}", slug=slug
        )
    owner.tenant_id = tenant.id
    return owner


async def add_member(client: AsyncClient, owner: Account, role: Role) -> Account:
    """Invite a new account with `role` through the API and accept it, as a person would."""
    member = await make_account()
    invited = await client.post(
        "/api/v1/invitations",
        json={"email": member.email, "role": role.value},
        headers=owner.headers(),
    )
    assert invited.status_code == 201, invited.text
    accepted = await client.post(
        "/api/v1/invitations/accept",
        json={"token": invited.json()["token"]},
        headers=member.headers(),
    )
    assert accepted.status_code == 200, accepted.text
    member.tenant_id = owner.tenant_id
    return member
