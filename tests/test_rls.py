"""Row-level security, checked in raw SQL as the app's own database role.

The app connects as a login role that owns nothing and cannot bypass RLS; every tenant-owned
table is ENABLE + FORCE ROW LEVEL SECURITY with a `tenant_isolation` policy on `app.tenant_id`.
These tests connect with asyncpg directly as that role, set the tenant context the way the app
does (`set_config(..., true)` inside a transaction), and check what the database itself allows,
whatever the application code above it does. Every transaction is rolled back.

The tenant tables are discovered from the ORM metadata and the live schema, not listed by hand:
a new table with a tenant_id column is covered, or fails, without touching this file.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from backend.config import PlanLimits
from backend.db import PendingJob, unit_of_work
from backend.kit.secrets import hash_token
from backend.models import (
    Base,
    Role,
    TelegramBot,
    TelegramChat,
    TelegramDeadLetter,
    TelegramUser,
)
from backend.tenancy.permissions import Permission
from backend.usage import quota
from migrations.rls import APP_ROLE
from tests.conftest import TEST_ADMIN_URL, TEST_APP_URL
from tests.factories.assistants import ask, create_assistant, open_conversation
from tests.factories.knowledge import add_text, create_kb, run_jobs
from tests.factories.workspaces import Workspace, jobs_recorded, populated_workspace

TENANT_COLUMN = "tenant_id"
# Mapped tables whose rows belong to one tenant.
TENANT_TABLES = sorted(t.name for t in Base.metadata.sorted_tables if TENANT_COLUMN in t.c)
# Every table under RLS and the column compared with app.tenant_id; `tenants` is keyed by id.
RLS_TABLES = {"tenants": "id", **dict.fromkeys(TENANT_TABLES, TENANT_COLUMN)}

APP_LOGIN = urlsplit(TEST_APP_URL).username or ""
RLS_VIOLATION = "row-level security"


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


@asynccontextmanager
async def connect(url: str) -> AsyncIterator[Any]:
    """A connection inside a transaction that is always rolled back."""
    conn = await asyncpg.connect(_dsn(url))
    try:
        transaction = conn.transaction()
        await transaction.start()
        try:
            yield conn
        finally:
            await transaction.rollback()
    finally:
        await conn.close()


async def set_context(conn: Any, name: str, value: object) -> None:
    await conn.execute("SELECT set_config($1, $2, true)", name, str(value))


async def as_tenant(conn: Any, tenant_id: uuid.UUID) -> None:
    await set_context(conn, "app.tenant_id", tenant_id)


async def count(conn: Any, sql: str, *args: object) -> int:
    return int(await conn.fetchval(sql, *args))


@dataclass
class Seed:
    a: Workspace
    b: Workspace


@pytest.fixture(scope="module")
async def seed(app: FastAPI) -> Seed:
    """Two tenants, each with rows in every tenant table: memberships (an owner and an agent),
    invitations (one accepted, one pending), two API keys, and the audit events all that wrote."""
    transport = ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with AsyncClient(transport=transport, base_url="http://parley.test") as http:
        with jobs_recorded() as jobs:
            workspaces = [
                await populated_workspace(
                    http,
                    roles=(Role.agent,),
                    api_keys={
                        "reader": [Permission.tenant_read],
                        "members": [Permission.members_read],
                    },
                    pending_invitation=True,
                )
                for _ in range(2)
            ]
            for workspace in workspaces:
                kb_id = await _add_knowledge(http, workspace, jobs)
                await _add_conversation(http, workspace, kb_id)
    return Seed(*workspaces)


async def _add_knowledge(
    http: AsyncClient, workspace: Workspace, jobs: list[PendingJob]
) -> uuid.UUID:
    """A knowledge base with an ingested text (chunks and embeddings) and two URL sources, one
    on a re-sync schedule. Their fetch jobs are dropped: nothing here needs the pages."""
    kb_id = await create_kb(http, workspace.owner)
    own_endpoint = await http.put(
        "/api/v1/embedding-settings",
        json={"openai_base_url": "https://embeddings.example.com/v1", "openai_api_key": "sk-own"},
        headers=workspace.owner.headers(),
    )
    assert own_endpoint.status_code == 200, own_endpoint.text
    await add_text(http, workspace.owner, kb_id, "Parley keeps each workspace apart.")
    await run_jobs(jobs)
    for interval in (60, None):
        response = await http.post(
            f"/api/v1/knowledge-bases/{kb_id}/sources",
            json={"kind": "url", "url": "https://example.com/", "sync_interval_minutes": interval},
            headers=workspace.owner.headers(),
        )
        assert response.status_code == 201, response.text
    jobs.clear()
    return kb_id


async def _add_conversation(http: AsyncClient, workspace: Workspace, kb_id: uuid.UUID) -> None:
    """An assistant on the knowledge base, a conversation with an answered question (messages,
    usage, quota counters), an unanswered one, feedback, and a quota hold left unsettled."""
    owner = workspace.owner
    assistant = await create_assistant(http, owner, knowledge_base_ids=[kb_id], provider="offline")
    conversation = await open_conversation(http, owner, assistant["id"])
    answered = await ask(http, owner, conversation, "How does Parley keep each workspace?")
    assert answered["answer"]["status"] == "complete", answered
    await ask(http, owner, conversation, "zebra quantum saxophone?")
    feedback = await http.put(
        f"/api/v1/messages/{answered['answer']['id']}/feedback",
        json={"rating": "up"},
        headers=owner.headers(),
    )
    assert feedback.status_code == 200, feedback.text
    async with unit_of_work(tenant_id=workspace.tenant_id) as session:
        await quota.reserve(session, workspace.tenant_id, [quota.month_limit(PLAN)], tokens=10)
        await _add_telegram(session, workspace.tenant_id, uuid.UUID(assistant["id"]))


async def _add_telegram(session: Any, tenant_id: uuid.UUID, assistant_id: uuid.UUID) -> None:
    """A bot with a user, a chat and a dead letter (written directly: no Telegram here)."""
    bot = TelegramBot(
        tenant_id=tenant_id,
        assistant_id=assistant_id,
        telegram_id=uuid.uuid4().int % 10**9,
        username="seed_bot",
        token_encrypted="sealed",
        webhook_secret_hash="0" * 64,
    )
    session.add(bot)
    await session.flush()
    session.add_all(
        [
            TelegramUser(tenant_id=tenant_id, bot_id=bot.id, telegram_id=42, first_name="Ada"),
            TelegramChat(tenant_id=tenant_id, bot_id=bot.id, chat_id=42, chat_type="private"),
            TelegramDeadLetter(
                tenant_id=tenant_id, bot_id=bot.id, chat_id=42, html="hi", error="x", attempts=1
            ),
        ]
    )


async def _first_row(conn: Any, table: str, tenant_id: uuid.UUID) -> dict[str, Any]:
    row = await conn.fetchrow(
        f"SELECT * FROM {table} WHERE {TENANT_COLUMN} = $1 LIMIT 1",  # noqa: S608
        tenant_id,
    )
    assert row is not None, f"{table} has no visible row of tenant {tenant_id}"
    return dict(row)


async def _unique_text_columns(conn: Any, table: str) -> set[str]:
    """Text columns under a single-column unique constraint (e.g. key_hash, token_hash)."""
    rows = await conn.fetch(
        """
        SELECT a.attname FROM pg_constraint c
        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
        WHERE c.conrelid = $1::regclass AND c.contype IN ('u', 'p')
          AND array_length(c.conkey, 1) = 1
          AND a.atttypid IN ('text'::regtype, 'varchar'::regtype)
        """,
        table,
    )
    return {r["attname"] for r in rows}


async def _insert(conn: Any, table: str, row: dict[str, Any]) -> None:
    columns = list(row)
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    await conn.execute(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})",  # noqa: S608
        *row.values(),
    )


async def _copy_for(conn: Any, table: str, source: dict[str, Any], tenant_id: uuid.UUID) -> None:
    """Insert a copy of `source` that belongs to `tenant_id`, with fresh unique values."""
    row = {**source, "id": uuid.uuid4(), TENANT_COLUMN: tenant_id}
    for column in await _unique_text_columns(conn, table):
        row[column] = uuid.uuid4().hex
    if table == "knowledge_documents" and row.get("url"):  # unique per (source, url)
        row["url"] = f"https://example.com/{uuid.uuid4().hex}"
    if table == "tenant_embedding_settings":  # one row per tenant
        await conn.execute(f"DELETE FROM {table} WHERE {TENANT_COLUMN} = $1", tenant_id)  # noqa: S608
    if table in ("telegram_users", "telegram_chats"):  # unique per (bot, Telegram id)
        row["telegram_id" if table == "telegram_users" else "chat_id"] = uuid.uuid4().int % 10**9
    if table == "telegram_bots":  # unique per (tenant, Telegram id)
        row["telegram_id"] = uuid.uuid4().int % 10**9
    if table == "quota_counters":  # unique per (tenant, scope, period)
        row["scope"] = f"copy:{uuid.uuid4().hex}"
    one_per_parent = table in ("message_feedback", "assistant_knowledge_bases")
    if one_per_parent and tenant_id == source[TENANT_COLUMN]:  # one per message / pair
        await conn.execute(f"DELETE FROM {table} WHERE id = $1", source["id"])  # noqa: S608
    if table == "knowledge_chunk_embeddings":  # unique per (chunk, model)
        row["model"] = f"copy:{uuid.uuid4().hex}"
    if table == "knowledge_source_schedules":  # one schedule per source
        row["source_id"] = await conn.fetchval(
            "SELECT s.id FROM knowledge_sources s WHERE s.tenant_id = $1 AND NOT EXISTS "
            "(SELECT 1 FROM knowledge_source_schedules k WHERE k.source_id = s.id) LIMIT 1",
            source[TENANT_COLUMN],
        )
    await _insert(conn, table, row)


async def _can(conn: Any, table: str, privilege: str) -> bool:
    return bool(await conn.fetchval("SELECT has_table_privilege($1, $2)", table, privilege))


# --- The schema: every tenant table is under forced RLS with a tenant policy ----------------


def test_tenant_tables_are_discovered() -> None:
    assert {"memberships", "invitations", "api_keys", "audit_events"} <= set(TENANT_TABLES)


async def test_every_table_with_a_tenant_column_is_mapped() -> None:
    """A table that the migrations created with tenant_id, but no model maps, is caught too."""
    async with connect(TEST_ADMIN_URL) as conn:
        rows = await conn.fetch(
            "SELECT c.relname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') "
            "AND NOT c.relispartition AND a.attname = $1 AND NOT a.attisdropped",
            TENANT_COLUMN,
        )
    assert {r["relname"] for r in rows} == set(TENANT_TABLES)


async def test_partitions_of_tenant_tables_are_closed_to_the_app() -> None:
    """The app reaches a partition only through its parent, whose policies then apply."""
    async with connect(TEST_ADMIN_URL) as conn:
        partitions = await conn.fetch(
            "SELECT c.relname, p.relname AS parent, c.relrowsecurity, c.relforcerowsecurity, "
            "has_table_privilege($1, c.oid, 'SELECT, INSERT, UPDATE, DELETE') AS usable, "
            "(SELECT count(*) FROM pg_policy WHERE polrelid = c.oid) AS policies "
            "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent "
            "WHERE c.relispartition AND p.relname = ANY ($2)",
            APP_LOGIN,
            TENANT_TABLES,
        )
    assert {r["parent"] for r in partitions} == {"knowledge_chunk_embeddings"}
    assert len(partitions) == 128
    for row in partitions:
        assert not row["usable"], f"{row['relname']}: the app may use it directly"
        assert row["relrowsecurity"], row["relname"]
        assert row["relforcerowsecurity"], row["relname"]
        assert row["policies"] == 1, row["relname"]
    async with connect(TEST_APP_URL) as conn:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetch("SELECT * FROM knowledge_chunk_embeddings_p00")


@pytest.mark.parametrize(("table", "column"), sorted(RLS_TABLES.items()))
async def test_rls_is_enabled_forced_and_has_a_tenant_policy(table: str, column: str) -> None:
    async with connect(TEST_ADMIN_URL) as conn:
        flags = await conn.fetchrow(
            "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = $1::regclass",
            table,
        )
        policies = await conn.fetch(
            "SELECT policyname, cmd, qual, with_check FROM pg_policies "
            "WHERE schemaname = 'public' AND tablename = $1",
            table,
        )
    assert flags["relrowsecurity"], f"{table}: ROW LEVEL SECURITY is not enabled"
    assert flags["relforcerowsecurity"], f"{table}: ROW LEVEL SECURITY is not FORCEd"
    assert policies, f"{table} has no policy at all"
    # One policy covers every command, reads and writes, and compares the tenant column with
    # the transaction's tenant: that is what keeps writes inside the tenant (WITH CHECK).
    isolating = [
        p
        for p in policies
        if p["cmd"] == "ALL"
        and all(
            column in (p[clause] or "") and "app.tenant_id" in (p[clause] or "")
            for clause in ("qual", "with_check")
        )
    ]
    assert isolating, f"{table}: no ALL policy compares {column} with app.tenant_id: {policies}"
    # The other policies only ever widen reads, never writes.
    for policy in policies:
        if policy not in isolating:
            assert policy["cmd"] == "SELECT", f"{table}: extra policy allows writes: {policy}"


async def test_app_role_cannot_bypass_rls() -> None:
    async with connect(TEST_ADMIN_URL) as conn:
        roles = await conn.fetch(
            "SELECT rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = ANY ($1)",
            [APP_LOGIN, APP_ROLE],
        )
        # Roles the app can act as (itself, its groups) that would make RLS moot.
        privileged = await conn.fetch(
            "SELECT rolname FROM pg_roles "
            "WHERE (rolsuper OR rolbypassrls) AND pg_has_role($1, oid, 'MEMBER')",
            APP_LOGIN,
        )
        is_member = await conn.fetchval("SELECT pg_has_role($1, $2, 'MEMBER')", APP_LOGIN, APP_ROLE)
    assert {r["rolname"] for r in roles} == {APP_LOGIN, APP_ROLE}
    for role in roles:
        assert not role["rolsuper"], f"{role['rolname']} is a superuser"
        assert not role["rolbypassrls"], f"{role['rolname']} has BYPASSRLS"
    assert not privileged, f"{APP_LOGIN} can become {[r['rolname'] for r in privileged]}"
    assert is_member, f"{APP_LOGIN} is not in {APP_ROLE}, so its grants do not apply"


async def test_app_role_owns_nothing() -> None:
    """Table owners skip RLS unless it is FORCEd; the app should own no relation at all."""
    async with connect(TEST_ADMIN_URL) as conn:
        owned_tables = await conn.fetch(
            "SELECT schemaname, tablename FROM pg_tables "
            "WHERE pg_has_role($1, tableowner, 'MEMBER')",
            APP_LOGIN,
        )
        owned_relations = await conn.fetch(
            """
            SELECT n.nspname, c.relname FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
              AND n.nspname NOT LIKE 'pg\\_toast%'
              AND pg_has_role($1, c.relowner, 'MEMBER')
            """,
            APP_LOGIN,
        )
        mapped = await conn.fetchval(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = ANY ($1)",
            [t.name for t in Base.metadata.sorted_tables],
        )
    assert mapped == len(Base.metadata.sorted_tables), "the schema is not the one under test"
    assert not owned_tables, [dict(r) for r in owned_tables]
    assert not owned_relations, [dict(r) for r in owned_relations]


# --- Reads: a tenant sees its own rows only ---------------------------------------------------


async def test_seed_has_rows_of_both_tenants_in_every_tenant_table(seed: Seed) -> None:
    """Without this, the isolation tests below could pass on empty tables."""
    async with connect(TEST_ADMIN_URL) as conn:
        for table in TENANT_TABLES:
            for workspace in (seed.a, seed.b):
                n = await count(
                    conn,
                    f"SELECT count(*) FROM {table} WHERE {TENANT_COLUMN} = $1",  # noqa: S608
                    workspace.tenant_id,
                )
                assert n > 0, f"{table} has no rows of tenant {workspace.tenant_id}"


@pytest.mark.parametrize("table", TENANT_TABLES)
async def test_tenant_context_hides_other_tenants_rows(seed: Seed, table: str) -> None:
    for mine, theirs in ((seed.a, seed.b), (seed.b, seed.a)):
        async with connect(TEST_APP_URL) as conn:
            await as_tenant(conn, mine.tenant_id)
            visible = await conn.fetch(f"SELECT DISTINCT {TENANT_COLUMN} FROM {table}")  # noqa: S608
            filtered = await count(
                conn,
                f"SELECT count(*) FROM {table} WHERE {TENANT_COLUMN} = $1",  # noqa: S608
                theirs.tenant_id,
            )
        assert [r[TENANT_COLUMN] for r in visible] == [mine.tenant_id], table
        assert filtered == 0, f"{table}: {filtered} rows of the other tenant are visible"


@pytest.mark.parametrize("table", TENANT_TABLES)
@pytest.mark.parametrize("context", ["unset", "empty", "unknown tenant"])
async def test_without_a_tenant_context_tenant_tables_are_empty(
    seed: Seed, table: str, context: str
) -> None:
    async with connect(TEST_APP_URL) as conn:
        if context == "empty":
            await set_context(conn, "app.tenant_id", "")
        elif context == "unknown tenant":
            await as_tenant(conn, uuid.uuid4())
        n = await count(conn, f"SELECT count(*) FROM {table}")  # noqa: S608
    assert n == 0, f"{table}: {n} rows visible with the tenant context {context}"


async def test_tenants_table_shows_only_the_context_tenant(seed: Seed) -> None:
    async with connect(TEST_APP_URL) as conn:
        nothing = await conn.fetch("SELECT id FROM tenants")
        await as_tenant(conn, seed.a.tenant_id)
        only_a = await conn.fetch("SELECT id FROM tenants")
        b_by_id = await conn.fetch("SELECT id FROM tenants WHERE id = $1", seed.b.tenant_id)
    assert nothing == []
    assert [r["id"] for r in only_a] == [seed.a.tenant_id]
    assert b_by_id == []


async def test_user_context_reveals_own_memberships_and_workspaces_only(seed: Seed) -> None:
    """app.user_id widens reads to the user's own memberships (and their workspaces), no more."""
    agent = seed.a.members[Role.agent]
    async with connect(TEST_APP_URL) as conn:
        await set_context(conn, "app.user_id", agent.user_id)
        memberships = await conn.fetch("SELECT tenant_id, user_id FROM memberships")
        tenants = await conn.fetch("SELECT id FROM tenants")
        keys = await count(conn, "SELECT count(*) FROM api_keys")
    assert [(r["tenant_id"], r["user_id"]) for r in memberships] == [
        (seed.a.tenant_id, agent.user_id)
    ]
    assert [r["id"] for r in tenants] == [seed.a.tenant_id]
    assert keys == 0


