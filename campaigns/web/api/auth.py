"""Who is asking: the API key in `Authorization: Bearer`, whether its role may (campaigns.apikeys), and whether
it is within its request rate (BLAST_API_RATE_PER_KEY). A key let in is the request's actor for the audit log:
`key:<name>`, from the client's address (campaigns.audit)."""

from __future__ import annotations

import math
import time
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from campaigns import apikeys, audit
from campaigns.db import get_engine
from campaigns.models import ApiKey
from campaigns.settings import get_settings
from campaigns.web.api.problems import Problem
from campaigns.web.auth import client_address

UNAUTHENTICATED = {"WWW-Authenticate": 'Bearer realm="blast"'}
# Declares the scheme in the OpenAPI document; the header is read and answered below (401 as problem+json).
BEARER = HTTPBearer(auto_error=False, description="an API key from `blast apikey create`")
# A request over its key's rate waits this long at most for its turn (seconds); past it, 429.
API_RATE_WAIT_SECONDS = 1.0


def api_key(request: Request, _declared: Annotated[object, Depends(BEARER)] = None) -> ApiKey:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(401, "Unauthorized", "send the API key as Authorization: Bearer <key>", UNAUTHENTICATED)
    key = apikeys.authenticate(get_engine(), token.strip())
    if key is None:
        raise Problem(401, "Unauthorized", "the API key is wrong or revoked", UNAUTHENTICATED)
    _take_turn(key)
    return key


def _take_turn(key: ApiKey) -> None:
    """A slot of the key's request rate from the limiter the gateways' sends use (one schedule per key for
    every web process, through Redis when it is configured); a short wait for it, else 429."""
    from workers.rate_limits import get_limiter

    limiter, rate = get_limiter(), get_settings().api_rate_per_key
    deadline = time.monotonic() + API_RATE_WAIT_SECONDS
    while (wait := limiter.reserve(f"api-key:{key.key_hash[:16]}", rate=rate)) > 0:
        if time.monotonic() + wait > deadline:
            raise Problem(429, "Too many requests",
                          f"the key {key.name!r} may make {rate:g} requests a second; retry in {wait:.1f} s",
                          {"Retry-After": str(max(1, math.ceil(wait)))})
        time.sleep(wait)


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
