"""The schedule: when may the next message of an account go? Two rules, applied together.

1. A sliding-window log (the guarantee). Never more than `rate` messages in any one second, measured
   where they arrive, which is after a grant by a delay that jitters (thread wake-up, network). With a
   plain GCRA of burst 1 and interval 1/rate, the grants n and n + rate are exactly one second apart, so
   if message n arrives 1 ms late and message n + rate on time, the gateway sees rate + 1 messages in
   one second. So the log keeps the due times of the last `slots` grants, and a new slot must be
   `window = 1 + safety` seconds after the grant `slots` places before it: any `slots + 1` grants span
   at least 1 + safety seconds, and arrival jitter up to `safety` (20 ms by default) keeps every
   one-second window at the gateway within `rate`. The price is safety / (1 + safety) of the rate (2 %).
   The log is an exact guard however the rate moves: an entry leaves it only when the grant that pushed
   it out was at least `window` later, so a lowered or halved rate holds at once, with no burst.
2. A GCRA (the spacing). On its own the log would let `slots` messages go at once and then pause; the
   GCRA's theoretical arrival time `tat` spaces grants one `interval = window / slots` apart (`burst`
   may be granted back to back). Both rules allow the same long-run rate, slots / window.

A booking may be due in the future (up to a horizon): the backend computes the schedule, so a caller
that wakes up late loses nothing, and one question per message is enough. Due times never go backwards
(the log stays sorted). A batch of `count` messages sent in one request takes `count` slots due
together; `spaced` slots are due one interval apart.

The margin only helps if the jitter stays within it, so the limiter also keeps the jitter down: a
worker sends at the slot's time on the server's clock, not at "due offset after the answer arrived"
(clock.py), sleeps in shrinking steps (limiter.sleep_until), and gives a slot up rather than send more
than `Policy.late` after it (a starved process). Measured on a busy 2-core host, arrivals stay within
about 10 ms of their slots; a plain one-second window (safety 0) lets 22 through in a second at 20/s.

This module is the reference implementation (used by the local backend); the Redis backend's Lua script
does the same arithmetic in one atomic call. Times are seconds of the backend's clock.
"""

from __future__ import annotations

from collections.abc import Sequence

from workers.rate_limits.base import Shape


def compared_range(logged: int, slots: int, count: int) -> tuple[int, int] | None:
    """Indexes (first, last; 0-based, oldest first) in a log of `logged` grants that `count` new slots
    are checked against: new slot j against index logged - slots + j - 1. None when all are before the
    log starts (fewer than `slots` grants on record: nothing to check)."""
    first, last = logged - slots, logged - slots + count - 1
    if last < 0:
        return None
    return max(first, 0), last


def plan(*, tat: float | None, last: float | None, older: Sequence[float | None], now: float, count: int,
         spaced: bool, shape: Shape, burst: int) -> tuple[list[float], float]:
    """Due times for `count` slots and the GCRA's `tat` after them.

    `last`: the newest due time in the log; `older[j]`: the logged grant new slot j + 1 is checked
    against (None when there is none). The caller checks count <= shape.slots.
    """
    interval, window = shape.interval, shape.window
    tat = now if tat is None else tat
    previous = now if last is None else last
    dues: list[float] = []
    if spaced:
        for j in range(count):
            due = max(now, previous, tat - (burst - 1) * interval)
            if older[j] is not None:
                due = max(due, older[j] + window)
            tat = max(tat, due) + interval
            previous = due
            dues.append(due)
        return dues, tat
    due = max(now, previous, tat - (max(burst, count) - count) * interval)
    if older[count - 1] is not None:
        due = max(due, older[count - 1] + window)
    return [due] * count, max(tat, due) + count * interval