async def test_lookup_by_hash_reveals_one_row_and_allows_no_write(seed: Seed) -> None:
    """Knowing a key's secret reveals that key, across tenants, but not its siblings, and the
    lookup policy is read-only: the key cannot be changed from another tenant's context."""
    key = seed.b.api_keys["reader"]
    async with connect(TEST_APP_URL) as conn:
        await as_tenant(conn, seed.a.tenant_id)
        await set_context(conn, "app.lookup_hash", hash_token(key.key))
        found = await conn.fetch("SELECT id FROM api_keys WHERE tenant_id = $1", seed.b.tenant_id)
        updated = await conn.execute(
            "UPDATE api_keys SET revoked_at = now() WHERE tenant_id = $1", seed.b.tenant_id
        )
        deleted = await conn.execute("DELETE FROM api_keys WHERE tenant_id = $1", seed.b.tenant_id)
    assert [r["id"] for r in found] == [key.id]
    assert updated == "UPDATE 0"
    assert deleted == "DELETE 0"


# --- Writes: nothing crosses into another tenant ----------------------------------------------


@pytest.mark.parametrize("table", TENANT_TABLES)
async def test_insert_for_another_tenant_is_refused(seed: Seed, table: str) -> None:
    """WITH CHECK: in tenant A's context, a row that belongs to tenant B cannot be written."""
    async with connect(TEST_APP_URL) as conn:
        await as_tenant(conn, seed.a.tenant_id)
        source = await _first_row(conn, table, seed.a.tenant_id)
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match=RLS_VIOLATION):
            await _copy_for(conn, table, source, seed.b.tenant_id)
    # The same row for tenant A itself is accepted: the refusal above is the policy's.
    async with connect(TEST_APP_URL) as conn:
        await as_tenant(conn, seed.a.tenant_id)
        source = await _first_row(conn, table, seed.a.tenant_id)
        if table == "memberships":
            # One membership per (tenant, user): reuse B's owner, who is not in tenant A.
            source["user_id"] = seed.b.owner.user_id
        await _copy_for(conn, table, source, seed.a.tenant_id)


