"""Rebuilding `knowledge_chunk_embeddings`, unpartitioned or hash-partitioned by knowledge base.

Used by the migrations that change its layout. A rebuild renames the table (and its
partitions, if any), creates the new one, copies the rows, drops the old one, and only then
adds keys, indexes and row-level security, which build faster on a filled table.
"""

from __future__ import annotations

from alembic import op

from migrations.rls import APP_ROLE, HNSW_INDEX_PREFIX, enable_tenant_rls, partition_name

TABLE = "knowledge_chunk_embeddings"
COLUMNS = "id, chunk_id, model, knowledge_base_id, tenant_id, embedding, created_at"
# The models with an HNSW index and their dimensions (as in the knowledge-bases migration).
INDEXED_MODELS = {"local:all-MiniLM-L6-v2": 384, "openai:text-embedding-3-small": 1536}


def _create_table(name: str, partitions: int | None) -> None:
    op.execute(
        f"CREATE TABLE {name} ("
        "id uuid NOT NULL, chunk_id uuid NOT NULL, model varchar(200) NOT NULL, "
        "knowledge_base_id uuid NOT NULL, tenant_id uuid NOT NULL, embedding vector NOT NULL, "
        "created_at timestamptz NOT NULL DEFAULT now())"
        + (" PARTITION BY HASH (knowledge_base_id)" if partitions else "")
    )
    for number in range(partitions or 0):
        op.execute(
            f"CREATE TABLE {partition_name(TABLE, number)} PARTITION OF {name} "
            f"FOR VALUES WITH (MODULUS {partitions}, REMAINDER {number})"
        )


def _finish_table(partitions: int | None) -> None:
    key = "id, knowledge_base_id" if partitions else "id"
    op.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT pk_{TABLE} PRIMARY KEY ({key})")
    if partitions:
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
    for number in range(partitions or 0):
        partition = partition_name(TABLE, number)
        # Never used by the app, which goes through the parent; closed all the same.
        enable_tenant_rls(partition)
        op.execute(f"REVOKE ALL ON {partition} FROM {APP_ROLE}")


def rebuild(partitions: int | None) -> None:
    """Rebuild the table with `partitions` hash partitions (None: one plain table)."""
    old = f"{TABLE}_old"
    # The old partitions' names must be free for the new ones.
    op.execute(
        "DO $$ DECLARE part name; BEGIN "
        "FOR part IN SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        f"WHERE i.inhparent = '{TABLE}'::regclass LOOP "
        "EXECUTE format('ALTER TABLE %I RENAME TO %I', part, 'old_' || part); "
        "END LOOP; END $$"
    )
    op.execute(f"ALTER TABLE {TABLE} RENAME TO {old}")
    _create_table(TABLE, partitions)
    op.execute(f"INSERT INTO {TABLE} ({COLUMNS}) SELECT {COLUMNS} FROM {old}")
    # Dropping the old table (with its partitions) frees its constraint and index names.
    op.execute(f"DROP TABLE {old}")
    _finish_table(partitions)
