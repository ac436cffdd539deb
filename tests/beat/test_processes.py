"""Reminder blasts fired by real `blast beat` and `blast worker` processes (Postgres, Redis, the sandbox).

Time is controlled through the cron itself: a seconds cron (croniter's sixth field, seconds last) on the real
clock, with beat looking for due schedules every half second. The beat lease keeps a second beat idle.
"""

from __future__ import annotations

import signal
import uuid
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
import redis
from sqlalchemy import select

from campaigns import reminders
from campaigns.models import Campaign
from campaigns.settings import reset_settings
from schedules import beat, locks
from tests.support import services
from tests.support.engine import (
    SentTasks,
    attempts_per_message,
    engine_processes,
    fresh_env,
    write_config,
    write_contacts,
)
from tests.support.waiting import wait_until

REDIS_DB = services.REDIS_DATABASES["beat"]
TICK_SECONDS = 0.5
LATE_MARGIN_SECONDS = 1.5  # beat → broker → worker → ingest of the contact file, on a busy 2-core machine
EVERY_TWO_SECONDS = "* * * * * */2"  # croniter: minute hour day month weekday second
ZONE = "Asia/Kolkata"  # UTC+05:30: a zone whose offset is not whole hours
RECIPIENTS = 3
PERIODIC_TASKS = ("blast.pace", "blast.fire_schedules", "blast.apply_waiting_events", "blast.reconcile")



def processes(test):
    """Marks of a test that runs real Blast processes against Postgres and Redis."""
    return pytest.mark.redis(pytest.mark.postgres(pytest.mark.slow(test)))


@pytest.fixture
def stack(tmp_path, blast_home, postgres_server_url, redis_url, monkeypatch, sandbox):
    """Postgres, Redis as broker and lock store, a sandbox Socnet account, a contact file; processes started
    by the test are stopped at its end."""
    env = fresh_env(tmp_path, postgres_server_url, REDIS_DB, schedule_tick_seconds=TICK_SECONDS)
    write_config(tmp_path / "blast.toml", sandbox, {"acct": {"provider": "socnet", "rate": 100}})
    with engine_processes(env, tmp_path / "logs") as processes:
        processes.sandbox = sandbox
        processes.database_url = postgres_server_url
        processes.redis = redis.Redis.from_url(env["BLAST_BROKER_URL"])
        processes.contacts = tmp_path / "contacts.csv"
        processes.numbers = write_contacts(processes.contacts, RECIPIENTS)
        yield processes


def add_cron(stack, cron: str = EVERY_TWO_SECONDS) -> int:
    return reminders.add(stack.engine, name="tick", account_name="acct", source_file=stack.contacts,
                         template="Reminder for {{ name }}", cron=cron, timezone=ZONE)


def add_once(stack, at: datetime) -> int:
    return reminders.add(stack.engine, name="once", account_name="acct", source_file=stack.contacts,
                         template="Once for {{ name }}", run_at=at)


def fired(stack, schedule_id: int) -> list[tuple[int, datetime, datetime, str]]:
    """(campaign id, occurrence, created at, status) of the schedule's campaigns, by occurrence."""
    with stack.engine.connect() as connection:
        rows = connection.execute(
            select(Campaign.id, Campaign.occurrence, Campaign.created_at, Campaign.status)
            .where(Campaign.schedule_id == schedule_id)).all()
    return sorted((row.id, datetime.fromisoformat(row.occurrence), _utc(row.created_at), row.status)
                  for row in rows)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def wait_for_campaigns(stack, schedule_id: int, count: int, *, timeout: float) -> list:
    def enough():
        found = fired(stack, schedule_id)
        return found if len(found) >= count else None

    try:
        return wait_until(enough, timeout=timeout, message=f"{count} campaigns of schedule {schedule_id}")
    except AssertionError:
        print(stack.logs())
        raise


def stop_and_settle(stack, schedule_ids: list[int]) -> None:
    """Remove the schedules, then wait until a firing already past its claim has launched its campaign (it
    holds the fire_schedules job lock until then) and every campaign has finished."""
    for schedule_id in schedule_ids:
        reminders.remove(stack.engine, schedule_id)
    lock_key = locks.KEY_PREFIX + "fire_schedules"
    wait_until(lambda: not stack.redis.exists(lock_key), timeout=20, message="the firing in flight to end")

    def all_finished() -> bool:
        with stack.engine.connect() as connection:
            statuses = connection.execute(select(Campaign.status)).scalars().all()
        return bool(statuses) and set(statuses) == {"finished"}

    try:
        wait_until(all_finished, timeout=30, message="every campaign to finish")
    except AssertionError:
        print(stack.logs())
        with stack.engine.connect() as connection:
            print(connection.execute(select(Campaign.id, Campaign.status, Campaign.occurrence,
                                            Campaign.created_at)).all())
        raise


