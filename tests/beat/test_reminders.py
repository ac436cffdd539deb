"""Reminder blasts: cron in a time zone and one-off, fired once per occurrence however many beats run."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from campaigns import reminders
from campaigns.errors import BlastError
from campaigns.models import Campaign
from campaigns.settings import reset_settings
from tests.support.engine import write_contacts

CONFIG = """
[accounts.ug]
provider = "socnet"
base_url = "http://127.0.0.1:9"
api_key = "k"
rate = 10
"""


@pytest.fixture
def contacts(engine, tmp_path, blast_home):
    (tmp_path / "blast.toml").write_text(CONFIG)
    reset_settings()
    path = tmp_path / "contacts.csv"
    write_contacts(path, 3)
    return path


def campaigns(engine) -> list[tuple]:
    with engine.connect() as connection:
        return connection.execute(select(Campaign.schedule_id, Campaign.occurrence, Campaign.status)).all()


def test_cron_in_a_time_zone_fires_once_per_occurrence(engine, contacts):
    start = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)  # 08:00 in Kampala (UTC+3)
    schedule_id = reminders.add(engine, name="weekly", account_name="ug", source_file=contacts,
                                template="Reminder {{ name }}", cron="0 9 * * MON",
                                timezone="Africa/Kampala", now=start)
    [schedule] = reminders.listed(engine)
    assert schedule.next_fire_at.replace(tzinfo=UTC) == datetime(2026, 3, 2, 6, 0, tzinfo=UTC)

    # when two beats look at the same moment after it is due
    due = datetime(2026, 3, 2, 6, 0, 30, tzinfo=UTC)
    first = reminders.fire_due(engine, now=due)
    second = reminders.fire_due(engine, now=due)
    assert len(first) == 1 and second == []
    assert [(row.schedule_id, row.status) for row in campaigns(engine)] == [(schedule_id, "running")]
    [schedule] = reminders.listed(engine)
    assert schedule.next_fire_at.replace(tzinfo=UTC) == datetime(2026, 3, 9, 6, 0, tzinfo=UTC)


def test_campaigns_are_named_after_the_occurrence_in_the_schedules_zone(engine, contacts):
    # given a cron with a seconds field in Kampala (UTC+3)
    start = datetime(2026, 3, 2, 5, 59, 50, tzinfo=UTC)
    reminders.add(engine, name="pulse", account_name="ug", source_file=contacts, template="Hi {{ name }}",
                  cron="* * * * * */20", timezone="Africa/Kampala", now=start)
    # when two occurrences of the same minute fire
    reminders.fire_due(engine, now=datetime(2026, 3, 2, 6, 0, 1, tzinfo=UTC))
    reminders.fire_due(engine, now=datetime(2026, 3, 2, 6, 0, 21, tzinfo=UTC))
    # then each campaign's name tells its own local occurrence, to the second
    with engine.connect() as connection:
        names = connection.execute(select(Campaign.name).order_by(Campaign.id)).scalars().all()
    assert names == ["pulse 2026-03-02 09:00:00", "pulse 2026-03-02 09:00:20"]


def test_one_off_fires_once_then_stops(engine, contacts):
    now = datetime.now(UTC)
    reminders.add(engine, name="once", account_name="ug", source_file=contacts, template="Hi",
                  run_at=now + timedelta(minutes=5), now=now)
    assert reminders.fire_due(engine, now=now) == []
    assert len(reminders.fire_due(engine, now=now + timedelta(minutes=6))) == 1
    assert reminders.fire_due(engine, now=now + timedelta(days=1)) == []
    [schedule] = reminders.listed(engine)
    assert not schedule.enabled


@pytest.mark.parametrize("fields", [{"cron": "not a cron"}, {"cron": "* * * * *", "timezone": "Mars/Base"},
                                    {"cron": "*/2 * * * * *"},  # sixth field = seconds: every second
                                    {}, {"run_at": datetime(2000, 1, 1, tzinfo=UTC)}])
def test_bad_schedules_are_refused(engine, contacts, fields):
    with pytest.raises(BlastError):
        reminders.add(engine, name="bad", account_name="ug", source_file=contacts, template="Hi", **fields)


def test_schedule_cli_add_list_remove(engine, contacts):
    from campaigns.cli import app

    runner = CliRunner()
    added = runner.invoke(app, ["schedule", "add", str(contacts), "--account", "ug", "--template", "Hi",
                                "--cron", "*/5 * * * *", "--timezone", "Africa/Kampala"])
    assert added.exit_code == 0, added.output
    schedule_id = int(added.output.strip())
    [row] = json.loads(runner.invoke(app, ["schedule", "list", "--json"]).output)
    assert (row["id"], row["cron"], row["enabled"]) == (schedule_id, "*/5 * * * *", True)
    assert runner.invoke(app, ["schedule", "remove", str(schedule_id)]).exit_code == 0
    [row] = json.loads(runner.invoke(app, ["schedule", "list", "--json"]).output)
    assert row["enabled"] is False and row["next_fire_at"] is None


class Crash(BaseException):
    """The process dying: nothing below it catches this."""


def messages_of(engine, campaign_id: int) -> list[str]:
    from campaigns.models import Message

    with engine.connect() as connection:
        return sorted(connection.execute(select(Message.phone).where(Message.campaign_id == campaign_id)).scalars())


def test_a_crash_between_claim_and_ingest_loses_nothing_and_sends_nothing_twice(engine, contacts, monkeypatch):
    from campaigns import lifecycle

    # given a cron schedule that is due
    start = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)
    reminders.add(engine, name="weekly", account_name="ug", source_file=contacts, template="Hi {{ name }}",
                  cron="0 9 * * MON", timezone="Africa/Kampala", now=start)
    due = datetime(2026, 3, 2, 6, 0, 30, tzinfo=UTC)

    # when the process dies right after claiming the occurrence, before ingesting
    def crash(*args, **kwargs):
        raise Crash()

    monkeypatch.setattr(lifecycle, "ingest_into", crash)
    with pytest.raises(Crash):
        reminders.fire_due(engine, now=due)
    monkeypatch.undo()
    # then the claim left the occurrence's campaign as a draft, and the schedule moved on
    [(schedule_id, occurrence, status)] = campaigns(engine)
    assert status == "draft" and occurrence == datetime(2026, 3, 2, 6, 0, tzinfo=UTC).isoformat()
    # when another round comes while the draft might still be ingesting elsewhere, then it waits
    assert reminders.fire_due(engine, now=due + timedelta(minutes=1)) == []
    # when a round comes after the draft is stale
    [campaign_id] = reminders.fire_due(engine, now=due + reminders.RECOVER_AFTER + timedelta(seconds=1))
    # then that same occurrence is ingested and running, once; later rounds add nothing
    assert campaigns(engine) == [(schedule_id, occurrence, "running")]
    assert len(messages_of(engine, campaign_id)) == 3
    assert reminders.fire_due(engine, now=due + timedelta(hours=1)) == []
    assert len(campaigns(engine)) == 1


def test_a_crash_in_the_middle_of_an_ingest_is_redone_without_duplicates(engine, contacts, monkeypatch):
    from campaigns.ingest import writers as ingest

    # given a one-off schedule and an ingest writing one row per chunk
    monkeypatch.setenv("BLAST_INGEST_CHUNK_ROWS", "1")
    reset_settings()
    now = datetime.now(UTC)
    reminders.add(engine, name="once", account_name="ug", source_file=contacts, template="Hi",
                  run_at=now + timedelta(minutes=1), now=now)
    real_writer = ingest.writer_for

    class DiesOnSecondChunk:
        def __init__(self, *args, **kwargs):
            self.inner, self.chunks = real_writer(*args, **kwargs), 0

        def __enter__(self):
            self.inner.__enter__()
            return self

        def write(self, *args):
            self.chunks += 1
            if self.chunks == 2:
                raise Crash()
            self.inner.write(*args)

        def __exit__(self, *exc_info):
            return self.inner.__exit__(*exc_info)

    # when the process dies after the first chunk
    monkeypatch.setattr(ingest, "writer_for", DiesOnSecondChunk)
    with pytest.raises(Crash):
        reminders.fire_due(engine, now=now + timedelta(minutes=2))
    monkeypatch.setattr(ingest, "writer_for", real_writer)
    [(_, _, status)] = campaigns(engine)
    assert status == "draft"
    # then a later round redoes the occurrence: every recipient exactly once
    [campaign_id] = reminders.fire_due(engine, now=now + timedelta(minutes=2) + reminders.RECOVER_AFTER)
    phones = messages_of(engine, campaign_id)
    assert len(phones) == 3 and len(set(phones)) == 3
    assert [status for _, _, status in campaigns(engine)] == ["running"]


def write_two_phone_columns(path) -> tuple[list[str], list[str]]:
    """A list whose detected phone column ("phone") is not the one to send to ("Office Phone")."""
    home = ["+256770000101", "+256770000102"]
    office = ["+256780000201", "+256780000202"]
    path.write_text("name,phone,Office Phone\n" + "".join(
        f"P{i},{home[i]},{office[i]}\n" for i in range(2)), encoding="utf-8")
    return home, office


def test_a_mapped_phone_column_and_media_go_to_every_firing(engine, contacts, tmp_path):
    from campaigns.models import Message

    # given a schedule reading the numbers from a column that is not the detected one, with a media file
    path = tmp_path / "offices.csv"
    home, office = write_two_phone_columns(path)
    start = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)
    reminders.add(engine, name="offices", account_name="ug", source_file=path, template="Hi {{ name }}",
                  cron="0 9 * * *", timezone="Africa/Kampala", now=start, phone_column="office phone",
                  media_url="https://example.com/flyer.jpg")
    # when two occurrences fire
    first = reminders.fire_due(engine, now=datetime(2026, 3, 2, 6, 0, tzinfo=UTC))
    second = reminders.fire_due(engine, now=datetime(2026, 3, 3, 6, 0, tzinfo=UTC))
    # then each campaign carries the media and its messages went to the mapped numbers only
    assert len(first) == len(second) == 1
    with engine.connect() as connection:
        rows = connection.execute(select(Campaign.id, Campaign.media_url, Campaign.options)).all()
        for campaign_id, media_url, options in rows:
            assert (media_url, json.loads(options)) == ("https://example.com/flyer.jpg", {})
            phones = connection.execute(select(Message.phone).where(Message.campaign_id == campaign_id,
                                                                    Message.state != "skipped")).scalars()
            assert sorted(phones) == office
    assert len(rows) == 2 and not set(home) & set(office)


def test_message_options_are_kept_and_a_missing_phone_column_is_named(engine, contacts, tmp_path):
    # given a schedule with buttons (launch's options)
    buttons = {"kind": "buttons", "buttons": ["Yes", "No"], "footer": "Reply"}
    start = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)
    reminders.add(engine, name="ask", account_name="ug", source_file=contacts, template="Coming?",
                  cron="0 9 * * *", now=start, options=buttons)
    # when it fires, then its campaign has those options and no media
    [campaign_id] = reminders.fire_due(engine, now=datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    with engine.connect() as connection:
        options, media_url = connection.execute(select(Campaign.options, Campaign.media_url)
                                                .where(Campaign.id == campaign_id)).one()
    assert (json.loads(options), media_url) == (buttons, None)
    # when a phone column the file lacks is named, then the schedule is refused with the headers listed
    with pytest.raises(BlastError, match=r"no column 'Office' \(headers: name, phone\)"):
        reminders.add(engine, name="bad", account_name="ug", source_file=contacts, template="Hi",
                      cron="0 9 * * *", phone_column="Office")


def test_schedule_cli_takes_a_phone_column_and_a_media_url(engine, contacts, tmp_path):
    from campaigns.cli import app

    path = tmp_path / "offices.csv"
    write_two_phone_columns(path)
    runner = CliRunner()
    added = runner.invoke(app, ["schedule", "add", str(path), "--account", "ug", "--template", "Hi",
                                "--cron", "0 9 * * *", "--phone-column", "Office Phone",
                                "--media-url", "https://example.com/flyer.jpg"])
    assert added.exit_code == 0, added.output
    [row] = json.loads(runner.invoke(app, ["schedule", "list", "--json"]).output)
    assert (row["phone_column"], row["media_url"]) == ("Office Phone", "https://example.com/flyer.jpg")



def test_a_schedule_changed_while_beat_runs_fires_at_its_new_time_with_its_new_template(engine, contacts):
    # given a daily 09:00 blast in Kampala (06:00 UTC)
    start = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)
    schedule_id = reminders.add(engine, name="daily", account_name="ug", source_file=contacts,
                                template="Old {{ name }}", cron="0 9 * * *", timezone="Africa/Kampala", now=start)
    # when it is moved to 10:00 with a new template and quiet hours, before it fires
    changed = reminders.change(engine, schedule_id, cron="0 10 * * *", template="New {{ name }}",
                               quiet_hours="21:00-08:00", now=start)
    assert changed.next_fire_at.replace(tzinfo=UTC) == datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
    # then nothing fires at the old time, and the new time fires once with the new template and window
    assert reminders.fire_due(engine, now=datetime(2026, 3, 2, 6, 0, 30, tzinfo=UTC)) == []
    assert len(reminders.fire_due(engine, now=datetime(2026, 3, 2, 7, 0, 30, tzinfo=UTC))) == 1
    assert reminders.fire_due(engine, now=datetime(2026, 3, 2, 7, 0, 31, tzinfo=UTC)) == []
    with engine.connect() as connection:
        [(template, window)] = connection.execute(select(Campaign.template, Campaign.quiet_hours)).all()
    assert (template, window) == ("New {{ name }}", "21:00-08:00")


@pytest.mark.parametrize(("fields", "problem"), [({"run_at": datetime(2030, 1, 1, tzinfo=UTC)}, "not a one-off"),
                                                 ({"cron": "nope"}, "not a cron expression"),
                                                 ({"timezone": "Mars/Base"}, "not a time zone"),
                                                 ({"quiet_hours": "late"}, "")])
def test_bad_changes_are_refused_and_change_nothing(engine, contacts, fields, problem):
    start = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)
    schedule_id = reminders.add(engine, name="daily", account_name="ug", source_file=contacts, template="Hi",
                                cron="0 9 * * *", now=start)
    with pytest.raises(BlastError, match=problem):
        reminders.change(engine, schedule_id, now=start, **fields)
    [schedule] = reminders.listed(engine)
    assert (schedule.cron, schedule.timezone, schedule.quiet_hours) == ("0 9 * * *", "UTC", None)


def test_schedule_cli_change(engine, contacts):
    from campaigns.cli import app

    runner = CliRunner()
    added = runner.invoke(app, ["schedule", "add", str(contacts), "--account", "ug", "--template", "Hi",
                                "--at", "2099-01-01T09:00:00+00:00"])
    assert added.exit_code == 0, added.output
    schedule_id = added.output.strip()
    result = runner.invoke(app, ["schedule", "change", schedule_id, "--at", "2099-01-02T09:00:00+00:00"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().startswith("2099-01-02T09:00:00")
    missing = runner.invoke(app, ["schedule", "change", "999", "--cron", "0 9 * * *"])
    assert missing.exit_code != 0 and "no schedule with id 999" in str(missing.exception)
