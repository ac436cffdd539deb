"""What the sandbox remembers: accounts, their knobs, the messages they accepted and their statistics.

Everything lives in one process's memory and is touched only from the event loop's thread, so nothing
here takes a lock. Times are `time.monotonic()` seconds for windows and delays, `time.time()` (UNIX
seconds) for the dates the gateways print.
"""

from __future__ import annotations

import bisect
import contextvars
import itertools
import math
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field, fields
from datetime import timedelta, timezone
from typing import Any, Protocol


@dataclass(frozen=True)
class BuiltinAccount:
    """The account a simulated gateway has from the start (the contract's credentials)."""

    key: str
    secret: str | None = None
    sender: str | None = None


class GatewayRules(Protocol):
    """What the accounts of one gateway need (the gateway class's attributes)."""

    builtin: BuiltinAccount
    signed_by_secret: bool  # every request is signed with the account's secret, so an account needs one
    default_sender: str | None


# Generic message statuses; each gateway prints them in its own words.
SENT, DELIVERED, READ, FAILED = "sent", "delivered", "read", "failed"
# Error codes a failed message carries (Devino's table; the other gateways translate them).
THROTTLED_CODE = 2301  # devino.txt: "Too many messages were sent in a short period of time"
NOT_ON_WHATSAPP_CODE = 2305  # devino.txt: "User has not used or is no longer using WhatsApp"

_NON_DIGITS = re.compile(r"\D")
# When the request being answered arrived (time.monotonic(), set by the server as it reads a request): a
# gateway's rate cap counts a message when it arrives, not when the answer is ready `latency_ms` later.
ARRIVED: contextvars.ContextVar[float | None] = contextvars.ContextVar("arrived", default=None)


def _arrival_or_now() -> float:
    arrived = ARRIVED.get()
    return time.monotonic() if arrived is None else arrived


def e164(number: object) -> str:
    """`number` in E.164 with a leading "+": every non-digit dropped (spaces, dashes, a "+")."""
    return "+" + _NON_DIGITS.sub("", str(number))


class KnobError(ValueError):
    """A knob name or value the control API refuses; the text says which and why."""


_OFFSET = re.compile(r"^([+-])(\d{2}):?(\d{2})$")


def offset_zone(text: str) -> timezone:
    """"+10:00", "-0500", "+05:30" as a fixed zone; KnobError otherwise."""
    match = _OFFSET.match(text.strip())
    if not match or int(match.group(2)) > 14 or int(match.group(3)) >= 60:
        raise KnobError(f"timezone must be an offset like +10:00, got {text!r}")
    delta = timedelta(hours=int(match.group(2)), minutes=int(match.group(3)))
    return timezone(-delta if match.group(1) == "-" else delta)


