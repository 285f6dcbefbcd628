"""Telegram bots, their users and chats, and the dead-letter list; the webhook finds its bot
by Parley's id through a lookup policy.

Revision ID: ac877e9b027d
Revises: d6d46763579e
Create Date: 2026-11-22 04:22:27.809849
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations.rls import add_read_policy, enable_tenant_rls

revision: str = "ac877e9b027d"
down_revision: str | None = "d6d46763579e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


TABLES = ("telegram_bots", "telegram_users", "telegram_chats", "telegram_dead_letters")


def upgrade() -> None:
    op.create_table(
        "telegram_bots",
        sa.Column("assistant_id", sa.UUID(), nullable=False),
        sa.Column("telegram_id", sa.BigInteger(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("token_encrypted", sa.Text(), nullable=False),
        sa.Column("webhook_secret_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "status", sa.Enum("active", "disabled", name="telegram_bot_status"), nullable=False
        ),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column(
            "group_mode", sa.Enum("mention", "all", name="telegram_group_mode"), nullable=False
        ),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True),
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
            ["assistant_id"],
            ["assistants.id"],
            name=op.f("fk_telegram_bots_assistant_id_assistants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_telegram_bots_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telegram_bots")),
        sa.UniqueConstraint(
            "tenant_id", "telegram_id", name=op.f("uq_telegram_bots_tenant_id_telegram_id")
        ),
    )
    op.create_index(
        op.f("ix_telegram_bots_assistant_id"), "telegram_bots", ["assistant_id"], unique=False
    )
    op.create_index(
        op.f("ix_telegram_bots_tenant_id"), "telegram_bots", ["tenant_id"], unique=False
    )
    op.create_table(
        "telegram_chats",
        sa.Column("bot_id", sa.UUID(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("chat_type", sa.String(length=20), nullable=False),
        sa.Column("conversation_id", sa.UUID(), nullable=True),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["bot_id"],
            ["telegram_bots.id"],
            name=op.f("fk_telegram_chats_bot_id_telegram_bots"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_telegram_chats_conversation_id_conversations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_telegram_chats_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telegram_chats")),
        sa.UniqueConstraint("bot_id", "chat_id", name=op.f("uq_telegram_chats_bot_id_chat_id")),
    )
    op.create_index(
        op.f("ix_telegram_chats_tenant_id"), "telegram_chats", ["tenant_id"], unique=False
    )
    op.create_table(
        "telegram_dead_letters",
        sa.Column("bot_id", sa.UUID(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["bot_id"],
            ["telegram_bots.id"],
            name=op.f("fk_telegram_dead_letters_bot_id_telegram_bots"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_telegram_dead_letters_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telegram_dead_letters")),
    )
    op.create_index(
        op.f("ix_telegram_dead_letters_bot_id"), "telegram_dead_letters", ["bot_id"], unique=False
    )
    op.create_index(
        op.f("ix_telegram_dead_letters_tenant_id"),
        "telegram_dead_letters",
        ["tenant_id"],
        unique=False,
    )
    op.create_table(
        "telegram_users",
        sa.Column("bot_id", sa.UUID(), nullable=False),
        sa.Column("telegram_id", sa.BigInteger(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=True),
        sa.Column("first_name", sa.String(length=200), nullable=True),
        sa.Column("last_name", sa.String(length=200), nullable=True),
        sa.Column("language_code", sa.String(length=16), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("wants_human_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["bot_id"],
            ["telegram_bots.id"],
            name=op.f("fk_telegram_users_bot_id_telegram_bots"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_telegram_users_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telegram_users")),
        sa.UniqueConstraint(
            "bot_id", "telegram_id", name=op.f("uq_telegram_users_bot_id_telegram_id")
        ),
    )
    op.create_index(
        op.f("ix_telegram_users_tenant_id"), "telegram_users", ["tenant_id"], unique=False
    )
    for table in TABLES:
        enable_tenant_rls(table)
    # The webhook knows only the bot id in its path; this reveals that one bot.
    add_read_policy(
        "telegram_bots",
        "lookup_by_bot_id",
        "id = NULLIF(current_setting('app.bot_id', true), '')::uuid",
    )
    # Polling mode looks across tenants at the active bots' ids.
    op.execute(
        "CREATE POLICY scheduler_read ON telegram_bots FOR SELECT "
        "USING (current_setting('app.scope', true) = 'scheduler')"
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_telegram_users_tenant_id"), table_name="telegram_users")
    op.drop_table("telegram_users")
    op.drop_index(op.f("ix_telegram_dead_letters_tenant_id"), table_name="telegram_dead_letters")
    op.drop_index(op.f("ix_telegram_dead_letters_bot_id"), table_name="telegram_dead_letters")
    op.drop_table("telegram_dead_letters")
    op.drop_index(op.f("ix_telegram_chats_tenant_id"), table_name="telegram_chats")
    op.drop_table("telegram_chats")
    op.drop_index(op.f("ix_telegram_bots_tenant_id"), table_name="telegram_bots")
    op.drop_index(op.f("ix_telegram_bots_assistant_id"), table_name="telegram_bots")
    op.drop_table("telegram_bots")
    op.execute("DROP TYPE IF EXISTS telegram_bot_status")
    op.execute("DROP TYPE IF EXISTS telegram_group_mode")
