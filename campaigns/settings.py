"""Process settings (environment) and gateway accounts (blast.toml).

Settings come from `BLAST_*` environment variables. Accounts come from the TOML file named by
`BLAST_CONFIG`; a value written `"${VAR}"` is read from the environment when the file is loaded, so
secrets live in the environment, never in the file, and are held as `SecretStr` so they print as `****`.
"""

from __future__ import annotations

import os
import re
import tomllib
from datetime import UTC, timedelta, timezone, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Which credentials each gateway needs, and which are secret, is in its module's GatewaySpec
# (workers/providers/<gateway>.py); `webhook_secret` is every account's.
COMMON_SECRETS = frozenset({"webhook_secret"})


class ConfigError(Exception):
    """A configuration problem, worded for the operator (names the account and key)."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BLAST_", extra="ignore")

    home: Path = Path(".blast")
    database_url: str = ""
    broker_url: str = ""
    redis_url: str | None = None
    config: Path = Path("blast.toml")
    public_url: str = "http://127.0.0.1:8000"
    max_upload_bytes: int = 1024 * 1024 * 1024
    # The largest webhook body read (BLAST_WEBHOOK_MAX_BYTES): past it the answer is 413, without reading the
    # rest. HTTP API inbox reports may come as multipart with the media file, which is not kept.
    webhook_max_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    ingest_chunk_rows: int = 100_000
    # Bounds on what one contact file may hold (campaigns/ingest/sources.py; README "Uploads are bounded").
    max_rows_per_file: int = Field(default=10_000_000, gt=0)  # non-blank data rows; more: the file is refused
    max_cell_chars: int = Field(default=10_000, gt=0)  # a longer cell makes its row a reject
    max_unpacked_bytes: int = Field(default=512 * 1024 * 1024, gt=0)  # a workbook's parts together, unpacked
    max_shared_strings_bytes: int = Field(default=64 * 1024 * 1024, gt=0)  # its shared-strings part, unpacked
    max_compression_ratio: float = Field(default=200.0, gt=1)  # unpacked / packed size of any part over 1 MiB
    upload_max_age_hours: float = Field(default=24.0, gt=0)  # web uploads not launched are deleted after this
    # Dispatch timings, in seconds (DESIGN.md "Pacer" and "Reconciler").
    pace_depth_seconds: float = 2.0  # how much sending each account keeps queued in the broker
    queued_timeout_seconds: float = 60.0  # queued longer than this: the broker forgot it; pending again
    sending_timeout_seconds: float = 120.0  # sending longer than this: the worker died; unknown
    reconcile_every_seconds: float = 10.0
    # An ingest job's lease (campaigns.ingest.jobs): renewed by every chunk written; a run that stops renewing
    # it (its process died) is taken over by the reconciler's sweep after this long.
    ingest_lease_seconds: float = Field(default=30.0, gt=0)
    # Spacing per recipient across every campaign (workers/rate_limits/spacing.py): no number gets two messages
    # within this many seconds (WhatsApp's pair rate; 0: no spacing), nor more than `daily_cap` in any 24 hours
    # (unset: no cap). A message that may not go yet waits; it never fails.
    pair_interval_seconds: float = Field(default=6.0, ge=0)
    daily_cap: int | None = Field(default=None, gt=0)
    # A canary start with --canary-auto (campaigns.canary): how long after its slice is sent the delivery reports
    # and STOP replies get before the slice is judged, in seconds.
    canary_settle_seconds: float = Field(default=60.0, ge=0)
    # Outbound webhooks (campaigns/webhooks): seconds to wait after each failed attempt before the next, comma-
    # separated; after the last, the delivery is given up. The Standard Webhooks schedule by default (5 s, 5 min,
    # 30 min, 2 h, 5 h, 10 h, 10 h: eight attempts over 27.6 hours), so a subscriber down for a day loses nothing.
    webhook_retry_seconds: str = "5,300,1800,7200,18000,36000,36000"
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)  # each connect, send and read of a POST
    webhook_concurrency: int = Field(default=32, gt=0)  # POSTs in flight per worker process
    # POSTs written together on one connection before their answers are read (HTTP/1.1 pipelining); 1: one at a
    # time. Fewer threads then hold the same POSTs in flight, for a third less CPU per POST.
    webhook_pipeline: int = Field(default=8, ge=1, le=64)
    webhook_keep_days: float = Field(default=14.0, gt=0)  # delivered and given-up events kept this long (the log)
    # The most events a second POSTed to one subscription, across every worker (the gateways' rate limiter, a
    # key per subscription); 0: as fast as the subscriber answers. Far above what a campaign makes (a few events
    # per message), it paces only a backlog (a subscriber back from an outage): it is not flooded, and the
    # delivery does not take the CPU that sending needs on a small host (bench/webhooks.py).
    webhook_rate_per_subscription: float = Field(default=2500.0, ge=0)
    # How often beat looks for due reminder blasts (schedules/beat.py): a "0 9 * * *" blast starts within
    # this many seconds of 09:00 (plus the time to ingest its contact file).
    schedule_tick_seconds: float = Field(default=5.0, gt=0)
    # How often beat polls the gateways' delivery reports and inboxes (schedules/beat.py), in seconds.
    report_poll_seconds: float = Field(default=60.0, gt=0)
    # The most seconds a rate-limiter booking adds to its account's one-second window, to absorb the jitter
    # between a slot and the message reaching the gateway (thread wake-ups, the GIL, the network). Each
    # worker books with what it measured of its own lateness and the gateway's answer times
    # (workers/rate_limits/jitter.py), a few ms on a quiet host; this much before it has measured, or when
    # the measurements ask for more (30 ms proved too little on a loaded 2-core CI machine: 41 in a second
    # on a cap of 40). The price of a margin m is m / (1 + m) of the rate.
    rate_safety_seconds: float = 0.05
    # Operator surfaces: the web app's one admin, its session-signing key (generated into `home` when
    # unset), and Flower (its address for the web app's link, and its basic-auth login).
    admin_user: str = "admin"
    admin_password: SecretStr | None = None
    secret_key: SecretStr | None = None
    # Mark the session cookie Secure (sent over HTTPS only): set it when the web app is served behind HTTPS.
    cookie_secure: bool = False
    flower_url: str | None = None
    flower_user: str = "admin"
    # Who may read /metrics without logging in: addresses or networks, comma-separated ("10.0.0.0/8, ::1").
    metrics_allow: str = "127.0.0.1"
    flower_password: SecretStr | None = None
    # Requests per second each API key may make (campaigns/web/api/auth.py), held by the gateways' rate
    # limiter (shared through Redis when BLAST_REDIS_URL is set, else per web process): a request over it
    # waits up to API_RATE_WAIT_SECONDS for its turn, then is refused with 429 and Retry-After.
    api_rate_per_key: float = Field(default=20.0, gt=0, le=1000)

    def model_post_init(self, __context) -> None:
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.home / 'blast.db').as_posix()}"
        if not self.broker_url:
            self.broker_url = "filesystem://"

    @property
    def broker_folder(self) -> Path:
        """Where Celery's filesystem broker keeps its messages (embedded default only)."""
        return self.home / "broker"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    """Forget cached settings and accounts (tests change the environment between cases)."""
    get_settings.cache_clear()
    load_accounts.cache_clear()


