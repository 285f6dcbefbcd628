"""Functions that set a request's tenant context and read what the request needs in one call.

Every workspace request used to make two round trips before its own work: one `set_config`
statement, then the membership (or API key) lookup that the settings make visible. Each
function below does both in one call. They run as the caller (SECURITY INVOKER), so row-level
security applies to their queries exactly as to the app's own statements.

Revision ID: 5b1e0c9d7f42
Revises: ac877e9b027d
Create Date: 2026-12-03 14:50:00.000000
"""

from collections.abc import Sequence

from alembic import op

from migrations.rls import APP_ROLE

revision: str = "5b1e0c9d7f42"
down_revision: str | None = "ac877e9b027d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # No row: the account does not exist. A row with a NULL role: not a member of the tenant.
    op.execute(
        """
        CREATE FUNCTION parley_enter_workspace(p_user_id uuid, p_tenant_id uuid)
        RETURNS TABLE (role text, is_active boolean)
        LANGUAGE plpgsql VOLATILE SECURITY INVOKER AS $$
        BEGIN
            PERFORM set_config('app.user_id', p_user_id::text, true),
                    set_config('app.tenant_id', p_tenant_id::text, true);
            RETURN QUERY
                SELECT m.role::text, u.is_active
                FROM users u
                LEFT JOIN memberships m ON m.user_id = u.id AND m.tenant_id = p_tenant_id
                WHERE u.id = p_user_id;
        END $$
        """
    )
    # The key whose hash the caller knows; its tenant becomes the transaction's.
    op.execute(
        """
        CREATE FUNCTION parley_enter_with_api_key(p_key_hash text)
        RETURNS SETOF api_keys
        LANGUAGE plpgsql VOLATILE SECURITY INVOKER AS $$
        DECLARE
            found_key api_keys;
        BEGIN
            PERFORM set_config('app.lookup_hash', p_key_hash, true);
            SELECT * INTO found_key FROM api_keys WHERE key_hash = p_key_hash;
            IF FOUND THEN
                PERFORM set_config('app.tenant_id', found_key.tenant_id::text, true);
                RETURN NEXT found_key;
            END IF;
        END $$
        """
    )
    for signature in ("parley_enter_workspace(uuid, uuid)", "parley_enter_with_api_key(text)"):
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {APP_ROLE}")


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS parley_enter_with_api_key(text)")
    op.execute("DROP FUNCTION IF EXISTS parley_enter_workspace(uuid, uuid)")
