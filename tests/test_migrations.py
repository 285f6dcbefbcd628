"""The migrations build exactly the schema the models describe, and they run down and up again."""

from __future__ import annotations

import asyncio

import asyncpg
from alembic import command
from alembic.config import Config

from backend.migrate import alembic_ini
from tests.conftest import ADMIN_SERVER_URL, TEST_ADMIN_URL, _plain, _with_database


def _config(url: str) -> Config:
    config = Config(str(alembic_ini()))
    config.attributes["admin_url"] = url
    return config


def test_models_and_migrations_agree() -> None:
    # Raises if autogenerate would add, drop or alter anything.
    command.check(_config(TEST_ADMIN_URL))


def test_downgrade_to_base_and_upgrade_again() -> None:
    scratch = "parley_migration_roundtrip"

    async def recreate() -> None:
        conn = await asyncpg.connect(_plain(ADMIN_SERVER_URL))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{scratch}"')
        finally:
            await conn.close()

    asyncio.run(recreate())
    url = _with_database(ADMIN_SERVER_URL, scratch)
    command.upgrade(_config(url), "head")
    command.downgrade(_config(url), "base")
    command.upgrade(_config(url), "head")
    command.check(_config(url))
