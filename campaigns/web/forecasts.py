"""The forecast on the launch page (campaigns.forecast), before the Launch button, and the check the launch makes
with it: when the gateway's balance does not cover the cost, the launch needs the operator's confirmation.

The page reads the whole file for it, so only a file the request itself would ingest gets one (up to
launches.BACKGROUND_BYTES); a bigger one is read by a worker at launch, and `blast launch --dry-run` forecasts it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from campaigns import prices
from campaigns.errors import BlastError
from campaigns.forecast import Forecast, forecast
from campaigns.settings import AccountConfig
from campaigns.web import launches, uploads


class CostNotCovered(BlastError):
    """A launch the balance cannot cover, not confirmed."""


def too_big(upload: uploads.Upload) -> bool:
    return launches.in_background(upload.path)


def forecast_upload(upload: uploads.Upload, account: AccountConfig, *, template: str, region: str,
                    phone_column: str | None, kind: str | None, media_url: str | None, quiet_hours: str | None,
                    at: datetime | None, facts: tuple | None = None) -> Forecast | None:
    """The forecast of launching the upload as the form says, with the gateway's balance answer and daily cap
    (`facts`, balances.gateway_facts; asked now when not given); None for a file too big to read within the
    request."""
    from campaigns.db import get_engine
    from campaigns.web.balances import gateway_facts

    if too_big(upload):
        return None
    balance_answer, cap = facts if facts is not None else gateway_facts(account)
    with uploads.named(upload):
        return forecast(upload.path, account=account, template=template, region=region,
                        phone_column=phone_column, media_url=media_url, options={"kind": kind} if kind else None,
                        quiet_hours_window=quiet_hours, at=at, engine=get_engine(), balance_answer=balance_answer,
                        daily_cap=cap)


def check_covered(upload: uploads.Upload, account: AccountConfig, *, confirmed: bool, **launch) -> None:
    """CostNotCovered when the gateway tells a balance that does not cover this launch's cost and the operator
    has not confirmed it; nothing is asked of a gateway that tells no balance, or once confirmed, and the file
    is read only when the gateway answered with a balance (one that cannot be asked now lets the launch go)."""
    from campaigns.prices import balance_of
    from campaigns.web.balances import gateway_facts, tells_balance

    if confirmed or not tells_balance(account):
        return
    facts = gateway_facts(account)
    if balance_of(account, facts[0]) is None:
        return
    figures = forecast_upload(upload, account, facts=facts, **launch)
    if figures is not None and figures.balance_ok is False:
        raise CostNotCovered(f"the balance ({money(figures.balance, figures.currency)}) does not cover the cost "
                             f"({money(figures.cost, figures.currency)} for {figures.valid:,} messages): "
                             f"tick the confirmation on the launch page to launch anyway")


def money(amount: float | None, unit: str | None) -> str:
    """An amount as the page shows it (campaigns.prices.text)."""
    return prices.text(amount, unit)


def duration(seconds: float) -> str:
    """`seconds` as the page shows a duration: 2 h 5 min, 3 min 20 s, 12 s."""
    left = timedelta(seconds=round(seconds))
    days, rest = left.days, left.seconds
    hours, minutes, secs = rest // 3600, rest % 3600 // 60, rest % 60
    parts = [(days, "d"), (hours, "h"), (minutes, "min"), (secs, "s")]
    shown = [f"{n} {unit}" for n, unit in parts if n][:2]
    return " ".join(shown) or "under a second"
