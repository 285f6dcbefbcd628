"""Fixed-window rate limits in Redis, shared by every API process."""

from __future__ import annotations

from redis.asyncio import Redis

from backend.errors import TooManyRequests


async def hit(redis: Redis, key: str, *, limit: int, window_seconds: int) -> None:
    """Count one attempt against `key`; raise 429 with Retry-After once `limit` is passed."""
    full_key = f"ratelimit:{key}"
    async with redis.pipeline(transaction=True) as pipe:
        pipe.incr(full_key)
        pipe.expire(full_key, window_seconds, nx=True)
        pipe.ttl(full_key)
        count, _, ttl = await pipe.execute()
    if int(count) > limit:
        retry_after = int(ttl) if int(ttl) > 0 else window_seconds
        raise TooManyRequests(
            f"Too many attempts. Try again in {retry_after} seconds.", retry_after=retry_after
        )
