"""How late this process's requests leave after their slots, and how much their way to the gateway varies,
measured per key where it happens: what the margin of the next booking must cover (schedule.py).

Two measurements, both in seconds, each kept for the last `kept` calls of a key:

- lateness: from a slot's earliest due time to the moment the request's bytes were handed to the kernel
  (a thread's wake-up, the interpreter's lock, building the request), reported by the sender;
- answer times: the spread between the slowest and the quickest is an upper bound for how much the one-way
  trip to the gateway varies (it also holds the gateway's own variation: too much, never too little).

A booking then allows `send_within`, the lateness of all but the latest tenth of the requests (`COVERED`)
with headroom, and adds to its window a `margin` of that plus the transit allowance (the answer times'
spread with headroom, at least `Policy.transit`, which also covers the moment between the last check and the
write). Until `MIN_SAMPLES` of both are in, a booking allows `Policy.send_within` and adds `Policy.safety`,
the most it ever adds; when the measurements ask for more than that, it adds `Policy.safety` and allows what
the transit leaves of it.
A request later than its `send_within` extends its slot before it is written (schedule.py), so a margin
sized to most requests, not the latest, costs one question to the backend for the few later ones instead of
the margin of the latest for every slot.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from workers.rate_limits.base import Policy

MIN_SAMPLES = 32
COVERED = 0.9  # the share of the lateness samples a margin covers; later requests extend their slots
HEADROOM = 1.25  # times that lateness, and the answer times' spread, seen lately
EXTRA = 0.0005  # seconds on top, for what the next call adds to the largest seen so far


@dataclass(frozen=True, slots=True)
class Allowance:
    """What one booking allows: a request must leave within `send_within` seconds of its slot, and the slot
    adds `margin` seconds (send_within and the way to the gateway) to its one-second window."""

    send_within: float
    margin: float


class Jitter:
    """Per key, this process's recent lateness and answer times; thread-safe."""

    def __init__(self, policy: Policy, *, kept: int = 256) -> None:
        self.policy = policy
        self.kept = kept
        self._lateness: dict[str, deque[float]] = {}
        self._answers: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def left(self, key: str, lateness: float) -> None:
        """A request of `key` left `lateness` seconds after its slot's earliest due time (or would have, when
        it was handed back for being too late)."""
        with self._lock:
            self._lateness.setdefault(key, deque(maxlen=self.kept)).append(max(0.0, lateness))

    def answered(self, key: str, seconds: float) -> None:
        """A call of `key` was answered `seconds` after its request left."""
        with self._lock:
            self._answers.setdefault(key, deque(maxlen=self.kept)).append(seconds)

    def allowance(self, key: str) -> Allowance:
        """The send bound and margin of `key`'s next booking."""
        policy = self.policy
        with self._lock:
            lateness, answers = self._lateness.get(key), self._answers.get(key)
            if not lateness or not answers or len(lateness) < MIN_SAMPLES or len(answers) < MIN_SAMPLES:
                return Allowance(policy.send_within, policy.safety)
            covered, spread = sorted(lateness)[int(COVERED * (len(lateness) - 1))], max(answers) - min(answers)
        send_within = max(policy.min_send_within, covered * HEADROOM + EXTRA)
        transit = max(policy.transit, spread * HEADROOM + EXTRA)
        if send_within + transit > policy.safety:  # no room for both: the most margin, shared
            return Allowance(max(policy.min_send_within, policy.safety - transit), policy.safety)
        return Allowance(send_within, send_within + transit)

    def measured(self, key: str) -> tuple[int, int]:
        """How many lateness and answer-time samples of `key` are kept."""
        with self._lock:
            return len(self._lateness.get(key, ())), len(self._answers.get(key, ()))
