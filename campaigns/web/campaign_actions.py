"""Which of the campaign page's buttons apply: asked of campaigns/lifecycle.py before pressing instead of
refused after (tests/web/test_pages.py checks the two agree for every status)."""

from __future__ import annotations

from campaigns.lifecycle import CANCELLABLE, PAUSABLE, RESUMABLE, can_retry

BUTTON_ORDER = ("pause", "resume", "cancel", "retry", "resend-held")
LABELS = {"retry": "retry failed", "resend-held": "send the held (unknown) again"}


def allowed_actions(status: str, *, failed: int, held: int = 0) -> list[str]:
    """The actions lifecycle accepts for a campaign in `status` with `failed` failed messages and `held`
    messages held unknown for the operator, page order."""
    allowed = {
        "pause": status in PAUSABLE,
        "resume": status in RESUMABLE,
        "cancel": status in CANCELLABLE,
        "retry": can_retry(status, failed=failed),
        "resend-held": can_retry(status, failed=held),
    }
    return [action for action in BUTTON_ORDER if allowed[action]]
