"""The migrations build exactly the schema the models describe, and they run down and up again."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
from alembic import command
from alembic.config import Config

from backend.migrate import alembic_ini
from tests.conftest import (
    ADMIN_SERVER_URL,
    TEST_ADMIN_URL,
    _plain,
    _recreate_database,
    _with_database,
)


def _config(url: str) -> Config:
    config = Config(str(alembic_ini()))
    config.attributes["admin_url"] = url
    return config


def _scratch_database(name: str) -> str:
    """An empty database of its own, made anew; its URL."""
    asyncio.run(_recreate_database(name))
    return _with_database(ADMIN_SERVER_URL, name)


def test_models_and_migrations_agree() -> None:
    # Raises if autogenerate would add, drop or alter anything.
    command.check(_config(TEST_ADMIN_URL))


def test_downgrade_to_base_and_upgrade_again() -> None:
    url = _scratch_database("parley_migration_roundtrip")
    command.upgrade(_config(url), "head")
    command.downgrade(_config(url), "base")
    command.upgrade(_config(url), "head")
    command.check(_config(url))


def test_repartitioning_the_chunk_embeddings_keeps_every_vector() -> None:
    """32 -> 128 partitions and back: every row is still there, in the table's new layout."""
    tenant, kbs = uuid.uuid4(), [uuid.uuid4() for _ in range(6)]
    vectors = [(kb, uuid.uuid4(), f"[{i % 7},{i % 5},1]") for i, kb in enumerate(kbs * 10)]

    async def fill(url: str) -> None:
        conn = await asyncpg.connect(_plain(url))
        try:
            await conn.execute(
                "INSERT INTO tenants (id, name, slug, plan) VALUES ($1, 't', 't', 'free')", tenant
            )
            for kb in kbs:
                source, document = uuid.uuid4(), uuid.uuid4()
                await conn.execute(
                    "INSERT INTO knowledge_bases (id, tenant_id, name, language, embedding_model, "
                    "embedding_dimension, chunk_tokens, chunk_overlap_tokens) "
                    "VALUES ($1, $2, 'kb', 'english', 'test:3d', 3, 200, 20)",
                    kb,
                    tenant,
                )
                await conn.execute(
                    "INSERT INTO knowledge_sources (id, tenant_id, knowledge_base_id, kind, "
                    "config) VALUES ($1, $2, $3, 'text', '{}')",
                    source,
                    tenant,
                    kb,
                )
                await conn.execute(
                    "INSERT INTO knowledge_documents (id, tenant_id, knowledge_base_id, source_id, "
                    "size_bytes, status, chunks_total, chunks_done, version) "
                    "VALUES ($1, $2, $3, $4, 1, 'ready', 10, 10, 1)",
                    document,
                    tenant,
                    kb,
                    source,
                )
                for number, (owner, chunk, _) in enumerate(vectors):
                    if owner == kb:
                        await conn.execute(
                            "INSERT INTO knowledge_chunks (id, tenant_id, knowledge_base_id, "
                            "document_id, ordinal, text, embed_text, heading_path, "
                            "content_hash, token_count, tsv) "
                            "VALUES ($1, $2, $3, $4, $5, 'x', 'x', '{}', 'h', 1, '')",
                            chunk,
                            tenant,
                            kb,
                            document,
                            number,
                        )
            await conn.executemany(
                "INSERT INTO knowledge_chunk_embeddings (id, chunk_id, model, knowledge_base_id, "
                "tenant_id, embedding) VALUES ($1, $2, 'test:3d', $3, $4, $5::vector)",
                [(uuid.uuid4(), chunk, kb, tenant, vector) for kb, chunk, vector in vectors],
            )
        finally:
            await conn.close()

    async def layout(url: str) -> tuple[int, set[tuple[uuid.UUID, uuid.UUID, str]]]:
        conn = await asyncpg.connect(_plain(url))
        try:
            partitions = await conn.fetchval(
                "SELECT count(*) FROM pg_inherits "
                "WHERE inhparent = 'knowledge_chunk_embeddings'::regclass"
            )
            rows = await conn.fetch(
                "SELECT knowledge_base_id, chunk_id, embedding::text AS v "
                "FROM knowledge_chunk_embeddings"
            )
        finally:
            await conn.close()
        return partitions, {(r[0], r[1], r[2]) for r in rows}

    url = _scratch_database("parley_migration_repartition")
    command.upgrade(_config(url), "3c8d2f6a9e15")
    asyncio.run(fill(url))
    expected = set(vectors)
    assert asyncio.run(layout(url)) == (32, expected)
    command.upgrade(_config(url), "9d41b7e2c6a3")
    assert asyncio.run(layout(url)) == (128, expected)
    command.downgrade(_config(url), "3c8d2f6a9e15")
    assert asyncio.run(layout(url)) == (32, expected)
    command.upgrade(_config(url), "head")
    command.check(_config(url))
