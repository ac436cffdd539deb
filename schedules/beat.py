"""The beat schedule, one dict: what runs periodically and how often (seconds)."""

from campaigns.settings import get_settings

BEAT_SCHEDULE = {
    # Keep every account's queue a few seconds deep; start scheduled campaigns; finish done ones.
    "pace": {"task": "blast.pace", "schedule": 1.0, "options": {"expires": 5}},
    # Re-queue what the broker forgot; mark sends lost in a crash unknown and resolve them.
    "reconcile": {"task": "blast.reconcile", "schedule": get_settings().reconcile_every_seconds,
                  "options": {"expires": 30}},
}
