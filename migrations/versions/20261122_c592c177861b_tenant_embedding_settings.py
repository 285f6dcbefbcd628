"""A workspace's own OpenAI-compatible endpoint and (encrypted) key for embeddings.

Revision ID: c592c177861b
Revises: 76eb6a2b91f3
Create Date: 2026-11-22 02:27:38.824963
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations.rls import enable_tenant_rls

revision: str = "c592c177861b"
down_revision: str | None = "76eb6a2b91f3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tenant_embedding_settings",
        sa.Column("openai_base_url", sa.Text(), nullable=True),
        sa.Column("openai_api_key_encrypted", sa.Text(), nullable=True),
        sa.Column("openai_api_key_hint", sa.String(length=8), nullable=True),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_tenant_embedding_settings_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenant_embedding_settings")),
        sa.UniqueConstraint("tenant_id", name=op.f("uq_tenant_embedding_settings_tenant_id")),
    )
    op.create_index(
        op.f("ix_tenant_embedding_settings_tenant_id"),
        "tenant_embedding_settings",
        ["tenant_id"],
        unique=False,
    )
    enable_tenant_rls("tenant_embedding_settings")


def downgrade() -> None:
    op.drop_index(
        op.f("ix_tenant_embedding_settings_tenant_id"), table_name="tenant_embedding_settings"
    )
    op.drop_table("tenant_embedding_settings")
