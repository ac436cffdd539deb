"""The global rate limiter: never more than `rate` messages in any one second, across threads and
processes; waits without taking; adaptive halving and recovery; rate changes; idle keys expire.

Most cases drive the backends' clock with `now=` (scripted time) so that they are exact and fast; the
hammering cases run for real and count arrivals at a UDP "gateway" (tests/rate_hammer.py).
"""

from __future__ import annotations

import itertools
import math
import random
import threading
import time
import uuid

import pytest

from campaigns.settings import reset_settings
from tests.support.rate_hammer import Arrivals, CountingBackend, achieved, peak, send_from_processes, send_from_threads
from tests.support.waiting import wait_until
from workers.rate_limits import LocalBackend, Policy, RateLimiter, RedisBackend, get_limiter

T0 = 1_000_000.0  # a scripted clock starts here (seconds)
SAFETY = 0.02  # the default: at most `rate` grants in any 1.02 s


@pytest.fixture
def limiter(backend):
    return RateLimiter(backend)


@pytest.fixture
def evenly(backend):
    """A limiter that never grants two slots back to back (burst 1): exact numbers for the examples."""
    return RateLimiter(backend, burst=1)


def poll(limiter, key, *, rate, start, seconds, step):
    """Ask for a slot every `step` seconds of scripted time; returns the times of the grants."""
    grants = []
    for i in range(round(seconds / step)):
        now = start + i * step
        if limiter.reserve(key, rate=rate, now=now) == 0.0:
            grants.append(now)
    return grants


def most_in_any_window(times, window=1.0, since=-math.inf):
    """The most grants in any closed `window` ending at a grant at or after `since`."""
    ends = [end for end in times if end >= since]
    return max((sum(1 for t in times if end - window <= t <= end) for end in ends), default=0)


# ---------------------------------------------------------------- reserve


def test_reserve_takes_a_free_slot_and_says_how_long_to_wait_for_the_next(evenly, key):
    limiter = evenly
    # given an account at 10 messages/s: one slot every 1.02 / 10 = 0.102 s
    interval = (1 + SAFETY) / 10
    # when one slot is taken, then another is asked for 0.05 s later
    taken = limiter.reserve(key, rate=10, now=T0)
    wait = limiter.reserve(key, rate=10, now=T0 + 0.05)
    # then the first is free, the second must wait the rest of the interval
    assert taken == 0.0
    assert wait == pytest.approx(interval - 0.05, abs=1e-5)


def test_reserve_that_must_wait_takes_nothing(evenly, key):
    limiter = evenly
    # given a slot taken at T0
    interval = (1 + SAFETY) / 10
    limiter.reserve(key, rate=10, now=T0)
    # when asked again and again before the next slot is free
    waits = [limiter.reserve(key, rate=10, now=T0 + 0.05) for _ in range(5)]
    # then every answer is the same wait (nothing was taken), and the slot is free when it says
    assert waits == pytest.approx([interval - 0.05] * 5, abs=1e-5)
    assert limiter.reserve(key, rate=10, now=T0 + interval) == 0.0
    assert limiter.reserve(key, rate=10, now=T0 + interval) > 0


def test_two_slots_may_go_back_to_back_but_never_three(limiter, key):
    # given the default burst of 2, at 10/s
    # when three slots are asked for at the same moment
    answers = [limiter.reserve(key, rate=10, now=T0) for _ in range(3)]
    # then two are free now, the third one interval later
    assert answers == pytest.approx([0, 0, (1 + SAFETY) / 10], abs=1e-9)


@pytest.mark.parametrize("rate", [0.5, 7, 20.5, 100])
def test_scripted_hammering_never_exceeds_the_rate_in_any_window(limiter, key, rate):
    # given someone asking for a slot every 2 ms for 3 s (or 5 s below one message a second)
    seconds = 3.0 if rate >= 1 else 5.0
    grants = poll(limiter, key, rate=rate, start=T0, seconds=seconds, step=0.002)
    # then no window holds more than the rate allows: whole messages, at most floor(rate) a second,
    # and below 1/s one message per 1/rate seconds
    window, cap = (1.0, math.floor(rate)) if rate >= 1 else (1 / rate, 1)
    assert most_in_any_window(grants, window=window) <= cap
    # and the slots are used: the sustained rate, less the 2 ms lateness of a poll per slot
    sustained = cap / (window + SAFETY)
    assert len(grants) >= 0.9 * sustained * seconds


