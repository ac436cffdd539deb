"""The forecast before a launch (`blast launch --dry-run`, the launch page): who would get the message, how
long the send would take, what it would cost and whether the balance covers it. It sends nothing and writes
nothing.

Recipients: the contact file read as a launch reads it (campaigns.ingest: invalid numbers, duplicates,
opt-outs, bad time zones) and every valid row's text rendered as the launch renders it (a row whose
template cannot render, or whose text is over the gateway's limit, is skipped at launch, so here too).

Time: the send is modelled as one server that sends at the rate the limiter really lets through
(`achieved_rate`), from the moment the first message can go, to whoever may be sent then:
- quiet hours (campaigns.quiet_hours): a recipient inside the window in their own zone waits for its end,
  also when the window begins while the send is still running (the pacer checks it as it goes);
- a daily cap the gateway imposes (`DailyCap`): past the day's allowance, the rest wait for the gateway's
  next day.
Recipients are grouped by zone; while several groups may be sent, they share the rate in proportion to
what each has left (the pacer takes pending messages in file order, which mixes the zones). The model is
a fluid one: n messages take n / rate seconds.

`eta_seconds` counts from now (the forecast) to the last message sent: the time to ingest the file and start
(a launch now), or the wait until `--at`, then the send. `days` is the number of calendar days, in the
account's zone (blast.toml `timezone`, else UTC), from the first message sent to the last.
"""

from __future__ import annotations

import math
import time as clock
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path

import numpy as np

from campaigns import prices, quiet_hours, templates
from campaigns.errors import BlastError
from campaigns.ingest import IngestReport, read_contacts
from campaigns.ingest.timing import ZONE, RowTiming
from campaigns.quiet_hours import QuietWindow
from campaigns.settings import AccountConfig, get_settings

# Seconds from the launch's ingest to the first message at the gateway: the pacer's first round (run by the
# launch itself), the broker's hand-over to a worker and its first rate-limiter booking.
STARTUP_SECONDS = 0.5
# A launch's ingest (read, render, write the rows, check them) takes this many times the forecast's own read of
# the file. Both measured in the 2,000-recipient run of tests/engine/test_forecast.py on Postgres: from the
# launch to the first message 0.6 s when the forecast read the file in 0.07 s, 0.8 s for 0.1 s, 1.1 s for
# 0.3 s and 2.0 s for 0.5 s (a loaded host slows both alike).
INGEST_PER_READ = 3.0
# The longest send the model follows (a cap or a window that never lets anything through ends it).
HORIZON = timedelta(days=3660)
# Recent send answers whose charge prices the next message (Socnet, campaigns.prices).
RECENT_CHARGES = 200


def achieved_rate(rate: float, safety: float) -> float:
    """Messages per second the rate limiter lets through for a configured `rate` (messages/s).

    The limiter (workers/rate_limits/schedule.py) grants floor(rate) slots per window of 1 + margin seconds
    (one slot per 1/rate + margin seconds below 1/s); a worker's margin is at most `safety`
    (BLAST_RATE_SAFETY_SECONDS) and is that until it has measured its own lateness, so the forecast takes it."""
    if rate >= 1:
        return math.floor(rate + 1e-9) / (1.0 + safety)
    return 1.0 / (1.0 / rate + safety)


@dataclass(frozen=True)
class DailyCap:
    """At most `per_day` messages per calendar day of the gateway (in `zone`), `used_today` of them used."""

    per_day: int
    used_today: int = 0
    zone: tzinfo = UTC


@dataclass
class Audience:
    """The recipients of a contact file as a launch would take them: the ingest report (template failures
    counted as skipped) and the valid recipients per time zone (all under "UTC" without quiet hours)."""

    report: IngestReport
    zones: Counter = field(default_factory=Counter)


def read_audience(path: str | Path, *, template: str, provider: str, kind: str = "text", region: str = "UG",
                  phone_column: str | None = None, quiet_hours_window: str | None = None,
                  opted_out: Iterable[str] = (), sheet: str | None = None,
                  window: tuple[frozenset[str], str] | None = None) -> Audience:
    """Read the whole file as the launch's ingest does (campaigns.ingest.load_messages), writing nothing.
    `window`: the gateway's customer-service window (campaigns.service_window.for_ingest)."""
    compiled = templates.compile_template(template)
    timing = RowTiming(now=datetime.now(UTC), zones=True) if quiet_hours_window else None
    stream = read_contacts(path, region=region, phone_column=phone_column, sheet=sheet,
                           opted_out=frozenset(opted_out), timing=timing, window=window)
    zones: Counter = Counter()
    for chunk in stream:
        valid = np.flatnonzero(chunk["skip_reason"].isna().to_numpy())
        if not len(valid):
            continue
        _texts, reasons = templates.render_frame(compiled, chunk.iloc[valid][stream.variables],
                                                 provider=provider, kind=kind)
        rendered = reasons == None  # noqa: E711 (element-wise)
        if not rendered.all():
            stream.report.skip_valid(reasons[~rendered])
        if timing is None:
            zones["UTC"] += int(rendered.sum())
        else:
            zones.update(chunk[ZONE].to_numpy(dtype=object)[valid[rendered]].tolist())
    return Audience(stream.report, zones)


