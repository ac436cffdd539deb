"""Uploading a contact list: the compose page, its rejects, discarding it, launching it (in the background
when big) and the launch's progress."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, RedirectResponse

from campaigns import dispatch, lifecycle
from campaigns.db import get_engine
from campaigns.errors import BlastError
from campaigns.ingest import jobs
from campaigns.settings import ConfigError, get_account, load_accounts
from campaigns.states import IngestStatus
from campaigns.web import auth, compose, forecasts, launches, previews, uploads
from campaigns.web.compose import compose_values
from campaigns.web.rendering import SCHEDULE_FLASH, TRIAL_FLASH, Operator, User, page

router = APIRouter()


@router.get("/upload")
def upload_form(request: Request, user: Operator):
    notice = "upload discarded" if request.query_params.get("notice") == "discarded" else None
    return page(request, "upload.html", error=None, notice=notice)


@router.post("/upload")
async def upload_file(request: Request, user: Operator, file: Annotated[UploadFile, File()],
                      csrf_token: Annotated[str, Form()] = ""):
    auth.check_csrf(request, csrf_token)
    try:
        token = await uploads.save_upload(file)
    except uploads.UploadRejected as error:
        return page(request, "upload.html", status_code=error.status_code, error=str(error))
    return RedirectResponse(f"/uploads/{token}", status_code=303)


@router.get("/uploads/{token}")
def upload_preview(request: Request, token: str, user: Operator, phone_column: str | None = None,
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
                   request_test_row=request.query_params.get("test_row", ""),
                   wa_templates=compose.approved_for(chosen))
    try:
        report = uploads.dry_run(upload, region=region, phone_column=phone_column or None)
    except BlastError as error:  # e.g. no phone column detected: the operator picks one in the mapping
        return page(request, "upload_preview.html", report=None, phone_column=phone_column, previews=[],
                    problem=str(error), **context)
    preview = previews.compose_preview(upload, chosen, values, region=region, phone_column=phone_column or None)
    if preview.extras is not None and preview.extras.text:  # an approved template: its text, its columns
        values = {**values, "template": preview.extras.text}
        context.update(template=preview.extras.text, values=values, wa_chosen=preview.extras.template,
                       wa_slots=preview.extras.options.get("slots", []))
    forecast, forecast_problem = _forecast(upload, chosen, values, preview, region=region, at=at,
                                           phone_column=report["phone_column"], media_url=media_url)
    return page(request, "upload_preview.html", report=report, phone_column=report["phone_column"],
                previews=preview.previews, problem=preview.problem, forecast=forecast,
                forecast_problem=forecast_problem, forecasts=forecasts, **context)


def _forecast(upload, account, values, preview, *, region: str, at: str, phone_column: str, media_url: str):
    """The launch's forecast for the page (None, and why not, when it cannot be made)."""
    if account is None or not values["template"] or preview.problem or preview.extras is None:
        return None, None
    if forecasts.too_big(upload):
        return None, "the file is read by a worker at launch: `blast launch --dry-run` forecasts it"
    try:
        return forecasts.forecast_upload(
            upload, account, template=values["template"], region=region, phone_column=phone_column,
            kind=preview.extras.kind, media_url=preview.extras.media_url or media_url or None,
            quiet_hours=values["quiet_hours"] or None, at=lifecycle.parse_when(at or None)), None
    except BlastError as error:
        return None, str(error)


@router.get("/uploads/{token}/rejects.csv")
def upload_rejects(request: Request, token: str, user: Operator):
    try:
        upload = uploads.find_upload(token)
    except uploads.UploadRejected as error:
        return page(request, "error.html", status_code=error.status_code, message=str(error))
    if not upload.rejects_path.exists():
        return page(request, "error.html", status_code=404, message="no rejects yet: open the preview first")
    return FileResponse(upload.rejects_path, media_type="text/csv", filename="rejects.csv")


