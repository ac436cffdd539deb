"""Who is asking: the API key in `Authorization: Bearer`, and whether its role may (campaigns.apikeys). A key
let in is the request's actor for the audit log: `key:<name>`, from the client's address (campaigns.audit)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from campaigns import apikeys, audit
from campaigns.db import get_engine
from campaigns.models import ApiKey
from campaigns.web.api.problems import Problem
from campaigns.web.auth import client_address

UNAUTHENTICATED = {"WWW-Authenticate": 'Bearer realm="blast"'}
# Declares the scheme in the OpenAPI document; the header is read and answered below (401 as problem+json).
BEARER = HTTPBearer(auto_error=False, description="an API key from `blast apikey create`")


def api_key(request: Request, _declared: Annotated[object, Depends(BEARER)] = None) -> ApiKey:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(401, "Unauthorized", "send the API key as Authorization: Bearer <key>", UNAUTHENTICATED)
    key = apikeys.authenticate(get_engine(), token.strip())
    if key is None:
        raise Problem(401, "Unauthorized", "the API key is wrong or revoked", UNAUTHENTICATED)
    return key


def role(needed: str):
    """A dependency: the caller's key, when its role may do what `needed` may (else 403). (A coroutine: the
    audit actor it sets is in the request's own context, which the route's thread then copies.)"""

    async def check(request: Request, key: Annotated[ApiKey, Depends(api_key)]) -> ApiKey:
        if not apikeys.allows(key.role, needed):
            raise Problem(403, "Forbidden", f"this needs the {needed} role; the key {key.name!r} is {key.role}")
        audit.act_as(audit.key_actor(key.name, client_address(request)))
        return key

    return check


Viewer = Annotated[ApiKey, Depends(role("viewer"))]
Operator = Annotated[ApiKey, Depends(role("operator"))]
Admin = Annotated[ApiKey, Depends(role("admin"))]
