"""The one seam through which `campaigns/` asks the workers for something.

`campaigns/` never imports Celery task modules at import time; it calls these functions, which import
the workers' side only when called.
"""

from __future__ import annotations


def kick_pacer(account_name: str | None = None) -> None:
    """Pace the account now (launch, resume, retry) instead of waiting for beat's next tick.

    The round runs right here, so the first send tasks reach the broker without a pace task's detour
    through it (launch to first message in well under a second)."""
    from workers.rate_limits import get_limiter
    from workers.tasks import pace_now

    pace_now(account_name, limiter=get_limiter())