def assert_sent_once_per_campaign(stack, campaign_ids: list[int]) -> None:
    """Each campaign made one attempt per recipient, and the gateway saw each recipient once per campaign."""
    for campaign_id in campaign_ids:
        attempts = attempts_per_message(stack.database_url, campaign_id)
        assert sorted(attempts.values()) == [1] * RECIPIENTS, (campaign_id, attempts)
    accepted = stack.sandbox.account_stats("socnet")["accepted_per_recipient"]
    assert accepted == dict.fromkeys(stack.numbers, len(campaign_ids))


def assert_cron_occurrences(occurrences: list[datetime]) -> None:
    assert len(set(occurrences)) == len(occurrences), occurrences
    for occurrence in occurrences:
        assert occurrence.second % 2 == 0 and occurrence.microsecond == 0, occurrence


# ---------------------------------------------------------------- in process: the seconds cron, the lease


def test_a_seconds_cron_is_accepted_and_fires_on_its_seconds(engine, tmp_path, blast_home):
    # given a schedule every two seconds (sixth field: seconds) in a UTC+05:30 zone
    (tmp_path / "blast.toml").write_text('[accounts.acct]\nprovider = "socnet"\nbase_url = "http://127.0.0.1:9"\n'
                                         'api_key = "k"\nrate = 10\n')
    reset_settings()
    write_contacts(tmp_path / "contacts.csv", RECIPIENTS)
    start = datetime(2026, 3, 2, 5, 0, 7, 250000, tzinfo=UTC)
    schedule_id = reminders.add(engine, name="tick", account_name="acct", source_file=tmp_path / "contacts.csv",
                                template="Hi", cron=EVERY_TWO_SECONDS, timezone=ZONE, now=start)
    # then its first time is the next even second
    [schedule] = reminders.listed(engine)
    assert _utc(schedule.next_fire_at) == datetime(2026, 3, 2, 5, 0, 8, tzinfo=UTC)
    # when beat looks half a second after it, twice
    assert len(reminders.fire_due(engine, now=start + timedelta(seconds=1.25))) == 1
    assert reminders.fire_due(engine, now=start + timedelta(seconds=1.25)) == []
    # then that occurrence fired once and the next is two seconds later
    with engine.connect() as connection:
        occurrences = connection.execute(select(Campaign.occurrence).where(Campaign.schedule_id == schedule_id))
        assert occurrences.scalars().all() == ["2026-03-02T05:00:08+00:00"]
    [schedule] = reminders.listed(engine)
    assert _utc(schedule.next_fire_at) == datetime(2026, 3, 2, 5, 0, 10, tzinfo=UTC)


@pytest.fixture(params=["file", "redis"])
def lease_store(request, blast_home, monkeypatch):
    if request.param == "redis":
        monkeypatch.setenv("BLAST_REDIS_URL", f"{request.getfixturevalue('redis_url')}/{REDIS_DB}")
    reset_settings()
    yield request.param
    reset_settings()


def test_the_beat_lease_has_one_holder_and_passes_on_when_released(lease_store):
    # given two beats' leases on one name
    name = f"lease-{uuid.uuid4().hex}"
    first, second = locks.BeatLease(name, ttl_seconds=30), locks.BeatLease(name, ttl_seconds=30)
    # then only the first to ask holds it, and renewing keeps it
    assert first.hold() and first.hold()
    assert not second.hold()
    # when the holder lets go, the other takes it
    first.release()
    assert second.hold() and not first.hold()
    second.release()


@pytest.mark.redis
def test_a_lease_not_renewed_expires(redis_url, blast_home, monkeypatch):
    # given a lease held in Redis for 0.3 s by a beat that then stops renewing (killed)
    monkeypatch.setenv("BLAST_REDIS_URL", f"{redis_url}/{REDIS_DB}")
    reset_settings()
    name = f"lease-{uuid.uuid4().hex}"
    dead, standby = locks.BeatLease(name, ttl_seconds=0.3), locks.BeatLease(name, ttl_seconds=0.3)
    assert dead.hold() and not standby.hold()
    # then the standby takes it once it expires, and the old holder no longer holds it
    wait_until(standby.hold, timeout=5, message="the lease to pass on")
    assert not dead.hold()
    standby.release()


