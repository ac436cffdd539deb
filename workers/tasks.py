"""Celery tasks of the sending area. Arguments are ids only: no secret, no message text."""

from __future__ import annotations

import logging

from workers import pacer, reconciler, sending
from workers.app import app, ensure_configured

log = logging.getLogger("blast.tasks")


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
    return reconcile_now()


def reconcile_now() -> dict:
    """The reconciler's round, and ingest jobs nobody runs any more handed to a worker again."""
    from campaigns.db import get_engine
    from campaigns.ingest import jobs

    result = reconciler.reconcile()
    for job_id in jobs.stalled(get_engine()):
        log.warning("ingest job %s: nobody is running it; handing it to a worker again", job_id)
        publish_ingest(job_id)
    return result


def publish_ingest(job_id: int, token: str | None = None) -> None:
    ensure_configured(app)
    ingest.apply_async((job_id,), {"token": token} if token else {}, queue="ingest")


# A database that went away mid-ingest: tried again after this many seconds (doubling, up to the last).
INGEST_RETRY_SECONDS = (1, 2, 4, 8, 15, 30)


@app.task(name="blast.ingest", bind=True, acks_late=True, max_retries=None, ignore_result=True)
def ingest(self, job_id: int, token: str | None = None) -> str | None:
    """Read an ingest job's contact file into its campaign (campaigns.ingest.jobs), from where it stopped.

    A file problem fails the job with its reason (the operator retries or discards it). A database or
    broker failure is tried again with the same lease token, so the retry takes over at once."""
    import secrets

    from sqlalchemy.exc import DBAPIError

    from campaigns.db import get_engine
    from campaigns.errors import BlastError
    from campaigns.ingest import jobs
    from campaigns.settings import ConfigError

    token = token or secrets.token_hex(16)
    try:
        return jobs.run(get_engine(), job_id, token=token)
    except (BlastError, ConfigError) as error:
        log.warning("ingest job %s failed: %s", job_id, error)
        return None
    except jobs.LeaseLost as error:
        log.info("%s", error)
        return None
    except DBAPIError as error:
        delays = INGEST_RETRY_SECONDS
        delay = delays[min(self.request.retries, len(delays) - 1)]
        log.warning("ingest job %s: the database failed (%s); trying again in %s s", job_id,
                    type(error).__name__, delay)
        raise self.retry(args=(job_id,), kwargs={"token": token}, countdown=delay) from None
