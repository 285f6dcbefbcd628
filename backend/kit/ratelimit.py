"""Fixed-window rate limits in Redis, shared by every API process."""

from __future__ import annotations

from redis.asyncio import Redis

from backend.errors import TooManyRequests


async def hit(redis: Redis, key: str, *, limit: int, window_seconds: int) -> None:
    """Count one attempt against `key`; raise 429 with Retry-After once `limit` is passed."""
    full_key = f"ratelimit:{key}"
    async with redis.pipeline(transaction=True) as pipe:
        # Start the window if it isn't running (SET NX EX works on Redis 6, which the embedded
        # server is; EXPIRE NX needs 7), then count; INCR keeps the window's expiry.
        pipe.set(full_key, 0, ex=window_seconds, nx=True)
        pipe.incr(full_key)
        pipe.ttl(full_key)
        _, count, ttl = await pipe.execute()
    if int(count) > limit:
        retry_after = int(ttl) if int(ttl) > 0 else window_seconds
        raise TooManyRequests(
            f"Too many attempts. Try again in {retry_after} seconds.", retry_after=retry_after
        )