def test_each_installation_has_its_own_beat_lease_without_its_password(monkeypatch, blast_home):
    # given two installations sharing one Redis, each with its own database
    def name_for(database_url: str) -> str:
        monkeypatch.setenv("BLAST_DATABASE_URL", database_url)
        reset_settings()
        return beat.lease_name()

    first = name_for("postgresql+psycopg://blast:s3cret-one@db1/blast")
    again = name_for("postgresql+psycopg://blast:other-s3cret@db1/blast")
    second = name_for("postgresql+psycopg://blast:s3cret-one@db2/blast")
    reset_settings()
    # then their leases differ, a password change keeps the same lease, and no password is in the name
    assert first != second and first == again
    assert "s3cret" not in first + second


# ---------------------------------------------------------------- one beat, on time


@processes
def test_a_seconds_cron_fires_each_occurrence_once_and_on_time(stack):
    # given a worker and one beat looking for due schedules every half second, the worker warm (a fresh
    # worker's first firing also imports the ingest: pandas, about a second on a busy machine)
    stack.worker("w1")
    stack.beat()
    warm_up_id = add_once(stack, datetime.now(UTC) + timedelta(seconds=1))
    [(warm_up_campaign, *_)] = wait_for_campaigns(stack, warm_up_id, 1, timeout=30)
    # when a schedule fires every two seconds (in a UTC+05:30 zone)
    created = datetime.now(UTC)
    schedule_id = add_cron(stack)
    wait_for_campaigns(stack, schedule_id, 3, timeout=30)
    stop_and_settle(stack, [schedule_id])
    campaigns = fired(stack, schedule_id)
    # then the occurrences are cron times after the schedule was made, consecutive, none repeated
    occurrences = [occurrence for _, occurrence, _, _ in campaigns]
    assert_cron_occurrences(occurrences)
    assert occurrences[0] > created
    assert [later - earlier for earlier, later in pairwise(occurrences)] == \
        [timedelta(seconds=2)] * (len(occurrences) - 1)
    # and each fired within a tick (plus the way through broker and worker) of its time
    for _, occurrence, launched, _ in campaigns:
        assert timedelta(0) <= launched - occurrence <= timedelta(seconds=TICK_SECONDS + LATE_MARGIN_SECONDS), \
            (occurrence, launched)
    # and each campaign finished, every recipient sent exactly once
    assert {status for *_, status in campaigns} == {"finished"}
    assert_sent_once_per_campaign(stack, [warm_up_campaign] + [campaign_id for campaign_id, *_ in campaigns])


@processes
def test_a_schedule_changed_and_removed_while_beat_runs(stack):
    # given a worker and a beat firing a schedule every two seconds
    stack.worker("w1")
    stack.beat()
    schedule_id = add_cron(stack)
    wait_for_campaigns(stack, schedule_id, 1, timeout=30)
    # when it is changed to seconds 1, 5, 9, ... with a new template while beat runs
    reminders.change(stack.engine, schedule_id, cron="* * * * * 1/4", template="Changed for {{ name }}")
    changed_at = datetime.now(UTC)
    wait_until(lambda: [c for c in fired(stack, schedule_id) if c[1] > changed_at][1:],
               timeout=30, message="two firings after the change")
    # and then removed
    stop_and_settle(stack, [schedule_id])
    campaigns = fired(stack, schedule_id)
    # then every firing after the change is on the new seconds with the new template, none repeated,
    # nothing fired after the removal settled, and every recipient got each campaign once
    after = [(campaign_id, occurrence) for campaign_id, occurrence, _, _ in campaigns if occurrence > changed_at]
    assert len(after) >= 2 and all(occurrence.second % 4 == 1 for _, occurrence in after), after
    with stack.engine.connect() as connection:
        templates = dict(connection.execute(select(Campaign.id, Campaign.template)
                                            .where(Campaign.schedule_id == schedule_id)).all())
    assert {templates[campaign_id] for campaign_id, _ in after} == {"Changed for {{ name }}"}
    assert len({occurrence for _, occurrence, _, _ in campaigns}) == len(campaigns)
    assert fired(stack, schedule_id) == campaigns
    assert_sent_once_per_campaign(stack, [campaign_id for campaign_id, *_ in campaigns])


