"""Alembic environment: migrations run as the owner role (PARLEY_DATABASE_ADMIN_URL)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from backend.config import get_settings
from backend.models import Base

target_metadata = Base.metadata


def _admin_url() -> str:
    url = context.config.attributes.get("admin_url")
    if url:
        return str(url)
    settings = get_settings()
    if settings.database_admin_url is None:
        raise RuntimeError("PARLEY_DATABASE_ADMIN_URL is not set: migrations run as the owner role")
    return settings.database_admin_url.get_secret_value()


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
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
