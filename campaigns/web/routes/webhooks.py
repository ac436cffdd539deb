"""The webhooks page: subscriptions (add, remove, send a test event) and each one's delivery log.

A new subscription's secret is shown once, in the answer to the form that added it (not kept in the session,
not in a URL, not cached); no other page shows it."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse

from campaigns.db import get_engine
from campaigns.errors import BlastError, NotFound
from campaigns.web.rendering import Admin, page, posted_form
from campaigns.webhooks import deliveries, subscriptions

router = APIRouter()


def _subscription_rows() -> list[dict]:
    engine = get_engine()
    return [row | {"counts": deliveries.counts(engine, row["id"])} for row in subscriptions.listing(engine)]


def _webhooks_page(request: Request, status_code: int = 200, **context):
    return page(request, "webhooks.html", status_code=status_code, subscriptions=_subscription_rows(),
                event_types=subscriptions.EVENT_TYPES, **context)


@router.get("/webhooks")
def webhooks_page(request: Request, user: Admin):
    """Every subscription with its events, its last answer and its deliveries by state; a form to add one."""
    return _webhooks_page(request, notice=request.query_params.get("notice"))


@router.post("/webhooks")
async def add_subscription(request: Request, user: Admin):
    """A new subscription; the answer shows its secret, once."""
    form = await request.form()
    await posted_form(request)
    events = [str(value) for value in form.getlist("events")]
    try:
        subscription_id, secret = await run_in_threadpool(subscriptions.add, get_engine(), str(form.get("url") or ""),
                                                          events)
    except BlastError as error:
        return _webhooks_page(request, status_code=400, error=str(error))
    answer = _webhooks_page(request, created={"id": subscription_id, "secret": secret})
    answer.headers["Cache-Control"] = "no-store"
    return answer


@router.get("/webhooks/{subscription_id}")
def delivery_log(request: Request, subscription_id: int, user: Admin):
    """The subscription's latest deliveries with the answer each got."""
    engine = get_engine()
    try:
        subscription = subscriptions.shown(engine, subscription_id)
    except NotFound as error:
        return page(request, "error.html", status_code=404, message=str(error))
    return page(request, "webhook_log.html", subscription=subscription, log=deliveries.log(engine, subscription_id),
                counts=deliveries.counts(engine, subscription_id), notice=request.query_params.get("notice"))


@router.post("/webhooks/{subscription_id}/test")
async def send_test(request: Request, subscription_id: int, user: Admin):
    """A `webhook.test` event for the subscription, delivered by a worker as any event."""
    await posted_form(request)
    engine = get_engine()
    try:
        await run_in_threadpool(subscriptions.shown, engine, subscription_id)
        await run_in_threadpool(deliveries.add_test_event, engine, subscription_id)
    except NotFound as error:
        return page(request, "error.html", status_code=404, message=str(error))
    return RedirectResponse(f"/webhooks/{subscription_id}?notice=test+event+sent", status_code=303)


@router.post("/webhooks/{subscription_id}/remove")
async def remove_subscription(request: Request, subscription_id: int, user: Admin):
    await posted_form(request)
    try:
        await run_in_threadpool(subscriptions.remove, get_engine(), subscription_id)
    except NotFound as error:
        return page(request, "error.html", status_code=404, message=str(error))
    return RedirectResponse("/webhooks?notice=removed", status_code=303)
