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

from alembic import op

from migrations.rls import APP_ROLE, HNSW_INDEX_PREFIX, enable_tenant_rls, partition_name

revision: str = "3c8d2f6a9e15"
down_revision: str | None = "5b1e0c9d7f42"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "knowledge_chunk_embeddings"
PARTITIONS = 32
COLUMNS = "id, chunk_id, model, knowledge_base_id, tenant_id, embedding, created_at"
# The models with an HNSW index and their dimensions (as in the knowledge-bases migration).
INDEXED_MODELS = {"local:all-MiniLM-L6-v2": 384, "openai:text-embedding-3-small": 1536}


def _create_table(name: str, *, partitioned: bool) -> None:
    op.execute(
        f"CREATE TABLE {name} ("
        "id uuid NOT NULL, chunk_id uuid NOT NULL, model varchar(200) NOT NULL, "
        "knowledge_base_id uuid NOT NULL, tenant_id uuid NOT NULL, embedding vector NOT NULL, "
        "created_at timestamptz NOT NULL DEFAULT now())"
        + (" PARTITION BY HASH (knowledge_base_id)" if partitioned else "")
    )
    if partitioned:
        for number in range(PARTITIONS):
            op.execute(
                f"CREATE TABLE {partition_name(TABLE, number)} PARTITION OF {name} "
                f"FOR VALUES WITH (MODULUS {PARTITIONS}, REMAINDER {number})"
            )


def _finish_table(*, partitioned: bool) -> None:
    """Keys, indexes and row-level security, once the rows are in (indexes build faster so)."""
    key = "id, knowledge_base_id" if partitioned else "id"
    op.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT pk_{TABLE} PRIMARY KEY ({key})")
    if partitioned:
        op.execute(
            f"ALTER TABLE {TABLE} ADD CONSTRAINT uq_{TABLE}_chunk_id_model_knowledge_base_id "
            "UNIQUE (chunk_id, model, knowledge_base_id)"
        )
    else:
        op.execute(
            f"ALTER TABLE {TABLE} ADD CONSTRAINT uq_{TABLE}_chunk_id_model UNIQUE (chunk_id, model)"
        )
        op.execute(f"CREATE INDEX ix_{TABLE}_knowledge_base_id ON {TABLE} (knowledge_base_id)")
    for column, referred in (
        ("chunk_id", "knowledge_chunks"),
        ("knowledge_base_id", "knowledge_bases"),
        ("tenant_id", "tenants"),
    ):
        op.execute(
            f"ALTER TABLE {TABLE} ADD CONSTRAINT fk_{TABLE}_{column}_{referred} "
            f"FOREIGN KEY ({column}) REFERENCES {referred} (id) ON DELETE CASCADE"
        )
    op.execute(f"CREATE INDEX ix_{TABLE}_tenant_id ON {TABLE} (tenant_id)")
    op.execute(f"CREATE INDEX ix_{TABLE}_kb_model ON {TABLE} (knowledge_base_id, model, tenant_id)")
    for model, dimension in INDEXED_MODELS.items():
        index = HNSW_INDEX_PREFIX + "".join(c if c.isalnum() else "_" for c in model.lower())
        op.execute(
            f"CREATE INDEX {index} ON {TABLE} "
            f"USING hnsw ((embedding::vector({dimension})) vector_cosine_ops) "
            f"WHERE model = '{model}'"
        )
    enable_tenant_rls(TABLE)
    if partitioned:
        for number in range(PARTITIONS):
            partition = partition_name(TABLE, number)
            # Never used by the app, which goes through the parent; closed all the same.
            enable_tenant_rls(partition)
            op.execute(f"REVOKE ALL ON {partition} FROM {APP_ROLE}")


def _rebuild(*, partitioned: bool) -> None:
    old = f"{TABLE}_old"
    op.execute(f"ALTER TABLE {TABLE} RENAME TO {old}")
    _create_table(TABLE, partitioned=partitioned)
    op.execute(f"INSERT INTO {TABLE} ({COLUMNS}) SELECT {COLUMNS} FROM {old}")
    # Dropping the old table frees its constraint and index names for the new one.
    op.execute(f"DROP TABLE {old}")
    _finish_table(partitioned=partitioned)


def upgrade() -> None:
    _rebuild(partitioned=True)


def downgrade() -> None:
    _rebuild(partitioned=False)
