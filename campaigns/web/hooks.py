"""Gateway webhooks: POST /hooks/<provider>/<account>, for every gateway whose spec says it posts them, and the
GET handshake of gateways that verify the address first (Meta's Cloud API).

A gateway that signs its webhooks (Meta: `X-Hub-Signature-256`) is authenticated by its signature over the raw
body, checked in constant time (401 when it does not match); the others are authenticated by the account's
webhook_secret, in the query (`token`, for gateways that take a URL per
message and cannot send our header: Devino's callbackUrl) or the `X-Blast-Token` header. Each gateway's
module reads its own body (`parse_webhook`). Bad input is a 4xx, never a 500:

- the body is read as a stream, at most BLAST_WEBHOOK_MAX_BYTES: a Content-Length above it is a 413 before
  anything is read, and a chunked body (no Content-Length) that passes it is a 413 as soon as it does, the
  rest never read;
- a body that is not the gateway's (not JSON, nested deeper than 32 levels, an item without its id) is a 400;
- a callback that is read but cannot be applied (no message has its id yet, a late or repeated status, a
  field out of range) is stored in `statusevent` with its raw item and answered 200 like any stored one:
  Devino retries a callback until it gets a 200 (with an empty body), so any other answer would bring the
  same callback back for a day without changing anything. A field out of range is stored with kind
  "rejected" for a human; the others wait for their message (`apply_waiting`) or are history;
- a database that cannot be reached is a 503, so the gateway tries again later.
"""

from __future__ import annotations

import hmac
import logging
import re

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.exc import OperationalError

from campaigns import delivery
from campaigns.db import get_engine
from campaigns.events import BadPayload, Inbound, StatusUpdate
from campaigns.hooks import SECRET_PARAMETER
from campaigns.settings import AccountConfig, ConfigError, get_settings, load_accounts

router = APIRouter()
_TOKEN_IN_QUERY = re.compile(r"(token=)[^&\s\"']+")


def _masked(value):
    return _TOKEN_IN_QUERY.sub(r"\1****", value) if isinstance(value, str) and "token=" in value else value


class _MaskTokenFilter(logging.Filter):
    """The access log prints each request line, query string included: Devino's callbackUrl carries the
    webhook secret there, so it is masked. The arguments keep their shape: uvicorn's access formatter
    unpacks them (client, method, path, version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = _masked(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_masked(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: _masked(value) for key, value in record.args.items()}
        return True


logging.getLogger("uvicorn.access").addFilter(_MaskTokenFilter())
TOKEN_HEADER = "X-Blast-Token"
logger = logging.getLogger(__name__)


def account_of(gateway: str, account_name: str) -> AccountConfig:
    """The account named in the path, if its gateway is the path's (404 otherwise)."""
    try:
        account = load_accounts().get(account_name)
    except ConfigError:
        raise HTTPException(503, "the account configuration cannot be read") from None
    if account is None or gateway != account.provider:
        raise HTTPException(404, "no such account")
    return account


def authenticated_account(request: Request, gateway: str, account_name: str) -> AccountConfig:
    """The account named in the path, if its gateway is the path's, and the token is its webhook_secret."""
    account = account_of(gateway, account_name)
    given = request.query_params.get(SECRET_PARAMETER) or request.headers.get(TOKEN_HEADER)
    if not given:
        raise HTTPException(401, "missing token")
    expected = account.webhook_secret.get_secret_value() if account.webhook_secret else None
    if expected is None or not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
        raise HTTPException(403, "wrong token")
    return account


