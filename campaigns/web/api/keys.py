"""/api/v1/keys: the API keys (admin only), as `blast apikey create|list|revoke` manages them.

A new key is in the answer to its POST and nowhere else: an Idempotency-Key's kept answer holds the key's name
and role but not the key (its repeat answers `"key": null`), so no table holds a usable key.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import Response

from campaigns import apikeys
from campaigns.db import get_engine
from campaigns.errors import NotFound
from campaigns.web.api import schemas
from campaigns.web.api.auth import Admin
from campaigns.web.api.idempotency import fingerprint, idempotent
from campaigns.web.api.problems import answers

router = APIRouter(prefix="/keys", tags=["keys"])
KeyName = Annotated[str, Path(min_length=1, max_length=100, description="the key's name")]


def _listed(name: str) -> dict:
    return next(key for key in apikeys.listing(get_engine()) if key["name"] == name)


@router.get("", response_model=list[schemas.ApiKey], responses=answers(401, 403))
def list_keys(key: Admin):
    """Every key's name, role and times; never a key."""
    return apikeys.listing(get_engine())


@router.post("", status_code=201, response_model=schemas.NewApiKey, responses=answers(400, 401, 403, 409, 422))
def create_key(body: schemas.ApiKeyIn, key: Admin,
               idempotency_key: Annotated[str | None, schemas.IDEMPOTENCY_HEADER] = None):
    """A new key: `key` is shown in this answer only."""
    def create() -> tuple[int, dict]:
        made = apikeys.create(get_engine(), body.name, body.role)
        return 201, {**_listed(body.name.strip()), "key": made}

    return idempotent(key, idempotency_key, fingerprint("POST", "/keys", body.model_dump()), create,
                      remembered=lambda answer: {**answer, "key": None})


@router.delete("/{name}", status_code=204, responses=answers(401, 403, 404, 422))
def revoke_key(name: KeyName, key: Admin):
    """Revoke a key: refused from the next request on."""
    if not apikeys.revoke(get_engine(), name):
        raise NotFound(f"no live key named {name!r}")
    return Response(status_code=204)
