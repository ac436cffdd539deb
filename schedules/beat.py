"""The beat schedule, one dict: what runs periodically and how often (seconds); and the scheduler that lets
only one beat send it, however many are started."""

from __future__ import annotations

import hashlib
import logging

from celery.beat import Scheduler

from campaigns.settings import get_settings
from schedules import locks

log = logging.getLogger("blast.beat")

_TICK = get_settings().schedule_tick_seconds
_POLL = get_settings().report_poll_seconds  # BLAST_REPORT_POLL_SECONDS

BEAT_SCHEDULE = {
    # Keep every account's queue a few seconds deep; start scheduled campaigns; finish done ones.
    "pace": {"task": "blast.pace", "schedule": 1.0, "options": {"expires": 5}},
    # Re-queue what the broker forgot; mark sends lost in a crash unknown and resolve them.
    "reconcile": {"task": "blast.reconcile", "schedule": get_settings().reconcile_every_seconds,
                  "options": {"expires": 30}},
    # Delivery reports and opt-outs (schedules/tasks.py); each job runs under a lock (schedules/locks.py).
    "apply-waiting-events": {"task": "blast.apply_waiting_events", "schedule": 5.0, "options": {"expires": 5}},
    "poll-reports": {"task": "blast.poll_reports", "schedule": _POLL, "options": {"expires": max(_POLL, 10)}},
    "poll-inbound": {"task": "blast.poll_inbound", "schedule": _POLL, "options": {"expires": max(_POLL, 10)}},
    # Reminder blasts that are due become campaigns (BLAST_SCHEDULE_TICK_SECONDS).
    "fire-schedules": {"task": "blast.fire_schedules", "schedule": _TICK, "options": {"expires": max(2 * _TICK, 10)}},
    # Outbound webhooks: retries whose time came, and events whose kick was lost (workers/webhooks.py).
    "sweep-webhooks": {"task": "blast.sweep_webhooks", "schedule": 2.0, "options": {"expires": 2}},
    "prune-webhooks": {"task": "blast.prune_webhooks", "schedule": 3600.0, "options": {"expires": 600}},
    "check-balances": {"task": "blast.check_balances", "schedule": 3600.0, "options": {"expires": 600}},
    # Campaigns paused because the gateway held their template (Meta 132015) resume once it is approved again.
    "resume-held-templates": {"task": "blast.resume_held_templates", "schedule": 300.0, "options": {"expires": 60}},
}

LEASE_NAME = "beat"  # one lease per installation (its database): see lease_name()
LEASE_SECONDS = 5.0  # a beat that stops renewing (killed, hung) lets a standby take over after this long
RENEW_EVERY_SECONDS = LEASE_SECONDS / 5  # the leader renews at least this often, between sends
STANDBY_CHECK_SECONDS = 1.0  # how often a standing-by beat tries to take the lease


def lease_name() -> str:
    """The beat lease of this installation: two Blast installations sharing one Redis (each with its own
    database) each keep their own beat. The name holds a digest of the database URL, never its password."""
    from sqlalchemy.engine import make_url

    database = make_url(get_settings().database_url).render_as_string(hide_password=True)
    return f"{LEASE_NAME}:{hashlib.sha256(database.encode()).hexdigest()[:16]}"


class OneBeatScheduler(Scheduler):
    """Celery beat's in-memory scheduler, sending only while this process holds the beat lease.

    A second `blast beat` started by mistake stands by and sends nothing; it takes over when the first
    one stops (at once after SIGTERM, within LEASE_SECONDS after SIGKILL). The schedule is not persisted:
    after a start, each job first runs one period later; reminder blasts keep their times in the database.
    """

    lease: locks.BeatLease | None = None
    leading: bool | None = None

    def setup_schedule(self) -> None:
        """BEAT_SCHEDULE is the schedule (the Celery app does not carry it: workers never import schedules)."""
        super().setup_schedule()
        self.merge_inplace(BEAT_SCHEDULE)

    def tick(self, *args, **kwargs) -> float:
        """One round; returns the seconds to sleep before the next."""
        if self.lease is None:
            self.lease = locks.BeatLease(lease_name(), ttl_seconds=LEASE_SECONDS)
        try:
            leading = self.lease.hold()
        except Exception as error:  # the lock's store is unreachable: sending nothing is the safe side
            if self.leading is not False:
                log.warning("beat lease unavailable (%s); sending nothing until it is back", type(error).__name__)
            leading = False
        self._note_leadership(leading)
        if not leading:
            return STANDBY_CHECK_SECONDS
        return min(super().tick(*args, **kwargs), RENEW_EVERY_SECONDS)

    def _note_leadership(self, leading: bool) -> None:
        if leading == self.leading:
            return
        if leading and self.leading is False:
            log.warning("beat lease taken over from a beat that stopped: this beat sends the schedule now")
        elif leading:
            log.info("beat lease taken: this beat sends the schedule")
        else:
            log.warning("another beat holds the beat lease: this beat stands by and sends nothing")
        self.leading = leading

    def close(self) -> None:
        try:
            if self.lease is not None:
                self.lease.release()
                self.lease = None
                self.leading = None
        finally:
            super().close()
