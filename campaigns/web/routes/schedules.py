"""Launching an upload as a reminder blast, and the schedules page."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse

from campaigns import reminders
from campaigns.db import get_engine
from campaigns.errors import BlastError, NotFound
from campaigns.settings import ConfigError, get_account
from campaigns.web import compose, uploads
from campaigns.web.compose import compose_values
from campaigns.web.rendering import SCHEDULE_FLASH, Operator, User, compose_url, page, posted_form

router = APIRouter()


def _run_at(text: str, timezone: str) -> datetime | None:
    """A one-off time: ISO 8601; without an offset it is read in `timezone`."""
    if not text.strip():
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
        zone = ZoneInfo(timezone or "UTC")
    except ValueError:
        raise BlastError(f"{text!r} is not a time (use ISO 8601, e.g. 2026-12-01T09:00)") from None
    except ZoneInfoNotFoundError:
        raise BlastError(f"{timezone!r} is not a time zone") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def _relative_phrase(rule: str, date_column: str) -> str | None:
    """The schedule form's relative rule: as typed ("24h before appointment_at"), or its amount and direction
    ("24h before") completed with the date column picked from the file's columns; None when not relative."""
    from campaigns.ingest.timing import parse_relative

    rule, date_column = rule.strip(), date_column.strip()
    if not rule:
        if date_column:
            raise BlastError(f"a relative schedule needs its rule, e.g. 24h before {date_column}")
        return None
    if not date_column:
        return rule
    try:
        named = parse_relative(rule).date_column
    except BlastError:
        return f"{rule} {date_column}"
    if named != date_column:
        raise BlastError(f"the rule names the date column {named!r} but {date_column!r} is picked; "
                         f"write the rule without a column (e.g. 24h before) or pick {named!r}")
    return rule


def _add_schedule(token: str, values: dict[str, str], form: dict[str, str]) -> int:
    upload = uploads.find_upload(token)
    account = get_account(values["account"])
    if not values["template"]:
        raise BlastError("write the template first")
    extras = compose.extras_from_form(values, account.provider, account)
    if extras.kind != compose.TEXT:
        compose.check_with_gateway(account, extras, None)
    timezone = (form.get("schedule_timezone") or "UTC").strip()
    cron = (form.get("schedule_cron") or "").strip() or None
    name = (form.get("schedule_name") or "").strip() or upload.original_name.rsplit(".", 1)[0]
    return reminders.add(get_engine(), name=name, account_name=account.name, source_file=upload.path,
                         template=values["template"], cron=cron, timezone=timezone,
                         run_at=_run_at(form.get("schedule_run_at") or "", timezone),
                         region=(values["region"] or "UG").upper(),
                         relative=_relative_phrase(form.get("schedule_relative") or "",
                                                   form.get("schedule_date_column") or ""),
                         quiet_hours=values["quiet_hours"] or None, phone_column=values["phone_column"] or None,
                         media_url=extras.media_url, options=compose.launch_options(extras))


@router.post("/uploads/{token}/schedule")
async def add_schedule(request: Request, token: str, user: Operator):
    """Launch this upload as a reminder blast: on a cron in a time zone, once at a given time, or relative to
    a date column of the list; with the page's phone column, extras and quiet hours."""
    form = await posted_form(request)
    values = compose_values(form)
    try:
        await run_in_threadpool(_add_schedule, token, values, form)
    except uploads.UploadRejected as error:
        return page(request, "error.html", status_code=error.status_code, message=str(error))
    except (BlastError, ConfigError) as error:
        request.session[SCHEDULE_FLASH] = str(error)
        return RedirectResponse(compose_url(token, values), status_code=303)
    return RedirectResponse("/schedules?notice=scheduled", status_code=303)


def _schedule_rows() -> list[dict]:
    rows = []
    for schedule in reminders.listed(get_engine()):
        zone = ZoneInfo(schedule.timezone)
        rows.append({
            "id": schedule.id, "name": schedule.name, "account": schedule.account_name, "kind": schedule.kind,
            "when": _shown(schedule.run_at, zone) if schedule.kind == "once" else schedule.cron,
            "rule": reminders.rule_text(schedule), "quiet_hours": schedule.quiet_hours,
            "timezone": schedule.timezone, "enabled": schedule.enabled,
            "next_fire": _shown(schedule.next_fire_at, zone), "last_fired": _shown(schedule.last_fired_at, zone),
            "template": schedule.template, "file": Path(schedule.source_file).name,
        })
    return rows


def _shown(moment: datetime | None, zone: ZoneInfo) -> str:
    """A stored time (naive means UTC, as SQLite gives it back) in the schedule's own time zone."""
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


@router.get("/schedules")
def schedules_page(request: Request, user: User):
    """Reminder schedules with their next firing (in their own time zone) and a remove button."""
    return page(request, "schedules.html", schedules=_schedule_rows(), notice=request.query_params.get("notice"))


@router.post("/schedules/{schedule_id}/remove")
async def remove_schedule(request: Request, schedule_id: int, user: Operator):
    await posted_form(request)
    try:
        await run_in_threadpool(reminders.remove, get_engine(), schedule_id)
    except NotFound as error:
        return page(request, "error.html", status_code=404, message=str(error))
    return RedirectResponse("/schedules?notice=removed", status_code=303)
