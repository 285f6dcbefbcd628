"""Chunk embeddings are partitioned by knowledge base, so each partition has its own HNSW index.

One HNSW index over every tenant's vectors serves a filtered search badly: a knowledge base that
holds 2-7 % of the index is found neither by the graph search (most candidates belong to other
tenants) nor cheaply by an exact scan. Hashing `knowledge_base_id` into 32 partitions gives every
partition its own per-model HNSW indexes; a search names its knowledge base, so PostgreSQL
prunes to one partition, where a big knowledge base is a large share of the index.

A partitioned table's unique constraints must include the partition key, so the primary key is
(id, knowledge_base_id) and the one-vector-per-chunk-and-model constraint becomes
(chunk_id, model, knowledge_base_id); a chunk belongs to one knowledge base, so both mean what
they meant before. The app's role is given no privileges on the partitions themselves: it
reaches them only through the parent table and its row-level security.

The upgrade copies the existing rows into the new table while holding its locks; on a large
installation, plan a maintenance window (about a minute per million vectors, plus the HNSW
builds).

Revision ID: 3c8d2f6a9e15
Revises: 5b1e0c9d7f42
Create Date: 2026-12-04 18:00:00.000000
"""

from collections.abc import Sequence

from migrations.chunk_embeddings import rebuild

revision: str = "3c8d2f6a9e15"
down_revision: str | None = "5b1e0c9d7f42"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    rebuild(partitions=32)


def downgrade() -> None:
    rebuild(partitions=None)
