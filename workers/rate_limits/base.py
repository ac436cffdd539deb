"""The backend interface of the rate limiter, and the policy every backend applies.

A backend keeps, per key (one gateway account), the state of the schedule and of the adaptive rate, and
answers one question atomically: "book `count` slots for this rate, the first due within a horizon". The
configured rate comes with every call, never from the stored state, so a changed rate applies at once.

Units: rates in messages per second, times and durations in seconds (floats).
"""

from __future__ import annotations

import math
import os
import weakref
from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """How the limiter turns a rate into a schedule and adapts it. All durations in seconds."""

    # The most a booking adds to the one-second window (seconds): a slot counts against the rate until
    # `1 + margin` after it, so a message that leaves up to `margin - transit` after its slot and takes up to
    # `transit` longer than another on its way cannot put `rate + 1` arrivals into one second at the gateway.
    # A booking's margin is this until its process has measured how late it really sends, then that
    # (`RateLimiter.send_within`), never more. Costs `margin / (1 + margin)` of the throughput (0.02 -> 2 %).
    safety: float = 0.02
    # How much longer one request may take than another from leaving the worker to arriving at the
    # gateway (seconds): the part of a margin that is not the worker's lateness.
    transit: float = 0.005
    # How late after its slot a request may leave (checked just before it is written; later, it is handed
    # back unsent) until the process has measured its own lateness (seconds); then what it measured, with
    # headroom, but never less than `min_send_within`.
    send_within: float = 0.015
    min_send_within: float = 0.002
    # How late after its slot a request may still go by extending its slot (schedule.py), seconds; later, it
    # is handed back: an extension holds back the slot a second after it (and the ones after that) as long.
    extend_within: float = 0.05
    # Slots the GCRA may grant back to back: 2 lets a caller that asks a little late (polling `reserve`)
    # lose nothing; the log still holds every window to the rate.
    burst: int = 2
    # Seconds of the configured rate one process may hold booked for one key at once (`acquire`; at
    # least two slots); its other threads queue in the process. All processes together hold at most
    # processes x this much ahead: what was booked at the old rate when the rate drops.
    lookahead: float = 0.05
    # The send path's budget for calls made one after another from one thread (seconds): a gateway that
    # answers within it is called inline, as many calls a booking as fit in it.
    late: float = 0.01
    # Adaptive rate: a throttling answer halves the effective rate (not below `min_factor` x the
    # configured rate). One within `throttle_cooldown` of a halving is about a message sent before it,
    # so it halves nothing again. Each `recovery_period` without a throttling answer adds
    # `recovery_step` x the configured rate back, up to the configured rate.
    throttle_cooldown: float = 1.0
    min_factor: float = 1 / 64
    recovery_step: float = 0.1
    recovery_period: float = 1.0

    def __post_init__(self) -> None:
        if not (self.transit >= 0 and 0 <= self.min_send_within <= self.send_within and self.safety < 1
                and self.extend_within >= 0
                and self.burst >= 1 and self.lookahead >= 0 and self.late >= 0):
            raise ValueError("invalid rate limit policy")
        if not (0 < self.min_factor <= 1 and self.recovery_step > 0 and self.recovery_period > 0):
            raise ValueError("invalid adaptive rate policy")


@dataclass(frozen=True, slots=True)
class Shape:
    """The schedule for one effective rate and margin: at most `slots` grants in any `window` seconds, one
    every `interval` seconds on average. `span`: the window without the margin (1 s, or 1/rate below 1/s);
    each logged grant keeps its own margin, so a slot is checked against `span` after the older grant's
    due time plus that grant's margin."""

    slots: int
    window: float
    interval: float
    span: float


def shape(rate: float, margin: float) -> Shape:
    """The schedule of an effective `rate` (messages/s) with `margin` seconds added to its window. A count
    of messages is whole, so at most floor(rate) fit in a second (20.5/s allows 20); below 1/s, one
    message per 1/rate seconds."""
    if rate >= 1:
        slots = math.floor(rate + 1e-9)  # 72.00000000001 and 71.99999999999 are both 72
        span = 1.0
    else:
        slots, span = 1, 1.0 / rate
    window = span + margin
    return Shape(slots, window, window / slots, span)


# The log keeps one entry per slot of a window: this bounds its length (accounts allow up to 10,000).
MAX_RATE = 100_000.0


def check_rate(rate: float) -> float:
    """`rate` as a float, or ValueError: a positive number of messages per second up to MAX_RATE."""
    if not (isinstance(rate, int | float) and 0 < rate <= MAX_RATE):
        raise ValueError(f"rate must be a number of messages per second in (0, {MAX_RATE:g}], not {rate!r}")
    return float(rate)


@dataclass(frozen=True, slots=True)
class Grant:
    """A backend's answer to a booking.

    `due`: seconds from the end of the call until each slot may be used (when nothing was taken, when
    they would have been due; `inf` when the count can never fit the rate). `factor`: the effective
    fraction of the configured rate. `uncertainty`: how many seconds earlier than `due` the slots may
    really have been due (a remote backend's answer takes time to arrive).
    """

    taken: bool
    due: tuple[float, ...]
    factor: float
    uncertainty: float = 0.0
    # The number of the first slot taken (the others follow it, one each): what `Backend.extend` names.
    seq: int = 0

    @property
    def wait(self) -> float:
        """Seconds until the last slot is due (0.0 when free now)."""
        return max(0.0, self.due[-1])


class Backend(ABC):
    """Stores rate limit state per key. Implementations are thread-safe; each call is atomic."""

    @abstractmethod
    def book(self, key: str, *, rate: float, policy: Policy, count: int = 1, spaced: bool = False,
             horizon: float = 0.0, margin: float | None = None, now: float | None = None) -> Grant:
        """Take `count` slots of `rate` (configured messages/s) if the first is due within `horizon`
        seconds (0: free now); else take nothing. `margin`: seconds these slots add to the one-second
        window, how late after its slot a message may arrive (None: `policy.safety`, the most).

        `spaced`: the slots are due one interval apart (sent one by one); otherwise all at the same
        time (one request carrying `count` messages). `now` (seconds, the backend's clock) is for tests.
        """

    @abstractmethod
    def extend(self, key: str, *, seq: int, within: float, policy: Policy, now: float | None = None) -> bool:
        """The request of slot number `seq` (a `Grant.seq`, or a number after it for a later slot of the
        grant) leaves later than its margin allowed: count it, and every slot granted after it, against the
        rate until `within` seconds from now instead. True when no slot was checked against it yet
        (schedule.py); False, changing nothing, when one was (or it is no longer known): then it must not be
        sent. `now` (seconds, the backend's clock) is for tests."""

    @abstractmethod
    def throttle(self, key: str, *, policy: Policy, now: float | None = None) -> float:
        """Record a throttling answer; returns the new effective fraction of the configured rate."""

    @abstractmethod
    def factor(self, key: str, *, policy: Policy, now: float | None = None) -> float:
        """The effective fraction (0..1] of the configured rate now."""

    @abstractmethod
    def holds(self, key: str) -> bool:
        """Whether any state is kept for `key` (idle keys expire)."""

    @abstractmethod
    def forget(self, key: str) -> None:
        """Drop every state of `key`."""


def after_fork_in_child(method) -> None:
    """Call the bound `method` in every forked child, to renew its object's locks (a thread of the
    parent may have held one at the fork). Held weakly: registering keeps nothing alive."""
    reference = weakref.WeakMethod(method)

    def renew() -> None:
        if (bound := reference()) is not None:
            bound()

    os.register_at_fork(after_in_child=renew)
