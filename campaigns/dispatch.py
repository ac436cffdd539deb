"""The one seam through which `campaigns/` asks the workers for something.

`campaigns/` never imports Celery task modules at import time; it calls these functions, which publish
by task name.
"""

from __future__ import annotations


def kick_pacer(account_name: str | None = None) -> None:
    """Ask for a pacing round now (launch, resume, retry) instead of waiting for beat's next tick."""
    from workers.app import app

    app.send_task("blast.pace", kwargs={"account_name": account_name}, queue="pace")
