"""Quiet hours: a message due inside its recipient's local window waits (pending, send_at at the window's
end) and never fails for it; recipients outside the window are sent."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from campaigns import lifecycle, quiet_hours, tallies
from campaigns.errors import BlastError
from campaigns.models import Campaign, Message
from campaigns.settings import reset_settings
from tests.support.engine import write_config
from tests.support.waiting import wait_until

KAMPALA, TOKYO = "Africa/Kampala", "Asia/Tokyo"  # UTC+3 and UTC+9, neither with daylight saving
UG_PHONE, JP_PHONE = "+256770000001", "+819012345678"


def window_around_now_in(zone: str) -> str:
    """A two-hour window holding the current time of `zone` (six hours from Tokyo's, seen from Kampala)."""
    local = datetime.now(ZoneInfo(zone)).replace(second=0, microsecond=0)
    return f"{local - timedelta(hours=1):%H:%M}-{local + timedelta(hours=1):%H:%M}"


def expected_end(window: str, zone: str, now: datetime) -> datetime:
    """The window's end after `now`, computed apart from the code under test."""
    end = time.fromisoformat(window.split("-")[1])
    local = now.astimezone(ZoneInfo(zone))
    candidate = datetime.combine(local.date(), end, tzinfo=ZoneInfo(zone))
    if candidate <= local:
        candidate += timedelta(days=1)
    return candidate.astimezone(UTC)


def write_people(path: Path, rows: list[list[str]], header=("name", "phone", "tz")) -> None:
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        writer.writerows(rows)


@pytest.mark.parametrize(("text", "stored"), [("21:00-08:00", "21:00-08:00"), ("9:30 - 12:00", "09:30-12:00"),
                                              ("22:00\u201306:00", "22:00-06:00")])
def test_windows_parse(text, stored):
    assert quiet_hours.normalise(text) == stored


@pytest.mark.parametrize(("text", "problem"), [("9pm-8am", "HH:MM-HH:MM"), ("25:00-08:00", "not a time of day"),
                                               ("08:00-08:00", "same time")])
def test_bad_windows_name_the_problem(text, problem):
    with pytest.raises(BlastError, match=problem):
        quiet_hours.parse_window(text)


@pytest.mark.parametrize(("window", "local", "waits_until"), [
    ("21:00-08:00", "22:30", "tomorrow 08:00"),  # evening part of a window crossing midnight
    ("21:00-08:00", "03:00", "today 08:00"),  # morning part
    ("21:00-08:00", "08:00", None),  # the end is outside
    ("21:00-08:00", "20:59", None),
    ("12:00-14:00", "12:00", "today 14:00"),  # a window within one day; its start is inside
    ("12:00-14:00", "14:30", None),
])
def test_a_message_inside_the_window_waits_for_its_end_in_the_recipients_zone(window, local, waits_until):
    zone = ZoneInfo(KAMPALA)
    at = datetime.combine(datetime(2030, 3, 1).date(), time.fromisoformat(local), tzinfo=zone)
    result = quiet_hours.parse_window(window).wait_until(KAMPALA, at)
    if waits_until is None:
        assert result is None
    else:
        day, clock = waits_until.split()
        expected = datetime.combine(at.date() + timedelta(days=1 if day == "tomorrow" else 0),
                                    time.fromisoformat(clock), tzinfo=zone)
        assert result == expected.astimezone(UTC)


def test_zones_come_from_the_phone_numbers_country():
    assert quiet_hours.zone_for_phone(UG_PHONE) == KAMPALA
    assert quiet_hours.zone_for_phone(JP_PHONE) == TOKYO
    assert quiet_hours.zone_for_phone("+12025550123") == "America/New_York"  # several zones: by area code


def test_the_pacer_holds_recipients_inside_their_window_and_queues_the_others(engine, tmp_path, sandbox):
    from workers import pacer

    # given a campaign with quiet hours around Kampala's current time, and a Ugandan, a Japanese, a Ugandan
    # number whose row says Tokyo, and a row with a zone that does not exist
    write_config(tmp_path / "blast.toml", sandbox, {"acct": {"provider": "socnet", "rate": 50}})
    reset_settings()
    window = window_around_now_in(KAMPALA)
    write_people(tmp_path / "people.csv", [["ug", UG_PHONE, ""], ["jp", JP_PHONE, ""],
                                           ["ug in tokyo", "+256770000002", TOKYO], ["bad", "+256770000003", "Mars"]])
    campaign_id, report = lifecycle.launch(tmp_path / "people.csv", account_name="acct", template="Hi {{ name }}",
                                           quiet_hours=window, start=False)
    assert report["reasons"] == {"invalid time zone 'Mars'": 1}
    with engine.begin() as connection:
        connection.execute(update(Campaign).where(Campaign.id == campaign_id).values(status="running"))
    # when the pacer runs a round
    published: list[int] = []
    now = datetime.now(UTC)
    pacer.pace(publish=lambda _campaign, ids: published.extend(ids), engine=engine)
    # then the recipients in Tokyo are queued and the one in Kampala waits for the window's end there
    with engine.connect() as connection:
        rows = {row.phone: row for row in connection.execute(
            select(Message.id, Message.phone, Message.state, Message.send_at, Message.timezone)
            .where(Message.campaign_id == campaign_id))}
    assert {phone: row.timezone for phone, row in rows.items() if row.state != "skipped"} == {
        UG_PHONE: KAMPALA, JP_PHONE: TOKYO, "+256770000002": TOKYO}
    assert sorted(published) == sorted([rows[JP_PHONE].id, rows["+256770000002"].id])
    assert rows[UG_PHONE].state == "pending"
    assert abs(rows[UG_PHONE].send_at - expected_end(window, KAMPALA, now)) < timedelta(minutes=1)
    # when the pacer runs again, then the waiting one is not picked again
    published.clear()
    pacer.pace(publish=lambda _campaign, ids: published.extend(ids), engine=engine)
    assert published == []


def test_a_recipient_inside_quiet_hours_waits_while_one_outside_is_sent(blast_home, tmp_path, sandbox):
    from campaigns.db import get_engine, migrate
    from workers.embedded import EmbeddedWorker

    # given the embedded default, an account on an international gateway, and quiet hours around
    # Kampala's current time (Tokyo is 6 hours on)
    write_config(tmp_path / "blast.toml", sandbox, {"acct": {"provider": "httpapi", "rate": 50}})
    reset_settings()
    migrate()
    window = window_around_now_in(KAMPALA)
    write_people(tmp_path / "people.csv", [["ug", UG_PHONE], ["jp", JP_PHONE]], header=("name", "phone"))
    # when a campaign to a Ugandan and a Japanese number runs
    with EmbeddedWorker(concurrency=2):
        now = datetime.now(UTC)
        campaign_id, _ = lifecycle.launch(tmp_path / "people.csv", account_name="acct", template="Hi {{ name }}",
                                          quiet_hours=window)
        wait_until(lambda: tallies.campaign_report(campaign_id)["counts"]["submitted"] == 1, timeout=30,
                   message="the recipient outside quiet hours to be sent")
        wait_until(lambda: _send_at(campaign_id, UG_PHONE) is not None, timeout=10,
                   message="the recipient inside quiet hours to get a send time")
    # then the Japanese recipient was sent; the Ugandan one waits, pending, until the window's end in Kampala
    report = tallies.campaign_report(campaign_id)
    assert report["status"] == "running"
    assert report["counts"]["pending"] == 1 and report["counts"]["failed"] == 0
    assert sandbox.account_stats("httpapi")["accepted_per_recipient"] == {JP_PHONE: 1}
    with get_engine().connect() as connection:
        state = connection.execute(select(Message.state).where(Message.phone == UG_PHONE)).scalar_one()
    assert state == "pending"
    assert abs(_send_at(campaign_id, UG_PHONE) - expected_end(window, KAMPALA, now)) < timedelta(minutes=1)


def _send_at(campaign_id: int, phone: str) -> datetime | None:
    from campaigns.db import get_engine

    with get_engine().connect() as connection:
        return connection.execute(select(Message.send_at).where(Message.campaign_id == campaign_id,
                                                                Message.phone == phone)).scalar_one()
