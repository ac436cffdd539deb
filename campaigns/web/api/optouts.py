"""/api/v1/optouts: the numbers never to message again."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import Response

from campaigns import optouts
from campaigns.db import get_engine
from campaigns.errors import BlastError
from campaigns.ingest import phones
from campaigns.web.api import schemas
from campaigns.web.api.auth import Operator, Viewer
from campaigns.web.api.idempotency import fingerprint, idempotent
from campaigns.web.api.problems import answers

router = APIRouter(prefix="/optouts", tags=["opt-outs"])


def _e164(raw: str) -> str:
    e164, reason = phones.normalise(raw)
    if e164 is None:
        raise BlastError(f"{raw!r} is not a phone number ({reason})")
    return e164


def _shown(row) -> dict:
    return {"phone": row.phone, "reason": row.reason, "source": row.source, "created_at": row.created_at.isoformat()}


@router.get("", response_model=schemas.OptOutPage, responses=answers(401, 403))
def list_optouts(key: Viewer):
    return {"items": [_shown(row) for row in optouts.listed(get_engine())]}


@router.post("", status_code=201, response_model=schemas.OptOut, responses=answers(400, 401, 403, 409, 422))
def add_optout(body: schemas.OptOutIn, key: Operator,
               idempotency_key: Annotated[str | None, schemas.IDEMPOTENCY_HEADER] = None):
    """Opt a number out: its pending messages in live campaigns are skipped."""
    def add() -> tuple[int, dict]:
        phone = _e164(body.phone)
        optouts.add(get_engine(), [phone], source=f"api:{key.name}")
        return 201, next(_shown(row) for row in optouts.listed(get_engine()) if row.phone == phone)

    return idempotent(key, idempotency_key, fingerprint("POST", "/optouts", body.model_dump()), add)


@router.delete("/{phone}", status_code=204, responses=answers(400, 401, 403, 404))
def remove_optout(phone: Annotated[str, Path(max_length=64)], key: Operator):
    if not optouts.remove(get_engine(), [_e164(phone)]):
        from campaigns.errors import NotFound

        raise NotFound(f"{phone} is not on the opt-out list")
    return Response(status_code=204)