# ---------------------------------------------------------------- batches


def test_a_batch_takes_its_slots_together_and_the_next_slot_waits_for_them(evenly, key):
    limiter = evenly
    # given an account at 10 messages/s
    interval = (1 + SAFETY) / 10
    # when a request carrying 5 messages takes 5 slots at once
    batch = limiter.reserve(key, rate=10, count=5, now=T0)
    # then the next slot is 5 intervals later
    assert batch == 0.0
    assert limiter.reserve(key, rate=10, now=T0) == pytest.approx(5 * interval, abs=1e-5)


def test_a_batch_larger_than_a_second_of_the_rate_never_fits(limiter, key):
    # when 11 messages at once are asked of an account at 10/s
    wait = limiter.reserve(key, rate=10, count=11, now=T0)
    # then the answer is "never", and nothing was taken
    assert wait == math.inf
    assert limiter.reserve(key, rate=10, now=T0) == 0.0


def reserve_spaced(limiter: RateLimiter, key: str, *, rate: float, count: int, horizon: float,
                   now: float) -> list[float]:
    """The backend's spaced booking on a scripted clock (what `RateLimiter.slots` asks): the seconds from `now`
    until each slot is due, or [] when nothing was taken."""
    grant = limiter.backend.book(key, rate=rate, policy=limiter.policy, count=count, spaced=True, horizon=horizon,
                                 now=now)
    return list(grant.due) if grant.taken else []


def test_spaced_slots_come_due_one_interval_apart(evenly, key):
    limiter = evenly
    interval = (1 + SAFETY) / 10
    # when 3 slots are booked one by one, then 2 more whose first must be due within 0.2 s
    due = reserve_spaced(limiter, key, rate=10, count=3, horizon=1.0, now=T0)
    refused = reserve_spaced(limiter, key, rate=10, count=2, horizon=0.2, now=T0)
    # then they are due one interval apart, and a booking whose first slot is later takes nothing
    assert due == pytest.approx([0, interval, 2 * interval], abs=1e-5)
    assert refused == []
    assert limiter.reserve(key, rate=10, now=T0 + 3 * interval) == 0.0
    # and a booking whose first slot is due within the horizon is taken whole, however far its last
    later = reserve_spaced(limiter, key, rate=10, count=8, horizon=0.01, now=T0 + 4 * interval)
    assert later == pytest.approx([j * interval for j in range(8)], abs=1e-5)


# ---------------------------------------------------------------- acquire


def test_acquire_waits_briefly_for_a_slot_or_gives_up_at_once(backend, key):
    # (a limiter that never gives a slot up for lateness: this is about waiting, on a busy test host)
    limiter = RateLimiter(backend, burst=1, send_within=1.0)
    # given an account at 2 messages/s whose slot was just taken (the next is 0.51 s away)
    assert limiter.acquire(key, rate=2, max_wait=0)
    # when a sender may wait 0.1 s
    started = time.monotonic()
    refused = limiter.acquire(key, rate=2, max_wait=0.1)
    gave_up_after = time.monotonic() - started
    # then it gives up without waiting out its 0.1 s and without taking the slot
    assert not refused
    assert gave_up_after < 0.1
    # and a sender that may wait a second gets that slot
    assert limiter.acquire(key, rate=2, max_wait=1.0)