@router.post("/uploads/{token}/discard")
def upload_discard(request: Request, token: str, user: Operator, csrf_token: Annotated[str, Form()] = ""):
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
def upload_launch(request: Request, token: str, user: Operator, account: Annotated[str, Form()],
                  template: Annotated[str, Form()] = "", csrf_token: Annotated[str, Form()] = "",
                  phone_column: Annotated[str, Form()] = "", region: Annotated[str, Form()] = "UG",
                  media_url: Annotated[str, Form()] = "", name: Annotated[str, Form()] = "",
                  at: Annotated[str, Form()] = "", kind: Annotated[str, Form()] = "",
                  buttons: Annotated[str, Form()] = "", footer: Annotated[str, Form()] = "",
                  list_header: Annotated[str, Form()] = "", list_button: Annotated[str, Form()] = "",
                  list_rows: Annotated[str, Form()] = "", quiet_hours: Annotated[str, Form()] = "",
                  confirm_cost: Annotated[str, Form()] = "", wa_template: Annotated[str, Form()] = "",
                  wa_params: Annotated[str, Form()] = "", canary: Annotated[str, Form()] = "",
                  canary_auto: Annotated[str, Form()] = ""):
    """Create the campaign from the upload (lifecycle.launch) and start it now or at `at`, with the media,
    buttons or list the account's gateway offers, and quiet hours ("21:00-08:00" in each recipient's local
    time; empty: none). When the gateway's balance does not cover the cost, only with `confirm_cost`. A `canary`
    ("50" or "5%") sends that slice first, then pauses until released, or by itself with `canary_auto`, as
    `blast launch --canary` does (campaigns.canary)."""
    from campaigns import canary as canaries
    from campaigns import quiet_hours as quiet

    auth.check_csrf(request, csrf_token)
    form = {"kind": kind, "media_url": media_url, "buttons": buttons, "footer": footer,
            "list_header": list_header, "list_button": list_button, "list_rows": list_rows,
            "wa_template": wa_template, "wa_params": wa_params}
    try:
        upload = uploads.find_upload(token)
        chosen = get_account(account)
        extras = compose.extras_from_form(form, chosen.provider, chosen)
        if extras.kind != compose.TEXT:
            compose.check_with_gateway(chosen, extras, None)
        template = extras.text or template  # an approved template renders its own text
        if not template.strip():
            raise BlastError("write the message's template, or pick an approved template")
        when = lifecycle.parse_when(at or None)
        window = quiet.normalise(quiet_hours)
        slice_spec = canaries.check_spec(canary.strip() or None, auto=bool(canary_auto),
                                         names=("canary", "release by itself"))
        forecasts.check_covered(upload, chosen, confirmed=bool(confirm_cost), template=template, region=region,
                                phone_column=phone_column or None, kind=extras.kind, media_url=extras.media_url,
                                quiet_hours=window, at=when)
        campaign_id, background = launches.launch_upload(
            upload, account_name=account, template=template, name=name or Path(upload.original_name).stem,
            media_url=extras.media_url, at=when, region=region, phone_column=phone_column or None,
            options=compose.launch_options(extras), quiet_hours=window, canary=slice_spec,
            canary_auto=bool(canary_auto))
        if background:
            return RedirectResponse(f"/launches/{campaign_id}", status_code=303)
    except uploads.UploadRejected as error:
        return page(request, "error.html", status_code=error.status_code, message=str(error))
    except forecasts.CostNotCovered as error:
        return page(request, "error.html", status_code=409, message=str(error))
    except (BlastError, ConfigError) as error:
        return page(request, "error.html", status_code=400, message=str(error))
    return RedirectResponse(f"/campaigns/{campaign_id}?notice=launched", status_code=303)


@router.get("/launches/{campaign_id}")
def launch_progress(request: Request, campaign_id: int, user: User):
    """A big upload being read by a worker: the rows so far, refreshed every second; the campaign page when
    they are all in; a failure's reason, with Retry and Discard."""
    job = jobs.for_campaign(get_engine(), campaign_id)
    if job is None:
        return page(request, "error.html", status_code=404, message="no such launch")
    if job.status == IngestStatus.DONE:
        return RedirectResponse(f"/campaigns/{campaign_id}?notice=launched", status_code=303)
    return page(request, "launching.html", job=job, status_code=400 if job.status == IngestStatus.FAILED else 200)


@router.post("/launches/{campaign_id}/retry")
def launch_retry(request: Request, campaign_id: int, user: Operator, csrf_token: Annotated[str, Form()] = ""):
    """A failed ingest queued again: it goes on after the last row it wrote."""
    auth.check_csrf(request, csrf_token)
    job = jobs.for_campaign(get_engine(), campaign_id)
    if job is None or not jobs.retry(get_engine(), job.id):
        return page(request, "error.html", status_code=409, message="this launch is not failed: nothing to retry")
    dispatch.start_ingest(job.id)
    return RedirectResponse(f"/launches/{campaign_id}", status_code=303)


@router.post("/launches/{campaign_id}/discard")
def launch_discard(request: Request, campaign_id: int, user: Operator, csrf_token: Annotated[str, Form()] = ""):
    """Stop reading the list and cancel the draft campaign."""
    auth.check_csrf(request, csrf_token)
    job = jobs.for_campaign(get_engine(), campaign_id)
    if job is None or not jobs.discard(get_engine(), job.id):
        return page(request, "error.html", status_code=409, message="this launch is over: nothing to discard")
    return RedirectResponse(f"/campaigns/{campaign_id}?notice=discarded", status_code=303)
