"""/api/v1/campaigns: create (from a JSON list of recipients), read with tallies and messages, and the
operator's actions, through the same lifecycle functions as `blast` and the pages."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from campaigns import canary as canaries
from campaigns import lifecycle, tallies
from campaigns.db import get_engine
from campaigns.errors import BlastError, NotFound
from campaigns.models import Campaign, Message
from campaigns.states import MessageState
from campaigns.web import launches, uploads
from campaigns.web.api import recipients, schemas
from campaigns.web.api.auth import Operator, Viewer
from campaigns.web.api.idempotency import fingerprint, idempotent
from campaigns.web.api.problems import Problem, answers

router = APIRouter(prefix="/campaigns", tags=["campaigns"])

# A campaign of at most this many recipients is read within its request (201); a bigger one by a worker,
# and the answer is 202 while it is read (GET the campaign: a draft until every row is in).
INLINE_RECIPIENTS = 10_000
IdempotencyKey = Annotated[str | None, schemas.IDEMPOTENCY_HEADER]


def _report(campaign_id: int) -> dict:
    return schemas.Campaign.model_validate(tallies.campaign_report(campaign_id)).model_dump()


def _canary(body: schemas.CampaignIn | schemas.CampaignFileIn) -> dict:
    """The launch's canary, as `blast launch --canary N|P% [--canary-auto]` takes it (campaigns.canary)."""
    if body.canary is not None and not body.launch:
        raise Problem(422, "Invalid request", "canary goes with launch: true (a draft starts without one)")
    try:
        spec = canaries.check_spec(body.canary, auto=body.canary_auto, names=("canary", "canary_auto"))
    except BlastError as error:
        raise Problem(422, "Invalid request", str(error)) from None
    return {"canary": spec, "canary_auto": body.canary_auto}


def _create(body: schemas.CampaignIn, canary: dict) -> tuple[int, dict]:
    path = recipients.written(body.recipients, under="api-lists")
    background = len(body.recipients) > INLINE_RECIPIENTS
    try:
        campaign_id, _report_of_rows = lifecycle.launch(
            path, account_name=body.account, template=body.template, name=body.name, media_url=body.media_url,
            at=lifecycle.parse_when(body.at), region=body.region, phone_column="phone",
            quiet_hours=body.quiet_hours, start=body.launch, background=background, discard_file=True, **canary)
    except BaseException:
        shutil.rmtree(path.parent, ignore_errors=True)
        raise
    return (202 if background else 201), _report(campaign_id)  # the job deleted the list and its folder


# The two bodies POST /campaigns takes (their schemas are put in the document by campaigns.web.api).
CREATE_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/CampaignIn"}},
    "multipart/form-data": {"schema": {"$ref": "#/components/schemas/CampaignFileIn"}}}}}


@router.post("", status_code=201, response_model=schemas.Campaign, openapi_extra=CREATE_BODY,
             responses={202: {"model": schemas.Campaign, "description": "Created; its recipients are being read"},
                        **answers(400, 401, 403, 409, 413, 415, 422)})