def test_a_tasks_slots_cost_one_question_and_come_one_interval_apart(backend, key):
    counting = CountingBackend(backend)
    limiter = RateLimiter(counting, burst=1)
    # when a task of 5 single-message calls books its slots at 20 messages/s
    with limiter.slots(key, rate=20, max_wait=1.0, count=5) as slots:
        pass
    # then one question booked all five, due one interval apart
    assert counting.bookings == 1
    assert len(slots) == 5
    gaps = [later.due_at - earlier.due_at for earlier, later in itertools.pairwise(slots)]
    assert gaps == pytest.approx([(1 + SAFETY) / 20] * 4, abs=1e-6)


def test_a_throttled_account_books_a_tasks_slots_in_pieces(backend, key):
    counting = CountingBackend(backend)
    limiter = RateLimiter(counting, burst=1)
    # given an account at 8/s throttled to 4/s: four slots per window
    limiter.throttled(key, rate=8)
    assert limiter.effective_rate(key, rate=8) == pytest.approx(4)
    # when a task of 6 single-message calls books its slots (more than one window of the effective rate)
    with limiter.slots(key, rate=8, max_wait=5.0, count=6) as slots:
        pass
    # then it gets all six, in two pieces of three after the whole was refused as never fitting
    assert len(slots) == 6
    assert counting.bookings == 3
    assert all(later.due_at > earlier.due_at for earlier, later in itertools.pairwise(slots))


def test_a_booking_holds_this_processs_lookahead_until_its_block_ends(backend, key):
    limiter = RateLimiter(backend, burst=1, lookahead=0.0)
    # given two tasks of this process holding their bookings (at most two may at once)
    with limiter.slots(key, rate=50, max_wait=1.0, count=2) as first, \
            limiter.slots(key, rate=50, max_wait=1.0, count=2) as second:
        assert first and second
        # when a third asks while they hold theirs, it queues and gives up when its wait runs out
        with limiter.slots(key, rate=50, max_wait=0.05, count=1) as third:
            assert third == []
    # then once one ends, a task books at once
    with limiter.slots(key, rate=50, max_wait=1.0, count=1) as fourth:
        assert len(fourth) == 1


def test_a_booking_whose_first_slot_is_due_holds_back_no_other(backend, key):
    limiter = RateLimiter(backend, burst=1, lookahead=0.0)
    # given two tasks of this process holding bookings, the first of which has reached its first slot
    with limiter.slots(key, rate=50, max_wait=1.0, count=2) as first, \
            limiter.slots(key, rate=50, max_wait=1.0, count=2) as second:
        assert first and second
        limiter.wait(first[0])
        # when a third asks while both blocks still run, then it books: only bookings ahead count
        with limiter.slots(key, rate=50, max_wait=0.5, count=1) as third:
            assert len(third) == 1


def test_acquire_gives_up_without_asking_when_this_process_booked_further_ahead(backend, key, monkeypatch):
    from workers.rate_limits import limiter as limiter_module

    counting = CountingBackend(backend)
    limiter = RateLimiter(counting, burst=1, send_within=1.0)
    limiter.reserve(key, rate=2)
    sleeping, sleep = threading.Event(), limiter_module.sleep_until
    monkeypatch.setattr(limiter_module, "sleep_until", lambda moment: sleeping.set() or sleep(moment))
    # given a thread of this process holding a slot booked 0.51 s ahead
    holder = threading.Thread(target=limiter.acquire, args=(key,), kwargs={"rate": 2, "max_wait": 1.0})
    holder.start()
    assert sleeping.wait(5)
    asked = counting.bookings
    # when another thread may wait only 0.1 s
    refused = limiter.acquire(key, rate=2, max_wait=0.1)
    holder.join()
    # then it gives up without a question to the backend
    assert not refused
    assert counting.bookings == asked


