"""The global rate limiter per gateway account.

`RateLimiter` (limiter.py) over a `Backend` (base.py): `RedisBackend` shares one schedule per account
between every worker process on every host (Lua, one round trip per grant, Redis server time);
`LocalBackend` is the in-process default when no Redis is configured. schedule.py explains how a grant
is timed so that a gateway never sees more than `rate` messages in any one second; adaptive.py how a
throttling answer halves an account's effective rate and clean time wins it back.
"""

from __future__ import annotations

from functools import lru_cache

from campaigns.settings import get_settings
from workers.rate_limits.base import Backend, Grant, Policy
from workers.rate_limits.limiter import RateLimiter
from workers.rate_limits.local_backend import LocalBackend
from workers.rate_limits.redis_backend import RedisBackend


@lru_cache(maxsize=4)
def _shared(redis_url: str | None) -> RateLimiter:
    backend = RedisBackend.from_url(redis_url) if redis_url else LocalBackend()
    return RateLimiter(backend, safety=get_settings().rate_safety_seconds)


def get_limiter() -> RateLimiter:
    """This process's limiter for the current settings: one per Redis URL, or one local one, shared by
    every thread (the local backend only limits the threads that share it)."""
    return _shared(get_settings().redis_url)


__all__ = ["Backend", "Grant", "LocalBackend", "Policy", "RateLimiter", "RedisBackend", "get_limiter"]
