"""Celery tasks of the sending area. Arguments are ids only: no secret, no message text."""

from __future__ import annotations

from workers import pacer, reconciler, sending
from workers.app import app


def publish_send(campaign_id: int, message_ids: list[int]) -> None:
    send_messages.apply_async((campaign_id, message_ids), queue="send")


@app.task(name="blast.send_messages", acks_late=True)
def send_messages(campaign_id: int, message_ids: list[int]) -> dict:
    """Send these messages of one campaign (a handful at most; the pacer sizes the batch)."""
    return sending.send_messages(campaign_id, message_ids)


def pace_now(account_name: str | None = None, *, limiter) -> int:
    names = [account_name] if account_name else None
    return pacer.pace(publish=publish_send, account_names=names, limiter=limiter)


@app.task(name="blast.pace", ignore_result=True)
def pace(account_name: str | None = None) -> int:
    from workers.rate_limits import get_limiter

    return pace_now(account_name, limiter=get_limiter())


@app.task(name="blast.reconcile", ignore_result=True)
def reconcile() -> dict:
    return reconciler.reconcile()