def _next_change(window: QuietWindow, zone: str, after: datetime) -> datetime:
    """The first moment after `after` (aware UTC) at which `zone`'s local time enters or leaves the window."""
    local = after.astimezone(quiet_hours.zone_info(zone))
    moments = [datetime.combine(local.date() + timedelta(days=shift), edge, tzinfo=local.tzinfo).astimezone(UTC)
               for shift in (0, 1, 2) for edge in (window.start, window.end)]
    return min(moment for moment in moments if moment > after)


def _next_midnight(zone: tzinfo, after: datetime) -> datetime:
    local = after.astimezone(zone)
    return datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), tzinfo=zone).astimezone(UTC)


def send_span(groups: Mapping[str, int], *, start: datetime, rate: float, window: QuietWindow | None = None,
              cap: DailyCap | None = None) -> tuple[datetime, datetime] | None:
    """(first message sent, last message sent) for `groups` (zone -> recipients) sent from `start` (aware)
    at `rate` messages/s, under quiet hours `window` and a daily `cap`; None when nothing is to be sent.
    Raises ValueError when the send would not end within HORIZON (a cap of nothing left, every day)."""
    left = {zone: float(count) for zone, count in groups.items() if count > 0}
    if not left:
        return None
    now = start.astimezone(UTC)
    end = now + HORIZON
    capped = cap is not None and cap.per_day > 0
    allowance = float(max(0, cap.per_day - cap.used_today)) if capped else math.inf
    midnight = _next_midnight(cap.zone, now) if capped else None
    first: datetime | None = None
    while left:
        if now > end:
            raise ValueError("the send would not end within ten years at this rate, cap and quiet hours")
        events = [midnight] if midnight is not None else []
        sendable = {}
        for zone, count in left.items():
            if window is not None:
                events.append(_next_change(window, zone, now))
                if window.contains(now.astimezone(quiet_hours.zone_info(zone)).time()):
                    continue
            sendable[zone] = count
        upcoming = min(events) if events else None
        waiting = sum(sendable.values())
        if waiting and allowance > 0:
            first = first or now
            batch = min(waiting, allowance)
            done_at = now + timedelta(seconds=batch / rate)
            if upcoming is not None and upcoming < done_at:
                batch, done_at = (upcoming - now).total_seconds() * rate, upcoming
            share = batch / waiting
            for zone, count in sendable.items():
                left[zone] = count * (1.0 - share) if share < 1.0 else 0.0
            left = {zone: count for zone, count in left.items() if count > 1e-9}
            allowance -= batch
            now = done_at
        elif upcoming is not None:
            now = upcoming
        else:  # pragma: no cover - without a window or a cap every group can always be sent
            raise ValueError("nothing can be sent and nothing will change")
        if midnight is not None and now >= midnight:
            allowance = float(cap.per_day)
            midnight = _next_midnight(cap.zone, now)
    return first, now


def calendar_days(first: datetime, last: datetime, zone: tzinfo) -> int:
    """How many calendar days in `zone` the moments from `first` to `last` touch (1 within one day)."""
    return (last.astimezone(zone).date() - first.astimezone(zone).date()).days + 1