def test_a_thread_that_wakes_up_after_its_slot_was_relied_on_gives_it_up(backend, key, monkeypatch):
    from workers.rate_limits import limiter as limiter_module

    # given a thread that booked a slot of an account at 10/s
    limiter, other = RateLimiter(backend, burst=1), RateLimiter(backend, burst=1)
    with limiter.slots(key, rate=10, max_wait=1.0, count=1) as mine:
        # and another process that has since booked the next ten slots, the last one checked against it
        with other.slots(key, rate=10, max_wait=3.0, count=10) as theirs:
            assert len(theirs) == 10
        # when the thread wakes 50 ms after its slot (a starved process)
        oversleep = limiter_module.sleep_until
        monkeypatch.setattr(limiter_module, "sleep_until", lambda moment: oversleep(moment + 0.05))
        deadline = limiter.wait(mine[0])
    # then it does not send: sent now, it could share a second at the gateway with the ten after it
    assert deadline is None


def test_a_late_slot_is_extended_until_a_slot_is_checked_against_it(backend, key):
    # given an account at 4/s (one slot every 0.25 s plus margins) and the grant of slot n
    policy = Policy(safety=0.02)
    first = backend.book(key, rate=4, policy=policy, horizon=10.0, margin=0.01, now=T0)
    for step in range(1, 4):
        backend.book(key, rate=4, policy=policy, horizon=10.0, margin=0.01, now=T0 + step * 0.26)
    # when its request leaves 80 ms late, with 10 ms more for its way, and asks to extend its slot
    assert backend.extend(key, seq=first.seq, within=0.01, policy=policy, now=T0 + 0.08)
    # then the slot a window after it (n + 4) waits for one second after that arrival, not after its margin
    fifth = backend.book(key, rate=4, policy=policy, horizon=10.0, margin=0.01, now=T0 + 1.0)
    assert fifth.taken and T0 + 1.0 + fifth.due[0] == pytest.approx(T0 + 0.09 + 1.0, abs=1e-6)
    # and once that slot was checked against it, neither it nor an older slot can be extended again
    assert not backend.extend(key, seq=first.seq, within=0.01, policy=policy, now=T0 + 0.1)
    assert not backend.extend(key, seq=first.seq - 1, within=0.01, policy=policy, now=T0 + 0.1)
    # while the slot after it still can, and an unknown one never
    assert backend.extend(key, seq=first.seq + 1, within=0.01, policy=policy, now=T0 + 0.3)
    assert not backend.extend(key, seq=first.seq + 99, within=0.01, policy=policy, now=T0 + 0.3)


def test_an_extended_slot_holds_back_whatever_is_checked_against_a_newer_one(backend, key):
    # given an account at 4/s with four slots granted back to back (burst 4), the first extended by 50 ms
    policy = Policy(safety=0.02, burst=4)
    first = backend.book(key, rate=4, policy=policy, count=4, spaced=True, horizon=10.0, margin=0.01, now=T0)
    assert first.due == (0.0, 0.0, 0.0, 0.0)
    assert backend.extend(key, seq=first.seq, within=0.01, policy=policy, now=T0 + 0.05)
    # when the rate is lowered to 2/s, whose next slot is checked against the third of them, not the first
    later = backend.book(key, rate=2, policy=policy, horizon=10.0, margin=0.01, now=T0 + 0.9)
    # then it waits for one second after the first one's arrival all the same: a log entry is never below
    # an older one, so a check against one covers every older slot
    assert T0 + 0.9 + later.due[0] == pytest.approx(T0 + 0.06 + 1.0, abs=1e-6)


def test_threads_hammering_stay_within_the_rate_at_the_gateway(limiter, key):
    # given 8 threads sending as fast as an account at 40/s lets them, for 2.5 s, 50 ms per answer
    with Arrivals() as gateway:
        sent = send_from_threads(limiter, key, rate=40, threads=8, seconds=2.5, address=gateway.address,
                                 latency=0.05)
        arrivals = gateway.close()
    # then the gateway never saw more than 40 in any second, and close to 40 a second arrived
    assert len(arrivals) == sent
    assert peak(arrivals) <= 40
    assert achieved(arrivals) >= 0.9 * 40


