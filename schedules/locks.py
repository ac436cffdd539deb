"""Locks that keep a second beat harmless.

- `BeatLease`: one beat sends the schedule at a time; another one started by mistake stands by.
- `job_lock`: each periodic job runs under a named lock, so two runs of one job never overlap.

With BLAST_REDIS_URL: redis-py's `Lock` (SET NX PX; released and extended only by its holder's token).
Without: filelock's exclusive, non-blocking lock on a file under BLAST_HOME (one host, the embedded default).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis
from filelock import FileLock, Timeout
from redis.exceptions import LockError

from campaigns.settings import get_settings

KEY_PREFIX = "blast:beat-lock:"


def _redis_lock(client: redis.Redis, name: str, ttl_seconds: float):
    # thread_local=False: the beat may renew its lease from another thread than the one that took it
    return client.lock(KEY_PREFIX + name, timeout=ttl_seconds, blocking=False, thread_local=False)


def _file_lock(name: str) -> FileLock:
    folder = get_settings().home / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    return FileLock(folder / f"{name}.lock", mode=0o600, thread_local=False)


@contextmanager
def job_lock(name: str, *, ttl_seconds: float) -> Iterator[bool]:
    """Yields True when this caller holds the lock for `name` (for at most `ttl_seconds`), else False."""
    redis_url = get_settings().redis_url
    if redis_url:
        with redis.Redis.from_url(redis_url) as client:
            lock = _redis_lock(client, name, ttl_seconds)
            held = lock.acquire()
            try:
                yield held
            finally:
                if held:
                    try:
                        lock.release()
                    except LockError:  # it expired meanwhile (and may be someone else's now)
                        pass
        return
    lock = _file_lock(name)
    try:
        lock.acquire(blocking=False)
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


class BeatLease:
    """A lock one process holds for as long as it keeps renewing it: `hold()` takes or renews it.

    Redis: the key expires `ttl_seconds` after the last renewal, so a holder killed with SIGKILL frees it
    within `ttl_seconds`. File lock: held until `release()` or the process's exit, whatever the cause.
    """

    def __init__(self, name: str, *, ttl_seconds: float):
        self.name = name
        self.ttl_seconds = ttl_seconds
        self._client: redis.Redis | None = None
        self._redis_lock = None
        self._held_in_redis = False
        self._file: FileLock | None = None

    def hold(self) -> bool:
        """True when this process holds the lease now (taken or renewed for another `ttl_seconds`)."""
        redis_url = get_settings().redis_url
        if redis_url:
            return self._hold_redis(redis_url)
        return self._hold_file()

    def release(self) -> None:
        if self._client is not None:
            try:
                if self._held_in_redis:
                    self._redis_lock.release()
            except LockError:  # expired and perhaps taken by another beat: not ours to delete
                pass
            finally:
                self._client.close()
                self._client = self._redis_lock = None
                self._held_in_redis = False
        if self._file is not None:
            self._file.release(force=True)
            self._file = None

    def _hold_redis(self, url: str) -> bool:
        if self._client is None:
            self._client = redis.Redis.from_url(url, socket_timeout=self.ttl_seconds / 3)
            self._redis_lock = _redis_lock(self._client, self.name, self.ttl_seconds)
        if self._held_in_redis:
            try:
                self._redis_lock.reacquire()  # our token still there: another ttl_seconds
                return True
            except LockError:  # it expired (a stalled beat) and may be another's now
                self._held_in_redis = False
        self._held_in_redis = bool(self._redis_lock.acquire())
        return self._held_in_redis

    def _hold_file(self) -> bool:
        if self._file is not None:
            return True
        lock = _file_lock(self.name)
        try:
            lock.acquire(blocking=False)
        except Timeout:
            return False
        self._file = lock
        return True
