"""Workspaces, members and roles, invitations, API keys and the audit log, through the API."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from httpx import AsyncClient
from sqlalchemy import delete, update

from backend.db import PendingJob, unit_of_work
from backend.models import Invitation, Role, User
from tests.factories.accounts import make_account
from tests.factories.tenancy import add_member, make_workspace


async def test_create_workspace_and_list_it(client: AsyncClient) -> None:
    account = await make_account()
    slug = f"acme-{uuid.uuid4().hex[:8]}"
    created = await client.post(
        "/api/v1/tenants", json={"name": "Acme", "slug": slug}, headers=account.headers()
    )
    assert created.status_code == 201, created.text
    tenant = created.json()
    assert tenant["plan"] == "free"

    mine = await client.get("/api/v1/tenants", headers=account.headers())
    assert [(t["slug"], t["role"]) for t in mine.json()] == [(slug, "owner")]

    current = await client.get("/api/v1/tenant", headers=account.headers(tenant["id"]))
    assert current.status_code == 200
    assert current.json()["name"] == "Acme"

    taken = await client.post(
        "/api/v1/tenants", json={"name": "Other", "slug": slug}, headers=account.headers()
    )
    assert taken.status_code == 409
    assert slug in taken.json()["detail"]


async def test_bad_slug_and_missing_header(client: AsyncClient) -> None:
    account = await make_account()
    bad = await client.post(
        "/api/v1/tenants", json={"name": "X", "slug": "Not A Slug!"}, headers=account.headers()
    )
    assert bad.status_code == 422
    assert bad.json()["fields"][0]["field"] == "body.slug"

    no_header = await client.get("/api/v1/tenant", headers=account.headers())
    assert no_header.status_code == 400
    assert "X-Parley-Tenant" in no_header.json()["detail"]

    not_uuid = await client.get(
        "/api/v1/tenant", headers={**account.headers(), "X-Parley-Tenant": "acme"}
    )
    assert not_uuid.status_code == 400


async def test_invitation_flow_and_roles(
    client: AsyncClient, recorded_jobs: list[PendingJob]
) -> None:
    owner = await make_workspace()
    agent = await add_member(client, owner, Role.agent)
    assert any(j.function == "send_email" and j.args[0] == agent.email for j in recorded_jobs)

    members = await client.get("/api/v1/members", headers=agent.headers())
    assert members.status_code == 200
    assert sorted(m["role"] for m in members.json()) == ["agent", "owner"]

    # An agent can read but not manage.
    forbidden = await client.post(
        "/api/v1/invitations", json={"email": "x@example.com"}, headers=agent.headers()
    )
    assert forbidden.status_code == 403

    agent_row = next(m for m in members.json() if m["role"] == "agent")
    promoted = await client.patch(
        f"/api/v1/members/{agent_row['id']}", json={"role": "admin"}, headers=owner.headers()
    )
    assert promoted.status_code == 200
    assert promoted.json()["role"] == "admin"

    # An admin cannot touch the owner role.
    owner_row = next(m for m in members.json() if m["role"] == "owner")
    demote_owner = await client.patch(
        f"/api/v1/members/{owner_row['id']}", json={"role": "viewer"}, headers=agent.headers()
    )
    assert demote_owner.status_code == 403

    # The last owner cannot leave the workspace ownerless.
    last = await client.delete(f"/api/v1/members/{owner_row['id']}", headers=owner.headers())
    assert last.status_code == 409

    removed = await client.delete(f"/api/v1/members/{agent_row['id']}", headers=owner.headers())
    assert removed.status_code == 204
    gone = await client.get("/api/v1/tenant", headers=agent.headers())
    assert gone.status_code == 404


async def test_invitation_for_someone_else_expired_and_revoked(client: AsyncClient) -> None:
    owner = await make_workspace()
    invited = await client.post(
        "/api/v1/invitations",
        json={"email": "target@example.com", "role": "viewer"},
        headers=owner.headers(),
    )
    token = invited.json()["token"]
    stranger = await make_account()
    wrong = await client.post(
        "/api/v1/invitations/accept", json={"token": token}, headers=stranger.headers()
    )
    assert wrong.status_code == 403

    target = await make_account()
    invited = await client.post(
        "/api/v1/invitations",
        json={"email": target.email, "role": "viewer"},
        headers=owner.headers(),
    )
    async with unit_of_work(tenant_id=owner.tenant_id) as session:
        await session.execute(
            update(Invitation)
            .where(Invitation.id == uuid.UUID(invited.json()["id"]))
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    expired = await client.post(
        "/api/v1/invitations/accept",
        json={"token": invited.json()["token"]},
        headers=target.headers(),
    )
    assert expired.status_code == 410

    fresh = await client.post(
        "/api/v1/invitations",
        json={"email": target.email, "role": "viewer"},
        headers=owner.headers(),
    )
    revoked = await client.delete(
        f"/api/v1/invitations/{fresh.json()['id']}", headers=owner.headers()
    )
    assert revoked.status_code == 204
    refused = await client.post(
        "/api/v1/invitations/accept",
        json={"token": fresh.json()["token"]},
        headers=target.headers(),
    )
    assert refused.status_code == 410

    unknown = await client.post(
        "/api/v1/invitations/accept", json={"token": "pin_unknown"}, headers=target.headers()
    )
    assert unknown.status_code == 404


async def test_api_keys_shown_once_scoped_and_revocable(client: AsyncClient) -> None:
    owner = await make_workspace()
    created = await client.post(
        "/api/v1/api-keys",
        json={"name": "server", "scopes": ["tenant:read", "members:read"]},
        headers=owner.headers(),
    )
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    assert key.startswith("prl_")
    assert key.startswith(created.json()["prefix"])

    listed = await client.get("/api/v1/api-keys", headers=owner.headers())
    assert "key" not in listed.json()["items"][0]
    assert listed.json()["items"][0]["last_used_at"] is None

    with_key = {"Authorization": f"Bearer {key}"}
    tenant = await client.get("/api/v1/tenant", headers=with_key)
    assert tenant.status_code == 200
    assert tenant.json()["id"] == str(owner.tenant_id)

    # Scopes limit the key: it may not manage keys or read the audit log.
    assert (await client.get("/api/v1/api-keys", headers=with_key)).status_code == 403
    assert (await client.get("/api/v1/audit-log", headers=with_key)).status_code == 403

    listed = await client.get("/api/v1/api-keys", headers=owner.headers())
    assert listed.json()["items"][0]["last_used_at"] is not None

    too_much = await client.post(
        "/api/v1/api-keys",
        json={"name": "x", "scopes": ["members:manage"]},
        headers=owner.headers(),
    )
    assert too_much.status_code == 422

    revoked = await client.delete(
        f"/api/v1/api-keys/{created.json()['id']}", headers=owner.headers()
    )
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    after = await client.get("/api/v1/tenant", headers=with_key)
    assert after.status_code == 401
    assert "revoked" in after.json()["detail"]


async def test_workspace_access_by_membership_and_account_state(client: AsyncClient) -> None:
    owner = await make_workspace()
    stranger = await make_account()
    not_member = await client.get("/api/v1/tenant", headers=stranger.headers(owner.tenant_id))
    assert not_member.status_code == 404
    assert "not a member" in not_member.json()["detail"]

    member = await add_member(client, owner, Role.agent)
    assert (await client.get("/api/v1/tenant", headers=member.headers())).status_code == 200
    async with unit_of_work() as session:
        await session.execute(
            update(User).where(User.id == member.user_id).values(is_active=False)  # type: ignore[arg-type]
        )
    inactive = await client.get("/api/v1/tenant", headers=member.headers())
    assert inactive.status_code == 401
    assert "not active" in inactive.json()["detail"]

    async with unit_of_work() as session:
        await session.execute(delete(User).where(User.id == owner.user_id))  # type: ignore[arg-type]
    gone = await client.get("/api/v1/tenant", headers=owner.headers())
    assert gone.status_code == 401

    unknown_key = await client.get(
        "/api/v1/tenant", headers={"Authorization": "Bearer prl_not-a-key-anyone-was-given"}
    )
    assert unknown_key.status_code == 401
    assert "not valid" in unknown_key.json()["detail"]


async def test_audit_log_records_who_what_where(client: AsyncClient) -> None:
    owner = await make_workspace()
    await client.patch("/api/v1/tenant", json={"name": "Renamed"}, headers=owner.headers())
    await client.post(
        "/api/v1/api-keys", json={"name": "k", "scopes": ["tenant:read"]}, headers=owner.headers()
    )
    log = await client.get("/api/v1/audit-log", headers=owner.headers())
    assert log.status_code == 200
    events = log.json()["items"]
    assert [e["action"] for e in events] == ["api_key.created", "tenant.renamed", "tenant.created"]
    renamed = events[1]
    assert renamed["actor_user_id"] == str(owner.user_id)
    assert renamed["ip"] == "127.0.0.1"
    assert renamed["details"] == {"from": renamed["details"]["from"], "to": "Renamed"}

    page = await client.get("/api/v1/audit-log?limit=2", headers=owner.headers())
    assert len(page.json()["items"]) == 2
    rest = await client.get(
        f"/api/v1/audit-log?limit=2&cursor={page.json()['next_cursor']}", headers=owner.headers()
    )
    assert [e["action"] for e in rest.json()["items"]] == ["tenant.created"]
    assert rest.json()["next_cursor"] is None

    viewer = await add_member(client, owner, Role.viewer)
    assert (await client.get("/api/v1/audit-log", headers=viewer.headers())).status_code == 403
