"""The compose page's helpers: the live preview (JSON), a test send to one number, launching as a
reminder schedule, and the schedules list."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse

from campaigns import reminders
from campaigns.db import get_engine
from campaigns.errors import BlastError, NotFound
from campaigns.settings import ConfigError, get_account, load_accounts
from campaigns.web import auth, compose, previews, trial_send, uploads
from campaigns.web.pages import SCHEDULE_FLASH, TRIAL_FLASH, User, compose_values, page

router = APIRouter()
MAX_TEST_ROW = 50  # the furthest recipient a test send may pick, counted among valid recipients
FLASH_TEXT_MAX = 300  # characters of a verdict's text kept in the session (a flash note, shown once)


class SafeJSONResponse(JSONResponse):
    """JSON whose text holds no `<`, `>` or `&`: a cell like `</script>` stays inert even if the body is
    ever read as HTML."""

    def render(self, content) -> bytes:
        text = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
        return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode("utf-8")


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    auth.check_csrf(request, str(form.get(auth.CSRF_FIELD) or ""))
    return {key: str(value) for key, value in form.items() if isinstance(value, str)}


def _compose_url(token: str, values: dict[str, str], **more: str) -> str:
    """The compose page again, with the operator's fields as they were."""
    shown = {key: value for key, value in {**values, **more}.items() if value and key != auth.CSRF_FIELD}
    return f"/uploads/{token}?{urlencode(shown)}#{'test-send' if 'test_phone' in more else 'compose'}"


@router.post("/uploads/{token}/preview.json")
async def preview_json(request: Request, token: str, user: User):
    """The first recipients' texts, the length check and any problem, for the page's preview as you type.

    Form fields as the compose form's (template, account, region, phone_column, kind and extras) and
    csrf_token."""
    values = compose_values(await _form(request))
    try:
        upload = uploads.find_upload(token)
        accounts = load_accounts()
    except uploads.UploadRejected as error:
        return SafeJSONResponse({"error": str(error)}, status_code=error.status_code)
    except ConfigError as error:
        return SafeJSONResponse({"error": str(error)}, status_code=500)
    account = accounts.get(values["account"]) or next(iter(accounts.values()), None)
    try:
        result = await run_in_threadpool(previews.compose_preview, upload, account, values,
                                         region=values["region"] or "UG",
                                         phone_column=values["phone_column"] or None)
    except BlastError as error:  # e.g. an unknown region or phone column
        return SafeJSONResponse({"error": str(error)}, status_code=400)
    return SafeJSONResponse({"account": account.name if account else None, **result.as_dict()})


def _trial(token: str, values: dict[str, str], phone: str, row: int) -> dict:
    upload = uploads.find_upload(token)
    account = get_account(values["account"])
    to = trial_send.recipient(phone, values["region"] or "UG")
    if not 1 <= row <= MAX_TEST_ROW:
        raise trial_send.TrialProblem(f"pick a recipient from 1 to {MAX_TEST_ROW}")
    preview = previews.compose_preview(upload, account, values, region=values["region"] or "UG",
                                       phone_column=values["phone_column"] or None, rows=row)
    if preview.extras is None or preview.problem:
        raise trial_send.TrialProblem(preview.problem or "nothing to send")
    if not values["template"]:
        raise trial_send.TrialProblem("write the template first")
    if len(preview.previews) < row:
        raise trial_send.TrialProblem(f"the list has {len(preview.previews)} valid recipients, not {row}")
    chosen = preview.previews[row - 1]
    if chosen["text"] is None or chosen["skip_reason"]:
        raise trial_send.TrialProblem(f"recipient {row} would be skipped: {chosen['skip_reason']}")
    result = trial_send.send_trial(account, to=to, text=chosen["text"], extras=preview.extras)
    return {**result.as_dict(), "row": row, "text": chosen["text"]}


@router.post("/uploads/{token}/test-send")
async def test_send(request: Request, token: str, user: User):
    """Send recipient `test_row` (1 = the first valid one) of the preview to `test_phone`, now, through the
    account's gateway; the compose page then shows the gateway's verdict."""
    form = await _form(request)
    values = compose_values(form)
    try:
        row = int(form.get("test_row") or 1)
    except ValueError:
        row = 0
    try:
        verdict = await run_in_threadpool(_trial, token, values, form.get("test_phone") or "", row)
    except uploads.UploadRejected as error:
        return page(request, "error.html", status_code=error.status_code, message=str(error))
    except (BlastError, ConfigError) as error:
        verdict = {"accepted": False, "outcome": "not sent", "code": None, "detail": str(error),
                   "to": form.get("test_phone") or "", "row": row, "text": None}
    request.session[TRIAL_FLASH] = {key: value[:FLASH_TEXT_MAX] if isinstance(value, str) else value
                                    for key, value in verdict.items()}
    more = {"test_phone": form.get("test_phone") or "", "test_row": str(row or 1)}
    return RedirectResponse(_compose_url(token, values, **more), status_code=303)


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
    extras = compose.extras_from_form(values, account.provider)
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
async def add_schedule(request: Request, token: str, user: User):
    """Launch this upload as a reminder blast: on a cron in a time zone, once at a given time, or relative to
    a date column of the list; with the page's phone column, extras and quiet hours."""
    form = await _form(request)
    values = compose_values(form)
    try:
        await run_in_threadpool(_add_schedule, token, values, form)
    except uploads.UploadRejected as error:
        return page(request, "error.html", status_code=error.status_code, message=str(error))
    except (BlastError, ConfigError) as error:
        request.session[SCHEDULE_FLASH] = str(error)
        return RedirectResponse(_compose_url(token, values), status_code=303)
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
async def remove_schedule(request: Request, schedule_id: int, user: User):
    await _form(request)
    try:
        await run_in_threadpool(reminders.remove, get_engine(), schedule_id)
    except NotFound as error:
        return page(request, "error.html", status_code=404, message=str(error))
    return RedirectResponse("/schedules?notice=removed", status_code=303)