class AccountConfig(BaseModel):
    """One `[accounts.NAME]` table. `rate` is messages per second for all workers together. Keys a gateway
    declares beyond these (its spec's credentials and optional keys) are kept as extra fields; its secret
    ones as SecretStr."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str
    provider: str
    base_url: str
    rate: float = Field(gt=0, le=10_000)
    webhook_secret: SecretStr | None = None
    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None
    token: SecretStr | None = None
    sender: str | None = None
    max_attempts: int = Field(default=5, ge=1, le=100)  # transient failures before a message fails
    retry_base_seconds: float = Field(default=2.0, gt=0)  # first backoff; doubles each attempt, with jitter
    retry_max_seconds: float = Field(default=300.0, gt=0)
    batch_size: int = Field(default=100, ge=1, le=1000)
    timeout_seconds: float = Field(default=10.0, gt=0)
    # The account's time zone at the gateway (an IANA name such as "Australia/Sydney", or an offset such as
    # "+10:00"): the zone its report filters and unzoned timestamps are in. Unset: learned from the
    # offsets in the gateway's own timestamps, else UTC, and report windows widened either way.
    timezone: str | None = None
    # An `unknown` message (the gateway may have it) on a gateway that cannot be asked (no reports, no
    # callbacks echoing our id): `hold` keeps it for the operator (`blast retry ID --reason unknown`),
    # `resend` sends it again (a recipient may then get it twice).
    on_unknown: Literal["hold", "resend"] = "hold"
    # Seconds an `unknown` message's reports (or callback) get to show it before "not there" means "never
    # arrived" and it is sent again, once; unset: the gateway's own (GatewaySpec.report_delay_seconds).
    unknown_wait_seconds: float | None = Field(default=None, ge=0)
    # Pauses on spikes (campaigns/spikes.py): over a running campaign's last `pause_window` messages since it
    # (re)started, a failure, throttling or opt-out rate (fractions, 0..1) at or over these pauses it with
    # reason error_rate.
    pause_window: int = Field(default=100, ge=10, le=100_000)
    pause_failure_rate: float = Field(default=0.2, gt=0, le=1)
    pause_throttle_rate: float = Field(default=0.5, gt=0, le=1)
    pause_optout_rate: float = Field(default=0.05, gt=0, le=1)
    # What one message costs on this account, in `currency`, for the forecast before a launch
    # (campaigns.prices): set it where the gateway tells no price; it overrides the gateway's own table.
    price_per_message: float | None = Field(default=None, ge=0)
    # Meta's messaging limit (metacloud): people a day the account may message outside a customer-service window,
    # as the WhatsApp Manager shows it (250, 2000, 10000, 100000). A launch that would go past it is refused
    # (campaigns.messaging_limit). Unset: not checked.
    messaging_limit: int | None = Field(default=None, ge=1)
    currency: str | None = Field(default=None, min_length=1, max_length=16)
    # Failover (campaigns.failover): another account (any gateway) that carries this one's pending messages when
    # it stops for quota, auth, gateway_changed or an outage: `failover_after_transient` transient answers in a
    # row (a count, across every worker). Unset: its campaigns pause as they always did.
    fallback: str | None = Field(default=None, min_length=1, max_length=64)
    failover_after_transient: int = Field(default=10, ge=1, le=100_000)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            zone_of(value)
        return value

    def secret(self, key: str) -> str:
        value = getattr(self, key, None)
        if value is None:
            raise ConfigError(f"account {self.name!r}: {key} is not set")
        return value.get_secret_value() if isinstance(value, SecretStr) else str(value)

    def secret_values(self) -> list[str]:
        """Every secret this account holds, for masking (never to show)."""
        values = [getattr(self, name, None) for name in (*type(self).model_fields, *(self.model_extra or {}))]
        return [value.get_secret_value() for value in values
                if isinstance(value, SecretStr) and value.get_secret_value()]

    @property
    def zone(self) -> tzinfo | None:
        """The configured time zone, or None when the account gives none."""
        return zone_of(self.timezone) if self.timezone else None


_OFFSET = re.compile(r"^(?:UTC|GMT)?\s*([+-])(\d{1,2}):?(\d{2})?$", re.IGNORECASE)


def zone_of(text: str) -> tzinfo:
    """An IANA zone name or a UTC offset ("+10:00", "-0500", "+5:30", "UTC+3"); ValueError otherwise."""
    value = text.strip()
    if value.upper() in ("UTC", "Z", "GMT"):
        return UTC
    match = _OFFSET.match(value)
    if match:
        hours, minutes = int(match.group(2)), int(match.group(3) or 0)
        if hours > 14 or minutes >= 60:
            raise ValueError(f"timezone {text!r}: an offset is at most 14 hours")
        delta = timedelta(hours=hours, minutes=minutes)
        return timezone(-delta if match.group(1) == "-" else delta)
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"timezone {text!r} is neither an IANA zone name nor an offset like +10:00") from None


_ENV_REFERENCE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


def _expand(account: str, key: str, value):
    if isinstance(value, str) and (match := _ENV_REFERENCE.match(value.strip())):
        variable = match.group(1)
        if variable not in os.environ:
            raise ConfigError(
                f"account {account!r}: {key} refers to ${{{variable}}}, which is not set in the environment"
            )
        return os.environ[variable]
    return value


def parse_accounts(document: dict, source: str = "blast.toml") -> dict[str, AccountConfig]:
    tables = document.get("accounts", {})
    if not isinstance(tables, dict):
        raise ConfigError(f"{source}: [accounts] must be a table of [accounts.NAME] tables")
    accounts: dict[str, AccountConfig] = {}
    from campaigns.dispatch import gateway_providers
    from campaigns.dispatch import gateway_spec as spec_of

    known = gateway_providers()
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: accounts.{name} must be a table")
        provider = table.get("provider")
        if provider not in known:
            raise ConfigError(
                f"account {name!r}: provider {provider!r} is unknown (expected one of {', '.join(known)})"
            )
        spec = spec_of(provider)
        values = {**spec.defaults, **{key: _expand(name, key, value) for key, value in table.items()}}
        for key in spec.credentials:
            if not values.get(key):
                raise ConfigError(f"account {name!r}: {key} is required for provider {provider}")
        allowed = set(AccountConfig.model_fields) | set(spec.credentials) | set(spec.optional)
        unknown = sorted(set(values) - allowed)
        if unknown:
            raise ConfigError(f"account {name!r}: {unknown[0]}: Extra inputs are not permitted "
                              f"(not a key of provider {provider})")
        for key in (*spec.secrets, *COMMON_SECRETS):
            if isinstance(values.get(key), str):
                values[key] = SecretStr(values[key])
        try:
            accounts[name] = AccountConfig(name=name, **values)
        except ValidationError as error:
            first = error.errors()[0]
            key = ".".join(str(part) for part in first["loc"]) or "?"
            raise ConfigError(f"account {name!r}: {key}: {first['msg']}") from None
    _check_fallbacks(accounts)
    return accounts


def _check_fallbacks(accounts: dict[str, AccountConfig]) -> None:
    """Every `fallback` names another account of the file (a chain that comes back round is followed once:
    campaigns.failover)."""
    for name, account in accounts.items():
        if account.fallback == name:
            raise ConfigError(f"account {name!r}: fallback names the account itself")
        if account.fallback is not None and account.fallback not in accounts:
            known = ", ".join(sorted(other for other in accounts if other != name)) or "none"
            raise ConfigError(f"account {name!r}: fallback {account.fallback!r} is not an account of this file "
                              f"(others: {known})")


@lru_cache(maxsize=1)
def load_accounts(path: Path | None = None) -> dict[str, AccountConfig]:
    path = Path(path or get_settings().config)
    if not path.exists():
        return {}
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    return parse_accounts(document, source=str(path))


def get_account(name: str) -> AccountConfig:
    accounts = load_accounts()
    if name not in accounts:
        known = ", ".join(sorted(accounts)) or "none configured"
        raise ConfigError(f"unknown account {name!r} (known: {known})")
    return accounts[name]
