"""Alembic environment: migrations run as the owner role (PARLEY_DATABASE_ADMIN_URL)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from backend.config import get_settings
from backend.models import Base
from migrations.rls import HNSW_INDEX_PREFIX, is_partition_name

target_metadata = Base.metadata


def _admin_url() -> str:
    url = context.config.attributes.get("admin_url")
    if url:
        return str(url)
    settings = get_settings()
    if settings.database_admin_url is None:
        raise RuntimeError("PARLEY_DATABASE_ADMIN_URL is not set: migrations run as the owner role")
    return settings.database_admin_url.get_secret_value()


def _include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    if name is None:
        return True
    # Per-model vector indexes and hash partitions are made by hand in migrations.
    if type_ == "index" and name.startswith(HNSW_INDEX_PREFIX):
        return False
    return not (type_ == "table" and reflected and is_partition_name(name))


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        include_object=_include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = create_async_engine(_admin_url())
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_admin_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
