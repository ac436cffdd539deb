"""Reminder blasts: a contact file and a template launched as a new campaign on a cron (in a time zone),
once at a given time, or relative to a date column of the file ("24h before appointment_at").

Firing an occurrence, exactly once:
1. one transaction claims it (a conditional UPDATE of the schedule's `next_fire_at`) and creates its
   campaign as a draft with the unique (schedule_id, occurrence); a second beat loses the claim;
2. the file is ingested into that draft, which then starts.
A crash between 1 and 2 (or during 2) leaves a draft of a schedule: a later firing round, once the draft is
`RECOVER_AFTER` old, claims it again (a conditional UPDATE of its `created_at`), deletes any rows a partial
ingest left and ingests again. Nothing is lost and no occurrence becomes two campaigns.

A relative schedule re-reads its file on its `cron` (default every 15 minutes; the first read right after
`add`). Each firing is a campaign holding the rows that are new since earlier firings and due before the
next firing (plus `HORIZON_MARGIN`); each row's message carries its own `send_at` and its key
(schedule, phone, date value), unique in the database, so no firing (another beat's, a restarted beat's)
gives a recipient a second message for the same date. A firing with no new row leaves no campaign.
What happens to rows whose time has passed is in campaigns.ingest.timing.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine

from campaigns import audit
from campaigns.errors import BlastError, NotFound
from campaigns.models import Campaign, Message, Schedule, aware, utcnow
from campaigns.states import CampaignStatus

log = logging.getLogger("blast.reminders")

RELATIVE_REREAD_CRON = "*/15 * * * *"  # a relative schedule re-reads its file this often by default
HORIZON_MARGIN = timedelta(minutes=5)  # rows due this long after the next firing are written now already
RECOVER_AFTER = timedelta(minutes=5)  # a schedule's draft this old lost its ingest (a crash): redo it


def next_fire(schedule: Schedule, after: datetime) -> datetime | None:
    """The first firing strictly after `after` (aware UTC); None when a one-off has fired."""
    if schedule.kind == "once":
        run_at = aware(schedule.run_at)
        return run_at if run_at is not None and run_at > after else None
    zone = ZoneInfo(schedule.timezone)
    return croniter(schedule.cron, after.astimezone(zone)).get_next(datetime).astimezone(UTC)



def add(engine: Engine, *, name: str, account_name: str, source_file: str | Path, template: str,
        cron: str | None = None, timezone: str = "UTC", run_at: datetime | None = None,
        region: str = "UG", now: datetime | None = None, relative: str | None = None,
        quiet_hours: str | None = None, phone_column: str | None = None, media_url: str | None = None,
        options: dict | None = None) -> int:
    """A cron schedule (`cron` in `timezone`), a one-off (`run_at`) or a relative one (`relative`, e.g.
    "24h before appointment_at"; `cron` is then how often the file is re-read, default every 15 minutes,
    and `timezone` the zone of date values written without one). `quiet_hours`: "21:00-08:00" in each
    recipient's local time. `phone_column`, `media_url` and `options` (the message kind and its extras) mean
    what they mean to lifecycle.launch and are given to every firing. Returns the schedule's id."""
    from campaigns import quiet_hours as quiet
    from campaigns.lifecycle import sync_account
    from campaigns.settings import get_account

    rule = None
    if relative is not None:
        if run_at is not None:
            raise BlastError("a relative schedule takes no one-off time")
        rule = _relative_rule(relative, source_file)
        cron = cron or RELATIVE_REREAD_CRON
    elif (cron is None) == (run_at is None):
        raise BlastError("give either a cron expression, a one-off time or a relative rule")
    if cron is not None:
        _check_cron(cron)
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise BlastError(f"{timezone!r} is not a time zone") from None
    if not Path(source_file).is_file():
        raise BlastError(f"contact file {source_file} does not exist")
    if phone_column:
        phone_column = _named_column(phone_column, source_file)
    window = quiet.normalise(quiet_hours)
    account = get_account(account_name)
    kind = "relative" if rule else "cron" if cron else "once"
    schedule = Schedule(name=name, account_name=account.name, kind=kind, cron=cron, timezone=timezone,
                        run_at=aware(run_at), source_file=str(Path(source_file).resolve()), template=template,
                        region=region, quiet_hours=window, date_column=rule.date_column if rule else None,
                        offset_seconds=rule.offset_seconds if rule else None,
                        options=_stored_options(phone_column, media_url, options))
    now = now or utcnow()
    schedule.next_fire_at = now if rule else next_fire(schedule, now)
    if schedule.next_fire_at is None:
        raise BlastError("the one-off time is in the past")
    from sqlmodel import Session

    with Session(engine, expire_on_commit=False) as session:
        sync_account(session, account)
        session.add(schedule)
        session.flush()
        audit.record(session, "schedule.add", "schedule", schedule.id,
                     {"name": name, "account": account.name, "kind": kind})
        session.commit()
        return schedule.id


