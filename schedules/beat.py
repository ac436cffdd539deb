"""The beat schedule, one dict: what runs periodically and how often (seconds)."""

from campaigns.settings import get_settings

BEAT_SCHEDULE = {
    # Keep every account's queue a few seconds deep; start scheduled campaigns; finish done ones.
    "pace": {"task": "blast.pace", "schedule": 1.0, "options": {"expires": 5}},
    # Re-queue what the broker forgot; mark sends lost in a crash unknown and resolve them.
    "reconcile": {"task": "blast.reconcile", "schedule": get_settings().reconcile_every_seconds,
                  "options": {"expires": 30}},
    # Delivery reports and opt-outs (schedules/tasks.py); each job runs under a lock (schedules/locks.py).
    "apply-waiting-events": {"task": "blast.apply_waiting_events", "schedule": 5.0, "options": {"expires": 5}},
    "poll-reports": {"task": "blast.poll_reports", "schedule": 60.0, "options": {"expires": 60}},
    "poll-inbound": {"task": "blast.poll_inbound", "schedule": 60.0, "options": {"expires": 60}},
    "fire-schedules": {"task": "blast.fire_schedules", "schedule": 30.0, "options": {"expires": 30}},
    "check-balances": {"task": "blast.check_balances", "schedule": 3600.0, "options": {"expires": 600}},
}
