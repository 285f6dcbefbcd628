"""Chunk embeddings go from 32 to 128 hash partitions by knowledge base.

With 32 partitions, a partition holds the vectors of about 1/32 of all knowledge bases. A
filtered HNSW search collects `hnsw.ef_search` candidates from its partition and keeps the ones
of its own knowledge base; where that base is a small share of the partition, the scan has to
go on well past that many candidates before it has enough of them (pgvector's iterative scan),
and most of its work is spent on other tenants' vectors. With 128 partitions each holds a
quarter as many other knowledge bases, so a large one is most of its partition.

The upgrade copies the rows while holding the table's locks, as the first partitioning did:
plan a maintenance window on a large installation (about a minute per million vectors, plus
the HNSW builds).

Revision ID: 9d41b7e2c6a3
Revises: 3c8d2f6a9e15
Create Date: 2026-12-04 19:00:00.000000
"""

from collections.abc import Sequence

from migrations.chunk_embeddings import rebuild

revision: str = "9d41b7e2c6a3"
down_revision: str | None = "3c8d2f6a9e15"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    rebuild(partitions=128)


def downgrade() -> None:
    rebuild(partitions=32)