def _check_cron(cron: str) -> None:
    """Five fields, or six with the seconds last (croniter's order): "0 9 * * MON", "* * * * * */10"."""
    if not croniter.is_valid(cron):
        raise BlastError(f"{cron!r} is not a cron expression")
    fields = cron.split()
    if len(fields) == 6 and fields[5] == "*":
        raise BlastError(f"{cron!r}: the sixth field is the seconds and * fires every second; "
                         "give the seconds (e.g. 0) or use five fields")


def _occurrence_label(schedule: Schedule, due: datetime) -> str:
    """The occurrence in the schedule's zone, to the second when its cron has a seconds field."""
    local = due.astimezone(ZoneInfo(schedule.timezone))
    seconds = schedule.cron is not None and len(schedule.cron.split()) == 6
    return f"{local:%Y-%m-%d %H:%M:%S}" if seconds else f"{local:%Y-%m-%d %H:%M}"


def _relative_rule(phrase: str, source_file: str | Path):
    """The parsed rule, its date column checked against the file's header (a BlastError naming it)."""
    from campaigns.ingest.timing import RelativeRule, parse_relative

    rule = parse_relative(phrase)
    return RelativeRule(_named_column(rule.date_column, source_file), rule.offset_seconds)


def _named_column(wanted: str, source_file: str | Path) -> str:
    """The file's header as written for a column the user named (a BlastError listing the headers if none)."""
    from campaigns.ingest.sources import find_named_column, open_source
    from campaigns.settings import get_settings

    path = Path(source_file)
    if not path.is_file():
        raise BlastError(f"contact file {source_file} does not exist")
    source = open_source(path, max_bytes=get_settings().max_upload_bytes)
    try:
        header = source.header
    finally:
        if hasattr(source, "workbook"):
            source.workbook.close()
    return header.names[find_named_column(header.names, header.identifiers, wanted, path.name)]


def _stored_options(phone_column: str | None, media_url: str | None, options: dict | None) -> str:
    """Schedule.options: the message options (launch's `options`) under "message", and the phone column and
    media URL every firing uses."""
    stored = {"message": dict(options or {}), "phone_column": phone_column or None,
              "media_url": (media_url or "").strip() or None}
    return json.dumps(stored)


def firing_options(schedule) -> tuple[dict, str | None, str | None]:
    """(message options, phone column, media URL) a firing of `schedule` uses. A schedule stored before these
    were kept holds only message options (or none)."""
    stored = json.loads(schedule.options or "{}")
    message = stored.get("message") if "message" in stored else {
        key: value for key, value in stored.items() if key not in ("phone_column", "media_url")}
    return dict(message or {}), stored.get("phone_column"), stored.get("media_url")


def rule_text(schedule: Schedule) -> str | None:
    """A relative schedule's rule as a phrase ("1d before appointment_at"); None for other kinds."""
    from campaigns.ingest.timing import describe

    if schedule.kind != "relative":
        return None
    return describe(schedule.offset_seconds or 0, schedule.date_column or "")


def described(schedule: Schedule) -> dict:
    """A schedule as `blast schedule list --json` and the API show it."""
    _message, phone_column, media_url = firing_options(schedule)
    return {"id": schedule.id, "name": schedule.name, "account": schedule.account_name, "kind": schedule.kind,
            "cron": schedule.cron, "timezone": schedule.timezone, "enabled": schedule.enabled,
            "next_fire_at": aware(schedule.next_fire_at).isoformat() if schedule.next_fire_at else None,
            "relative": rule_text(schedule), "quiet_hours": schedule.quiet_hours,
            "phone_column": phone_column, "media_url": media_url}


