"""The campaign page's chart: messages accepted per minute over the span the campaign covers (its first
minute to now, or to its last minute once over), at most its last `insights.CHART_MINUTES` minutes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from campaigns.db import get_engine
from campaigns.errors import NotFound
from campaigns.lifecycle import is_over
from campaigns.models import Campaign, utcnow
from campaigns.web import insights

MINUTE = timedelta(minutes=1)


def _minute(moment: datetime) -> datetime:
    """`moment` as an aware UTC datetime at the start of its minute (SQLite gives back naive UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def campaign_minutes(campaign_id: int, *, now: datetime | None = None) -> dict:
    """{"minutes": [{"minute": "YYYY-MM-DDTHH:MM" (UTC), "count": n}, ...] oldest first, one per minute from
    the campaign's start to now (or to the minute it finished or was cancelled); "clipped": true when the
    campaign is longer than the chart and only its last minutes are there}.

    A campaign that never started through the lifecycle (no start time) spans from its first minute with
    an accepted message in the last hour, or is just the end minute when it has none.
    """
    now = _minute(now or utcnow())
    with get_engine().connect() as connection:
        row = connection.execute(select(Campaign.status, Campaign.started_at, Campaign.finished_at)
                                 .where(Campaign.id == campaign_id)).one_or_none()
    if row is None:
        raise NotFound(f"no campaign with id {campaign_id}")
    end = _minute(row.finished_at) if is_over(row.status) and row.finished_at else now
    end = min(end, now)
    start = _minute(row.started_at) if row.started_at else None
    if start is None or start > end:
        recent = insights.sent_per_minute(campaign_id, now=end)
        first = next((i for i, slot in enumerate(recent) if slot["count"]), len(recent) - 1)
        return {"minutes": recent[first:], "clipped": False}
    span = (end - start) // MINUTE + 1
    shown = min(span, insights.CHART_MINUTES)
    return {"minutes": insights.sent_per_minute(campaign_id, minutes=shown, now=end), "clipped": span > shown}
