"""What the operator pages show beyond the tallies: sending per minute, failures grouped, account health.

Everything is counted by the database from the message and attempt rows, so the pages agree with them.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from campaigns import dispatch, failover
from campaigns.db import get_engine, is_postgres
from campaigns.models import Attempt, Campaign, Message, utcnow
from campaigns.settings import AccountConfig
from campaigns.states import HELD_CODE, CampaignStatus, MessageState, Outcome

CHART_MINUTES = 60  # the chart shows the last hour, one bar per minute
HEALTH_MINUTES = 15  # an account's error and throttling rates are over this many recent minutes
MINUTE_FORMAT = "%Y-%m-%dT%H:%M"


def _minute_key(value) -> str:
    """A bucket as 'YYYY-MM-DDTHH:MM' (UTC), whatever type the database gave back."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.strftime(MINUTE_FORMAT)
    return str(value)[:16].replace(" ", "T")


def _minutes(minutes: int, now: datetime | None) -> tuple[datetime, list[str]]:
    """The start of the first of the last `minutes` minutes (the one running now last), and each minute's key."""
    now = (now or utcnow()).astimezone(UTC).replace(second=0, microsecond=0)
    since = now - timedelta(minutes=minutes - 1)
    return since, [(since + timedelta(minutes=i)).strftime(MINUTE_FORMAT) for i in range(minutes)]


def _minute_of(engine, column):
    """SQL for the minute a timestamp column falls in (compared through `_minute_key`)."""
    if is_postgres(engine):
        return func.date_trunc("minute", column)
    return func.strftime("%Y-%m-%dT%H:%M", column)


def sent_per_minute(campaign_id: int, *, minutes: int = CHART_MINUTES,
                    now: datetime | None = None) -> list[dict]:
    """Messages the gateway accepted (`submitted_at`) per minute over the last `minutes`, oldest first.

    Each item is {"minute": "YYYY-MM-DDTHH:MM" (UTC), "count": n}; minutes with none are present as 0.
    """
    engine = get_engine()
    since, slots = _minutes(minutes, now)
    bucket = _minute_of(engine, Message.submitted_at)
    query = (select(bucket, func.count()).where(Message.campaign_id == campaign_id,
                                                Message.submitted_at >= since)
             .group_by(bucket))
    with engine.connect() as connection:
        counts = {_minute_key(minute): n for minute, n in connection.execute(query)}
    return [{"minute": slot, "count": counts.get(slot, 0)} for slot in slots]


def accepted_per_minute(*, minutes: int = HEALTH_MINUTES, now: datetime | None = None) -> dict[str, list[int]]:
    """Per account, the calls its gateway accepted in each of the last `minutes` minutes, oldest first (the
    minute now running last, so far)."""
    engine = get_engine()
    since, slots = _minutes(minutes, now)
    bucket = _minute_of(engine, Attempt.at)
    query = (select(failover.message_account(), bucket, func.count()).select_from(Attempt)
             .join(Message, Message.id == Attempt.message_id).join(Campaign, Campaign.id == Message.campaign_id)
             .where(Attempt.at >= since, Attempt.outcome == Outcome.ACCEPTED.value)
             .group_by(failover.message_account(), bucket))
    counts: dict[str, dict[str, int]] = {}
    with engine.connect() as connection:
        for account, minute, n in connection.execute(query):
            counts.setdefault(account, {})[_minute_key(minute)] = n
    return {account: [found.get(slot, 0) for slot in slots] for account, found in counts.items()}


def limit_per_minute(*, minutes: int = HEALTH_MINUTES, now: datetime | None = None) -> dict[str, list[float]]:
    """Per account that was throttled lately, the lowest fraction of its configured rate the limiter held it
    to in each of the last `minutes` minutes, oldest first: its throttling answers (attempts) replayed through
    the limiter's own adaptive rules (`dispatch.rate_factors`). Accounts not throttled were held to 1.0."""
    end = (now or utcnow()).astimezone(UTC)
    since, _slots = _minutes(minutes, end)
    # A halving is fully won back within (1 / recovery_step) recovery periods: 10 s by default; a minute is plenty.
    query = (select(failover.message_account(), Attempt.at).select_from(Attempt)
             .join(Message, Message.id == Attempt.message_id).join(Campaign, Campaign.id == Message.campaign_id)
             .where(Attempt.at >= since - timedelta(minutes=1), Attempt.outcome == Outcome.THROTTLED.value)
             .order_by(Attempt.at))
    throttled: dict[str, list[float]] = {}
    with get_engine().connect() as connection:
        for account, at in connection.execute(query):
            throttled.setdefault(account, []).append(epoch_seconds(at))
    found = {}
    for account, answers in throttled.items():
        edges = [epoch_seconds(since + timedelta(minutes=i)) for i in range(minutes)] + [epoch_seconds(end)]
        # the lowest point of a minute is at its start or just after one of its halvings
        moments = sorted({*edges[:-1], *(at for at in answers if edges[0] <= at <= edges[-1])})
        factors = dict(zip(moments, dispatch.rate_factors(answers, moments), strict=True))
        found[account] = [min(factor for moment, factor in factors.items() if start <= moment < stop)
                          for start, stop in itertools.pairwise(edges)]
    return found


