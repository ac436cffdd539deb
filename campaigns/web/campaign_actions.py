"""Which of the campaign page's buttons apply: the same rules campaigns/lifecycle.py enforces, asked before
pressing instead of refused after (tests/test_web_pages.py checks the two agree for every status)."""

from __future__ import annotations

from campaigns.states import CampaignStatus

C = CampaignStatus

BUTTON_ORDER = ("pause", "resume", "cancel", "retry")
PAUSABLE = (C.RUNNING, C.SCHEDULED)
RESUMABLE = (C.PAUSED,)
CANCELLABLE = (C.DRAFT, C.SCHEDULED, C.RUNNING, C.PAUSED)


def allowed_actions(status: str, *, failed: int) -> list[str]:
    """The actions lifecycle accepts for a campaign in `status` with `failed` failed messages, page order."""
    allowed = {
        "pause": status in PAUSABLE,
        "resume": status in RESUMABLE,
        "cancel": status in CANCELLABLE,
        "retry": failed > 0 and status != C.CANCELLED,
    }
    return [action for action in BUTTON_ORDER if allowed[action]]
