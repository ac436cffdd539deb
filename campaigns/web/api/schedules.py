"""/api/v1/schedules: reminder blasts (campaigns.reminders), as `blast schedule add|list|remove` makes them.

The recipients of a schedule are written once as its contact file (under BLAST_HOME/api-schedules), read again
at every firing; to change who a schedule reaches, remove it and add another.
"""

from __future__ import annotations

import shutil
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import Response
from sqlmodel import Session

from campaigns import lifecycle, reminders
from campaigns.db import get_engine
from campaigns.models import Schedule
from campaigns.web.api import recipients, schemas
from campaigns.web.api.auth import Operator, Viewer
from campaigns.web.api.idempotency import fingerprint, idempotent
from campaigns.web.api.problems import answers

router = APIRouter(prefix="/schedules", tags=["schedules"])
ScheduleId = Annotated[int, Path(ge=1, le=2**31 - 1, description="a schedule's id")]


@router.get("", response_model=schemas.SchedulePage, responses=answers(401, 403))
def list_schedules(key: Viewer):
    """Every schedule, removed ones too (`enabled: false`), with its next firing."""
    return {"items": [reminders.described(schedule) for schedule in reminders.listed(get_engine())]}


def _add(body: schemas.ScheduleIn) -> tuple[int, dict]:
    path = recipients.written(body.recipients, under="api-schedules")
    try:
        schedule_id = reminders.add(
            get_engine(), name=body.name, account_name=body.account, source_file=path, template=body.template,
            cron=body.cron, timezone=body.timezone, run_at=lifecycle.parse_when(body.at) if body.at else None,
            region=body.region, relative=body.relative, quiet_hours=body.quiet_hours, phone_column="phone",
            media_url=body.media_url)
    except BaseException:
        shutil.rmtree(path.parent, ignore_errors=True)
        raise
    with Session(get_engine()) as session:
        return 201, reminders.described(session.get(Schedule, schedule_id))


@router.post("", status_code=201, response_model=schemas.Schedule, responses=answers(400, 401, 403, 409, 422))
def add_schedule(body: schemas.ScheduleIn, key: Operator,
                 idempotency_key: Annotated[str | None, schemas.IDEMPOTENCY_HEADER] = None):
    """A reminder blast: give one of `cron`, `at` or `relative`."""
    return idempotent(key, idempotency_key, fingerprint("POST", "/schedules", body.model_dump()),
                      lambda: _add(body))


@router.delete("/{schedule_id}", status_code=204, responses=answers(401, 403, 404, 422))
def remove_schedule(schedule_id: ScheduleId, key: Operator):
    """Stop a schedule (the campaigns it launched are kept)."""
    reminders.remove(get_engine(), schedule_id)
    return Response(status_code=204)

