"""The rate limiter a worker talks to: one per process, over a backend shared by every process.

Keys are gateway account names; `rate` is the account's configured messages per second, passed on every
call (a changed blast.toml applies at the next call, without a restart). Every wait is in seconds.

`slots` books a task's slots (the account's next free ones, one interval apart, or together for
one batch request) in one round trip, even when they are due a little later; `wait` sleeps until one is
due. The backend computes the schedule, so a thread that wakes up late loses no throughput, and nobody
polls: a grant or a refusal costs one question, however many threads wait. So that little is booked
ahead at an old rate when the rate drops (a throttling answer, a new blast.toml), a process holds at most
`Policy.lookahead` seconds of the rate in bookings not yet due per key (at least two bookings); its other
threads queue in the process, and give up when their `max_wait` runs out there.

`wait` gives a `Deadline`: by when the slot's request must be written. A request later than that asks, just
before it is written, to extend its slot (`extend`, one more question), so a booking's margin need only cover
most requests' lateness, not the latest one's.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from workers.rate_limits.base import Backend, Policy, after_fork_in_child, check_rate
from workers.rate_limits.jitter import Jitter


def sleep_until(moment: float) -> None:
    """Sleep until `moment` (time.monotonic()) in shrinking steps: a long sleep overshoots more (on a
    busy host a 0.5 s sleep can end 10-20 ms late; the last short step ends within about a millisecond)."""
    while (left := moment - time.monotonic()) > 0:
        time.sleep(left * 0.8 if left > 0.01 else left)


@dataclass(frozen=True, slots=True)
class Slot:
    """One booked slot: when it is due, and how early it may really have been due (a remote backend's
    answer takes time to arrive). Both time.monotonic() seconds. `send_within`: seconds after `earliest` by
    which its request must have left (its booking's margin was sized to it), `margin`: the seconds its
    booking added to the window (`send_within` and the way to the gateway); `key`: whose slot it is, `seq`:
    its number (what a late request extends, `RateLimiter.extend`). `on_due`: called by `wait` once the slot
    is due (the first slot of a booking lets this process's next booking go then)."""

    due_at: float
    earliest: float
    send_within: float = 0.0
    key: str = ""
    seq: int = 0
    margin: float = 0.0
    on_due: Callable[[], None] | None = field(default=None, compare=False, repr=False)


class Deadline:
    """By when (time.monotonic(), `at`) the request of `slot` must be written. Later, it may still go once
    the limiter has extended the slot (one question to the backend, `RateLimiter.extend`); `at` then moves."""

    __slots__ = ("at", "limiter", "slot")

    def __init__(self, limiter: RateLimiter, slot: Slot, at: float) -> None:
        self.limiter, self.slot, self.at = limiter, slot, at

    def allows(self, now: float) -> bool:
        """Whether a request written at `now` (time.monotonic()) keeps to its slot: at once when by `at`;
        otherwise whether the slot could be extended (False: hand the message back unsent)."""
        while now > self.at:
            extended = self.limiter.extend(self.slot)
            if extended is None:
                return False
            self.at, now = extended, time.monotonic()
        return True

    def __repr__(self) -> str:
        return f"Deadline(at={self.at!r})"


class RateLimiter:
    """At most `rate` messages per second per key, in any sliding second, across every process, counted
    where they arrive, for every message that leaves within its slot's `send_within` (or, later, within what
    extending its slot allowed) and whose way to the gateway varies by no more than the rest of its booking's
    margin (jitter.py measures both).

    `safety`: the most seconds a booking adds to the one-second window (schedule.py); other keyword options
    are the fields of `Policy`.
    """

    def __init__(self, backend: Backend, *, safety: float = 0.02, **policy) -> None:
        self.backend = backend
        self.policy = Policy(safety=safety, **policy)
        self.jitter = Jitter(self.policy)
        self._bookers: dict[tuple[str, int], threading.BoundedSemaphore] = {}
        self._bookers_lock = threading.Lock()
        self._booked_until: dict[str, float] = {}  # per key, the latest slot this process booked (monotonic)
        after_fork_in_child(self._after_fork)

    def reserve(self, key: str, *, rate: float, now: float | None = None, count: int = 1) -> float:
        """Take a slot if one is free now and return 0.0; otherwise take nothing and return the seconds to
        wait (`inf` when `count` messages at once can never fit the rate). `count` slots are taken
        together, for one request carrying `count` messages. `now` is the backend's clock, for tests."""
        grant = self.backend.book(key, rate=check_rate(rate), policy=self.policy, count=count, now=now)
        return 0.0 if grant.taken else max(grant.wait, 1e-6)

    def acquire(self, key: str, *, rate: float, max_wait: float, count: int = 1) -> bool:
        """Wait up to `max_wait` seconds for a slot (`count` slots together); True if taken (see
        `acquire_slot`, which also says by when the request must leave)."""
        return self.acquire_slot(key, rate=rate, max_wait=max_wait, count=count) is not None

    def acquire_slot(self, key: str, *, rate: float, max_wait: float, count: int = 1) -> Deadline | None:
        """Wait up to `max_wait` seconds for a slot (`count` slots together, for one request carrying
        `count` messages). Returns by when the request must be written (see `wait`), or None having taken
        nothing (or having given the slot up, too late)."""
        with self.slots(key, rate=rate, max_wait=max_wait, count=count, together=True) as booked:
            return self.wait(booked[0]) if booked else None

    @contextmanager
    def slots(self, key: str, *, rate: float, max_wait: float, count: int,
              together: bool = False) -> Iterator[list[Slot]]:
        """Book `count` slots one interval apart in one question to the backend (`together`: all due at
        once, one slot standing for a request carrying `count` messages), the first due within `max_wait`
        seconds. Gives the slots booked: all, fewer (the rest did not fit in time) or none.

        No question at all when this process already booked a slot due later than `max_wait` (the next
        free one cannot be earlier). Spaced slots that cannot all fit in one window of the effective rate
        (a throttled account) are booked in smaller pieces, one question each. Until its first slot is due
        (waited for with `wait`) or the block ends, the booking counts against this process's
        `Policy.lookahead`, which bounds what it holds booked ahead; its other threads queue for it. A booking
        whose slots are coming due holds nothing back: held to its end, the bookings of P saturated processes
        would let through only 2P/(2P+1) of the rate.
        """
        rate = check_rate(rate)
        deadline = time.monotonic() + max_wait
        if self._booked_until.get(key, -math.inf) > deadline:
            yield []
            return
        booker = self._booker(key, max(2, math.floor(rate * self.policy.lookahead / count)))
        if not booker.acquire(timeout=max(0.0, max_wait)):
            yield []
            return
        let_go = _once(booker.release)
        try:
            booked = self._book(key, rate, count, together, deadline, max_wait)
            if booked:
                booked[0] = replace(booked[0], on_due=let_go)
            yield booked
        finally:
            let_go()

    def _book(self, key: str, rate: float, count: int, together: bool, deadline: float,
              max_wait: float) -> list[Slot]:
        booked: list[Slot] = []
        piece = count
        while len(booked) < count:
            if self._booked_until.get(key, -math.inf) > deadline:  # booked further while this one queued
                break
            piece = min(piece, count - len(booked))
            allowance = self.jitter.allowance(key)
            grant = self.backend.book(key, rate=rate, policy=self.policy, count=piece, spaced=not together,
                                      horizon=max(0.0, deadline - time.monotonic()), margin=allowance.margin)
            answered = time.monotonic()
            if not grant.taken:
                if together or piece == 1 or not math.isinf(grant.due[-1]):
                    break
                piece = max(1, piece // 2)
                continue
            dues = grant.due[:1] if together else grant.due
            booked.extend(Slot(answered + due, answered + due - grant.uncertainty, allowance.send_within, key,
                               grant.seq + number, allowance.margin)
                          for number, due in enumerate(dues))
            self._booked_until[key] = max(booked[-1].due_at, self._booked_until.get(key, -math.inf))
            if together:
                break
            deadline = booked[-1].due_at + max_wait
        return booked

    def wait(self, slot: Slot) -> Deadline | None:
        """Sleep until `slot` is due. Returns by when its request must be written: `slot.send_within` after
        the slot, or later once the slot is extended (`extend`). None: this thread woke up so late that the
        slot could no longer be extended (a starved process; sent that late its message could share a second
        at the gateway with the rate's worth of messages after it), so the slot is given up (and its
        lateness noted)."""
        sleep_until(slot.due_at)
        if slot.on_due is not None:
            slot.on_due()
        deadline, now = Deadline(self, slot, slot.earliest + slot.send_within), time.monotonic()
        if not deadline.allows(now):
            self.left(slot, now)
            return None
        return deadline

    def extend(self, slot: Slot) -> float | None:
        """`slot`'s request is later than its booking allowed: ask the backend to count it against the rate
        from now until it is written (`Policy.min_send_within`) and on its way (the rest of its margin after
        `send_within`). Returns the new time (time.monotonic()) by which it must be written, or None: it is
        later than `Policy.extend_within` after its slot, or a slot a window later was already checked against
        it (schedule.py). Then it must not be sent."""
        asked, policy = time.monotonic(), self.policy
        if asked - slot.earliest > policy.extend_within:
            return None
        way = max(policy.transit, slot.margin - slot.send_within)
        if not self.backend.extend(slot.key, seq=slot.seq, within=policy.min_send_within + way, policy=policy):
            return None
        return asked + policy.min_send_within

    def left(self, slot: Slot, at: float) -> None:
        """The request of `slot` was written at `at` (time.monotonic()), or would have been when it was
        handed back: the lateness that sizes the next bookings' margins."""
        self.jitter.left(slot.key, at - slot.earliest)

    def answered(self, key: str, seconds: float) -> None:
        """A call of `key` was answered `seconds` after its request was written: how much the way to the
        gateway varies, for the next bookings' margins."""
        self.jitter.answered(key, seconds)

    def throttled(self, key: str, *, rate: float, now: float | None = None) -> float:
        """The gateway answered "too many": halve the key's effective rate (for every process).
        Returns the new effective rate (messages/s)."""
        return check_rate(rate) * self.backend.throttle(key, policy=self.policy, now=now)

    def effective_rate(self, key: str, *, rate: float, now: float | None = None) -> float:
        """The rate (messages/s) the key is held to now: the configured `rate` after throttling."""
        return check_rate(rate) * self.backend.factor(key, policy=self.policy, now=now)

    def _booker(self, key: str, size: int) -> threading.BoundedSemaphore:
        """The semaphore of the threads that may hold a booking of `key`, `size` at a time (the size
        follows the configured rate and the batch size, so each size has its own)."""
        booker = self._bookers.get((key, size))
        if booker is None:
            with self._bookers_lock:
                booker = self._bookers.setdefault((key, size), threading.BoundedSemaphore(size))
        return booker

    def _after_fork(self) -> None:
        self._bookers = {}  # threads of the parent may have held them at the fork
        self._bookers_lock = threading.Lock()


def _once(action: Callable[[], None]) -> Callable[[], None]:
    """`action`, run by the first of any number of calls (from any thread) and never again."""
    done = threading.Lock()

    def run() -> None:
        if done.acquire(blocking=False):
            action()

    return run