def test_processes_hammering_stay_within_the_rate_at_the_gateway(redis_url, key):
    # given 4 processes of 4 threads, each process with its own Redis limiter, at 60/s for 3 s
    with Arrivals() as gateway:
        tally = send_from_processes(redis_url, key, processes=4, rate=60, threads=4, seconds=3.0,
                                    address=gateway.address, latency=0.05)
        arrivals = gateway.close()
    # then the gateway never saw more than 60 in any second, close to 60 a second arrived,
    # and each grant cost about one round trip to Redis
    assert len(arrivals) == tally.acquired
    assert peak(arrivals) <= 60
    assert achieved(arrivals) >= 0.9 * 60
    assert tally.round_trips <= 3 * tally.acquired


# ---------------------------------------------------------------- adaptive rate


def test_a_throttling_answer_halves_the_rate_and_clean_seconds_win_it_back(limiter, key):
    # given an account at 40/s
    # when the gateway answers "too many"
    halved = limiter.throttled(key, rate=40, now=T0)
    # then the effective rate is 20, and each clean second adds 10 % of 40 back, up to 40
    assert halved == 20
    assert limiter.effective_rate(key, rate=40, now=T0 + 0.5) == 20
    assert limiter.effective_rate(key, rate=40, now=T0 + 1.0) == pytest.approx(24)
    assert limiter.effective_rate(key, rate=40, now=T0 + 3.2) == pytest.approx(32)
    assert limiter.effective_rate(key, rate=40, now=T0 + 5.0) == 40
    assert limiter.effective_rate(key, rate=40, now=T0 + 60) == 40


def test_answers_already_in_flight_halve_only_once(limiter, key):
    # given a halving at T0
    limiter.throttled(key, rate=40, now=T0)
    # when more "too many" answers come within the cooldown, then after it
    again = limiter.throttled(key, rate=40, now=T0 + 0.3)
    still = limiter.effective_rate(key, rate=40, now=T0 + 1.2)
    recovering = limiter.effective_rate(key, rate=40, now=T0 + 1.3)
    later = limiter.throttled(key, rate=40, now=T0 + 1.5)
    # then the in-flight answers do not halve again but restart the clean time; a later one halves
    assert again == 20
    assert still == 20
    assert recovering == pytest.approx(24)
    assert later == pytest.approx(12)


def test_the_halved_rate_holds_the_schedule_at_once(limiter, key):
    # given an account at 20/s busy for 2 s
    grants = poll(limiter, key, rate=20, start=T0, seconds=2.0, step=0.002)
    # when the gateway throttles, and senders keep asking for 0.9 s more
    change = T0 + 2.0
    assert limiter.throttled(key, rate=20, now=change) == 10
    after = poll(limiter, key, rate=20, start=change, seconds=0.9, step=0.002)
    # then any second that ends after the throttling holds at most 10, counting those before it
    assert most_in_any_window(grants + after, since=change) <= 10


def test_halving_is_shared_by_every_process(redis_url, key):
    # given two workers with their own connections to Redis
    first = RateLimiter(RedisBackend.from_url(redis_url))
    second = RateLimiter(RedisBackend.from_url(redis_url))
    # when one of them is throttled
    first.throttled(key, rate=80)
    # then the other sees the halved rate
    assert second.effective_rate(key, rate=80) == pytest.approx(40, abs=4)
    first.backend.forget(key)


# ---------------------------------------------------------------- changed configuration


def test_a_lowered_rate_takes_effect_at_once_without_a_burst(limiter, key):
    # given an account at 20/s busy for 2 s
    grants = poll(limiter, key, rate=20, start=T0, seconds=2.0, step=0.002)
    # when blast.toml lowers it to 5/s
    change = T0 + 2.0
    after = poll(limiter, key, rate=5, start=change, seconds=2.0, step=0.002)
    # then every second ending after the change holds at most 5, counting those sent before it
    assert most_in_any_window(grants + after, since=change) <= 5
    assert len(after) >= 5


