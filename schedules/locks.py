"""Locks that keep a second beat harmless.

- `BeatLease`: one beat sends the schedule at a time; another one started by mistake stands by.
- `job_lock`: each periodic job runs under a named lock, so two runs of one job never overlap.

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
# Takes the key when free, extends it when it holds our token; 1 when we hold it afterwards, else 0.
_HOLD = """
local holder = redis.call('get', KEYS[1])
if holder == ARGV[1] then redis.call('pexpire', KEYS[1], ARGV[2]) return 1 end
if not holder then redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0
"""


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


class BeatLease:
    """A lock one process holds for as long as it keeps renewing it: `hold()` takes or renews it.

    Redis: the key expires `ttl_seconds` after the last renewal, so a holder killed with SIGKILL frees it
    within `ttl_seconds`. File lock: held until `release()` or the process's exit, whatever the cause.
    """

    def __init__(self, name: str, *, ttl_seconds: float):
        self.name = name
        self.ttl_seconds = ttl_seconds
        self.token = uuid.uuid4().hex
        self._redis = None
        self._descriptor: int | None = None

    def hold(self) -> bool:
        """True when this process holds the lease now (taken or renewed for another `ttl_seconds`)."""
        redis_url = get_settings().redis_url
        if redis_url:
            return self._hold_redis(redis_url)
        return self._hold_file()

    def release(self) -> None:
        if self._redis is not None:
            try:
                self._redis.eval(_RELEASE, 1, KEY_PREFIX + self.name, self.token)
            finally:
                self._redis.close()
                self._redis = None
        if self._descriptor is not None:
            os.close(self._descriptor)  # closing the descriptor drops its flock
            self._descriptor = None

    def _hold_redis(self, url: str) -> bool:
        import redis

        if self._redis is None:
            self._redis = redis.Redis.from_url(url, socket_timeout=self.ttl_seconds / 3)
        ttl_ms = max(1, int(self.ttl_seconds * 1000))
        return bool(self._redis.eval(_HOLD, 1, KEY_PREFIX + self.name, self.token, ttl_ms))

    def _hold_file(self) -> bool:
        if self._descriptor is not None:
            return True
        folder = get_settings().home / "locks"
        folder.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(folder / f"{self.name}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            return False
        self._descriptor = descriptor
        return True
