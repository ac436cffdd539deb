"""What the limiter guarantees, tested exactly: at the gateway, at most `rate` messages in any one second,
for every message that leaves its worker within its slot's `send_within` and whose way there varies by no
more than the rest of its booking's margin, whatever margins other processes book with; and each process
sizes its margins from the lateness and answer times it measured (jitter.py), never beyond `Policy.safety`.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
import random

import pytest

from tests.support.rate_hammer import CountingBackend
from workers.rate_limits import Policy, RateLimiter
from workers.rate_limits.jitter import MIN_SAMPLES, Allowance, Jitter

T0 = 2_000_000.0  # a scripted clock starts here (seconds)


def most_in_any(arrivals: list[float], seconds: float) -> int:
    """The most arrivals in any half-open window [t, t + seconds)."""
    arrivals = sorted(arrivals)
    return max(bisect.bisect_left(arrivals, t + seconds) - i for i, t in enumerate(arrivals))


@pytest.mark.parametrize("rate", [0.5, 7, 20, 250])
def test_every_second_at_the_gateway_holds_the_rate_whatever_each_process_margin(backend, key, rate):
    # given three processes booking one account, each with its own margin (a punctual one, a busy one, one
    # at the most), and a script of bookings of one to five spaced slots as fast as they are granted
    rng = random.Random(rate)
    policy = Policy(safety=0.05)
    margins = [0.007, 0.02, 0.05]
    now, arrivals, late, refused, booked_at = T0, [], [], 0, {}
    slots, span = (math.floor(rate), 1.0) if rate >= 1 else (1, 1 / rate)
    within = 0.007  # what an extended slot allows from the moment it is asked for: the way there, and writing
    seconds = 6 if rate >= 1 else 40

    def extend_until(moment: float) -> None:
        # a late request asks to extend its slot when it is about to leave, then arrives within what it asked
        nonlocal refused
        while late and late[0][0] <= moment:
            asked, seq = heapq.heappop(late)
            relied_on = booked_at.get(seq + slots, math.inf) < asked  # the slot a window later was booked
            if backend.extend(key, seq=seq, within=within, policy=policy, now=asked):
                assert not relied_on
                arrivals.append(asked + rng.choice([0.0, within, rng.uniform(0, within)]))
            else:
                assert relied_on
                refused += 1  # handed back unsent

    while now < T0 + seconds:
        extend_until(now)
        margin = rng.choice(margins)
        count = min(rng.randint(1, 5), math.floor(rate) or 1)
        grant = backend.book(key, rate=rate, policy=policy, count=count, spaced=True, horizon=10.0,
                             margin=margin, now=now)
        assert grant.taken
        # when each message reaches the gateway as late as its own margin lets it, or on time: the worst
        # case is an early slot's message arriving at the end of its margin and a later one at its slot; and
        # one in ten leaves 20 to 60 ms later than its margin allows, extending its slot first (a few so late
        # that the slot a window after theirs was booked already; without the extension, the slots a window
        # later would share a second with them)
        for number, due in enumerate(grant.due):
            booked_at[grant.seq + number] = now
            if (draw := rng.random()) < 0.1:
                lateness = span + rng.uniform(0.2, 0.5) if draw < 0.02 else margin + rng.uniform(0.02, 0.06)
                heapq.heappush(late, (now + due + lateness, grant.seq + number))
            else:
                arrivals.append(now + due + rng.choice([0.0, margin, rng.uniform(0, margin)]))
        now += grant.due[0] + rng.uniform(0, 0.01)
    end = now
    extend_until(math.inf)
    # then no second at the gateway held more than the rate's whole messages (below 1/s: no 1/rate seconds
    # more than one)
    assert most_in_any(arrivals, span) <= slots
    # and the account was kept busy: at least 90% of the rate with the largest margin, the late ones included
    assert sum(arrival <= end for arrival in arrivals) / (end - T0) >= 0.9 * slots / (span + max(margins))
    # and every late request went but those whose slot a window later was booked already (checked above)
    assert refused > 0


def test_a_booking_never_adds_more_than_the_policys_safety(backend, key):
    # given an account at 10/s whose booking asks for a margin of a whole second (more than safety 0.02)
    policy = Policy(safety=0.02)
    backend.book(key, rate=10, policy=policy, count=10, spaced=True, horizon=10.0, margin=1.0, now=T0)
    # when the eleventh slot is booked, then it is due 1.02 s after the first, not 2 s
    grant = backend.book(key, rate=10, policy=policy, horizon=10.0, margin=1.0, now=T0)
    assert grant.due[0] == pytest.approx(1.02, abs=1e-9)


def punctual(jitter: Jitter, key: str, *, lateness: float, answers: tuple[float, float]) -> None:
    for index in range(MIN_SAMPLES):
        jitter.left(key, lateness)
        jitter.answered(key, answers[index % 2])


def test_a_process_books_the_most_margin_until_it_has_measured_itself():
    # given a limiter's jitter with fewer than MIN_SAMPLES calls measured
    jitter = Jitter(Policy(safety=0.05))
    for _ in range(MIN_SAMPLES - 1):
        jitter.left("acct", 0.0001)
        jitter.answered("acct", 0.001)
    # then its bookings allow the policy's send_within and add its whole safety margin
    assert jitter.allowance("acct") == Allowance(send_within=0.015, margin=0.05)


def test_a_punctual_process_books_a_small_margin_and_a_late_one_a_larger():
    policy = Policy(safety=0.05)
    jitter = Jitter(policy)
    # given a process whose requests left within 0.1 ms of their slots, answered in 1 to 2 ms
    punctual(jitter, "acct", lateness=0.0001, answers=(0.001, 0.002))
    # then its bookings allow 2 ms (the least) and add 2 ms plus 5 ms for the way (the least transit)
    quick = jitter.allowance("acct")
    assert quick == Allowance(send_within=pytest.approx(policy.min_send_within),
                              margin=pytest.approx(policy.min_send_within + policy.transit))
    # when one request in a hundred leaves 12 ms late
    jitter.left("acct", 0.012)
    # then the next bookings allow no more for it: a request that late extends its own slot (schedule.py)
    assert jitter.allowance("acct").send_within == pytest.approx(policy.min_send_within)
    # when a tenth of the requests leave 12 ms late and the answers spread over 20 ms
    for _ in range(MIN_SAMPLES // 10 + 1):
        jitter.left("acct", 0.012)
    jitter.answered("acct", 0.021)
    # then the next bookings allow what was measured, with headroom, and add it all
    late = jitter.allowance("acct")
    assert late.send_within == pytest.approx(0.012 * 1.25 + 0.0005)
    assert late.margin == pytest.approx(late.send_within + 0.020 * 1.25 + 0.0005)
    # and a spread that leaves no room for both gives the whole safety margin, shared
    jitter.answered("acct", 0.060)
    crowded = jitter.allowance("acct")
    assert crowded.margin == policy.safety and crowded.send_within == policy.min_send_within


def test_slots_come_at_the_measured_margin_apart(backend, key):
    # given a limiter at 20/s (burst 1) whose process measured punctual calls
    counting = CountingBackend(backend)
    limiter = RateLimiter(counting, safety=0.05, burst=1)
    punctual(limiter.jitter, key, lateness=0.0001, answers=(0.001, 0.002))
    margin = limiter.jitter.allowance(key).margin
    # when a task books 5 slots
    with limiter.slots(key, rate=20, max_wait=1.0, count=5) as slots:
        pass
    # then they are one (1 + margin) / 20 apart, not (1 + safety) / 20, and each allows the measured lateness
    gaps = [later.due_at - earlier.due_at for earlier, later in itertools.pairwise(slots)]
    assert gaps == pytest.approx([(1 + margin) / 20] * 4, abs=1e-6)
    assert margin < 0.05 and [slot.send_within for slot in slots] == pytest.approx([0.002] * 5)


def test_a_slot_woken_past_its_allowance_is_extended_and_the_next_second_waits_for_it(backend, key, monkeypatch):
    from workers.rate_limits import limiter as limiter_module

    # given a process that measured punctual calls (its slots allow 2 ms) and a thread that wakes 30 ms late
    limiter = RateLimiter(backend, safety=0.05, burst=1)
    punctual(limiter.jitter, key, lateness=0.0001, answers=(0.001, 0.002))
    oversleep = limiter_module.sleep_until
    monkeypatch.setattr(limiter_module, "sleep_until", lambda moment: oversleep(moment + 0.03))
    # when it waits for its slot of an account at 10/s
    with limiter.slots(key, rate=10, max_wait=1.0, count=1) as slots:
        deadline = limiter.wait(slots[0])
    # then it may still send, by its own allowance after it asked to extend the slot
    assert deadline is not None and deadline.at >= slots[0].due_at + 0.03 + slots[0].send_within
    # and the slot a window after it waits for that arrival: one second after the extended slot's margin
    monkeypatch.setattr(limiter_module, "sleep_until", oversleep)
    with limiter.slots(key, rate=10, max_wait=3.0, count=10) as later:
        assert len(later) == 10
    assert later[-1].due_at - slots[0].due_at >= 1.0 + 0.03 + slots[0].margin
