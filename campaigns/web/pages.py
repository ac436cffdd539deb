"""Operator pages: login, campaign list, campaign page (live progress, actions, export)."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, StreamingResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.staticfiles import StaticFiles

from campaigns import export, lifecycle, tallies
from campaigns.errors import BlastError, NotFound
from campaigns.settings import ConfigError, get_account, get_settings, load_accounts
from campaigns.web import auth, balances, compose, insights, launches, previews, uploads
from campaigns.web.campaign_actions import BUTTON_ORDER, LABELS, allowed_actions
from campaigns.web.sending_chart import campaign_minutes

HERE = Path(__file__).parent
TEMPLATES = Environment(loader=FileSystemLoader(HERE / "templates"),
                        autoescape=select_autoescape(default=True, default_for_string=True))
ACTIONS = {"pause": lifecycle.pause, "resume": lifecycle.resume, "cancel": lifecycle.cancel,
           "retry": lifecycle.retry,
           "resend-held": lambda campaign_id: lifecycle.retry(campaign_id, reason=lifecycle.UNKNOWN_REASON)}

TRIAL_FLASH = "trial_send"  # session key: the last test send's verdict, shown once on the compose page
SCHEDULE_FLASH = "schedule_error"  # session key: why the last reminder schedule was refused

router = APIRouter()
User = Annotated[str, Depends(auth.require_user)]


def install(app) -> None:
    """Session middleware, the login/CSRF answers and the static files (called by create_app)."""
    auth.add_session(app)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    uploads.maybe_sweep()  # uploads older than BLAST_UPLOAD_MAX_AGE_HOURS go when the web app starts

    @app.exception_handler(auth.LoginRequired)
    async def _login_required(request: Request, _error):
        if request.url.path.endswith(".json"):
            return JSONResponse({"error": "login required"}, status_code=401)
        return RedirectResponse("/login", status_code=303)

    @app.exception_handler(auth.CsrfRejected)
    async def _csrf_rejected(request: Request, _error):
        return HTMLResponse("The form was stale or forged (CSRF token missing or wrong); reload and retry.",
                            status_code=403)


def page(request: Request, template_file: str, status_code: int = 200, **context) -> HTMLResponse:
    settings = get_settings()
    html = TEMPLATES.get_template(template_file).render(
        user=auth.current_user(request), csrf_token=auth.csrf_token(request),
        flower_url=settings.flower_url, **context)
    return HTMLResponse(html, status_code=status_code)


@router.get("/login")
def login_form(request: Request):
    return page(request, "login.html", error=None)


@router.post("/login")
def login(request: Request, username: Annotated[str, Form()] = "", password: Annotated[str, Form()] = "",
          csrf_token: Annotated[str, Form()] = ""):
    auth.check_csrf(request, csrf_token)
    try:
        accepted = auth.attempt_login(request, username, password)
    except auth.LoginThrottled as refusal:
        minutes = math.ceil(refusal.retry_after_seconds / 60)
        error = (f"Too many failed logins for this user or from this address. Try again in {minutes} "
                 f"minute{'s' if minutes != 1 else ''}.")
        answer = page(request, "login.html", status_code=429, error=error)
        answer.headers["Retry-After"] = str(refusal.retry_after_seconds)
        return answer
    if not accepted:
        return page(request, "login.html", status_code=401, error="Wrong user name or password.")
    auth.log_in(request, username)
    return RedirectResponse("/", status_code=303)


@router.post("/logout")
def logout(request: Request, csrf_token: Annotated[str, Form()] = ""):
    auth.check_csrf(request, csrf_token)
    auth.log_out(request)
    return RedirectResponse("/login", status_code=303)


@router.get("/")
def campaign_list(request: Request, user: User):
    return page(request, "campaigns.html", campaigns=list(reversed(tallies.all_campaigns())))


@router.get("/campaigns/{campaign_id}")
def campaign_page(request: Request, campaign_id: int, user: User):
    return show_campaign(request, campaign_id, notice=request.query_params.get("notice"))


def show_campaign(request: Request, campaign_id: int, *, status_code: int = 200, notice: str | None = None,
                  refusal: str | None = None) -> HTMLResponse:
    """The campaign page, with the buttons its status allows; `refusal` explains an action just refused."""
    try:
        report = tallies.campaign_report(campaign_id)
    except NotFound as error:
        return page(request, "error.html", status_code=404, message=str(error))
    actions = allowed_actions(report["status"], failed=report["counts"]["failed"],
                              held=insights.held(campaign_id))
    return page(request, "campaign.html", status_code=status_code, report=report, states=tallies.SHOWN_STATES,
                failures=insights.failures(campaign_id), skips=insights.skip_reasons(campaign_id),
                notice=notice, refusal=refusal, actions=actions, all_actions=BUTTON_ORDER, labels=LABELS)


@router.get("/campaigns/{campaign_id}/progress.json")
def campaign_progress(campaign_id: int, user: User):
    """Polled every second by the campaign page: tallies, the actions the status allows, sending per minute
    (the last hour, and the campaign's own span for the chart), failures grouped."""
    try:
        report = tallies.campaign_report(campaign_id)
        report["chart"] = campaign_minutes(campaign_id)
    except NotFound as error:
        return JSONResponse({"error": str(error)}, status_code=404)
    report["actions"] = allowed_actions(report["status"], failed=report["counts"]["failed"],
                                        held=insights.held(campaign_id))
    report["per_minute"] = insights.sent_per_minute(campaign_id)
    report["failures"] = insights.failures(campaign_id)
    return report


@router.post("/campaigns/{campaign_id}/{action}")
def campaign_action(request: Request, campaign_id: int, action: str, user: User,
                    csrf_token: Annotated[str, Form()] = ""):
    auth.check_csrf(request, csrf_token)
    if action not in ACTIONS:
        return page(request, "error.html", status_code=404, message=f"no action {action!r}")
    try:
        result = ACTIONS[action](campaign_id)
    except NotFound as error:
        return page(request, "error.html", status_code=404, message=str(error))
    except BlastError as error:  # the status does not allow it (any more): say so on the campaign page
        label = LABELS.get(action, action)
        return show_campaign(request, campaign_id, status_code=409,
                             refusal=f"Could not {label}: {error}. The buttons below are those it allows now.")
    notice = f"{action}: done" + (f" ({result} messages)" if isinstance(result, int) else "")
    return RedirectResponse(f"/campaigns/{campaign_id}?notice={notice}", status_code=303)


@router.get("/campaigns/{campaign_id}/export.csv")
def campaign_export(request: Request, campaign_id: int, user: User):
    try:
        tallies.campaign_report(campaign_id)
    except NotFound as error:
        return page(request, "error.html", status_code=404, message=str(error))

    def lines():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(export.COLUMNS)
        for count, row in enumerate(export.rows(campaign_id), start=1):
            writer.writerow(row)
            if count % 1000 == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    headers = {"Content-Disposition": f'attachment; filename="campaign-{campaign_id}.csv"'}
    return StreamingResponse(lines(), media_type="text/csv; charset=utf-8", headers=headers)


@router.get("/accounts")
def accounts_page(request: Request, user: User):
    """Rates, recent error and throttling rates, paused campaigns: public facts only, never a secret."""
    try:
        accounts = load_accounts()
    except ConfigError as error:
        return page(request, "error.html", status_code=500, message=str(error))
    return page(request, "accounts.html", accounts=insights.account_health(accounts),
                minutes=insights.HEALTH_MINUTES, balances=balances.balances(accounts))


@router.get("/upload")
def upload_form(request: Request, user: User):
    notice = "upload discarded" if request.query_params.get("notice") == "discarded" else None
    return page(request, "upload.html", error=None, notice=notice)


@router.post("/upload")
async def upload_file(request: Request, user: User, file: Annotated[UploadFile, File()],
                      csrf_token: Annotated[str, Form()] = ""):
    auth.check_csrf(request, csrf_token)
    try:
        token = await uploads.save_upload(file)
    except uploads.UploadRejected as error:
        return page(request, "upload.html", status_code=error.status_code, error=str(error))
    return RedirectResponse(f"/uploads/{token}", status_code=303)


@router.get("/uploads/{token}")
def upload_preview(request: Request, token: str, user: User, phone_column: str | None = None,
                   region: str = "UG", template: str = "", account: str | None = None, media_url: str = "",
                   name: str = "", at: str = ""):
    """First rows, detected phone column and mapping, ingest report with rejects, template preview, the
    extras the account's gateway offers, a test send and a reminder schedule."""
    try:
        upload = uploads.find_upload(token)
        head = uploads.first_rows(upload)
        accounts = load_accounts()
    except uploads.UploadRejected as error:
        return page(request, "error.html", status_code=error.status_code, message=str(error))
    except (BlastError, ConfigError) as error:
        return page(request, "error.html", status_code=400, message=str(error))
    values = compose_values(request.query_params)
    chosen = accounts.get(account or "") or next(iter(accounts.values()), None)
    context = dict(upload=upload, head=head, region=region, accounts=sorted(accounts),
                   account=chosen.name if chosen else "", template=template, media_url=media_url, name=name,
                   at=at, values=values, features=compose.features(accounts), kinds=compose.kinds_for(
                       chosen.provider if chosen else ""), trial=request.session.pop(TRIAL_FLASH, None),
                   schedule_error=request.session.pop(SCHEDULE_FLASH, None),
                   request_test_phone=request.query_params.get("test_phone", ""),
                   request_test_row=request.query_params.get("test_row", ""))
    try:
        report = uploads.dry_run(upload, region=region, phone_column=phone_column or None)
    except BlastError as error:  # e.g. no phone column detected: the operator picks one in the mapping
        return page(request, "upload_preview.html", report=None, phone_column=phone_column, previews=[],
                    problem=str(error), **context)
    preview = previews.compose_preview(upload, chosen, values, region=region, phone_column=phone_column or None)
    return page(request, "upload_preview.html", report=report, phone_column=report["phone_column"],
                previews=preview.previews, problem=preview.problem, **context)


def compose_values(params) -> dict[str, str]:
    """The compose form's fields (template and extras) from a query or a posted form, as text."""
    names = ("template", "account", "region", "phone_column", "quiet_hours", *compose.FORM_FIELDS)
    return {name: str(params.get(name) or "") for name in names}


@router.get("/uploads/{token}/rejects.csv")
def upload_rejects(request: Request, token: str, user: User):
    try:
        upload = uploads.find_upload(token)
    except uploads.UploadRejected as error:
        return page(request, "error.html", status_code=error.status_code, message=str(error))
    if not upload.rejects_path.exists():
        return page(request, "error.html", status_code=404, message="no rejects yet: open the preview first")
    return FileResponse(upload.rejects_path, media_type="text/csv", filename="rejects.csv")


@router.post("/uploads/{token}/discard")
def upload_discard(request: Request, token: str, user: User, csrf_token: Annotated[str, Form()] = ""):
    """Delete the upload (its file and rejects) without launching it."""
    auth.check_csrf(request, csrf_token)
    try:
        upload = uploads.find_upload(token)
    except uploads.UploadRejected as error:
        return page(request, "error.html", status_code=error.status_code, message=str(error))
    if not uploads.discard(upload):
        return page(request, "error.html", status_code=409,
                    message=f"{upload.original_name} is kept: a reminder schedule reads from it (remove it first)")
    return RedirectResponse("/upload?notice=discarded", status_code=303)


@router.post("/uploads/{token}/launch")
def upload_launch(request: Request, token: str, user: User, account: Annotated[str, Form()],
                  template: Annotated[str, Form()], csrf_token: Annotated[str, Form()] = "",
                  phone_column: Annotated[str, Form()] = "", region: Annotated[str, Form()] = "UG",
                  media_url: Annotated[str, Form()] = "", name: Annotated[str, Form()] = "",
                  at: Annotated[str, Form()] = "", kind: Annotated[str, Form()] = "",
                  buttons: Annotated[str, Form()] = "", footer: Annotated[str, Form()] = "",
                  list_header: Annotated[str, Form()] = "", list_button: Annotated[str, Form()] = "",
                  list_rows: Annotated[str, Form()] = "", quiet_hours: Annotated[str, Form()] = ""):
    """Create the campaign from the upload (lifecycle.launch) and start it now or at `at`, with the media,
    buttons or list the account's gateway offers, and quiet hours ("21:00-08:00" in each recipient's local
    time; empty: none)."""
    from campaigns import quiet_hours as quiet

    auth.check_csrf(request, csrf_token)
    form = {"kind": kind, "media_url": media_url, "buttons": buttons, "footer": footer,
            "list_header": list_header, "list_button": list_button, "list_rows": list_rows}
    try:
        upload = uploads.find_upload(token)
        chosen = get_account(account)
        extras = compose.extras_from_form(form, chosen.provider)
        if extras.kind != compose.TEXT:
            compose.check_with_gateway(chosen, extras, None)
        when = lifecycle.parse_when(at or None)
        window = quiet.normalise(quiet_hours)

        def launch() -> int:
            with uploads.named(upload):
                campaign_id, _report = lifecycle.launch(
                    upload.path, account_name=account, template=template,
                    name=name or Path(upload.original_name).stem, media_url=extras.media_url, at=when,
                    region=region, phone_column=phone_column or None, options=compose.launch_options(extras),
                    quiet_hours=window)
            uploads.discard(upload)  # its rows are the campaign's messages now (a reminder schedule's file stays)
            return campaign_id

        if launches.in_background(upload.path):
            job = launches.start(upload.path, launch)
            return RedirectResponse(f"/launches/{job.id}", status_code=303)
        campaign_id = launch()
    except uploads.UploadRejected as error:
        return page(request, "error.html", status_code=error.status_code, message=str(error))
    except (BlastError, ConfigError) as error:
        return page(request, "error.html", status_code=400, message=str(error))
    return RedirectResponse(f"/campaigns/{campaign_id}?notice=launched", status_code=303)


@router.get("/launches/{job_id}")
def launch_progress(request: Request, job_id: str, user: User):
    """A big upload being ingested: the rows so far, refreshed every second; the campaign page when done."""
    job = launches.find(job_id)
    if job is None:
        return page(request, "error.html", status_code=404, message="no such launch (the web app restarted?)")
    if job.campaign_id is not None:
        return RedirectResponse(f"/campaigns/{job.campaign_id}?notice=launched", status_code=303)
    if job.error is not None:
        return page(request, "error.html", status_code=400, message=job.error)
    return page(request, "launching.html", rows=launches.rows_so_far(job))
