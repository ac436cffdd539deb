"""Reminder blasts: a contact file and a template launched as a new campaign on a cron (in a time zone)
or once at a given time. Each firing is claimed by a conditional UPDATE of `next_fire_at`, so two beats
never launch the same occurrence twice (and the campaign's (schedule_id, occurrence) is unique)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from campaigns.errors import BlastError, NotFound
from campaigns.models import Campaign, Schedule, utcnow


def next_fire(schedule: Schedule, after: datetime) -> datetime | None:
    """The first firing strictly after `after` (aware UTC); None when a one-off has fired."""
    if schedule.kind == "once":
        run_at = _aware(schedule.run_at)
        return run_at if run_at is not None and run_at > after else None
    zone = ZoneInfo(schedule.timezone)
    return croniter(schedule.cron, after.astimezone(zone)).get_next(datetime).astimezone(UTC)


def _aware(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def add(engine: Engine, *, name: str, account_name: str, source_file: str | Path, template: str,
        cron: str | None = None, timezone: str = "UTC", run_at: datetime | None = None,
        region: str = "UG", now: datetime | None = None) -> int:
    """A cron schedule (`cron` in `timezone`) or a one-off (`run_at`); returns its id."""
    from campaigns.lifecycle import sync_account
    from campaigns.settings import get_account

    if (cron is None) == (run_at is None):
        raise BlastError("give either a cron expression or a one-off time")
    if cron is not None and not croniter.is_valid(cron):
        raise BlastError(f"{cron!r} is not a cron expression")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise BlastError(f"{timezone!r} is not a time zone") from None
    if not Path(source_file).is_file():
        raise BlastError(f"contact file {source_file} does not exist")
    account = get_account(account_name)
    schedule = Schedule(name=name, account_name=account.name, kind="cron" if cron else "once", cron=cron,
                        timezone=timezone, run_at=_aware(run_at), source_file=str(Path(source_file).resolve()),
                        template=template, region=region)
    schedule.next_fire_at = next_fire(schedule, now or utcnow())
    if schedule.next_fire_at is None:
        raise BlastError("the one-off time is in the past")
    from sqlmodel import Session

    with Session(engine, expire_on_commit=False) as session:
        sync_account(session, account)
        session.add(schedule)
        session.commit()
        return schedule.id


def listed(engine: Engine) -> list[Schedule]:
    from sqlmodel import Session

    with Session(engine, expire_on_commit=False) as session:
        return list(session.execute(select(Schedule).order_by(Schedule.id)).scalars())


def remove(engine: Engine, schedule_id: int) -> None:
    with engine.begin() as connection:
        if not connection.execute(update(Schedule).where(Schedule.id == schedule_id)
                                  .values(enabled=False, next_fire_at=None)).rowcount:
            raise NotFound(f"no schedule with id {schedule_id}")


def fire_due(engine: Engine, *, now: datetime | None = None) -> list[int]:
    """Launch a campaign for every schedule that is due; returns the new campaigns' ids."""
    from campaigns import lifecycle

    now = now or utcnow()
    launched = []
    for schedule in listed(engine):
        due = _aware(schedule.next_fire_at)
        if not schedule.enabled or due is None or due > now:
            continue
        following = next_fire(schedule, now)
        with engine.begin() as connection:
            claimed = connection.execute(
                update(Schedule).where(Schedule.id == schedule.id, Schedule.next_fire_at == schedule.next_fire_at)
                .values(next_fire_at=following, last_fired_at=now, enabled=following is not None,
                        updated_at=now)).rowcount
        if not claimed:
            continue  # another beat fired this occurrence
        campaign_id, _ = lifecycle.launch(schedule.source_file, account_name=schedule.account_name,
                                          template=schedule.template, region=schedule.region,
                                          name=f"{schedule.name} {due:%Y-%m-%d %H:%M}")
        with engine.begin() as connection:
            connection.execute(update(Campaign).where(Campaign.id == campaign_id)
                               .values(schedule_id=schedule.id, occurrence=due.isoformat()))
        launched.append(campaign_id)
    return launched