def listed(engine: Engine) -> list[Schedule]:
    from sqlmodel import Session

    with Session(engine, expire_on_commit=False) as session:
        return list(session.execute(select(Schedule).order_by(Schedule.id)).scalars())


def change(engine: Engine, schedule_id: int, *, cron: str | None = None, timezone: str | None = None,
           run_at: datetime | None = None, template: str | None = None, quiet_hours: str | None = None,
           now: datetime | None = None) -> Schedule:
    """Change a schedule while beat runs; what is not given stays. The next firing is computed again from
    `now`. `quiet_hours=""` removes the window. The UPDATE is conditional on the next firing it read, so a
    firing claimed in the same moment is never fired again nor lost: the change is then retried."""
    from sqlmodel import Session

    from campaigns import quiet_hours as quiet

    now = now or utcnow()
    given = {"cron": cron, "timezone": timezone, "run_at": run_at, "template": template, "quiet_hours": quiet_hours}
    for _ in range(3):
        with Session(engine, expire_on_commit=False) as session:
            schedule = session.get(Schedule, schedule_id)
        if schedule is None or not schedule.enabled:
            raise NotFound(f"no schedule with id {schedule_id}")
        read_next = schedule.next_fire_at
        if cron is not None:
            if schedule.kind == "once":
                raise BlastError(f"schedule {schedule_id} is a one-off: change its time with --at")
            _check_cron(cron)
            schedule.cron = cron
        if run_at is not None:
            if schedule.kind != "once":
                raise BlastError(f"schedule {schedule_id} is not a one-off: change it with --cron")
            schedule.run_at = aware(run_at)
        if timezone is not None:
            try:
                ZoneInfo(timezone)
            except (ZoneInfoNotFoundError, ValueError):
                raise BlastError(f"{timezone!r} is not a time zone") from None
            schedule.timezone = timezone
        values = {"cron": schedule.cron, "run_at": schedule.run_at, "timezone": schedule.timezone, "updated_at": now}
        if template is not None:
            values["template"] = template
        if quiet_hours is not None:
            values["quiet_hours"] = quiet.normalise(quiet_hours)
        if cron is not None or run_at is not None or timezone is not None:
            values["next_fire_at"] = next_fire(schedule, now)
            if values["next_fire_at"] is None:
                raise BlastError("the one-off time is in the past")
        with engine.begin() as connection:
            changed = connection.execute(update(Schedule).where(Schedule.id == schedule_id,
                                                                Schedule.next_fire_at == read_next)
                                         .values(**values)).rowcount
            if changed:
                audit.record(connection, "schedule.change", "schedule", schedule_id,
                             {"changed": sorted(key for key, value in given.items() if value is not None)})
        if changed:
            with Session(engine, expire_on_commit=False) as session:
                return session.get(Schedule, schedule_id)
    raise BlastError(f"schedule {schedule_id} kept firing while it was being changed; try again")


def remove(engine: Engine, schedule_id: int) -> None:
    with engine.begin() as connection:
        if not connection.execute(update(Schedule).where(Schedule.id == schedule_id)
                                  .values(enabled=False, next_fire_at=None)).rowcount:
            raise NotFound(f"no schedule with id {schedule_id}")
        audit.record(connection, "schedule.remove", "schedule", schedule_id)


def fire_due(engine: Engine, *, now: datetime | None = None) -> list[int]:
    """Finish occurrences a crash interrupted, then fire every schedule that is due; returns the ids of
    the campaigns started."""
    now = now or utcnow()
    launched = [campaign_id for campaign_id in (_recover(engine, draft, now) for draft in _stale_drafts(engine, now))
                if campaign_id is not None]
    for schedule in listed(engine):
        due = aware(schedule.next_fire_at)
        if not schedule.enabled or due is None or due > now:
            continue
        campaign_id = _claim(engine, schedule, due, now)
        if campaign_id is None:
            continue  # another beat fired this occurrence
        if (started := _fill(engine, campaign_id, now)) is not None:
            launched.append(started)
    return launched


