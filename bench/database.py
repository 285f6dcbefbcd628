"""A throwaway benchmark database: created, migrated, seeded, checked and dropped again.

The schema comes from the real migrations and the app's login role from `ensure_app_role`, as
`parley migrate` does; accounts, workspaces and keys are created with Parley's own services.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

# One of API_KEY_SCOPES: what a read-only integration key carries.
SEED_SCOPES = ("tenant:read", "members:read")
SEED_PASSWORD = "bench-owner-password"  # noqa: S105 (throwaway accounts in a throwaway database)


@dataclass(frozen=True)
class BenchDatabase:
    """URLs of the benchmark database for the owner (a superuser) and for the app's role."""

    server_admin_url: str  # the superuser, on any existing database (e.g. `postgres`)
    name: str
    app_user: str
    app_password: str

    @property
    def owner_url(self) -> str:
        return (
            make_url(self.server_admin_url)
            .set(database=self.name)
            .render_as_string(hide_password=False)
        )

    @property
    def app_url(self) -> str:
        url = make_url(self.server_admin_url).set(
            database=self.name, username=self.app_user, password=self.app_password
        )
        return url.render_as_string(hide_password=False)


@dataclass(frozen=True)
class SeededWorkspace:
    tenant_id: uuid.UUID
    user_id: uuid.UUID
    access_token: str

    def headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.access_token}",
            "X-Parley-Tenant": str(self.tenant_id),
        }


def plain_url(url: str) -> str:
    """A SQLAlchemy URL as asyncpg takes it (no `+asyncpg` driver suffix)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def recreate(db: BenchDatabase) -> None:
    conn = await asyncpg.connect(plain_url(db.server_admin_url))
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {_quoted(db.name)} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {_quoted(db.name)}")
    finally:
        await conn.close()


async def drop(db: BenchDatabase) -> None:
    """Drop the database and the app's login role (the shared group role stays)."""
    conn = await asyncpg.connect(plain_url(db.server_admin_url))
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {_quoted(db.name)} WITH (FORCE)")
        await conn.execute(f"DROP ROLE IF EXISTS {_quoted(db.app_user)}")
    finally:
        await conn.close()


def migrate(db: BenchDatabase) -> None:
    """The real migrations as the owner, then the app's login role, as `parley migrate` does.

    The process's PARLEY_* settings must already point at `db` (see api_overhead.server_env).
    """
    import asyncio

    from backend.migrate import ensure_app_role, run_migrations

    run_migrations(db.owner_url)
    asyncio.run(ensure_app_role(db.owner_url, db.app_url))


async def seed(workspaces: int, keys_per_workspace: int) -> list[SeededWorkspace]:
    """Owners with a workspace each, `keys_per_workspace` API keys in it, and an access token.

    Runs through the app's role (PARLEY_DATABASE_URL), with Parley's own services.
    """
    from backend.apikeys.service import create_api_key
    from backend.auth.service import create_user
    from backend.auth.tokens import issue_token_pair
    from backend.db import get_engine, unit_of_work
    from backend.jobs import close_arq_pool
    from backend.models import Role
    from backend.tenancy.context import TenantContext, TenantId
    from backend.tenancy.permissions import ROLE_PERMISSIONS, Permission
    from backend.tenancy.service import create_tenant

    seeded: list[SeededWorkspace] = []
    try:
        for number in range(workspaces):
            suffix = uuid.uuid4().hex[:8]
            async with unit_of_work() as session:
                user = await create_user(
                    session,
                    email=f"bench-owner-{number}-{suffix}@example.com",
                    password=SEED_PASSWORD,
                    full_name=f"Bench Owner {number}",
                    verified=True,
                )
                tenant = await create_tenant(
                    session,
                    owner_id=user.id,
                    name=f"Bench Workspace {number}",
                    slug=f"bench-{number}-{suffix}",
                )
                ctx = TenantContext(
                    tenant_id=TenantId(tenant.id),
                    permissions=ROLE_PERMISSIONS[Role.owner],
                    user_id=user.id,
                    role=Role.owner,
                )
                scopes = [Permission(s) for s in SEED_SCOPES]
                for key_number in range(keys_per_workspace):
                    await create_api_key(session, ctx, f"integration {key_number}", scopes)
                pair = await issue_token_pair(session, user)
            seeded.append(SeededWorkspace(tenant.id, user.id, pair.access_token))
    finally:
        await close_arq_pool()
        await get_engine().dispose()
    return seeded