async def read_body(request: Request, limit: int | None = None) -> bytes:
    """The request body, at most `limit` bytes (BLAST_WEBHOOK_MAX_BYTES): 413 when the Content-Length says
    more, before anything is read, or as soon as the stream passes the limit, the rest left unread."""
    limit = get_settings().webhook_max_bytes if limit is None else limit
    declared = (request.headers.get("content-length") or "").strip()
    if declared:
        if not declared.isascii() or not declared.isdigit():
            raise HTTPException(400, "a Content-Length that is not a number")
        if len(declared) > 18 or int(declared) > limit:
            raise HTTPException(413, f"body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def store(account_name: str, events: list[StatusUpdate | Inbound]) -> dict[str, int]:
    engine = get_engine()
    updates = [event for event in events if isinstance(event, StatusUpdate)]
    inbound = [event for event in events if isinstance(event, Inbound)]
    counts = delivery.apply_updates(engine, account_name, updates, source="webhook")
    counts["opted_out"] = delivery.apply_inbound(engine, account_name, inbound, source="webhook") if inbound else 0
    return counts


def store_routed(gateway, account: AccountConfig, events: list[StatusUpdate | Inbound]) -> dict[str, int]:
    """Each event stored as the account it is about (the gateway's `route_webhook`: Meta calls one address for
    every number of an app); the counts summed, with `unrouted` for events about a number no account here has
    (answered 200 all the same: the gateway would only send them again)."""
    counts: dict[str, int] = {}
    for name, routed in gateway.route_webhook(account, events).items():
        if name is None:
            counts["unrouted"] = len(routed)
            logger.warning("%d %s webhook event(s) that came to account %s are about a business number no account "
                           "here has (%s): not stored", len(routed), account.provider, account.name,
                           ", ".join(sorted({str(event.number_id) for event in routed})[:5]))
            continue
        for key, value in store(name, routed).items():
            counts[key] = counts.get(key, 0) + value
    return counts


@router.post("/hooks/{provider}/{account_name}")
async def gateway_hook(provider: str, account_name: str, request: Request):
    """Status callbacks and inbound messages, in the gateway's own shape."""
    from workers.providers.registry import client_class, providers

    if provider not in providers() or not client_class(provider).spec.webhooks:
        raise HTTPException(404, "no such webhook")
    gateway = client_class(provider)
    account = account_of(provider, account_name)
    body = await read_body(request)
    # Gateways that sign their webhooks (Meta: X-Hub-Signature-256 over the raw body, keyed with the app
    # secret) are checked on the bytes as received, before anything is parsed; the others carry our token.
    signed = gateway.webhook_signed(account, request.headers, body)
    if signed is False:
        raise HTTPException(401, "bad signature")
    if signed is None:
        authenticated_account(request, provider, account_name)
    try:
        # off the event loop: a body of several megabytes takes a while to read
        events = await run_in_threadpool(gateway.parse_webhook, body, request.headers.get("content-type", ""))
    except BadPayload as problem:
        raise HTTPException(400, str(problem)) from None
    try:
        counts = await run_in_threadpool(store_routed, gateway, account, events)
    except OperationalError:  # the database is away: not the callback's fault, so the gateway tries again
        logger.warning("a %s webhook for account %s could not be stored: the database is unreachable",
                       provider, account_name, exc_info=True)
        return Response("the database is unreachable; try again later", status_code=503,
                        headers={"Retry-After": "30"})
    if gateway.webhook_reply is None:
        return Response(status_code=200)
    return counts


@router.get("/hooks/{provider}/{account_name}")
async def gateway_hook_verification(provider: str, account_name: str, request: Request):
    """A gateway's check of the webhook address before it posts there (Meta's `hub.mode=subscribe` handshake
    with the account's verify token): the challenge echoed as the bare body, or 403."""
    from workers.providers.base import NotOffered
    from workers.providers.registry import client_class, providers

    if provider not in providers() or not client_class(provider).spec.webhooks:
        raise HTTPException(404, "no such webhook")
    account = account_of(provider, account_name)
    try:
        challenge = client_class(provider).webhook_challenge(account, request.query_params)
    except NotOffered:
        raise HTTPException(405, "this gateway verifies no webhook address") from None
    if challenge is None:
        raise HTTPException(403, "wrong verify token")
    return Response(challenge, media_type="text/plain")