def test_a_raised_rate_takes_effect_at_once_without_a_burst(limiter, key):
    # given an account at 5/s busy for 2 s
    grants = poll(limiter, key, rate=5, start=T0, seconds=2.0, step=0.002)
    # when blast.toml raises it to 20/s
    change = T0 + 2.0
    after = poll(limiter, key, rate=20, start=change, seconds=2.0, step=0.002)
    # then the next slot comes within one new interval, and no second holds more than 20
    assert after[0] - change <= (1 + SAFETY) / 20 + 0.002
    assert most_in_any_window(grants + after) <= 20
    assert len(after) >= 0.9 * 20 / (1 + SAFETY) * 2


# ---------------------------------------------------------------- keys


def test_idle_local_keys_expire():
    clock = [T0]
    limiter = RateLimiter(LocalBackend(clock=lambda: clock[0]))
    # given a key used once, and another throttled once
    limiter.reserve("busy", rate=10)
    limiter.throttled("throttled", rate=10)
    assert limiter.backend.holds("busy") and limiter.backend.holds("throttled")
    # when both stay idle past the window, the recovery and the grace
    clock[0] += 1.02 + 1.0 + 0.01
    assert not limiter.backend.holds("busy")
    clock[0] += 5.0 + 1.0
    # then nothing is kept for them
    limiter.reserve("other", rate=10)
    assert not limiter.backend.holds("throttled")
    assert set(limiter.backend._states) == {"other"}


def test_redis_keys_are_prefixed_and_expire_when_idle(redis_url, key):
    backend = RedisBackend.from_url(redis_url, idle_grace=0.1)
    limiter = RateLimiter(backend)
    # when a key is used once
    limiter.reserve(key, rate=50)
    # then its state lives under blast:rate:, with a time to live of about the window
    names = backend.keys(key)
    assert all(name.startswith("blast:rate:") for name in names)
    assert 0 < backend.client.pttl(names[0]) <= 1200
    # and it is gone once idle
    wait_until(lambda: not backend.holds(key), timeout=5, interval=0.05, message="the holder's lease to lapse")


# ---------------------------------------------------------------- both backends, one behaviour


def test_the_local_and_the_redis_backend_agree(redis_url):
    # given the same scripted run of reservations, batches, throttling and rate changes
    rng = random.Random(7)
    local = RateLimiter(LocalBackend())
    shared = RateLimiter(RedisBackend.from_url(redis_url))
    key = f"test-{uuid.uuid4().hex[:12]}"
    now, answers = T0, {"local": [], "redis": []}
    for _ in range(400):
        now += rng.choice([0.0, 0.001, 0.01, 0.03, 0.2])
        rate = rng.choice([3, 12, 12, 12, 40.5])
        action = rng.random()
        for name, limiter in (("local", local), ("redis", shared)):
            if action < 0.05:
                answers[name].append(limiter.throttled(key, rate=rate, now=now))
            elif action < 0.15:
                answers[name].append(limiter.reserve(key, rate=rate, count=3, now=now))
            elif action < 0.2:
                answers[name].append(reserve_spaced(limiter, key, rate=rate, count=2, horizon=0.3, now=now))
            else:
                answers[name].append(limiter.reserve(key, rate=rate, now=now))
    shared.backend.forget(key)
    # then both give the same answers
    for mine, theirs in zip(answers["local"], answers["redis"], strict=True):
        assert mine == pytest.approx(theirs, abs=1e-9)


# ---------------------------------------------------------------- construction


def test_the_limiter_follows_the_settings(blast_home, monkeypatch, redis_url):
    # given no Redis configured, then the local backend; given BLAST_REDIS_URL, the Redis one
    assert isinstance(get_limiter().backend, LocalBackend)
    assert get_limiter() is get_limiter()
    monkeypatch.setenv("BLAST_REDIS_URL", redis_url)
    reset_settings()
    assert isinstance(get_limiter().backend, RedisBackend)


@pytest.mark.parametrize("rate", [0, -1, math.nan, math.inf, 1e9])
def test_a_rate_must_be_a_sensible_number_of_messages_per_second(rate):
    with pytest.raises(ValueError, match="messages per second"):
        RateLimiter(LocalBackend()).reserve("any", rate=rate)
