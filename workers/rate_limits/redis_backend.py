"""The Redis backend: one state per account shared by every worker process on every host.

Each call is one EVALSHA round trip (redis-py's `Script` sends the script itself only the first time a
server does not know it). Keys are `blast:rate:{<key>}` (a hash) and `blast:rate:{<key>}:log` (a list);
the braces keep both in one Redis Cluster slot. Both expire `idle_grace` seconds after they stop
mattering. If Redis cannot be reached the call raises: nothing is sent without a token.

Due times come back relative to the end of the call, corrected by the server's clock as this host sees
it (clock.py), so that a slow answer does not delay the sending of a slot booked ahead.
"""

from __future__ import annotations

import time

import redis
from redis.commands.core import Script

from workers.rate_limits import redis_scripts
from workers.rate_limits.base import Backend, Grant, Policy
from workers.rate_limits.clock import ServerClock

PREFIX = "blast:rate:"


def _number(value: float) -> str:
    return repr(float(value))


def _clock(now: float | None) -> str:
    return "" if now is None else _number(now)  # "": the server's TIME


class RedisBackend(Backend):
    """State in Redis, reached through `client` (a `redis.Redis`, thread-safe, fork-aware)."""

    def __init__(self, client: redis.Redis, *, prefix: str = PREFIX, idle_grace: float = 1.0) -> None:
        self.client = client
        self.prefix = prefix
        self.idle_grace = idle_grace
        self._scripts: dict[Policy, dict[str, Script]] = {}
        self.clock = ServerClock()

    @classmethod
    def from_url(cls, url: str, **options) -> RedisBackend:
        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5,
                                      health_check_interval=30)
        return cls(client, **options)

    def keys(self, key: str) -> list[str]:
        """The Redis keys that hold `key`'s state: the hash, then the log."""
        return [f"{self.prefix}{{{key}}}", f"{self.prefix}{{{key}}}:log"]

    def book(self, key, *, rate, policy, count=1, spaced=False, horizon=0.0, margin=None, now=None) -> Grant:
        args = [_clock(now), _number(rate), str(int(count)), "1" if spaced else "0", _number(horizon),
                _number(policy.safety if margin is None else margin)]
        script = self._script(policy, "book")
        sent = time.time()
        taken, factor, server_now, seq, *due = script(keys=self.keys(key), args=args)
        received = time.time()
        # due offsets from the server's now -> from the end of this call, on this host
        lag, uncertain = self.clock.lag(sent, received, float(server_now)) if now is None else (0.0, 0.0)
        return Grant(taken == b"1", tuple(float(value) - lag for value in due), float(factor), uncertain,
                     int(float(seq)))

    def extend(self, key, *, seq, within, policy, now=None) -> bool:
        args = [_clock(now), str(int(seq)), _number(within)]
        return self._script(policy, "extend")(keys=self.keys(key), args=args) == 1

    def throttle(self, key, *, policy, now=None) -> float:
        return float(self._script(policy, "throttle")(keys=self.keys(key), args=[_clock(now)]))

    def factor(self, key, *, policy, now=None) -> float:
        return float(self._script(policy, "factor")(keys=self.keys(key), args=[_clock(now)]))

    def holds(self, key: str) -> bool:
        return bool(self.client.exists(*self.keys(key)))

    def forget(self, key: str) -> None:
        self.client.delete(*self.keys(key))

    def _script(self, policy: Policy, name: str) -> Script:
        if policy not in self._scripts:
            texts = redis_scripts.scripts(policy, self.idle_grace)
            for text in texts.values():  # loaded now, so that the first booking is one quick round trip
                self.client.script_load(text)
            self._scripts[policy] = {label: self.client.register_script(text)
                                     for label, text in texts.items()}
            self._calibrate()
        return self._scripts[policy][name]

    def _calibrate(self, samples: int = 3) -> None:
        """Learn the server's clock before the first booking needs it (one round trip a sample)."""
        for _ in range(samples):
            sent = time.time()
            seconds, microseconds = self.client.time()
            self.clock.lag(sent, time.time(), seconds + microseconds / 1e6)