@pytest.mark.parametrize("table", TENANT_TABLES)
async def test_insert_without_a_tenant_context_is_refused(seed: Seed, table: str) -> None:
    async with connect(TEST_APP_URL) as conn:
        await as_tenant(conn, seed.a.tenant_id)
        source = await _first_row(conn, table, seed.a.tenant_id)
        await set_context(conn, "app.tenant_id", "")
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match=RLS_VIOLATION):
            await _copy_for(conn, table, source, seed.a.tenant_id)


async def test_member_cannot_join_another_tenant(seed: Seed) -> None:
    """The plain SQL a compromised tenant-A request would try: make its user admin of B."""
    agent = seed.a.members[Role.agent]
    async with connect(TEST_APP_URL) as conn:
        await as_tenant(conn, seed.a.tenant_id)
        await set_context(conn, "app.user_id", agent.user_id)
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match=RLS_VIOLATION):
            await conn.execute(
                "INSERT INTO memberships (id, tenant_id, user_id, role) "
                "VALUES ($1, $2, $3, 'admin')",
                uuid.uuid4(),
                seed.b.tenant_id,
                agent.user_id,
            )


async def test_api_key_cannot_be_minted_for_another_tenant(seed: Seed) -> None:
    async with connect(TEST_APP_URL) as conn:
        await as_tenant(conn, seed.a.tenant_id)
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match=RLS_VIOLATION):
            await conn.execute(
                "INSERT INTO api_keys (id, tenant_id, name, prefix, key_hash, scopes) "
                "VALUES ($1, $2, 'stolen', 'prl_stolen', $3, ARRAY['members:read'])",
                uuid.uuid4(),
                seed.b.tenant_id,
                uuid.uuid4().hex,
            )


