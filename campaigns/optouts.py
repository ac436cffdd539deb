"""Opt-outs: a recipient's STOP (in several languages) puts the number on the `optout` table; ingest skips
it in later campaigns, and pending messages of live campaigns to it become `skipped`."""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.engine import Engine

from campaigns import audit
from campaigns.models import Campaign, Message, OptOut, utcnow
from campaigns.states import CampaignStatus, MessageState
from campaigns.transitions import transition
from campaigns.webhooks import outbox

# Compared after `normalise_keyword`: lower case, accents dropped, no spaces or punctuation.
DEFAULT_KEYWORDS = frozenset({
    "stop", "stopall", "unsubscribe", "cancel", "end", "quit", "optout",  # English
    "stopp",  # German, Scandinavian
    "arret", "desabonner",  # French (ARRÊT)
    "alto", "parar", "baja", "cancelar",  # Spanish, Portuguese
    "saca",  # Luganda
    "komesha", "acha",  # Swahili
})
KEYWORDS_ENVIRONMENT = "BLAST_OPTOUT_KEYWORDS"  # comma-separated, replaces the defaults
LIVE_CAMPAIGNS = (CampaignStatus.RUNNING, CampaignStatus.PAUSED, CampaignStatus.SCHEDULED, CampaignStatus.DRAFT)
SKIP_REASON = "opted out"

_NOT_LETTERS = re.compile(r"[\W_]+")


def normalise_keyword(text: str) -> str:
    """ "  Arrêt! " -> "arret": case, accents, spacing and punctuation do not count."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    letters = "".join(char for char in decomposed if not unicodedata.combining(char))
    return _NOT_LETTERS.sub("", letters)


def keywords() -> frozenset[str]:
    configured = os.environ.get(KEYWORDS_ENVIRONMENT, "").strip()
    if not configured:
        return DEFAULT_KEYWORDS
    return frozenset(filter(None, (normalise_keyword(word) for word in configured.split(","))))


def is_stop(text: str) -> bool:
    """The whole message is a stop keyword (a longer message that merely contains "stop" is not)."""
    return normalise_keyword(text or "") in keywords()


def add(engine: Engine, phones: Iterable[str], *, reason: str = SKIP_REASON, source: str = "manual") -> int:
    """Put E.164 numbers on the opt-out list (already listed ones stay as they are) and skip their pending
    messages in live campaigns; returns how many numbers were new."""
    phones = sorted(set(phones))
    if not phones:
        return 0
    now = utcnow()
    with engine.begin() as connection:
        known = set(connection.execute(select(OptOut.phone).where(OptOut.phone.in_(phones))).scalars())
        new = [phone for phone in phones if phone not in known]
        if new:
            connection.execute(OptOut.__table__.insert(), [
                {"phone": phone, "reason": reason[:200], "source": source[:64], "created_at": now}
                for phone in new
            ])
            audit.record_many(connection, "optout.add", "optout", new, {"reason": reason[:200], "source": source[:64]})
            outbox.optouts_added(connection, new, now)
        skip_pending(connection, phones)
    return len(new)


def skip_pending(connection, phones: list[str]) -> int:
    ids = connection.execute(
        select(Message.id)
        .join(Campaign, Campaign.id == Message.campaign_id)
        .where(Message.phone.in_(phones), Message.state == MessageState.PENDING.value,
               Campaign.status.in_([status.value for status in LIVE_CAMPAIGNS]))
    ).scalars().all()
    if not ids:
        return 0
    return transition(connection, ids, expected=MessageState.PENDING, to=MessageState.SKIPPED,
                      skip_reason=SKIP_REASON)


def remove(engine: Engine, phones: Iterable[str]) -> int:
    with engine.begin() as connection:
        removed = connection.execute(delete(OptOut).where(OptOut.phone.in_(list(phones)))
                                     .returning(OptOut.phone)).scalars().all()
        audit.record_many(connection, "optout.remove", "optout", sorted(removed))
    return len(removed)


def listed(engine: Engine) -> list[OptOut]:
    with engine.connect() as connection:
        table = OptOut.__table__
        rows = connection.execute(select(table).order_by(table.c.created_at, table.c.phone)).mappings().all()
    return [OptOut(**row) for row in rows]
