"""`Idempotency-Key` on POSTs: the same key with the same request answers what the first got, and does nothing
again; with another request it is 409. The key and the answer are kept in the database (idempotentrequest),
per API key, so every web process sees them, and two requests with one key arriving at once make one thing:
the second waits for the first's answer."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable

from fastapi.responses import JSONResponse
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from campaigns.db import get_engine
from campaigns.models import ApiKey, IdempotentRequest, utcnow
from campaigns.web.api.problems import ANSWERED, MEDIA_TYPE, Problem, answer_for

WAIT_FOR_FIRST_SECONDS = 60.0
MAX_KEY_CHARS = 200


def fingerprint(method: str, path: str, body: object) -> str:
    text = json.dumps([method, path, body], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _response(status: int, body: dict) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE if status >= 400 else None)


def idempotent(key: ApiKey, header: str | None, request_hash: str, answer: Callable[[], tuple[int, dict]], *,
               remembered: Callable[[dict], dict] | None = None) -> JSONResponse:
    """`answer()` once per (API key, Idempotency-Key); its (status, body) kept and given again. `remembered`
    turns a body into what is kept (a secret shown once is left out)."""
    if header is None:
        try:
            return _response(*answer())
        except ANSWERED as error:
            return _response(*answer_for(error)[:2])
    if not header or len(header) > MAX_KEY_CHARS:
        raise Problem(400, "Invalid Idempotency-Key", f"an Idempotency-Key is 1 to {MAX_KEY_CHARS} characters")
    engine = get_engine()
    try:
        with engine.begin() as connection:
            record_id = connection.execute(IdempotentRequest.__table__.insert().values(
                api_key_id=key.id, key=header, request_hash=request_hash, created_at=utcnow())).inserted_primary_key[0]
    except IntegrityError:
        return _earlier_answer(key, header, request_hash)
    try:
        status, body = answer()
    except ANSWERED as error:
        status, body = answer_for(error)[:2]
    except BaseException:
        with engine.begin() as connection:  # nothing was answered: the key may be used again
            connection.execute(delete(IdempotentRequest).where(IdempotentRequest.id == record_id))
        raise
    with engine.begin() as connection:
        kept = remembered(body) if remembered is not None and status < 400 else body
        connection.execute(update(IdempotentRequest).where(IdempotentRequest.id == record_id)
                           .values(status_code=status, body=json.dumps(kept)))
    return _response(status, body)


def _earlier_answer(key: ApiKey, header: str, request_hash: str) -> JSONResponse:
    deadline = time.monotonic() + WAIT_FOR_FIRST_SECONDS
    while True:
        with get_engine().connect() as connection:
            earlier = connection.execute(select(IdempotentRequest).where(
                IdempotentRequest.api_key_id == key.id, IdempotentRequest.key == header)).one_or_none()
        if earlier is None:  # the first request failed and let the key go: this one may not retry it blindly
            raise Problem(409, "Conflict", "a request with this Idempotency-Key failed; send it again")
        if earlier.request_hash != request_hash:
            raise Problem(409, "Conflict", "this Idempotency-Key was used with another request")
        if earlier.status_code is not None:
            return _response(earlier.status_code, json.loads(earlier.body))
        if time.monotonic() > deadline:
            raise Problem(409, "Conflict", "a request with this Idempotency-Key is still being answered")
        time.sleep(0.05)