@pytest.mark.parametrize("table", TENANT_TABLES)
async def test_rows_cannot_move_to_another_tenant(seed: Seed, table: str) -> None:
    async with connect(TEST_APP_URL) as conn:
        await as_tenant(conn, seed.a.tenant_id)
        source = await _first_row(conn, table, seed.a.tenant_id)
        # Append-only tables grant no UPDATE at all; the others refuse by policy.
        expected = RLS_VIOLATION if await _can(conn, table, "UPDATE") else "permission denied"
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match=expected):
            await conn.execute(
                f"UPDATE {table} SET {TENANT_COLUMN} = $1 WHERE id = $2",  # noqa: S608
                seed.b.tenant_id,
                source["id"],
            )


# Append-only tables: the app may neither update nor delete their rows.
APPEND_ONLY = {"audit_events", "usage_records"}
PLAN = PlanLimits(max_documents=10, max_chunks=10, monthly_replies=10, monthly_tokens=1000)


@pytest.mark.parametrize("table", [t for t in TENANT_TABLES if t not in APPEND_ONLY])
async def test_other_tenants_rows_cannot_be_updated_or_deleted(seed: Seed, table: str) -> None:
    async with connect(TEST_APP_URL) as conn:
        await as_tenant(conn, seed.a.tenant_id)
        assert await _can(conn, table, "UPDATE"), table
        assert await _can(conn, table, "DELETE"), table
        updated = await conn.execute(
            f"UPDATE {table} SET created_at = created_at WHERE {TENANT_COLUMN} = $1",  # noqa: S608
            seed.b.tenant_id,
        )
        deleted = await conn.execute(
            f"DELETE FROM {table} WHERE {TENANT_COLUMN} = $1",  # noqa: S608
            seed.b.tenant_id,
        )
        own = await conn.execute(
            f"UPDATE {table} SET created_at = created_at WHERE {TENANT_COLUMN} = $1",  # noqa: S608
            seed.a.tenant_id,
        )
    assert updated == "UPDATE 0"
    assert deleted == "DELETE 0"
    assert own != "UPDATE 0", "the control update of tenant A's own rows touched nothing"