# ---------------------------------------------------------------- two beats


@processes
def test_two_beats_fire_each_occurrence_once_and_the_second_only_stands_by(stack):
    # given a worker and two beats on the same database, broker and Redis; the first holds the lease
    stack.worker("w1")
    with SentTasks(stack.env["BLAST_BROKER_URL"]) as sent:
        first = stack.beat("beat-1")
        wait_until(lambda: sent.published("blast.pace"), timeout=30, message="the first beat to send")
        second = stack.beat("beat-2")
        wait_until(lambda: "stands by" in stack.log("beat-2"), timeout=30, message="the second beat to stand by")
        # when a schedule fires every two seconds for several occurrences
        watch_from = datetime.now(UTC).timestamp()
        schedule_id = add_cron(stack)
        wait_for_campaigns(stack, schedule_id, 4, timeout=30)
        watch_to = datetime.now(UTC).timestamp()
        # then every periodic job came from the first beat only, at one beat's rate
        for task in PERIODIC_TASKS:
            senders = {pid for pid, at in sent.published(task) if at >= watch_from}
            assert senders <= {first.pid}, (task, senders, second.pid)
        pace_times = [at for pid, at in sent.published("blast.pace") if watch_from <= at <= watch_to]
        assert len(pace_times) <= (watch_to - watch_from) + 1.5, pace_times
        assert "blast.fire_schedules" in {name for name, _, _ in sent.sent}

        # when the first beat is killed outright
        stack.kill(first)
        killed_at = datetime.now(UTC)
        # then the second takes over within the lease, and the schedule goes on
        taken = wait_until(lambda: [at for pid, at in sent.published("blast.pace") if pid == second.pid],
                           timeout=beat.LEASE_SECONDS + 10, message="the second beat to take over")
        assert taken[0] - killed_at.timestamp() <= beat.LEASE_SECONDS + 2
        after_takeover = len(fired(stack, schedule_id)) + 2
        wait_for_campaigns(stack, schedule_id, after_takeover, timeout=20)
    stop_and_settle(stack, [schedule_id])
    # and no occurrence was fired twice, each campaign reached its recipients exactly once
    campaigns = fired(stack, schedule_id)
    assert_cron_occurrences([occurrence for _, occurrence, _, _ in campaigns])
    assert_sent_once_per_campaign(stack, [campaign_id for campaign_id, *_ in campaigns])


# ---------------------------------------------------------------- restarts


@processes
def test_a_restarted_beat_fires_no_occurrence_twice_and_one_offs_once(stack):
    # given a worker, a beat, a seconds cron and a one-off a little later
    stack.worker("w1")
    running = stack.beat("beat-1")
    cron_id = add_cron(stack)
    soon_id = add_once(stack, datetime.now(UTC) + timedelta(seconds=2))
    wait_for_campaigns(stack, soon_id, 1, timeout=30)
    wait_for_campaigns(stack, cron_id, 2, timeout=30)
    # when the beat is stopped (SIGTERM) and started again
    stack.kill(running, signal.SIGTERM)
    running = stack.beat("beat-2")
    wait_for_campaigns(stack, cron_id, len(fired(stack, cron_id)) + 2, timeout=30)
    # and killed (SIGKILL) with a one-off due while it is down, and started again
    stack.kill(running)
    while_down_id = add_once(stack, datetime.now(UTC) + timedelta(seconds=1))
    stack.beat("beat-3")
    wait_for_campaigns(stack, while_down_id, 1, timeout=beat.LEASE_SECONDS + 30)
    wait_for_campaigns(stack, cron_id, len(fired(stack, cron_id)) + 2, timeout=30)
    stop_and_settle(stack, [cron_id])
    # then no cron occurrence was fired twice, each one-off fired exactly once
    cron_campaigns = fired(stack, cron_id)
    assert_cron_occurrences([occurrence for _, occurrence, _, _ in cron_campaigns])
    assert len(fired(stack, soon_id)) == 1 and len(fired(stack, while_down_id)) == 1
    assert not any(schedule.enabled for schedule in reminders.listed(stack.engine))
    # and every campaign reached its recipients exactly once
    every_campaign = [row[0] for schedule_id in (cron_id, soon_id, while_down_id) for row in fired(stack, schedule_id)]
    assert_sent_once_per_campaign(stack, every_campaign)