@dataclass(frozen=True)
class Forecast:
    """What a launch would do. Times in seconds; money in `currency` (None where the gateway does not tell)."""

    recipients: int  # rows of the file
    valid: int  # rows a launch would send
    skipped: int
    reasons: dict[str, int]  # skipped rows by reason
    rate: float  # the account's configured rate, messages/s
    achieved_rate: float  # what the limiter lets through, messages/s
    eta_seconds: float  # from the forecast to the last message sent
    first_send: datetime | None  # aware UTC
    last_send: datetime | None
    days: int  # calendar days (account's zone, else UTC) from the first message sent to the last
    cost: float | None
    currency: str | None
    balance: float | None
    balance_ok: bool | None  # None: no cost or no balance to compare
    daily_cap: int | None = None  # messages per gateway day, when the gateway caps them

    @property
    def send_seconds(self) -> float:
        """From the first message sent to the last."""
        if self.first_send is None or self.last_send is None:
            return 0.0
        return (self.last_send - self.first_send).total_seconds()

    def as_json(self) -> dict:
        """The `blast launch --dry-run --json` shape (DESIGN.md)."""
        return {"recipients": self.recipients, "valid": self.valid, "skipped": self.skipped,
                "reasons": dict(self.reasons), "eta_seconds": round(self.eta_seconds, 3), "rate": self.rate,
                "cost": self.cost, "currency": self.currency, "balance": self.balance,
                "balance_ok": self.balance_ok, "days": self.days}


def recent_charges(engine, account_name: str, limit: int = RECENT_CHARGES) -> list[str]:
    """The charges the account's latest sends reported (message.cost), newest first; none without a
    database."""
    from sqlalchemy import select
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from campaigns.failover import sent_through
    from campaigns.models import Campaign, Message

    if engine is None:
        return []
    query = (select(Message.cost).join(Campaign, Campaign.id == Message.campaign_id)
             .where(sent_through(account_name), Message.cost.is_not(None))
             .order_by(Message.id.desc()).limit(limit))
    try:
        with engine.connect() as connection:
            return list(connection.execute(query).scalars())
    except (OperationalError, ProgrammingError):  # no schema yet
        return []


def forecast(path: str | Path, *, account: AccountConfig, template: str, region: str = "UG",
             phone_column: str | None = None, media_url: str | None = None, options: dict | None = None,
             quiet_hours_window: str | None = None, at: datetime | None = None, engine=None,
             balance_answer: Mapping[str, object] | None = None, daily_cap: DailyCap | None = None,
             now: datetime | None = None, sheet: str | None = None) -> Forecast:
    """The forecast of launching `path` on `account` now (or at `at`, aware). `engine`: the database when
    there is one (opt-outs; Socnet's recent charges), else None. `balance_answer`: the gateway's balance
    answer (campaigns.web.balances), `daily_cap`: the gateway's daily cap, both asked by the caller."""
    from campaigns import service_window
    from campaigns.ingest import load_optouts

    started = clock.monotonic()
    window = quiet_hours.normalise(quiet_hours_window)
    kind = (options or {}).get("kind") or ("media" if media_url else "text")
    audience = read_audience(path, template=template, provider=account.provider, kind=kind, region=region,
                             phone_column=phone_column, quiet_hours_window=window, opted_out=load_optouts(engine),
                             sheet=sheet, window=service_window.for_ingest(engine, account, kind))
    read_seconds = clock.monotonic() - started
    now = (now or datetime.now(UTC)).astimezone(UTC)
    # A launch now reads the file as this forecast did, writes and checks its rows (INGEST_PER_READ),
    # then starts; a later one starts at `at`.
    ingest = timedelta(seconds=INGEST_PER_READ * read_seconds)
    start = max(now + ingest, at or now) + timedelta(seconds=STARTUP_SECONDS)
    rate = achieved_rate(account.rate, get_settings().rate_safety_seconds)
    try:
        span = send_span(audience.zones, start=start, rate=rate,
                         window=quiet_hours.parse_window(window) if window else None, cap=daily_cap)
    except ValueError as error:
        raise BlastError(f"no forecast: {error}") from None
    first, last = span if span is not None else (None, None)
    report = audience.report
    balance = prices.balance_of(account, balance_answer)
    price = prices.price_of(account, recent_charges=recent_charges(engine, account.name)
                            if prices.pricing(account.provider).charged_on_send else (),
                            balance_unit=balance.unit if balance else None)
    cost = prices.Money(round(price.amount * report.valid, 6), price.unit) if price is not None else None
    currency = (cost.unit if cost else None) or (balance.unit if balance else None)
    return Forecast(
        recipients=report.rows, valid=report.valid, skipped=report.rows - report.valid,
        reasons=dict(report.reasons.most_common()), rate=account.rate, achieved_rate=rate,
        eta_seconds=(last - now).total_seconds() if last is not None else 0.0, first_send=first, last_send=last,
        days=calendar_days(first, last, account.zone or UTC) if first is not None else 0,
        cost=cost.amount if cost else None, currency=currency,
        balance=balance.amount if balance else None, balance_ok=prices.covers(balance, cost),
        daily_cap=daily_cap.per_day if daily_cap and daily_cap.per_day > 0 else None)
