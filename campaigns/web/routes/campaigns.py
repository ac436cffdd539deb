"""The campaign list and a campaign's page: live progress, the actions its status allows, export."""

from __future__ import annotations

import csv
import io
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, StreamingResponse

from campaigns import export, lifecycle, tallies
from campaigns.db import get_engine
from campaigns.errors import BlastError, NotFound
from campaigns.ingest import jobs
from campaigns.settings import ConfigError, load_accounts
from campaigns.states import CampaignStatus
from campaigns.web import auth, insights
from campaigns.web.campaign_actions import BUTTON_ORDER, LABELS, allowed_actions
from campaigns.web.rendering import Operator, User, page
from campaigns.web.sending_chart import campaign_minutes

ACTIONS = {"pause": lifecycle.pause, "resume": lifecycle.resume, "cancel": lifecycle.cancel,
           "retry": lifecycle.retry,
           "resend-held": lambda campaign_id: lifecycle.retry(campaign_id, reason=lifecycle.UNKNOWN_REASON)}

router = APIRouter()


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
    ingest = jobs.for_campaign(get_engine(), campaign_id) if report["status"] == CampaignStatus.DRAFT else None
    return page(request, "campaign.html", status_code=status_code, report=report, states=tallies.SHOWN_STATES,
                ingest=ingest,
                failures=insights.failures(campaign_id), skips=insights.skip_reasons(campaign_id),
                progress=_progress(report), notice=notice, refusal=refusal, actions=actions,
                all_actions=BUTTON_ORDER, labels=LABELS)


def _progress(report: dict) -> dict:
    """How far the campaign has come, its ETA and its funnel (insights.campaign_progress)."""
    try:
        account = load_accounts().get(insights.account_of(report["id"]))
    except ConfigError:
        account = None
    return insights.campaign_progress(report, account)


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
    report["progress"] = _progress(report)
    return report


@router.post("/campaigns/{campaign_id}/{action}")
def campaign_action(request: Request, campaign_id: int, action: str, user: Operator,
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
