"""Row-level security helpers for migrations.

Every tenant-owned table gets ENABLE + FORCE ROW LEVEL SECURITY and a policy comparing its
tenant column with `app.tenant_id`, which the app sets per transaction. `FORCE` makes the policy
apply to the table owner too; the app's role owns nothing and has no BYPASSRLS.
"""

from __future__ import annotations

from alembic import op

APP_ROLE = "parley_app"
# Per-model vector indexes are made by hand in migrations; autogenerate must leave them alone.
HNSW_INDEX_PREFIX = "ix_chunk_emb_hnsw_"

TENANT = "NULLIF(current_setting('app.tenant_id', true), '')::uuid"
USER = "NULLIF(current_setting('app.user_id', true), '')::uuid"
LOOKUP_HASH = "NULLIF(current_setting('app.lookup_hash', true), '')"


def enable_tenant_rls(table: str, column: str = "tenant_id") -> None:
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON {table} "
        f"USING ({column} = {TENANT}) WITH CHECK ({column} = {TENANT})"
    )


def add_read_policy(table: str, name: str, condition: str) -> None:
    """An extra SELECT-only policy, e.g. a user reading their own memberships across tenants."""
    op.execute(f"CREATE POLICY {name} ON {table} FOR SELECT USING ({condition})")


def drop_tenant_rls(table: str) -> None:
    op.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
    op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")


def partition_name(table: str, number: int) -> str:
    """The name of a hash partition of `table` (migrations/env.py leaves these to migrations)."""
    return f"{table}_p{number:02d}"


def is_partition_name(name: str) -> bool:
    head, _, number = name.rpartition("_p")
    return bool(head) and len(number) in (2, 3) and number.isdigit()