async def test_tenants_row_of_another_tenant_cannot_be_changed(seed: Seed) -> None:
    async with connect(TEST_APP_URL) as conn:
        await as_tenant(conn, seed.a.tenant_id)
        renamed = await conn.execute(
            "UPDATE tenants SET name = 'taken over' WHERE id = $1", seed.b.tenant_id
        )
        deleted = await conn.execute("DELETE FROM tenants WHERE id = $1", seed.b.tenant_id)
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match=RLS_VIOLATION):
            await conn.execute(
                "INSERT INTO tenants (id, name, slug, plan) VALUES ($1, 'x', $2, 'free')",
                uuid.uuid4(),
                f"rls-{uuid.uuid4().hex[:12]}",
            )
    assert renamed == "UPDATE 0"
    assert deleted == "DELETE 0"


# --- The audit log and the usage ledger are append-only for the app --------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET action = 'tampered' WHERE tenant_id = $1",
        "DELETE FROM audit_events WHERE tenant_id = $1",
        "UPDATE usage_records SET cost_micros = 0 WHERE tenant_id = $1",
        "DELETE FROM usage_records WHERE tenant_id = $1",
    ],
    ids=["audit-update", "audit-delete", "ledger-update", "ledger-delete"],
)
async def test_append_only_tables_cannot_be_changed_by_the_app(seed: Seed, statement: str) -> None:
    async with connect(TEST_APP_URL) as conn:
        await as_tenant(conn, seed.a.tenant_id)
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
            await conn.execute(statement, seed.a.tenant_id)


async def test_audit_events_can_be_appended_in_the_own_tenant(seed: Seed) -> None:
    async with connect(TEST_APP_URL) as conn:
        await as_tenant(conn, seed.a.tenant_id)
        before = await count(conn, "SELECT count(*) FROM audit_events")
        await conn.execute(
            "INSERT INTO audit_events (id, tenant_id, action, object_type, details) "
            "VALUES ($1, $2, 'test.appended', 'test', '{}'::jsonb)",
            uuid.uuid4(),
            seed.a.tenant_id,
        )
        after = await count(conn, "SELECT count(*) FROM audit_events")
    assert after == before + 1
