"""Widget settings of assistants: allowed origins, appearance, identity-secret version; and the
lookup of an assistant by its public key.

Revision ID: d6d46763579e
Revises: a80b87560815
Create Date: 2026-11-22 03:58:41.761821
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from migrations.rls import add_read_policy

revision: str = "d6d46763579e"
down_revision: str | None = "a80b87560815"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PUBLIC_KEY = "NULLIF(current_setting('app.public_key', true), '')"


def upgrade() -> None:
    op.add_column(
        "assistants",
        sa.Column(
            "allowed_origins",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
    )
    op.add_column(
        "assistants",
        sa.Column(
            "allow_all_origins", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
    )
    op.add_column(
        "assistants",
        sa.Column(
            "appearance",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
    )
    op.add_column(
        "assistants",
        sa.Column(
            "identity_secret_version", sa.Integer(), server_default=sa.text("1"), nullable=False
        ),
    )
    for column in ("allowed_origins", "allow_all_origins", "appearance", "identity_secret_version"):
        op.alter_column("assistants", column, server_default=None)
    # The widget finds its assistant (and so its workspace) by the public key it was given.
    add_read_policy("assistants", "lookup_by_public_key", f"public_key = {PUBLIC_KEY}")


def downgrade() -> None:
    op.execute("DROP POLICY IF EXISTS lookup_by_public_key ON assistants")
    op.drop_column("assistants", "identity_secret_version")
    op.drop_column("assistants", "appearance")
    op.drop_column("assistants", "allow_all_origins")
    op.drop_column("assistants", "allowed_origins")
