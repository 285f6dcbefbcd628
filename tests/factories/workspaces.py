"""Populated workspaces for tests: an owner, members with roles, API keys and an invitation.

Everything goes through the API as the owner, so the rows (memberships, invitations, API keys,
audit events) are the ones Parley itself writes. Fixtures that live longer than one test call
these under `jobs_recorded()`, because the per-test job recorder is not in place yet then.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from httpx import AsyncClient

from backend.db import PendingJob
from backend.jobs import set_job_sink
from backend.models import Role
from backend.tenancy.permissions import API_KEY_SCOPES, Permission
from tests.factories.accounts import Account
from tests.factories.tenancy import add_member, make_workspace


@dataclass(frozen=True)
class ApiKeyHandle:
    id: uuid.UUID
    key: str
    scopes: frozenset[Permission]

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    @property
    def permissions(self) -> frozenset[Permission]:
        """What the key may do: its scopes, limited to those keys can carry at all."""
        return self.scopes & API_KEY_SCOPES


@dataclass
class Workspace:
    owner: Account
    members: dict[Role, Account] = field(default_factory=dict)
    api_keys: dict[str, ApiKeyHandle] = field(default_factory=dict)
    pending_invitation_id: uuid.UUID | None = None

    @property
    def tenant_id(self) -> uuid.UUID:
        assert self.owner.tenant_id is not None
        return self.owner.tenant_id


@contextmanager
def jobs_recorded() -> Iterator[list[PendingJob]]:
    """Record the jobs queued meanwhile instead of sending them to the queue."""
    jobs: list[PendingJob] = []

    async def record(job: PendingJob) -> None:
        jobs.append(job)

    set_job_sink(record)
    try:
        yield jobs
    finally:
        set_job_sink(None)


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


async def create_api_key(
    client: AsyncClient, owner: Account, scopes: Iterable[Permission], name: str | None = None
) -> ApiKeyHandle:
    chosen = sorted(s.value for s in scopes)
    response = await client.post(
        "/api/v1/api-keys",
        json={"name": name or f"key-{uuid.uuid4().hex[:8]}", "scopes": chosen},
        headers=owner.headers(),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return ApiKeyHandle(
        id=uuid.UUID(body["id"]), key=body["key"], scopes=frozenset(Permission(s) for s in chosen)
    )


async def create_invitation(
    client: AsyncClient, owner: Account, email: str | None = None, role: Role = Role.viewer
) -> tuple[uuid.UUID, str]:
    """A pending invitation; returns its id and its one-time token."""
    response = await client.post(
        "/api/v1/invitations",
        json={"email": email or unique_email("invitee"), "role": role.value},
        headers=owner.headers(),
    )
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["id"]), response.json()["token"]


async def membership_id(client: AsyncClient, owner: Account, member: Account) -> uuid.UUID:
    """The id of `member`'s membership in the owner's current workspace."""
    response = await client.get("/api/v1/members", headers=owner.headers())
    assert response.status_code == 200, response.text
    ids = [m["id"] for m in response.json() if m["user_id"] == str(member.user_id)]
    assert len(ids) == 1, f"{member.email} is not a member: {response.text}"
    return uuid.UUID(ids[0])


async def populated_workspace(
    client: AsyncClient,
    roles: Iterable[Role] = (),
    api_keys: dict[str, Iterable[Permission]] | None = None,
    pending_invitation: bool = False,
) -> Workspace:
    """A fresh workspace with one member per role in `roles`, the named keys, and optionally a
    pending invitation. Creating them also writes audit events."""
    workspace = Workspace(owner=await make_workspace())
    for role in roles:
        workspace.members[role] = await add_member(client, workspace.owner, role)
    for name, scopes in (api_keys or {}).items():
        workspace.api_keys[name] = await create_api_key(client, workspace.owner, scopes, name)
    if pending_invitation:
        workspace.pending_invitation_id, _ = await create_invitation(client, workspace.owner)
    return workspace
