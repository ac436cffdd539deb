"""Spacing per recipient, across every campaign of the installation: no number gets two messages within
`pair_interval` seconds (WhatsApp's own pair rate: 6 s by default), and, where `daily_cap` is set, no more than
that many in any 24 hours (BLAST_PAIR_INTERVAL_SECONDS, BLAST_DAILY_CAP).

A send task asks before it books any rate slot (`admit`): a message whose recipient may not have it yet goes
back to `pending`, due when it may (workers.sending). It never fails, and it holds no slot of the account's
rate, so other recipients are not slowed. An admitted message reserves its recipient from now until
`hold` seconds ahead (the longest a claimed message may wait for its slot), so a second message is never let
through while the first has not left (the second is asked about again an interval later); once the task knows
when each message was answered, `settle` moves the reservation to that moment (or frees it for a message that
was not sent).

Two backends, as for the rate limiter: Redis (one sorted set of send times per recipient, `blast:pair:<phone>`,
shared by every worker; one pipelined round trip per task each way, and expiring when it stops mattering) and
an in-process one for the embedded default. Times in seconds: Redis's clock for Redis, time.time() locally.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from functools import lru_cache

import redis

DAY_SECONDS = 86_400.0
PREFIX = "blast:pair:"

# KEYS[1] the recipient's set (member: a message id, score: its send time); ARGV: interval, daily cap (0: none),
# hold, the message id. Returns "0" when admitted (and reserved until now + hold), else the seconds to wait.
ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local interval, cap, hold = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 86400)
local wait = 0
local last = redis.call('ZREVRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if last[2] then
  local at = tonumber(last[2])
  -- a reservation (a message not yet left): asked again an interval on, by when it has been settled
  if at > now then wait = interval else wait = at + interval - now end
end
if cap > 0 and redis.call('ZCARD', KEYS[1]) >= cap then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  wait = math.max(wait, tonumber(first[2]) + 86400 - now)
end
if wait > 0 then return tostring(wait) end
redis.call('ZADD', KEYS[1], now + hold, ARGV[4])
redis.call('EXPIRE', KEYS[1], math.ceil((cap > 0 and 86400 or interval) + hold) + 1)
return '0'
"""
# KEYS[1] the recipient's set; ARGV: the message id, when it was sent (UNIX seconds; "" when it was not).
SETTLE = """
if ARGV[2] == '' then return redis.call('ZREM', KEYS[1], ARGV[1]) end
return redis.call('ZADD', KEYS[1], 'XX', ARGV[2], ARGV[1])
"""


class Spacing(ABC):
    """The spacing of recipients' messages; thread-safe."""

    @abstractmethod
    def admit(self, messages: Sequence[tuple[int, str]], *, interval: float, daily_cap: int | None,
              hold: float) -> list[float]:
        """For each (message id, phone): 0.0 when it may be sent now (reserved for `hold` seconds), else the
        seconds its recipient must wait. A second message to the same phone in one call waits for the first."""

    @abstractmethod
    def settle(self, messages: Sequence[tuple[int, str, float | None]]) -> None:
        """Each admitted (message id, phone, sent at in UNIX seconds, or None when it was not sent)."""


class LocalSpacing(Spacing):
    def __init__(self, *, clock=time.time) -> None:
        self.clock = clock
        self._sent: dict[str, dict[int, float]] = {}
        self._lock = threading.Lock()

    def admit(self, messages, *, interval, daily_cap, hold):
        waits = []
        with self._lock:
            now = self.clock()
            for message_id, phone in messages:
                times = {member: at for member, at in self._sent.get(phone, {}).items() if at > now - DAY_SECONDS}
                last = max(times.values()) if times else None
                # a reservation (a message not yet left): asked again an interval on, by when it has been settled
                wait = 0.0 if last is None else interval if last > now else last + interval - now
                if daily_cap and len(times) >= daily_cap:
                    wait = max(wait, min(times.values()) + DAY_SECONDS - now)
                if wait <= 0:
                    times[message_id] = now + hold
                    wait = 0.0
                self._sent[phone] = times
                waits.append(wait)
        return waits

    def settle(self, messages):
        with self._lock:
            for message_id, phone, sent_at in messages:
                times = self._sent.get(phone, {})
                if message_id in times:
                    if sent_at is None:
                        del times[message_id]
                    else:
                        times[message_id] = sent_at


class RedisSpacing(Spacing):
    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._admit = client.register_script(ADMIT)
        self._settle = client.register_script(SETTLE)

    def admit(self, messages, *, interval, daily_cap, hold):
        pipe = self.client.pipeline(transaction=False)
        for message_id, phone in messages:
            self._admit(keys=[PREFIX + phone], args=[interval, daily_cap or 0, hold, message_id], client=pipe)
        return [float(wait) for wait in pipe.execute()]

    def settle(self, messages):
        pipe = self.client.pipeline(transaction=False)
        for message_id, phone, sent_at in messages:
            self._settle(keys=[PREFIX + phone], args=[message_id, "" if sent_at is None else repr(sent_at)],
                         client=pipe)
        pipe.execute()


@lru_cache(maxsize=4)
def _shared(redis_url: str | None) -> Spacing:
    if redis_url:
        return RedisSpacing(redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5))
    return LocalSpacing()


def get_spacing() -> Spacing:
    """This process's spacing for the current settings: shared through Redis when BLAST_REDIS_URL is set."""
    from campaigns.settings import get_settings

    return _shared(get_settings().redis_url)