def _claim(engine: Engine, schedule: Schedule, due: datetime, now: datetime) -> int | None:
    """One transaction: move the schedule past this occurrence and create the occurrence's draft."""
    from sqlalchemy.exc import IntegrityError

    following = next_fire(schedule, now)
    message_options, _phone_column, media_url = firing_options(schedule)
    try:
        with engine.begin() as connection:
            claimed = connection.execute(
                update(Schedule).where(Schedule.id == schedule.id, Schedule.next_fire_at == schedule.next_fire_at)
                .values(next_fire_at=following, last_fired_at=now, enabled=following is not None,
                        updated_at=now)).rowcount
            if not claimed:
                return None
            return connection.execute(insert(Campaign).values(
                name=f"{schedule.name} {_occurrence_label(schedule, due)}", account_name=schedule.account_name,
                status=CampaignStatus.DRAFT, template=schedule.template, options=json.dumps(message_options),
                media_url=media_url,
                region=schedule.region.upper(), source_file=schedule.source_file, quiet_hours=schedule.quiet_hours,
                schedule_id=schedule.id, occurrence=due.isoformat(), created_at=now,
            ).returning(Campaign.id)).scalar_one()
    except IntegrityError:
        return None  # the occurrence's campaign exists: another beat claimed it


def _stale_drafts(engine: Engine, now: datetime) -> list[int]:
    with engine.connect() as connection:
        return list(connection.execute(
            select(Campaign.id).where(Campaign.schedule_id.is_not(None), Campaign.status == CampaignStatus.DRAFT,
                                      Campaign.created_at <= now - RECOVER_AFTER).order_by(Campaign.id)
        ).scalars())


def _recover(engine: Engine, campaign_id: int, now: datetime) -> int | None:
    """Take over a draft whose ingest died (a conditional UPDATE, so one taker), clear it, ingest again."""
    with engine.begin() as connection:
        taken = connection.execute(
            update(Campaign).where(Campaign.id == campaign_id, Campaign.status == CampaignStatus.DRAFT,
                                   Campaign.created_at <= now - RECOVER_AFTER).values(created_at=now)).rowcount
        if not taken:
            return None
        connection.execute(delete(Message).where(Message.campaign_id == campaign_id))
    log.warning("schedule campaign %s was left unfinished (a crash?); ingesting it again", campaign_id)
    return _fill(engine, campaign_id, now)


def _fill(engine: Engine, campaign_id: int, now: datetime) -> int | None:
    """Ingest the schedule's file into its draft and start it; None when it failed (a later round retries)
    or when a relative firing found nothing new (its draft is then deleted)."""
    from campaigns import lifecycle
    from campaigns.settings import get_account

    with engine.connect() as connection:
        campaign = connection.execute(select(Campaign).where(Campaign.id == campaign_id)).one()
        schedule = connection.execute(select(Schedule).where(Schedule.id == campaign.schedule_id)).one()
    try:
        timing = _relative_timing(engine, schedule, now) if schedule.kind == "relative" else None
        _options, phone_column, _media_url = firing_options(schedule)
        report = lifecycle.ingest_into(
            campaign_id, campaign.source_file, account=get_account(campaign.account_name),
            template=campaign.template, region=campaign.region, options=json.loads(campaign.options or "{}"),
            media_url=campaign.media_url, phone_column=phone_column,
            timing=lifecycle.quiet_timing(campaign.quiet_hours, timing))
    except Exception as error:
        log.warning("schedule %s: firing %s failed (%s: %s); a later round tries again", schedule.id,
                    campaign.occurrence, type(error).__name__, error)
        return None
    if timing is not None:
        log.info("schedule %s: %d new rows, %d done earlier, %d later, %d next time (second row of a phone)",
                 schedule.id, report.rows, timing.already, timing.later, timing.deferred)
        if report.rows == 0:
            lifecycle._delete_campaign(campaign_id)
            return None
    lifecycle.schedule_start(campaign_id)
    return campaign_id


def _relative_timing(engine: Engine, schedule, now: datetime):
    from campaigns.ingest.timing import RelativeRule, RowTiming

    with engine.connect() as connection:
        known = set(connection.execute(
            select(Message.dedupe_key).join(Campaign, Campaign.id == Message.campaign_id)
            .where(Campaign.schedule_id == schedule.id, Message.dedupe_key.is_not(None))).scalars())
    next_firing = aware(schedule.next_fire_at) or now
    return RowTiming(now=now, rule=RelativeRule(schedule.date_column, schedule.offset_seconds),
                     default_zone=schedule.timezone, until=max(next_firing, now) + HORIZON_MARGIN,
                     key_prefix=f"{schedule.id}|", known_keys=known)
