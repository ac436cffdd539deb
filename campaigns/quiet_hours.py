"""Quiet hours: a daily window (e.g. 21:00-08:00) in each recipient's local time when no message is sent.

A message due inside its recipient's window waits: it stays `pending` and its `send_at` moves to the
window's end in that recipient's zone. It never fails for it. The window may cross midnight (21:00-08:00)
or not (12:00-14:00); its start is inside the window, its end is not.

The recipient's zone comes from a timezone column of the contact file (IANA names, e.g. Africa/Kampala),
else from the phone number's country (`phonenumbers.timezone`). A country with several zones gets the
first one phonenumbers lists for the number (give a timezone column for those countries).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_zones

from campaigns.errors import BlastError

FALLBACK_ZONE = "UTC"  # numbers phonenumbers cannot place
# Headers of a timezone column, compared lower case without spaces or punctuation.
TIMEZONE_HEADERS = ("timezone", "tz", "tzname", "timezonename", "localtimezone", "ianatimezone", "zone")
_WINDOW = re.compile(r"\s*(\d{1,2}):(\d{2})\s*[-\u2013\u2014]\s*(\d{1,2}):(\d{2})\s*")


@dataclass(frozen=True)
class QuietWindow:
    start: time
    end: time

    @property
    def text(self) -> str:
        """The stored form, `HH:MM-HH:MM` (11 characters)."""
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def contains(self, local: time) -> bool:
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def wait_until(self, zone: str, at: datetime) -> datetime | None:
        """The window's end (aware UTC) when `at` (aware) falls inside the window in `zone`, else None."""
        local = at.astimezone(zone_info(zone))
        if not self.contains(local.time()):
            return None
        day = local.date()
        if self.start > self.end and local.time() >= self.start:
            day += timedelta(days=1)  # evening part of a window that crosses midnight: ends tomorrow
        return datetime.combine(day, self.end, tzinfo=local.tzinfo).astimezone(UTC)


def parse_window(text: str) -> QuietWindow:
    """`21:00-08:00` (24-hour clock) -> QuietWindow; a BlastError naming the problem otherwise."""
    match = _WINDOW.fullmatch(text or "")
    if not match:
        raise BlastError(f"quiet hours {text!r}: write them as HH:MM-HH:MM, e.g. 21:00-08:00")
    hours_start, minutes_start, hours_end, minutes_end = (int(part) for part in match.groups())
    try:
        window = QuietWindow(time(hours_start, minutes_start), time(hours_end, minutes_end))
    except ValueError:
        raise BlastError(f"quiet hours {text!r}: not a time of day (00:00 to 23:59)") from None
    if window.start == window.end:
        raise BlastError(f"quiet hours {text!r}: the window starts and ends at the same time")
    return window


def normalise(text: str | None) -> str | None:
    """The stored form of `--quiet-hours` (None when not given); a BlastError when it is not a window."""
    if text is None or not text.strip():
        return None
    return parse_window(text).text


@lru_cache(maxsize=1024)
def zone_info(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@lru_cache(maxsize=4096)
def is_zone(name: str) -> bool:
    """An IANA zone name this machine knows (e.g. Africa/Kampala)."""
    if not name or name != name.strip() or name.startswith(("/", ".")) or ".." in name:
        return False
    try:
        zone_info(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _usable(zones: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(zone for zone in zones if zone != phone_zones.UNKNOWN_TIMEZONE and is_zone(zone))


@lru_cache(maxsize=1024)
def _country_zone(country_code: int) -> str | None:
    """The zone of a country calling code that has exactly one (most countries), else None."""
    example = phonenumbers.PhoneNumber(country_code=country_code, national_number=0)
    zones = _usable(phone_zones._country_level_time_zones_for_number(example))
    return zones[0] if len(zones) == 1 else None


@lru_cache(maxsize=100_000)
def _number_zone(e164: str) -> str:
    try:
        zones = _usable(phone_zones.time_zones_for_number(phonenumbers.parse(e164, None)))
    except phonenumbers.NumberParseException:
        return FALLBACK_ZONE
    return zones[0] if zones else FALLBACK_ZONE


def zone_for_phone(e164: str) -> str:
    """The recipient's zone from a valid E.164 number's country (and area, where the country has several)."""
    digits = e164[1:]
    for length in (1, 2, 3):  # calling codes are prefix-free
        code = int(digits[:length])
        if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            zone = _country_zone(code)
            return zone if zone is not None else _number_zone(e164)
    return FALLBACK_ZONE


def is_timezone_header(name: str) -> bool:
    return re.sub(r"[^0-9a-z]+", "", name.lower()) in TIMEZONE_HEADERS
