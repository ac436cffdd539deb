"""One firing per period, however many beats run: each periodic job runs under a named lock.

With BLAST_REDIS_URL: Redis `SET key token NX PX ttl`, released only by its holder (compare-and-delete).
Without: an exclusive, non-blocking file lock under BLAST_HOME (one host, the embedded default).
"""

from __future__ import annotations

import fcntl
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from campaigns.settings import get_settings

KEY_PREFIX = "blast:beat-lock:"
# Deletes the key only when it still holds our token (a lock that expired and was taken is not ours).
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


@contextmanager
def job_lock(name: str, *, ttl_seconds: float) -> Iterator[bool]:
    """Yields True when this caller holds the lock for `name` (for at most `ttl_seconds`), else False."""
    redis_url = get_settings().redis_url
    if redis_url:
        with _redis_lock(redis_url, name, ttl_seconds) as held:
            yield held
    else:
        with _file_lock(name) as held:
            yield held


@contextmanager
def _redis_lock(url: str, name: str, ttl_seconds: float) -> Iterator[bool]:
    import redis

    client = redis.Redis.from_url(url)
    token = uuid.uuid4().hex
    key = KEY_PREFIX + name
    held = bool(client.set(key, token, nx=True, px=max(1, int(ttl_seconds * 1000))))
    try:
        yield held
    finally:
        if held:
            client.eval(_RELEASE, 1, key, token)
        client.close()


@contextmanager
def _file_lock(name: str) -> Iterator[bool]:
    folder = get_settings().home / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(folder / f"{name}.lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)
