"""Periodic tasks of beat that are not part of sending (delivery reports, opt-outs, balances).

A second beat started by mistake sends nothing (the beat lease, schedules.beat.OneBeatScheduler). Each job
also runs under a lock named after it (schedules.locks), so two runs of one job never overlap (a lease
handover, a backlog of the same task): the second caller finds the lock taken and returns without doing anything.
"""

from __future__ import annotations

import logging

from campaigns import delivery
from campaigns.db import get_engine
from campaigns.settings import load_accounts
from schedules import locks, polling
from workers.app import app

log = logging.getLogger(__name__)
LOCK_SECONDS = 300.0  # longest a poll may hold its lock (a crashed holder frees it after this)


def locked(name: str, job) -> dict:
    with locks.job_lock(name, ttl_seconds=LOCK_SECONDS) as held:
        if not held:
            return {"skipped": "another beat holds the lock"}
        return job()


def each_account(job) -> dict:
    results = {}
    for account in load_accounts().values():
        try:
            results[account.name] = job(account)
        except Exception as error:  # one gateway's trouble must not stop the others' polling
            log.warning("polling account %s failed: %s", account.name, type(error).__name__)
            results[account.name] = {"error": type(error).__name__}
    return results


@app.task(name="blast.poll_reports", ignore_result=True)
def poll_reports() -> dict:
    return locked("poll_reports", lambda: each_account(
        lambda account: polling.poll_reports(get_engine(), account)))


@app.task(name="blast.poll_inbound", ignore_result=True)
def poll_inbound() -> dict:
    return locked("poll_inbound", lambda: each_account(
        lambda account: polling.poll_inbound(get_engine(), account)))


@app.task(name="blast.check_balances", ignore_result=True)
def check_balances() -> dict:
    return locked("check_balances", lambda: each_account(polling.check_balance))


@app.task(name="blast.resume_held_templates", ignore_result=True)
def resume_held_templates() -> dict:
    """Campaigns paused because their gateway held their template, resumed once it is approved again."""
    from campaigns import approved_templates

    return locked("resume_held_templates",
                  lambda: {"resumed": approved_templates.resume_held(get_engine())})


@app.task(name="blast.apply_waiting_events", ignore_result=True)
def apply_waiting_events() -> dict:
    """Callbacks that arrived before the worker recorded the provider id."""
    return locked("apply_waiting_events", lambda: {"applied": delivery.apply_waiting(get_engine())})


@app.task(name="blast.fire_schedules", ignore_result=True)
def fire_schedules() -> dict:
    """Reminder blasts that are due become campaigns."""
    from campaigns import reminders

    return locked("fire_schedules", lambda: {"launched": reminders.fire_due(get_engine())})