async def _role_facts(url: str, tenant_id: uuid.UUID) -> dict[str, Any]:
    conn = await asyncpg.connect(plain_url(url))
    try:
        role = await conn.fetchrow(
            "SELECT current_user AS role, current_setting('is_superuser') AS is_superuser, "
            "r.rolbypassrls AS bypassrls FROM pg_roles r WHERE r.rolname = current_user"
        )
        # Without app.tenant_id, the tenant policy hides every row from a role under RLS.
        visible_without_tenant = await conn.fetchval("SELECT count(*) FROM api_keys")
        async with conn.transaction():
            await conn.execute("SELECT set_config('app.tenant_id', $1, true)", str(tenant_id))
            visible_with_tenant = await conn.fetchval("SELECT count(*) FROM api_keys")
        return {
            "role": role["role"],
            "is_superuser": role["is_superuser"] == "on",
            "bypassrls": bool(role["bypassrls"]),
            "api_keys_visible_without_tenant": int(visible_without_tenant),
            "api_keys_visible_with_tenant": int(visible_with_tenant),
        }
    finally:
        await conn.close()


async def check_rls(db: BenchDatabase, tenant_id: uuid.UUID) -> dict[str, Any]:
    """Facts showing that the app role is under RLS and the owner connection bypasses it."""
    conn = await asyncpg.connect(plain_url(db.owner_url))
    try:
        table = await conn.fetchrow(
            "SELECT relrowsecurity, relforcerowsecurity FROM pg_class "
            "WHERE oid = 'public.api_keys'::regclass"
        )
        total = await conn.fetchval("SELECT count(*) FROM api_keys")
        server_version = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    app = await _role_facts(db.app_url, tenant_id)
    owner = await _role_facts(db.owner_url, tenant_id)
    app_enforced = (
        not app["is_superuser"]
        and not app["bypassrls"]
        and app["api_keys_visible_without_tenant"] == 0
        and 0 < app["api_keys_visible_with_tenant"] < total
    )
    owner_bypasses = (
        owner["is_superuser"]
        and owner["api_keys_visible_without_tenant"] == total
        and owner["api_keys_visible_with_tenant"] == total
    )
    return {
        "api_keys_rls_enabled": bool(table["relrowsecurity"]),
        "api_keys_rls_forced": bool(table["relforcerowsecurity"]),
        "api_keys_total": int(total),
        "app_role": app,
        "owner_role": owner,
        "app_role_under_rls": app_enforced,
        "owner_bypasses_rls": owner_bypasses,
        "postgresql_version": str(server_version),
    }


# The list endpoint's query (backend/apikeys/service.py: newest first, one row more than the
# default page of 50), written out so that it runs on a bare asyncpg connection.
LIST_QUERY = (
    "SELECT * FROM api_keys WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC LIMIT 51"
)


async def _time_query(url: str, tenant_id: uuid.UUID, repeats: int) -> list[float]:
    """Microseconds per execution of LIST_QUERY inside one transaction with app.tenant_id set."""
    import time

    conn = await asyncpg.connect(plain_url(url))
    try:
        async with conn.transaction():
            await conn.execute("SELECT set_config('app.tenant_id', $1, true)", str(tenant_id))
            statement = await conn.prepare(LIST_QUERY)
            timings = []
            for _ in range(repeats):
                started = time.perf_counter()
                await statement.fetch(tenant_id)
                timings.append((time.perf_counter() - started) * 1e6)
        return timings
    finally:
        await conn.close()


async def query_cost(
    db: BenchDatabase, tenant_id: uuid.UUID, blocks: int = 6, repeats: int = 1000
) -> dict[str, Any]:
    """The list query as the app role (RLS on) and as the owner (superuser, RLS off).

    Alternating blocks of `repeats` executions, the first 100 of each block discarded as
    warm-up; returns the median and p95 in microseconds, as this process sees them (loopback
    round trip included), and the two query plans.
    """
    from bench.stats import percentile

    samples: dict[str, list[float]] = {"rls": [], "no-rls": []}
    urls = {"rls": db.app_url, "no-rls": db.owner_url}
    for block in range(blocks):
        order = ["rls", "no-rls"] if block % 2 == 0 else ["no-rls", "rls"]
        for name in order:
            samples[name] += (await _time_query(urls[name], tenant_id, repeats + 100))[100:]
    plans = {}
    for name, url in urls.items():
        conn = await asyncpg.connect(plain_url(url))
        try:
            async with conn.transaction():
                await conn.execute("SELECT set_config('app.tenant_id', $1, true)", str(tenant_id))
                rows = await conn.fetch(f"EXPLAIN {LIST_QUERY}", tenant_id)
            plans[name] = [row[0] for row in rows]
        finally:
            await conn.close()
    result: dict[str, Any] = {"query": LIST_QUERY, "executions_each": len(samples["rls"])}
    for name, values in samples.items():
        values.sort()
        result[name] = {
            "p50_us": percentile(values, 50),
            "p95_us": percentile(values, 95),
            "plan": plans[name],
        }
    return result
