"""Gateway webhooks: POST /hooks/<provider>/<account>.

Authenticated by the account's webhook_secret, in the query (`token`, for gateways that take a URL per
message and cannot send our header: Devino's callbackUrl) or the `X-Blast-Token` header. Bad input is a
4xx, never a 500; 200 means stored (Devino retries a callback until it gets a 200).
"""

from __future__ import annotations

import hmac
import logging
import re

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool

from campaigns import delivery
from campaigns.db import get_engine
from campaigns.hooks import SECRET_PARAMETER
from campaigns.settings import AccountConfig, ConfigError, load_accounts
from workers.providers.events import (
    BadPayload,
    Inbound,
    StatusUpdate,
    parse_devino_callback,
    parse_devino_incoming,
    parse_httpapi_webhook,
)

router = APIRouter()
_TOKEN_IN_QUERY = re.compile(r"(token=)[^&\s\"']+")


class _MaskTokenFilter(logging.Filter):
    """The access log prints each request line, query string included: Devino's callbackUrl carries the
    webhook secret there, so it is masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "token=" in message:
            record.msg, record.args = _TOKEN_IN_QUERY.sub(r"\1****", message), ()
        return True


logging.getLogger("uvicorn.access").addFilter(_MaskTokenFilter())
TOKEN_HEADER = "X-Blast-Token"
MAX_BODY_BYTES = 20 * 1024 * 1024  # multipart inbox reports carry media files, which are not kept


def authenticated_account(request: Request, provider: str, account_name: str) -> AccountConfig:
    try:
        account = load_accounts().get(account_name)
    except ConfigError:
        raise HTTPException(503, "the account configuration cannot be read") from None
    if account is None or account.provider != provider:
        raise HTTPException(404, "no such account")
    given = request.query_params.get(SECRET_PARAMETER) or request.headers.get(TOKEN_HEADER)
    if not given:
        raise HTTPException(401, "missing token")
    expected = account.webhook_secret.get_secret_value() if account.webhook_secret else None
    if expected is None or not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
        raise HTTPException(403, "wrong token")
    return account


async def read_body(request: Request) -> bytes:
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise HTTPException(413, "body too large")
    return body


def store(account_name: str, events: list[StatusUpdate | Inbound]) -> dict[str, int]:
    engine = get_engine()
    updates = [event for event in events if isinstance(event, StatusUpdate)]
    inbound = [event for event in events if isinstance(event, Inbound)]
    counts = delivery.apply_updates(engine, account_name, updates, source="webhook")
    counts["opted_out"] = delivery.apply_inbound(engine, account_name, inbound, source="webhook") if inbound else 0
    return counts


@router.post("/hooks/devino/{account_name}")
async def devino_hook(account_name: str, request: Request) -> dict:
    """Status callbacks (a JSON array); an incoming message (has `from`) is read as such."""
    authenticated_account(request, "devino", account_name)
    body = await read_body(request)
    try:
        if b'"from"' in body and b'"messageId"' not in body:
            events: list = parse_devino_incoming(body)
        else:
            events = parse_devino_callback(body)
    except BadPayload as problem:
        raise HTTPException(400, str(problem)) from None
    return await run_in_threadpool(store, account_name, events)


@router.post("/hooks/httpapi/{account_name}")
async def httpapi_hook(account_name: str, request: Request) -> dict:
    """Delivery and inbox reports, JSON or multipart/form-data (JSON in the `json` field)."""
    authenticated_account(request, "httpapi", account_name)
    body = await read_body(request)
    try:
        events = parse_httpapi_webhook(body, request.headers.get("content-type", ""))
    except BadPayload as problem:
        raise HTTPException(400, str(problem)) from None
    return await run_in_threadpool(store, account_name, events)
