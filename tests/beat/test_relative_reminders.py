"""Relative reminder blasts: "24h before appointment_at" gives each row its own send time; a re-read of the
file adds only new rows; the (schedule, phone, date value) key is unique in the database."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from campaigns import reminders
from campaigns.errors import BlastError
from campaigns.ingest.timing import REMINDER_PASSED, parse_relative
from campaigns.models import Campaign, Message, Schedule
from campaigns.settings import reset_settings
from tests.support.engine import write_config
from tests.support.waiting import wait_until

CONFIG = """
[accounts.ug]
provider = "socnet"
base_url = "http://127.0.0.1:9"
api_key = "k"
rate = 10
"""
NOW = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)  # far ahead of the real clock: nothing here is due for real
HEADER = ["name", "phone", "appointment_at", "timezone"]


def write_rows(path: Path, rows: list[list[str]], *, append: bool = False) -> None:
    with path.open("a" if append else "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        if not append:
            writer.writerow(HEADER)
        writer.writerows(rows)


@pytest.fixture
def account(engine, tmp_path, blast_home):
    (tmp_path / "blast.toml").write_text(CONFIG)
    reset_settings()


def messages(engine, campaign_id: int) -> dict[int, tuple]:
    """row_number -> (state, send_at, skip_reason) of one campaign."""
    with engine.connect() as connection:
        rows = connection.execute(select(Message.row_number, Message.state, Message.send_at, Message.skip_reason)
                                  .where(Message.campaign_id == campaign_id)).all()
    return {row.row_number: (row.state, row.send_at, row.skip_reason) for row in rows}


def schedule_campaigns(engine) -> list[int]:
    with engine.connect() as connection:
        return list(connection.execute(select(Campaign.id).where(Campaign.schedule_id.is_not(None))
                                       .order_by(Campaign.id)).scalars())


@pytest.mark.parametrize(("phrase", "offset", "column"), [
    ("24h before appointment_at", -86400, "appointment_at"),
    ("2h after visit", 7200, "visit"),
    ("30m before Start Time", -1800, "Start Time"),
    ("1d before due", -86400, "due"),
    ("1 day 12 hours before due", -129600, "due"),
    ("90 minutes after visit", 5400, "visit"),
    ("at appointment_at", 0, "appointment_at"),
])
def test_relative_phrases_parse(phrase, offset, column):
    rule = parse_relative(phrase)
    assert (rule.offset_seconds, rule.date_column) == (offset, column)
    assert parse_relative(rule.text) == rule  # the listed form reads back the same


@pytest.mark.parametrize(("phrase", "problem"), [
    ("24x before appointment_at", "unknown unit 'x'"),
    ("before appointment_at", "write it as AMOUNT UNIT before|after COLUMN"),
    ("24h around appointment_at", "write it as"),
    ("24h before", "write it as"),
])
def test_bad_phrases_name_the_problem(phrase, problem):
    with pytest.raises(BlastError, match=problem):
        parse_relative(phrase)


def test_a_date_column_missing_from_the_file_is_named(account, engine, tmp_path):
    # given a file without the column the rule names
    write_rows(tmp_path / "visits.csv", [["A", "+256770000001", "2030-03-02 09:00", ""]])
    # when the schedule is added, then the error names the column and lists the headers
    with pytest.raises(BlastError, match=r"no column 'appointment' \(headers: name, phone, appointment_at"):
        reminders.add(engine, name="r", account_name="ug", source_file=tmp_path / "visits.csv", template="Hi",
                      relative="24h before appointment", now=NOW)


def test_each_row_gets_its_own_send_time_zone_and_reject_reason(account, engine, tmp_path):
    # given rows with naive dates (schedule zone Kampala, UTC+3), an offset, a row zone, bad values, past ones
    path = tmp_path / "visits.csv"
    write_rows(path, [
        ["naive", "+256770000001", "2030-03-02 15:10", ""],  # 12:10Z tomorrow
        ["offset", "+256770000002", "2030-03-02T12:05:00+00:00", ""],
        ["row zone", "+256770000003", "2030-03-02 12:15", "Europe/London"],  # UTC+0 in March
        ["bad date", "+256770000004", "next tuesday", ""],
        ["no date", "+256770000005", "", ""],
        ["bad zone", "+256770000006", "2030-03-02 12:00", "Mars/Base"],
        ["event ahead, time passed", "+256770000007", "2030-03-01 17:00", ""],  # 14:00Z today
        ["event passed", "+256770000008", "2030-03-01 14:00", ""],  # 11:00Z today
        ["not yet", "+256770000009", "2030-03-09 10:00", ""],
        ["date only", "+256770000010", "2030-03-02", ""],  # midnight Kampala = 21:00Z today
    ])
    reminders.add(engine, name="visits", account_name="ug", source_file=path, template="Hi {{ name }}",
                  relative="24h before appointment_at", timezone="Africa/Kampala", now=NOW)
    # when the schedule fires
    [campaign_id] = reminders.fire_due(engine, now=NOW)
    # then each row's send time is its date minus 24 hours, in its zone, and rejects say why, by row (as the
    # spreadsheet shows it: the header is row 1)
    rows = messages(engine, campaign_id)
    due = {row: send_at.astimezone(UTC) for row, (state, send_at, _) in rows.items() if state != "skipped"}
    assert due == {2: datetime(2030, 3, 1, 12, 10, tzinfo=UTC), 3: datetime(2030, 3, 1, 12, 5, tzinfo=UTC),
                   4: datetime(2030, 3, 1, 12, 15, tzinfo=UTC), 8: datetime(2030, 2, 28, 14, 0, tzinfo=UTC),
                   11: datetime(2030, 2, 28, 21, 0, tzinfo=UTC)}
    skipped = {row: reason for row, (state, _, reason) in rows.items() if state == "skipped"}
    assert skipped == {5: "bad date 'next tuesday' in appointment_at", 6: "no date in appointment_at",
                       7: "invalid time zone 'Mars/Base'", 9: REMINDER_PASSED}
    assert 10 not in rows  # due after the next firing: a later firing writes it


def test_a_reread_adds_only_new_rows_and_a_firing_with_nothing_new_leaves_no_campaign(account, engine, tmp_path):
    # given a relative schedule that fired once
    path = tmp_path / "visits.csv"
    write_rows(path, [["A", "+256770000001", "2030-03-02T12:10:00Z", ""],
                      ["bad", "+256770000002", "soon", ""]])
    schedule_id = reminders.add(engine, name="visits", account_name="ug", source_file=path, template="Hi",
                                relative="24h before appointment_at", now=NOW)
    [first] = reminders.fire_due(engine, now=NOW)
    [schedule] = reminders.listed(engine)
    assert schedule.next_fire_at.astimezone(UTC) == NOW + timedelta(minutes=15)
    # when rows are added (one a new date for a phone already reminded) and the next firing comes
    write_rows(path, [["B", "+256770000003", "2030-03-02T12:25:00Z", ""],
                      ["A again", "+256770000001", "2030-03-02T12:28:00Z", ""]], append=True)
    [second] = reminders.fire_due(engine, now=NOW + timedelta(minutes=15))
    # then only the new rows are in the new campaign; the reject is not reported twice
    assert set(messages(engine, first)) == {2, 3}
    assert {row: state for row, (state, _, _) in messages(engine, second).items()} == {4: "pending", 5: "pending"}
    # when a firing finds nothing new, then it leaves no campaign behind
    assert reminders.fire_due(engine, now=NOW + timedelta(minutes=30)) == []
    assert schedule_campaigns(engine) == [first, second]
    with engine.connect() as connection:
        keys = connection.execute(select(Message.dedupe_key).where(Message.dedupe_key.is_not(None))).scalars().all()
    assert len(keys) == len(set(keys)) == 4 and all(key.startswith(f"{schedule_id}|") for key in keys)


def test_the_database_refuses_a_second_message_for_the_same_key(account, engine, tmp_path, monkeypatch):
    # given a relative schedule that fired once
    path = tmp_path / "visits.csv"
    write_rows(path, [["A", "+256770000001", "2030-03-02T12:10:00Z", ""]])
    reminders.add(engine, name="visits", account_name="ug", source_file=path, template="Hi",
                  relative="24h before appointment_at", now=NOW)
    [first] = reminders.fire_due(engine, now=NOW)
    # when a second firing races it, blind to the keys the first one wrote (another beat, a stale read)
    real = reminders._relative_timing

    def blind(*args, **kwargs):
        timing = real(*args, **kwargs)
        timing.known_keys.clear()
        return timing

    monkeypatch.setattr(reminders, "_relative_timing", blind)
    later = NOW + timedelta(minutes=15)
    assert reminders.fire_due(engine, now=later) == []
    # then the unique key refused the row: still one message for that (schedule, phone, date)
    with engine.connect() as connection:
        count = connection.execute(select(func.count()).select_from(Message)
                                   .where(Message.phone == "+256770000001", Message.state != "skipped")).scalar()
    assert count == 1
    # when a later round takes over the unfinished firing with the keys in view
    monkeypatch.setattr(reminders, "_relative_timing", real)
    assert reminders.fire_due(engine, now=later + reminders.RECOVER_AFTER) == []
    # then it found nothing new and left no campaign behind
    assert schedule_campaigns(engine) == [first]


def test_schedule_cli_adds_and_lists_a_relative_rule(account, engine, tmp_path):
    path = tmp_path / "visits.csv"
    write_rows(path, [["A", "+256770000001", "2030-03-02T12:10:00Z", ""]])
    runner = CliRunner()
    from campaigns.cli import app

    added = runner.invoke(app, ["schedule", "add", str(path), "--account", "ug", "--template", "Hi",
                                "--relative", "24h before appointment_at", "--quiet-hours", "21:00-08:00",
                                "--timezone", "Africa/Kampala"])
    assert added.exit_code == 0, added.output
    [row] = json.loads(runner.invoke(app, ["schedule", "list", "--json"]).output)
    assert (row["kind"], row["relative"], row["cron"], row["quiet_hours"]) == (
        "relative", "1d before appointment_at", reminders.RELATIVE_REREAD_CRON, "21:00-08:00")
    listed = runner.invoke(app, ["schedule", "list"]).output
    assert "relative 1d before appointment_at, re-read */15 * * * *" in listed
    bad = runner.invoke(app, ["schedule", "add", str(path), "--account", "ug", "--template", "Hi",
                              "--relative", "24 parsecs before appointment_at"])
    assert isinstance(bad.exception, BlastError) and "unknown unit 'parsecs'" in str(bad.exception)


# ---------------------------------------------------------------- end to end, with a worker and the sandbox


def test_relative_reminders_are_each_sent_at_their_time_and_once(blast_home, tmp_path, sandbox):
    from campaigns.db import get_engine, migrate
    from workers.embedded import EmbeddedWorker

    # given the embedded default and a sandbox account, with a worker running
    write_config(tmp_path / "blast.toml", sandbox, {"clinic": {"provider": "socnet", "rate": 50}})
    reset_settings()
    migrate()
    engine = get_engine()
    phones = [f"+25677000010{i}" for i in range(3)]
    path = tmp_path / "visits.csv"
    with EmbeddedWorker(concurrency=4):
        # and three appointments 24h + 3 s, 6 s, 9 s from now (counted once the worker has started)
        start = datetime.now(UTC)
        write_rows(path, [[f"P{i}", phone, (start + timedelta(days=1, seconds=3 * (i + 1))).isoformat(), ""]
                          for i, phone in enumerate(phones)])
        reminders.add(engine, name="visits", account_name="clinic", source_file=path,
                      template="See you tomorrow {{ name }}", relative="24h before appointment_at")
        # when the schedule fires
        [campaign_id] = reminders.fire_due(engine)
        wait_until(lambda: sandbox.account_stats("socnet").get("accepted", 0) >= 3, timeout=60,
                   message="three reminders at the gateway")
    # then each was queued no earlier than its own send time, and the gateway saw each recipient once
    with engine.connect() as connection:
        rows = connection.execute(select(Message.phone, Message.send_at, Message.queued_at, Message.state)
                                  .where(Message.campaign_id == campaign_id).order_by(Message.send_at)).all()
    assert [row.phone for row in rows] == phones
    for row in rows:
        assert row.state == "submitted"
        assert row.queued_at >= row.send_at, f"{row.phone} queued {row.queued_at} before its time {row.send_at}"
    assert rows[2].queued_at - rows[0].queued_at >= timedelta(seconds=5)  # not all at once
    assert sandbox.account_stats("socnet")["accepted_per_recipient"] == dict.fromkeys(phones, 1)
    # when the schedule fires again (the next re-read), then nobody gets a second message
    with engine.begin() as connection:
        connection.execute(update(Schedule).values(next_fire_at=datetime.now(UTC)))
    assert reminders.fire_due(engine) == []
    assert sandbox.account_stats("socnet")["accepted_per_recipient"] == dict.fromkeys(phones, 1)
