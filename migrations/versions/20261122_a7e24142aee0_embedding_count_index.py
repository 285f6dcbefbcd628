"""An index for counting a knowledge base's vectors of one model without reading the table.

Revision ID: a7e24142aee0
Revises: c592c177861b
Create Date: 2026-11-22 03:11:44.328274
"""

from collections.abc import Sequence

from alembic import op

revision: str = "a7e24142aee0"
down_revision: str | None = "c592c177861b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_knowledge_chunk_embeddings_kb_model",
        "knowledge_chunk_embeddings",
        ["knowledge_base_id", "model", "tenant_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_knowledge_chunk_embeddings_kb_model", table_name="knowledge_chunk_embeddings")
