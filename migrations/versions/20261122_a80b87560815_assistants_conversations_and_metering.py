"""Assistants, conversations, messages, feedback, unanswered questions, and metering.

Revision ID: a80b87560815
Revises: a7e24142aee0
Create Date: 2026-11-22 03:43:18.367867
"""

from collections.abc import Sequence

import pgvector.sqlalchemy
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from migrations.rls import APP_ROLE, enable_tenant_rls

revision: str = "a80b87560815"
down_revision: str | None = "a7e24142aee0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


TENANT_TABLES = (
    "assistants",
    "assistant_knowledge_bases",
    "conversations",
    "messages",
    "message_feedback",
    "unanswered_questions",
    "usage_records",
    "quota_counters",
    "quota_reservations",
)
ENUMS = (
    "model_provider",
    "channel",
    "conversation_status",
    "message_role",
    "message_status",
    "feedback_rating",
    "usage_kind",
    "usage_outcome",
)


def upgrade() -> None:
    op.create_table(
        "assistants",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("instructions", sa.Text(), nullable=False),
        sa.Column(
            "provider", sa.Enum("auto", "openai", "offline", name="model_provider"), nullable=False
        ),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("temperature", sa.Float(), nullable=False),
        sa.Column("max_answer_tokens", sa.Integer(), nullable=False),
        sa.Column("top_k", sa.Integer(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("welcome_message", sa.Text(), nullable=True),
        sa.Column("suggested_questions", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("fallback_message", sa.Text(), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("visitor_daily_message_cap", sa.Integer(), nullable=True),
        sa.Column("public_key", sa.String(length=64), nullable=False),
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
            name=op.f("fk_assistants_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assistants")),
        sa.UniqueConstraint("public_key", name=op.f("uq_assistants_public_key")),
    )
    op.create_index(op.f("ix_assistants_tenant_id"), "assistants", ["tenant_id"], unique=False)
    op.create_table(
        "quota_counters",
        sa.Column("scope", sa.String(length=300), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("replies_used", sa.Integer(), nullable=False),
        sa.Column("replies_reserved", sa.Integer(), nullable=False),
        sa.Column("tokens_used", sa.BigInteger(), nullable=False),
        sa.Column("tokens_reserved", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_quota_counters_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quota_counters")),
        sa.UniqueConstraint(
            "tenant_id",
            "scope",
            "period_start",
            name=op.f("uq_quota_counters_tenant_id_scope_period_start"),
        ),
    )
    op.create_index(
        op.f("ix_quota_counters_tenant_id"), "quota_counters", ["tenant_id"], unique=False
    )
    op.create_table(
        "quota_reservations",
        sa.Column("counters", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("replies", sa.Integer(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_quota_reservations_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quota_reservations")),
    )
    op.create_index(
        op.f("ix_quota_reservations_expires_at"), "quota_reservations", ["expires_at"], unique=False
    )
    op.create_index(
        op.f("ix_quota_reservations_tenant_id"), "quota_reservations", ["tenant_id"], unique=False
    )
    op.create_table(
        "usage_records",
        sa.Column("kind", sa.Enum("reply", "embedding", name="usage_kind"), nullable=False),
        sa.Column("outcome", sa.Enum("charged", "free", name="usage_outcome"), nullable=False),
        sa.Column("assistant_id", sa.UUID(), nullable=True),
        sa.Column("conversation_id", sa.UUID(), nullable=True),
        sa.Column("message_id", sa.UUID(), nullable=True),
        sa.Column("knowledge_base_id", sa.UUID(), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("embedding_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_micros", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_usage_records_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_records")),
    )
    op.create_index(
        op.f("ix_usage_records_tenant_id"), "usage_records", ["tenant_id"], unique=False
    )
    op.create_index(
        "ix_usage_records_tenant_id_created_at",
        "usage_records",
        ["tenant_id", "created_at"],
        unique=False,
    )
    op.create_table(
        "assistant_knowledge_bases",
        sa.Column("assistant_id", sa.UUID(), nullable=False),
        sa.Column("knowledge_base_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["assistant_id"],
            ["assistants.id"],
            name=op.f("fk_assistant_knowledge_bases_assistant_id_assistants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["knowledge_base_id"],
            ["knowledge_bases.id"],
            name=op.f("fk_assistant_knowledge_bases_knowledge_base_id_knowledge_bases"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_assistant_knowledge_bases_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assistant_knowledge_bases")),
        sa.UniqueConstraint(
            "assistant_id",
            "knowledge_base_id",
            name=op.f("uq_assistant_knowledge_bases_assistant_id_knowledge_base_id"),
        ),
    )
    op.create_index(
        op.f("ix_assistant_knowledge_bases_knowledge_base_id"),
        "assistant_knowledge_bases",
        ["knowledge_base_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_assistant_knowledge_bases_tenant_id"),
        "assistant_knowledge_bases",
        ["tenant_id"],
        unique=False,
    )
    op.create_table(
        "conversations",
        sa.Column("assistant_id", sa.UUID(), nullable=False),
        sa.Column("channel", sa.Enum("api", "widget", "telegram", name="channel"), nullable=False),
        sa.Column("external_user_id", sa.String(length=200), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=True),
        sa.Column(
            "status",
            sa.Enum("open", "handed_off", "closed", name="conversation_status"),
            nullable=False,
        ),
        sa.Column("assignee_id", sa.UUID(), nullable=True),
        sa.Column("last_message_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
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
            ["assignee_id"],
            ["users.id"],
            name=op.f("fk_conversations_assignee_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["assistant_id"],
            ["assistants.id"],
            name=op.f("fk_conversations_assistant_id_assistants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_conversations_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversations")),
    )
    op.create_index(
        "ix_conversations_assistant_id_created_at",
        "conversations",
        ["assistant_id", "created_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_conversations_tenant_id"), "conversations", ["tenant_id"], unique=False
    )
    op.create_index(
        "ix_conversations_tenant_id_created_at",
        "conversations",
        ["tenant_id", "created_at"],
        unique=False,
    )
    op.create_table(
        "messages",
        sa.Column("conversation_id", sa.UUID(), nullable=False),
        sa.Column("role", sa.Enum("user", "assistant", name="message_role"), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column(
            "status",
            sa.Enum("complete", "cancelled", "fallback", name="message_status"),
            nullable=False,
        ),
        sa.Column("citations", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_messages_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_messages_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
    )
    op.create_index(
        "ix_messages_conversation_id_created_at",
        "messages",
        ["conversation_id", "created_at"],
        unique=False,
    )
    op.create_index(op.f("ix_messages_tenant_id"), "messages", ["tenant_id"], unique=False)
    op.create_table(
        "unanswered_questions",
        sa.Column("assistant_id", sa.UUID(), nullable=False),
        sa.Column("conversation_id", sa.UUID(), nullable=True),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("embedding", pgvector.sqlalchemy.vector.VECTOR(dim=384), nullable=True),
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
            ["assistant_id"],
            ["assistants.id"],
            name=op.f("fk_unanswered_questions_assistant_id_assistants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_unanswered_questions_conversation_id_conversations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_unanswered_questions_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unanswered_questions")),
    )
    op.create_index(
        "ix_unanswered_questions_assistant_id_created_at",
        "unanswered_questions",
        ["assistant_id", "created_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_unanswered_questions_tenant_id"),
        "unanswered_questions",
        ["tenant_id"],
        unique=False,
    )
    op.create_table(
        "message_feedback",
        sa.Column("message_id", sa.UUID(), nullable=False),
        sa.Column("rating", sa.Enum("up", "down", name="feedback_rating"), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
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
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_message_feedback_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_message_feedback_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_feedback")),
        sa.UniqueConstraint("message_id", name=op.f("uq_message_feedback_message_id")),
    )
    op.create_index(
        op.f("ix_message_feedback_tenant_id"), "message_feedback", ["tenant_id"], unique=False
    )
    for table in TENANT_TABLES:
        enable_tenant_rls(table)
    # The sweep of stale quota holds looks across tenants, at ids and expiry times only; it
    # releases each hold in its own tenant's context.
    op.execute(
        "CREATE POLICY scheduler_read ON quota_reservations FOR SELECT "
        "USING (current_setting('app.scope', true) = 'scheduler')"
    )
    # The ledger is billing's source of truth: the app appends and never rewrites.
    op.execute(f"REVOKE UPDATE, DELETE ON usage_records FROM {APP_ROLE}")


def downgrade() -> None:
    op.execute("DROP POLICY IF EXISTS scheduler_read ON quota_reservations")
    op.drop_index(op.f("ix_message_feedback_tenant_id"), table_name="message_feedback")
    op.drop_table("message_feedback")
    op.drop_index(op.f("ix_unanswered_questions_tenant_id"), table_name="unanswered_questions")
    op.drop_index(
        "ix_unanswered_questions_assistant_id_created_at", table_name="unanswered_questions"
    )
    op.drop_table("unanswered_questions")
    op.drop_index(op.f("ix_messages_tenant_id"), table_name="messages")
    op.drop_index("ix_messages_conversation_id_created_at", table_name="messages")
    op.drop_table("messages")
    op.drop_index("ix_conversations_tenant_id_created_at", table_name="conversations")
    op.drop_index(op.f("ix_conversations_tenant_id"), table_name="conversations")
    op.drop_index("ix_conversations_assistant_id_created_at", table_name="conversations")
    op.drop_table("conversations")
    op.drop_index(
        op.f("ix_assistant_knowledge_bases_tenant_id"), table_name="assistant_knowledge_bases"
    )
    op.drop_index(
        op.f("ix_assistant_knowledge_bases_knowledge_base_id"),
        table_name="assistant_knowledge_bases",
    )
    op.drop_table("assistant_knowledge_bases")
    op.drop_index("ix_usage_records_tenant_id_created_at", table_name="usage_records")
    op.drop_index(op.f("ix_usage_records_tenant_id"), table_name="usage_records")
    op.drop_table("usage_records")
    op.drop_index(op.f("ix_quota_reservations_tenant_id"), table_name="quota_reservations")
    op.drop_index(op.f("ix_quota_reservations_expires_at"), table_name="quota_reservations")
    op.drop_table("quota_reservations")
    op.drop_index(op.f("ix_quota_counters_tenant_id"), table_name="quota_counters")
    op.drop_table("quota_counters")
    op.drop_index(op.f("ix_assistants_tenant_id"), table_name="assistants")
    op.drop_table("assistants")
    for enum in ENUMS:
        op.execute(f"DROP TYPE IF EXISTS {enum}")
