"""The schedule: when may the next message of an account go? Two rules, applied together.

1. A sliding-window log (the guarantee). Never more than `rate` messages in any one second, measured
   where they arrive, which is after a grant by a delay that jitters (thread wake-ups, the network). With a
   plain GCRA of burst 1 and interval 1/rate, the grants n and n + rate are exactly one second apart, so
   if message n arrives 1 ms late and message n + rate on time, the gateway sees rate + 1 messages in
   one second. So each grant carries a `margin`, how late after its slot its message may arrive, and the
   log keeps, for the last `slots` grants, the due time plus that margin, never less than the entry before
   it (so a check against one entry covers every older one); a new slot must be one second (`span`) after
   the entry of the grant `slots` places before it. Any message that arrives within its own grant's entry
   then keeps every one-second window at the gateway within `rate`, whatever the margins of the other
   grants. The margin comes from the process that books (jitter.py: how late most of its requests leave,
   and how much their way to the gateway varies), at most `Policy.safety`; the price is margin / (1 +
   margin) of the rate. The log is an exact guard however the rate moves: an entry leaves it only when the
   grant that pushed it out was at least its window later, so a lowered or halved rate holds at once,
   with no burst.
   A request later than its margin allows is not lost: before it is written, its sender asks to `extend`
   its grant's entry (and every newer one below it) to when it will now arrive. That holds as long as no
   grant has been checked against that entry or a newer one yet (`checked`, the newest entry checked
   against), which is the case for about a second after the slot; otherwise nothing changes and the
   request is handed back. So a margin need only cover most requests, not the latest one lately: a late
   one delays the slot a second after it, once, instead of every slot paying for the worst.
2. A GCRA (the spacing). On its own the log would let `slots` messages go at once and then pause; the
   GCRA's theoretical arrival time `tat` spaces grants one `interval = window / slots` apart (`burst`
   may be granted back to back). Both rules allow the same long-run rate, slots / window.

A booking may be due in the future (up to a horizon): the backend computes the schedule, so a caller
that wakes up late loses nothing, and one question per message is enough. Due times never go backwards.
A batch of `count` messages sent in one request takes `count` slots due together; `spaced` slots are due
one interval apart.

The margin only holds if the worker keeps to it, so a worker sends at the slot's time on the server's clock,
not at "due offset after the answer arrived" (clock.py), sleeps in shrinking steps (limiter.sleep_until), and
checks just before writing a request that it is within its slot's lateness bound, handing the message back
unsent otherwise (a starved process).

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


def extendable(*, seq: int, logged: int, next_seq: int, checked: int) -> int | None:
    """The log index (0-based, oldest first) of grant number `seq` when its entry may still be extended: it
    is in a log of `logged` entries ending before grant `next_seq`, and no grant was checked against it or
    a newer entry (`checked`, the newest grant number checked against). None otherwise."""
    index = seq - (next_seq - logged)
    return index if seq > checked and 0 <= index < logged else None


def plan(*, tat: float | None, last: float | None, older: Sequence[float | None], now: float, count: int,
         spaced: bool, shape: Shape, burst: int) -> tuple[list[float], float]:
    """Due times for `count` slots and the GCRA's `tat` after them.

    `last`: the newest due time granted; `older[j]`: the logged grant new slot j + 1 is checked against,
    its due time plus its margin (None when there is none). The caller checks count <= shape.slots.
    """
    interval, span = shape.interval, shape.span
    tat = now if tat is None else tat
    previous = now if last is None else last
    dues: list[float] = []
    if spaced:
        for j in range(count):
            due = max(now, previous, tat - (burst - 1) * interval)
            if older[j] is not None:
                due = max(due, older[j] + span)
            tat = max(tat, due) + interval
            previous = due
            dues.append(due)
        return dues, tat
    due = max(now, previous, tat - (max(burst, count) - count) * interval)
    if older[count - 1] is not None:
        due = max(due, older[count - 1] + span)
    return [due] * count, max(tat, due) + count * interval
