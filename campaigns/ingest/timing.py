"""Per-row times at ingest: a relative reminder's send time, and the recipient's time zone (quiet hours).

A relative rule ("24h before appointment_at") gives each row its own send time: the row's date value plus
or minus the offset. Date values are ISO 8601 (`2026-03-01 09:00`, `2026-03-01T09:00+03:00`, `2026-03-01`
for midnight); one without an offset is in the row's timezone column when it has one, else in the
schedule's zone. Day/month orders such as `01/03/2026` are refused rather than guessed.

A row whose send time has already passed:
- a rule *before* the date: sent now while the date (the event) is still ahead; once the event has
  passed, skipped with "reminder time passed";
- a rule *after* the date (a follow-up): sent now when its send time passed less than `LATE_GRACE`
  ago (a late firing, a row added late), else skipped with "reminder time passed".

Each row of a relative schedule carries a key, (schedule, phone, date value), unique in the database
(`message.dedupe_key`): a row whose key exists was handled by an earlier firing and is left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from campaigns import quiet_hours
from campaigns.errors import BlastError
from campaigns.ingest.sources import Header, find_named_column

REMINDER_PASSED = "reminder time passed"
LATE_GRACE = timedelta(hours=1)
# Chunk columns added for these times (file headers never make identifiers that start with `_` + letter).
SEND_AT, ZONE, KEY = "_send_at", "_zone", "_key"
DATE_KEY_WIDTH = 80  # characters of a bad date value kept in its row's key
UNITS = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600),
    **dict.fromkeys(("d", "day", "days"), 86400),
    **dict.fromkeys(("w", "wk", "week", "weeks"), 604800),
}
_PHRASE = re.compile(r"\s*(?P<amount>(?:\d+\s*[a-z]+\s*)+?)\s+(?P<direction>before|after)\s+(?P<column>\S.*?)\s*",
                     re.IGNORECASE)
_AT = re.compile(r"\s*at\s+(?P<column>\S.*?)\s*", re.IGNORECASE)
_PART = re.compile(r"(\d+)\s*([a-z]+)", re.IGNORECASE)


@dataclass(frozen=True)
class RelativeRule:
    """Send at `date_column` + `offset_seconds` (negative: before the date)."""

    date_column: str
    offset_seconds: int

    @property
    def text(self) -> str:
        return describe(self.offset_seconds, self.date_column)


def parse_relative(phrase: str) -> RelativeRule:
    """`24h before appointment_at`, `2h after visit`, `1d 12h before due`, `at start` -> RelativeRule."""
    if match := _AT.fullmatch(phrase or ""):
        return RelativeRule(match["column"], 0)
    match = _PHRASE.fullmatch(phrase or "")
    if not match:
        raise BlastError(f"--relative {phrase!r}: write it as AMOUNT UNIT before|after COLUMN, "
                         f"e.g. \"24h before appointment_at\" or \"2h after visit\"")
    seconds = 0
    for amount, unit in _PART.findall(match["amount"]):
        if unit.lower() not in UNITS:
            raise BlastError(f"--relative {phrase!r}: unknown unit {unit!r} (use m, h, d or w)")
        seconds += int(amount) * UNITS[unit.lower()]
    return RelativeRule(match["column"], -seconds if match["direction"].lower() == "before" else seconds)


def describe(offset_seconds: int, column: str) -> str:
    """The rule as a phrase again: largest whole units, e.g. -86400 -> `1d before COLUMN`."""
    if offset_seconds == 0:
        return f"at {column}"
    left, parts = abs(offset_seconds), []
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= size:
            parts.append(f"{left // size}{unit}")
            left %= size
    return f"{' '.join(parts)} {'before' if offset_seconds < 0 else 'after'} {column}"


def parse_moment(value: str, zone: str) -> datetime | None:
    """An ISO 8601 date value as aware UTC (in `zone` when it has no offset); None when it is not one."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=quiet_hours.zone_info(zone))
    return moment.astimezone(UTC)


@dataclass
class RowTiming:
    """What one ingest computes per row besides the phone: see the module's docstring.

    `rule` None: no send time (a plain campaign with quiet hours). `zones`: keep each recipient's zone.
    `until`: rows whose send time is later wait for a later firing (not written now). `key_prefix`
    (the schedule's id) and `known_keys` (keys already in the database) make each row's key.
    """

    now: datetime
    rule: RelativeRule | None = None
    zones: bool = False
    default_zone: str = "UTC"
    until: datetime | None = None
    key_prefix: str = ""
    known_keys: set[str] = field(default_factory=set)
    already: int = 0  # rows an earlier firing handled
    later: int = 0  # rows whose send time is after `until`
    deferred: int = 0  # a second row of the same phone: left for the next firing

    def bind(self, header: Header, file_name: str) -> None:
        """Find the date and timezone columns; an IngestError naming a missing date column."""
        names, identifiers = header.names, header.identifiers
        self._date = None
        if self.rule is not None:
            self._date = identifiers[find_named_column(names, identifiers, self.rule.date_column, file_name)]
        self._zone = next((identifier for name, identifier in zip(names, identifiers, strict=True)
                           if quiet_hours.is_timezone_header(name)), None)

    def apply(self, frame: pd.DataFrame, raw: np.ndarray, e164: np.ndarray, reasons: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Set skip reasons for bad zones, bad dates and passed times (in `reasons`, in place); returns
        (rows to keep now, send times, zones, keys), aligned with the frame. `raw`: the phone cells."""
        size = len(frame)
        keep = np.ones(size, dtype=bool)
        send_at = np.full(size, None, dtype=object)
        zones = np.full(size, None, dtype=object)
        keys = np.full(size, None, dtype=object)
        zone_cells = frame[self._zone].to_numpy(dtype=object) if self._zone else None
        date_cells = frame[self._date].to_numpy(dtype=object) if self._date else None
        for row in range(size):
            zone = None
            if zone_cells is not None and (cell := zone_cells[row].strip()):
                if quiet_hours.is_zone(cell):
                    zone = cell
                elif reasons[row] is None:
                    reasons[row] = f"invalid time zone {cell[:60]!r}"
            if date_cells is not None:
                who = e164[row] or f"raw:{raw[row][:64]}"
                keep[row], send_at[row], keys[row] = self._send_time(date_cells[row].strip(), zone, who, reasons, row)
            if self.zones and keep[row] and reasons[row] is None:
                zones[row] = zone or quiet_hours.zone_for_phone(e164[row])
        return keep, send_at, zones, keys

    def _send_time(self, value: str, zone: str | None, who: str, reasons: np.ndarray, row: int):
        rule = self.rule
        event = parse_moment(value, zone or self.default_zone) if value else None
        key = f"{self.key_prefix}{who}|{event.isoformat() if event else 'bad:' + value[:DATE_KEY_WIDTH]}"
        if key in self.known_keys:
            self.already += 1
            return False, None, key
        if event is None:
            if reasons[row] is None:
                reasons[row] = (f"no date in {rule.date_column}" if not value
                                else f"bad date {value[:40]!r} in {rule.date_column}")
            return True, None, key
        send = event + timedelta(seconds=rule.offset_seconds)
        if reasons[row] is not None:
            return True, None, key
        if send <= self.now and not self._still_worth_sending(event, send):
            reasons[row] = REMINDER_PASSED
            return True, None, key
        if self.until is not None and send > self.until:
            self.later += 1
            return False, None, None
        return True, send, key

    def _still_worth_sending(self, event: datetime, send: datetime) -> bool:
        if self.rule.offset_seconds <= 0:
            return event > self.now
        return self.now - send <= LATE_GRACE
