"""A function that runs a knowledge base's vector search, with its settings, in one call.

`parley_vector_search` searches one knowledge base's vectors of one model, exactly (no
dimension given) or through the model's HNSW index (with its dimension, `hnsw.ef_search` and,
on pgvector 0.8 and newer, the iterative scan). Before it, an HNSW search took two statements:
one for the settings, one for the search.

Its statement runs through EXECUTE, so PostgreSQL plans it on every call with the actual
knowledge base and model: it prunes the partitions to one at planning and can use the per-model
partial index. A prepared statement may instead switch to a generic plan after five runs, and
a generic plan knows neither the knowledge base (it estimates each at the average size) nor
the model (so not the partial index), and may sort a big knowledge base whole. (Run without
`plan_cache_mode = force_custom_plan`, the HNSW searches of one client at 1M vectors took 22 ms
at the median instead of 4 to 6 ms.) The function runs as the caller (SECURITY INVOKER), so
row-level security applies to it as to the app's own statements. Only an integer is formatted
into the statement.

Revision ID: b7e3f1a4c8d2
Revises: 9d41b7e2c6a3
Create Date: 2026-12-04 19:20:00.000000
"""

from collections.abc import Sequence

from alembic import op

from migrations.rls import APP_ROLE

revision: str = "b7e3f1a4c8d2"
down_revision: str | None = "9d41b7e2c6a3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SIGNATURE = "parley_vector_search(uuid, text, text, integer, integer, integer, boolean)"


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION parley_vector_search(
            p_knowledge_base_id uuid, p_model text, p_query text, p_limit integer,
            p_dimension integer, p_ef_search integer, p_iterative boolean)
        RETURNS TABLE (chunk_id uuid, similarity double precision)
        LANGUAGE plpgsql VOLATILE SECURITY INVOKER AS $$
        BEGIN
            IF p_dimension IS NULL THEN
                RETURN QUERY EXECUTE
                    'SELECT e.chunk_id, 1 - (e.embedding <=> $1::vector) '
                    'FROM knowledge_chunk_embeddings e '
                    'WHERE e.knowledge_base_id = $2 AND e.model = $3 '
                    'ORDER BY e.embedding <=> $1::vector LIMIT $4'
                    USING p_query, p_knowledge_base_id, p_model, p_limit;
                RETURN;
            END IF;
            PERFORM set_config('hnsw.ef_search', p_ef_search::text, true);
            IF p_iterative THEN
                PERFORM set_config('hnsw.iterative_scan', 'strict_order', true);
            END IF;
            RETURN QUERY EXECUTE format(
                'SELECT e.chunk_id, 1 - ((e.embedding::vector(%1$s)) <=> $1::vector(%1$s)) '
                'FROM knowledge_chunk_embeddings e '
                'WHERE e.model = $3 AND e.knowledge_base_id = $2 '
                'ORDER BY (e.embedding::vector(%1$s)) <=> $1::vector(%1$s) LIMIT $4',
                p_dimension)
                USING p_query, p_knowledge_base_id, p_model, p_limit;
        END $$
        """
    )
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO {APP_ROLE}")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION IF EXISTS {SIGNATURE}")