def epoch_seconds(moment: datetime) -> float:
    """A timestamp from the database as epoch seconds (SQLite's come back naive, in UTC)."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


# The accounts page's rate chart (SVG user units): one bar a minute under the configured rate's line.
RATE_CHART_WIDTH, RATE_CHART_HEIGHT = 240, 48


def rate_chart(per_minute: list[int], *, configured: float, limits: list[float], effective: float | None) -> dict:
    """What the accounts page draws for one account: each minute's sending rate (accepted calls / 60, per
    second) as a bar, the configured rate as a line and, where it was lower, the rate the limiter held the
    account to in each minute (`limits`, fractions of the configured rate) as a step line, scaled to the
    larger; and a sentence saying the same (with `effective`, the limiter's rate now)."""
    rates = [count / 60 for count in per_minute]
    top = max([configured, effective or 0, *rates]) * 1.1 or 1.0
    width = RATE_CHART_WIDTH / max(1, len(rates))

    def y(rate: float) -> float:
        return round(RATE_CHART_HEIGHT * (1 - rate / top), 1)

    bars = [{"x": round(i * width + 1, 1), "y": y(rate), "width": round(width - 2, 1),
             "height": round(RATE_CHART_HEIGHT - y(rate), 1), "rate": round(rate, 2)}
            for i, rate in enumerate(rates)]
    busiest = max(rates, default=0.0)
    summary = (f"Last {len(rates)} minutes: at most {busiest:.2f} a second in a minute, against a rate of "
               f"{configured:g}" + (f" (the limiter allows {effective:.2f} now)" if effective is not None
                                    and abs(effective - configured) > 1e-9 else "") + ".")
    held = " ".join(f"{round(i * width, 1)},{y(configured * limit)} {round((i + 1) * width, 1)},{y(configured * limit)}"
                    for i, limit in enumerate(limits)) if min(limits, default=1.0) < 1.0 else None
    return {"bars": bars, "configured_y": y(configured), "held": held, "summary": summary,
            "width": RATE_CHART_WIDTH, "height": RATE_CHART_HEIGHT}


def failures(campaign_id: int, *, limit: int = 50) -> list[dict]:
    """Failed messages grouped by error code and reason, most frequent first."""
    query = (select(Message.error_code, Message.error_reason, func.count().label("n"))
             .where(Message.campaign_id == campaign_id, Message.state == MessageState.FAILED)
             .group_by(Message.error_code, Message.error_reason)
             .order_by(func.count().desc()).limit(limit))
    with get_engine().connect() as connection:
        return [{"code": code or "", "reason": reason or "", "count": n}
                for code, reason, n in connection.execute(query)]


def held(campaign_id: int) -> int:
    """Messages held `unknown` for the operator: the gateway may have them and cannot be asked."""
    query = (select(func.count()).select_from(Message)
             .where(Message.campaign_id == campaign_id, Message.state == MessageState.UNKNOWN,
                    Message.error_code == HELD_CODE))
    with get_engine().connect() as connection:
        return connection.execute(query).scalar_one()


def skip_reasons(campaign_id: int, *, limit: int = 20) -> list[dict]:
    """Skipped recipients grouped by reason (the ingest's verdicts), most frequent first."""
    query = (select(Message.skip_reason, func.count())
             .where(Message.campaign_id == campaign_id, Message.state == MessageState.SKIPPED)
             .group_by(Message.skip_reason).order_by(func.count().desc()).limit(limit))
    with get_engine().connect() as connection:
        return [{"reason": reason or "", "count": n} for reason, n in connection.execute(query)]


def recent_outcomes(*, minutes: int = HEALTH_MINUTES) -> dict[str, dict[str, int]]:
    """Attempts per account and outcome over the last `minutes`: {account: {outcome: n}}."""
    since = utcnow() - timedelta(minutes=minutes)
    query = (select(failover.message_account(), Attempt.outcome, func.count())
             .select_from(Attempt)
             .join(Message, Message.id == Attempt.message_id)
             .join(Campaign, Campaign.id == Message.campaign_id)
             .where(Attempt.at >= since)
             .group_by(failover.message_account(), Attempt.outcome))
    found: dict[str, dict[str, int]] = {}
    with get_engine().connect() as connection:
        for account, outcome, n in connection.execute(query):
            found.setdefault(account, {})[outcome] = n
    return found


def paused_campaigns() -> dict[str, list[dict]]:
    """Paused campaigns per account, with the reason and the detail the pauser gave."""
    query = (select(Campaign.account_name, Campaign.id, Campaign.name, Campaign.pause_reason,
                    Campaign.pause_detail)
             .where(Campaign.status == CampaignStatus.PAUSED).order_by(Campaign.id))
    found: dict[str, list[dict]] = {}
    with get_engine().connect() as connection:
        for account, campaign_id, name, reason, detail in connection.execute(query):
            found.setdefault(account, []).append(
                {"id": campaign_id, "name": name, "reason": reason or "", "detail": detail or ""})
    return found


def effective_rate(account: AccountConfig) -> float | None:
    """The rate the limiter grants now (lower than configured while backing off), or None if unknown."""
    try:
        return dispatch.effective_rate(account.name, account.rate)
    except Exception:  # Redis down or unreachable: the page still shows everything else
        return None


# Messages a campaign still has to send; the funnel's stages, each counting the messages that got that far.
LEFT_STATES = (MessageState.PENDING.value, MessageState.QUEUED.value, MessageState.SENDING.value)
FUNNEL = (
    ("submitted", (MessageState.SUBMITTED, MessageState.SENT, MessageState.DELIVERED, MessageState.READ)),
    ("sent", (MessageState.SENT, MessageState.DELIVERED, MessageState.READ)),
    ("delivered", (MessageState.DELIVERED, MessageState.READ)),
    ("read", (MessageState.READ,)),
)


def eta_seconds(*, status: str, left: int, rate: float | None, sharing: int) -> float | None:
    """Seconds until a campaign has sent the `left` messages it has, at its account's effective `rate`
    (messages/s) shared equally by the account's `sharing` running campaigns (itself included); None while it
    is not running, or when the rate is not known."""
    if status != CampaignStatus.RUNNING.value or not rate:
        return None
    return left * max(1, sharing) / rate if left else 0.0


def account_of(campaign_id: int) -> str | None:
    """The name of the account a campaign sends through."""
    with get_engine().connect() as connection:
        return connection.execute(select(failover.current_account()).where(Campaign.id == campaign_id)).scalar()


def running_per_account() -> dict[str, int]:
    """How many campaigns each account is running now."""
    with get_engine().connect() as connection:
        return dict(connection.execute(select(failover.current_account(), func.count())
                                       .where(Campaign.status == CampaignStatus.RUNNING.value)
                                       .group_by(failover.current_account())).all())


def campaign_progress(report: dict, account: AccountConfig | None) -> dict:
    """How far a campaign (`tallies.campaign_report`) has come: `to_send` (every message but the skipped and
    the cancelled), `done` of them (no longer pending, queued or sending), `percent`, `eta_seconds` (None when
    not running or unknown), and the funnel from accepted to read, each stage with its count and its share of
    the accepted ones (0..1)."""
    counts = report["counts"]
    left = sum(counts[state] for state in LEFT_STATES)
    to_send = report["total"] - counts[MessageState.SKIPPED.value] - counts[MessageState.CANCELLED.value]
    done = to_send - left
    rate = effective_rate(account) if account is not None and report["status"] == "running" else None
    sharing = running_per_account().get(account.name, 1) if rate else 1
    stages = [(name, sum(counts[state.value] for state in states)) for name, states in FUNNEL]
    accepted = stages[0][1]
    return {
        "to_send": to_send,
        "done": done,
        "percent": round(100 * done / to_send, 1) if to_send else 100.0,
        "eta_seconds": eta_seconds(status=report["status"], left=left, rate=rate, sharing=sharing),
        "funnel": [{"stage": name, "count": n, "share": round(n / accepted, 4) if accepted else 0.0}
                   for name, n in stages],
    }


def account_health(accounts: dict[str, AccountConfig], *, minutes: int = HEALTH_MINUTES) -> list[dict]:
    """Per account: provider, configured and effective rate (messages per second), recent attempts with
    error and throttling rates (fractions 0..1 of attempts in the last `minutes`), paused campaigns.
    Only public facts: never a credential."""
    outcomes = recent_outcomes(minutes=minutes)
    paused = paused_campaigns()
    per_minute = accepted_per_minute(minutes=minutes)
    limits = limit_per_minute(minutes=minutes)
    rows = []
    for name, account in sorted(accounts.items()):
        counts = outcomes.get(name, {})
        total = sum(counts.values())
        throttled = counts.get(Outcome.THROTTLED, 0)
        errors = total - counts.get(Outcome.ACCEPTED, 0) - throttled
        effective = effective_rate(account)
        rows.append({
            "name": name,
            "provider": account.provider,
            "rate": account.rate,
            "effective_rate": effective,
            "chart": rate_chart(per_minute.get(name, [0] * minutes), configured=account.rate,
                                limits=limits.get(name, [1.0] * minutes), effective=effective),
            "attempts": total,
            "outcomes": dict(sorted(counts.items())),
            "error_rate": errors / total if total else None,
            "throttle_rate": throttled / total if total else None,
            "paused": paused.get(name, []),
        })
    return rows