@dataclass
class Knobs:
    """Per-account behaviour, changed live through the control API (the contract's list)."""

    latency_ms: float = 0.0  # milliseconds added before answering a send
    rate_cap: float | None = None  # messages accepted per sliding second; None = no cap
    quota: int | None = None  # messages left; None = unlimited; decremented by every accepted message
    fail_fraction: float = 0.0  # 0..1: share of send requests answered 503 at random
    not_on_whatsapp: frozenset[str] = frozenset()  # E.164 numbers answered as "not on WhatsApp"
    webhook_url: str | None = None  # httpapi's delivery/inbox webhook; devino's inbound URL
    progress_seconds: float | None = 0.2  # seconds between sent -> delivered -> read; None = stay sent
    read_fraction: float = 1.0  # 0..1: share of delivered messages that are then read
    # Gateways less tidy than their documents:
    # (each an exact share, evenly spread: 0.2 is every fifth)
    ambiguous_fraction: float = 0.0  # 0..1 of the sends taken: answered HTTP 500 (a crash after the commit)
    lost_fraction: float = 0.0  # 0..1 of the send requests: answered HTTP 500, nothing taken
    undocumented_fraction: float = 0.0  # 0..1 of the sends taken: answered 200 with a body nobody documented
    # Words printed instead of the documented ones, by status (sent, delivered, read, failed): words nobody
    # listed, such as Devino's older "visited" or "vp_expired".
    status_words: dict = field(default_factory=dict)
    # The account's time zone (an offset such as "+10:00"): SMSGlobal's date filters and printed dates,
    # the HTTP API's report days and printed times. None: each gateway's own (UTC; India for the HTTP API).
    timezone: str | None = None
    callback_delay_seconds: float = 0.0  # status callbacks and webhooks go this much later
    callback_drop_fraction: float = 0.0  # 0..1: status callbacks and webhooks never sent
    # Money and caps the gateways tell (the forecast before a launch reads them):
    charge: float | None = None  # Socnet: the `cost` its channel-1 answers report; None: 90, the sample's
    daily_limit: int | None = None  # HTTP API: messages taken per day (its `quotaLimit`); None = no cap
    # Errors from the gateway's own table (Meta's Graph error codes), answered the way its document says (at
    # once, or accepted then failed by webhook): `error_code` for every send; `error_codes` per recipient
    # (E.164 -> a code, for every send to it, or a list of codes answered once each, in order, then sends go
    # through).
    error_code: int | None = None
    error_codes: dict = field(default_factory=dict)
    # Gateways that keep approved templates (Meta's Cloud API): template name -> status (APPROVED, PENDING,
    # REJECTED, PAUSED, DISABLED, ...), over each template's built-in status.
    template_status: dict = field(default_factory=dict)

    def update(self, changes: dict[str, Any]) -> None:
        """Apply `changes` (knob name -> JSON value) all or nothing; `KnobError` names a bad one."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise KnobError(f"unknown knob(s): {', '.join(unknown)}; knobs are {', '.join(sorted(known))}")
        checked = {name: _check_knob(name, value) for name, value in changes.items()}
        for name, value in checked.items():
            setattr(self, name, value)

    def as_json(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["not_on_whatsapp"] = sorted(self.not_on_whatsapp)
        values["status_words"] = dict(self.status_words)
        values["error_codes"] = {number: list(code) if isinstance(code, list) else code
                                 for number, code in self.error_codes.items()}
        values["template_status"] = dict(self.template_status)
        return values

    def copy(self) -> Knobs:
        return Knobs(**{f.name: getattr(self, f.name) for f in fields(self)})

    @property
    def zone(self) -> timezone | None:
        return offset_zone(self.timezone) if self.timezone else None


def _number(name: str, value: Any, *, low: float = 0.0, high: float = math.inf, nullable: bool = False):
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        bounds = f"between {low} and {high}" if high != math.inf else f"at least {low}"
        raise KnobError(f"{name} must be a number {bounds}{' or null' if nullable else ''}")
    return value


def _check_knob(name: str, value: Any) -> Any:
    if name == "latency_ms":
        return float(_number(name, value))
    if name == "rate_cap":
        cap = _number(name, value, nullable=True)
        if cap is not None and cap <= 0:
            raise KnobError("rate_cap must be above 0 or null")
        return cap
    if name in ("quota", "daily_limit"):
        quota = _number(name, value, nullable=True)
        if quota is not None and quota != int(quota):
            raise KnobError(f"{name} must be a whole number or null")
        return None if quota is None else int(quota)
    if name == "charge":
        charge = _number(name, value, nullable=True)
        return None if charge is None else float(charge)
    if name in ("fail_fraction", "read_fraction", "ambiguous_fraction", "lost_fraction", "undocumented_fraction",
                "callback_drop_fraction"):
        return float(_number(name, value, high=1.0))
    if name == "callback_delay_seconds":
        return float(_number(name, value, high=3600.0))
    if name == "status_words":
        if not isinstance(value, dict) or not all(
                key in (SENT, DELIVERED, READ, FAILED) and isinstance(word, str) and word
                for key, word in value.items()):
            raise KnobError("status_words must map sent, delivered, read or failed to a word")
        return dict(value)
    if name == "timezone":
        if value is not None:
            if not isinstance(value, str):
                raise KnobError("timezone must be an offset like +10:00, or null")
            offset_zone(value)
        return value
    if name == "error_code":
        code = _number(name, value, nullable=True)
        if code is not None and code != int(code):
            raise KnobError("error_code must be a whole number or null")
        return None if code is None else int(code)
    if name == "error_codes":
        def codes(code):
            if isinstance(code, list):
                return [int(_number(name, item)) for item in code]
            return int(_number(name, code))

        if not isinstance(value, dict):
            raise KnobError("error_codes must map phone numbers to a code or a list of codes")
        return {e164(number): codes(code) for number, code in value.items()}
    if name == "template_status":
        if not isinstance(value, dict) or not all(
                isinstance(key, str) and isinstance(status, str) and status for key, status in value.items()):
            raise KnobError("template_status must map template names to a status word")
        return {key: status.upper() for key, status in value.items()}
    if name == "progress_seconds":
        seconds = _number(name, value, nullable=True)
        return None if seconds is None else float(seconds)
    if name == "not_on_whatsapp":
        if not isinstance(value, list | tuple) or not all(isinstance(n, str | int) for n in value):
            raise KnobError("not_on_whatsapp must be a list of phone numbers")
        return frozenset(e164(n) for n in value)
    if name == "webhook_url":
        if value is not None and not (isinstance(value, str) and value.startswith(("http://", "https://"))):
            raise KnobError("webhook_url must be an http(s) URL or null")
        return value
    raise KnobError(f"unknown knob: {name}")


@dataclass
class AccountStats:
    """The counts the stats endpoint shows for one account."""

    accepted: int = 0
    accepted_per_recipient: Counter = field(default_factory=Counter)
    rejected: Counter = field(default_factory=Counter)
    peak_per_second: int = 0
    requests: int = 0
    garbled: Counter = field(default_factory=Counter)  # sends taken but answered ambiguous / undocumented
    # WhatsApp's pair rate, witnessed: each recipient's last accepted arrival (UNIX seconds), and the closest
    # two accepted messages to one recipient ever came (seconds; None until a recipient got two)
    last_arrival: dict = field(default_factory=dict)
    closest_pair_seconds: float | None = None

    def as_json(self) -> dict[str, Any]:
        per_recipient = dict(self.accepted_per_recipient)
        return {
            "accepted": self.accepted,
            "accepted_per_recipient": per_recipient,
            "duplicates": sum(1 for n in per_recipient.values() if n > 1),
            "rejected": dict(self.rejected),
            "peak_per_second": self.peak_per_second,
            "requests": self.requests,
            "garbled": dict(self.garbled),
            "closest_pair_seconds": self.closest_pair_seconds,
        }


class Outgoing:
    """One message an account sent (accepted, throttled or failed), in gateway-neutral words."""

    __slots__ = ("callback_data", "callback_url", "created", "delivered_at", "error_code", "extra", "final",
                 "id", "read_at", "recipient", "status", "text", "updated")

    def __init__(self, id: str | int, recipient: str, text: str, *, extra: dict | None = None,
                 callback_url: str | None = None, callback_data: str | None = None):
        self.id = id
        self.recipient = recipient  # E.164 with "+"
        self.text = text
        self.extra = extra  # gateway-specific fields (message kind, link, location, ...)
        self.callback_url = callback_url
        self.callback_data = callback_data
        self.created = self.updated = time.time()  # UNIX seconds
        self.status = SENT
        self.error_code: int | None = None
        self.delivered_at: float | None = None
        self.read_at: float | None = None
        self.final = False  # True once no later status will come


class Incoming:
    """One inbound message injected through the control API."""

    __slots__ = ("created", "id", "sender", "text", "wa_message_id", "webhook_status")

    def __init__(self, id: str | int, sender: str, text: str):
        self.id = id
        self.sender = sender  # E.164 with "+"
        self.text = text
        self.created = time.time()
        self.webhook_status = 0  # HTTP status of the last push to the webhook (httpapi's inbox report)
        self.wa_message_id = ""  # WhatsApp's own id, where the gateway prints one


class Account:
    """A sandbox account: credentials, knobs, and what it sent and received."""

    def __init__(self, provider: str, key: str, *, secret: str | None = None, sender: str | None = None,
                 knobs: Knobs | None = None):
        self.provider = provider
        self.key = key
        self.secret = secret
        self.sender = sender
        self.knobs = knobs or Knobs()
        self.gateway_data: dict[str, Any] = {}  # what a gateway keeps besides messages (opt-ins, ids)
        self.carry: dict[str, float] = {}  # the fault knobs' running shares (runtime.Runtime._due)
        self.forget()

    @property
    def name(self) -> str:
        return f"{self.provider}:{self.key}"

    def forget(self) -> None:
        """Drop messages and statistics; keep credentials and knobs."""
        self.stats = AccountStats()
        self.gateway_data.pop("today_usage", None)  # the HTTP API's count of today's messages
        self.outgoing: dict[str | int, Outgoing] = {}
        self.incoming: dict[str | int, Incoming] = {}
        # Arrival times (monotonic) of the acceptances of the last two seconds, sorted: requests answered
        # out of their arrival order (latency jitter) are put in their place.
        self._window: list[float] = []

    def _prune(self, now: float) -> list[float]:
        window = self._window
        drop = bisect.bisect_right(window, now - 2.0)
        if drop:
            del window[:drop]
        return window

    def _busiest(self, at: float, count: int) -> int:
        """The most acceptances any one-second window (s - 1, s] holding `at` would have with `count` more
        arrived at `at`: the window ending at `at`, and each ending at a later arrival within a second."""
        window = self._window
        busiest = bisect.bisect_right(window, at) - bisect.bisect_right(window, at - 1.0) + count
        for later in window[bisect.bisect_right(window, at):bisect.bisect_left(window, at + 1.0)]:
            busiest = max(busiest, bisect.bisect_right(window, later) - bisect.bisect_right(window, later - 1.0)
                          + count)
        return busiest

    def refusal(self, count: int = 1, now: float | None = None) -> str | None:
        """Why `count` more messages cannot be accepted now ("quota" or "rate_cap"), or None if they can.

        The rate cap counts acceptances by arrival in every sliding second (s - 1 s, s]; a request whose
        messages would take a second holding its arrival over the cap is refused whole.
        """
        quota = self.knobs.quota
        if quota is not None and quota < count:
            return "quota"
        cap = self.knobs.rate_cap
        if cap is not None:
            at = _arrival_or_now() if now is None else now
            self._prune(at)
            if self._busiest(at, count) > cap:
                return "rate_cap"
        return None

    def retry_after(self, now: float | None = None) -> int:
        """Whole seconds until the sliding second has room again (at least 1)."""
        now = _arrival_or_now() if now is None else now
        window = self._prune(now)
        recent = window[bisect.bisect_right(window, now - 1.0):]
        if not recent:
            return 1
        return max(1, math.ceil(recent[0] + 1.0 - now))

    def accept(self, message: Outgoing, now: float | None = None) -> None:
        """Count `message` as accepted: stats, the sliding second (by its arrival), the quota."""
        now = _arrival_or_now() if now is None else now
        self._prune(now)
        busiest = self._busiest(now, 1)
        bisect.insort(self._window, now)
        stats = self.stats
        if busiest > stats.peak_per_second:
            stats.peak_per_second = busiest
        stats.accepted += 1
        stats.accepted_per_recipient[message.recipient] += 1
        if (before := stats.last_arrival.get(message.recipient)) is not None:
            gap = abs(now - before)
            if stats.closest_pair_seconds is None or gap < stats.closest_pair_seconds:
                stats.closest_pair_seconds = gap
        stats.last_arrival[message.recipient] = now
        if self.knobs.quota is not None:
            self.knobs.quota -= 1
        self.outgoing[message.id] = message

    def keep(self, message: Outgoing) -> None:
        """Remember a message the gateway took but will fail (throttled, not on WhatsApp): reports show it."""
        self.outgoing[message.id] = message

    def reject(self, reason: str, count: int = 1) -> None:
        self.stats.rejected[reason] += count


def _id_prefix() -> int:
    return int.from_bytes(os.urandom(3), "big")


class Sandbox:
    """All accounts, the knob defaults new accounts start with, and message id generators."""

    def __init__(self, gateways: dict[str, GatewayRules], defaults: Knobs | None = None):
        self.gateways = gateways
        self.defaults = defaults or Knobs()
        self.accounts: dict[tuple[str, str], Account] = {}
        self.generation = 0  # bumped by reset: timers and callbacks of an older generation do nothing
        # Ids never restart, even across resets: a client may still hold an old one.
        self._numeric_ids = itertools.count(int(time.time()) * 1_000_000)
        self._object_prefix = _id_prefix()
        self.restore_builtin_accounts()

    def restore_builtin_accounts(self) -> None:
        self.accounts.clear()
        for provider, rules in self.gateways.items():
            builtin = rules.builtin
            self.add_account(provider, builtin.key, secret=builtin.secret, sender=builtin.sender)

    def add_account(self, provider: str, key: str, *, secret: str | None = None,
                    sender: str | None = None) -> Account:
        rules = self.gateways.get(provider)
        if rules is None:
            raise KnobError(f"provider must be one of {', '.join(self.gateways)}")
        if not isinstance(key, str) or not key:
            raise KnobError("key must be a non-empty string")
        if rules.signed_by_secret and not secret:
            raise KnobError(f"an {provider} account needs a secret (its API secret signs every request)")
        sender = sender or rules.default_sender
        account = Account(provider, key, secret=secret, sender=sender, knobs=self.defaults.copy())
        self.accounts[(provider, key)] = account
        return account

    def account(self, provider: str, key: str) -> Account | None:
        return self.accounts.get((provider, key))

    def reset(self, *, everything: bool = False) -> None:
        """Forget messages and statistics; with `everything`, also accounts and knobs (back to built-ins)."""
        self.generation += 1
        if everything:
            self.restore_builtin_accounts()
        else:
            for account in self.accounts.values():
                account.forget()

    def numeric_id(self) -> int:
        """A fresh id, unique for the life of the process (SMSGlobal, Devino, Socnet ids are numbers)."""
        return next(self._numeric_ids)

    def object_id(self) -> str:
        """A fresh 24-hex-digit id shaped like the HTTP API's (a MongoDB ObjectId: time, random, counter)."""
        counter = next(self._numeric_ids) & 0xFFFFFFFFFF
        return f"{int(time.time()) & 0xFFFFFFFF:08x}{self._object_prefix:06x}{counter:010x}"


def stats_json(sandbox: Sandbox, provider: str | None = None, key: str | None = None) -> dict[str, Any]:
    return {"accounts": {
        account.name: account.stats.as_json()
        for (p, k), account in sandbox.accounts.items()
        if (provider is None or p == provider) and (key is None or k == key)
    }}
