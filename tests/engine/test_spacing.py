"""Spacing per recipient across campaigns (workers/rate_limits/spacing.py), on the in-process backend and on
Redis: a recipient's second message waits out the pair interval after the first was taken, a message that was
not sent frees its recipient, a daily cap holds the rest for the day; and end to end, two campaigns to
overlapping lists sent at once: the sandbox never sees two messages to one number closer than the interval,
and everyone gets each campaign's message once."""

from __future__ import annotations

import time

import pytest
import redis

from campaigns import lifecycle
from campaigns.settings import reset_settings
from tests.support import services
from tests.support.engine import wait_for_status, write_config, write_contacts
from workers.rate_limits.spacing import DAY_SECONDS, LocalSpacing, RedisSpacing

REDIS_DB = services.REDIS_DATABASES["spacing"]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["local", "redis"])
def spacing(request):
    """(the backend, a function moving its clock on by some seconds)."""
    if request.param == "local":
        clock = Clock()

        def advance(seconds: float) -> None:
            clock.now += seconds

        return LocalSpacing(clock=clock), advance
    services.require("redis")
    client = redis.Redis.from_url(f"{services.REDIS_URL}/{REDIS_DB}")
    client.flushdb()
    return RedisSpacing(client), time.sleep  # Redis keeps its own clock: real seconds, kept short


def test_a_second_message_waits_out_the_interval_after_the_first_was_taken(spacing):
    backend, advance = spacing
    # when two messages to one number and one to another are asked for at once
    waits = backend.admit([(1, "+256700000001"), (2, "+256700000001"), (3, "+256700000002")],
                          interval=0.4, daily_cap=None, hold=30)
    # then the first to each number may go; the second is asked about again an interval on (the first has not
    # left yet)
    assert waits[0] == 0 and waits[2] == 0 and waits[1] == pytest.approx(0.4)
    # when the first was taken now, then the second may go 0.4 s later, not before
    backend.settle([(1, "+256700000001", _now(backend)), (3, "+256700000002", None)])
    assert 0 < backend.admit([(2, "+256700000001")], interval=0.4, daily_cap=None, hold=30)[0] <= 0.401
    advance(0.45)
    assert backend.admit([(2, "+256700000001")], interval=0.4, daily_cap=None, hold=30) == [0]
    # and a message that was not sent left its number free at once
    assert backend.admit([(4, "+256700000002")], interval=0.4, daily_cap=None, hold=30) == [0]


def test_a_daily_cap_holds_the_rest_for_the_day(spacing):
    backend, advance = spacing
    # given a cap of 2 a day and no pair interval to speak of
    for message_id in (1, 2):
        assert backend.admit([(message_id, "+256700000009")], interval=0.01, daily_cap=2, hold=0.01) == [0]
        backend.settle([(message_id, "+256700000009", _now(backend))])
        advance(0.02)
    # when a third comes, then it waits about a day from the first
    wait = backend.admit([(3, "+256700000009")], interval=0.01, daily_cap=2, hold=0.01)[0]
    assert DAY_SECONDS - 5 < wait <= DAY_SECONDS


def _now(backend) -> float:
    return backend.clock() if isinstance(backend, LocalSpacing) else time.time()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_two_campaigns_to_overlapping_lists_never_message_a_number_closer_than_the_interval(
        database_url, engine, blast_home, tmp_path, sandbox, monkeypatch):
    from workers.embedded import EmbeddedWorker

    # given a pair interval of 1 s, and two lists of 60 sharing 30 numbers
    monkeypatch.setenv("BLAST_PAIR_INTERVAL_SECONDS", "1")
    write_config(tmp_path / "blast.toml", sandbox, {"acct": {"provider": "socnet", "rate": 100}})
    reset_settings()
    first = write_contacts(tmp_path / "first.csv", 60)
    second = write_contacts(tmp_path / "second.csv", 60, start=30)
    # when both campaigns are launched at once
    with EmbeddedWorker(concurrency=4):
        ids = [lifecycle.launch(tmp_path / name, account_name="acct", template="Hi {{ name }}")[0]
               for name in ("first.csv", "second.csv")]
        for campaign_id in ids:
            wait_for_status(campaign_id, ("finished",), timeout=60)
    # then every number got each campaign's message once, and never two within a second of each other
    [stats] = sandbox.stats(provider="socnet")["accounts"].values()
    expected = {number: (first + second).count(number) for number in set(first + second)}
    assert stats["accepted_per_recipient"] == expected and stats["accepted"] == 120
    assert stats["closest_pair_seconds"] is not None and stats["closest_pair_seconds"] >= 1.0
