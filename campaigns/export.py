"""Results export: one row per recipient, streamed, safe to open in a spreadsheet."""

from __future__ import annotations

import csv
from collections.abc import Iterator

from sqlalchemy import select

from campaigns.db import get_engine
from campaigns.models import Campaign, Message

COLUMNS = ["row_number", "phone", "raw_phone", "state", "skip_reason", "provider_message_id", "cost",
           "attempts", "error_code", "error_reason", "created_at", "queued_at", "submitted_at", "sent_at",
           "delivered_at", "read_at", "failed_at", "updated_at"]
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value) -> str:
    """A cell a spreadsheet would run as a formula gets a leading apostrophe (CSV injection)."""
    if value is None:
        return ""
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    # E.164 numbers start with "+" and are data, but a spreadsheet still reads them as formulas.
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def rows(campaign_id: int, *, chunk: int = 10_000) -> Iterator[list[str]]:
    engine = get_engine()
    columns = [getattr(Message, name) for name in COLUMNS]
    with engine.connect() as connection:
        if connection.execute(select(Campaign.id).where(Campaign.id == campaign_id)).first() is None:
            from campaigns.errors import NotFound

            raise NotFound(f"no campaign with id {campaign_id}")
        result = connection.execution_options(stream_results=True, yield_per=chunk).execute(
            select(*columns).where(Message.campaign_id == campaign_id).order_by(Message.id))
        for row in result:
            yield [neutralise(value) for value in row]


def write_csv(campaign_id: int, stream) -> int:
    writer = csv.writer(stream)
    writer.writerow(COLUMNS)
    count = 0
    for row in rows(campaign_id):
        writer.writerow(row)
        count += 1
    return count