async def create_campaign(request: Request, key: Operator, idempotency_key: IdempotencyKey = None):
    """A campaign from a JSON list of recipients, or from a contact file (multipart: `file` and the same fields),
    launched now, at `at`, or left a draft (`launch: false`)."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        return await _create_from_file(request, key, idempotency_key)
    try:
        body = schemas.CampaignIn.model_validate_json(await request.body())
    except ValidationError as error:
        raise RequestValidationError(error.errors()) from None
    canary = _canary(body)
    return await run_in_threadpool(idempotent, key, idempotency_key,
                                   fingerprint("POST", "/campaigns", body.model_dump()), lambda: _create(body, canary))


async def _create_from_file(request: Request, key, idempotency_key: str | None):
    form = await request.form(max_files=1, max_fields=20)
    file = form.get("file")
    if not isinstance(file, UploadFile):
        raise Problem(422, "Invalid request", "file: a contact file (.csv or .xlsx) is required")
    try:
        body = schemas.CampaignFileIn.model_validate({name: value for name, value in form.multi_items()
                                                      if name != "file"})
    except ValidationError as error:
        raise RequestValidationError(error.errors()) from None
    canary = _canary(body)
    try:
        token = await uploads.save_upload(file)
    except uploads.UploadRejected as error:
        raise Problem(error.status_code, "Refused", str(error)) from None
    upload = uploads.find_upload(token)
    request_hash = fingerprint("POST", "/campaigns", [body.model_dump(), await run_in_threadpool(_digest, upload.path)])
    read_by_a_worker = []  # the one case where the upload outlives this request: its job reads it

    def create() -> tuple[int, dict]:
        campaign_id, background = launches.launch_upload(
            upload, account_name=body.account, template=body.template, name=body.name, media_url=body.media_url,
            at=lifecycle.parse_when(body.at), region=body.region, phone_column=body.phone_column,
            quiet_hours=body.quiet_hours, start=body.launch, **canary)
        if background:
            read_by_a_worker.append(True)
        return (202 if background else 201), _report(campaign_id)

    try:
        return await run_in_threadpool(idempotent, key, idempotency_key, request_hash, create)
    finally:
        if not read_by_a_worker:  # read here, refused, or a repeat answered from the first request
            await run_in_threadpool(uploads.discard, upload)


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


@router.get("", response_model=schemas.CampaignPage, responses=answers(401, 403, 422))
def list_campaigns(key: Viewer, cursor: schemas.Cursor = None,
                   limit: Annotated[int, Query(ge=1, le=200)] = 50):
    """Newest first; `next_cursor` gives the next page (null: none)."""
    query = select(Campaign.id).order_by(Campaign.id.desc()).limit(limit + 1)
    if cursor is not None and int(cursor) < 2**31:  # a campaign's id is a 32-bit integer: past it, all are before
        query = query.where(Campaign.id < int(cursor))
    with get_engine().connect() as connection:
        ids = list(connection.execute(query).scalars())
    more = len(ids) > limit
    ids = ids[:limit]
    return {"items": [_report(campaign_id) for campaign_id in ids],
            "next_cursor": str(ids[-1]) if more else None}


@router.get("/{campaign_id}", response_model=schemas.Campaign, responses=answers(401, 403, 404))
def get_campaign(campaign_id: schemas.CampaignId, key: Viewer):
    return _report(campaign_id)


@router.get("/{campaign_id}/messages", response_model=schemas.MessagePage, responses=answers(401, 403, 404, 422))
def list_messages(campaign_id: schemas.CampaignId, key: Viewer, state: MessageState | None = None,
                  cursor: schemas.Cursor = None,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100):
    """In the order of the contact list; `next_cursor` gives the next page (null: none)."""
    _must_exist(campaign_id)
    query = (select(Message.id, Message.phone, Message.state, Message.provider_message_id, Message.error_code,
                    Message.error_reason, Message.updated_at)
             .where(Message.campaign_id == campaign_id).order_by(Message.id).limit(limit + 1))
    if state is not None:
        query = query.where(Message.state == state.value)
    if cursor is not None:
        query = query.where(Message.id > int(cursor))
    with get_engine().connect() as connection:
        rows = connection.execute(query).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [{"phone": row.phone, "state": row.state, "provider_message_id": row.provider_message_id,
                       "error_code": row.error_code, "error_reason": row.error_reason,
                       "updated_at": row.updated_at.isoformat()} for row in rows],
            "next_cursor": str(rows[-1].id) if more else None}


def _must_exist(campaign_id: int) -> None:
    with get_engine().connect() as connection:
        if connection.execute(select(Campaign.id).where(Campaign.id == campaign_id)).scalar() is None:
            raise NotFound(f"no campaign with id {campaign_id}")


def _action(name: str, campaign_id: int) -> tuple[int, dict]:
    _must_exist(campaign_id)
    if name == "launch":
        lifecycle.schedule_start(campaign_id)
    elif name == "pause":
        lifecycle.pause(campaign_id)
    elif name == "resume":
        lifecycle.resume(campaign_id)
    elif name == "cancel":
        lifecycle.cancel(campaign_id)
    else:
        lifecycle.retry(campaign_id)
    return 200, _report(campaign_id)


def _action_route(name: str, summary: str):
    def act(campaign_id: schemas.CampaignId, key: Operator, idempotency_key: IdempotencyKey = None):
        return idempotent(key, idempotency_key, fingerprint("POST", f"/campaigns/{campaign_id}/{name}", None),
                          lambda: _action(name, campaign_id))

    act.__name__ = f"{name}_campaign"
    act.__doc__ = summary
    router.add_api_route(f"/{{campaign_id}}/{name}", act, methods=["POST"], response_model=schemas.Campaign,
                         responses=answers(400, 401, 403, 404, 409, 422))


for _name, _summary in (("launch", "Start a draft now."),
                        ("pause", "No new message starts; messages in flight finish."),
                        ("resume", "Send again (a canary's or a pause's hold released)."),
                        ("cancel", "Every message not yet sent is cancelled."),
                        ("retry", "Failed messages are sent again.")):
    _action_route(_name, _summary)
