"""The tables. The database is the truth: every campaign and every message with its state.

All timestamps are timezone-aware UTC (`utcnow()`); SQLModel stores them as UTC on SQLite and Postgres.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, Column, Index, Integer, Text, UniqueConstraint, false, text
from sqlmodel import Field, SQLModel

from campaigns.states import CampaignStatus, IngestStatus, MessageState

# A 64-bit id on Postgres; SQLite only auto-increments a column declared exactly INTEGER.
BIG_ID = BigInteger().with_variant(Integer(), "sqlite")


_NOW = text("CURRENT_TIMESTAMP")


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(moment: datetime | None) -> datetime | None:
    """A stored time as aware UTC (SQLite hands times back without their zone)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


class Account(SQLModel, table=True):
    """A gateway account as last seen in blast.toml: no credentials are stored here."""

    name: str = Field(primary_key=True, max_length=64)
    provider: str = Field(max_length=16)
    rate: float
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    # Its last stop (campaigns.failover): when and why (quota, auth, gateway_changed, outage) it stopped carrying
    # messages; cleared by the next answer it accepts. A stopped account is no fallback for another.
    stopped_at: datetime | None = None
    stop_reason: str | None = Field(default=None, max_length=16)
    # Transient answers in a row (every worker together), for an account with a fallback: past its
    # `failover_after_transient`, an outage.
    transient_streak: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class Campaign(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("schedule_id", "occurrence", name="uq_campaign_schedule_occurrence"),
        Index("ix_campaign_account_status", "account_name", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    account_name: str = Field(foreign_key="account.name", max_length=64)
    status: str = Field(default=CampaignStatus.DRAFT, max_length=16)
    pause_reason: str | None = Field(default=None, max_length=16)
    pause_detail: str | None = Field(default=None, sa_column=Column(Text))
    template: str = Field(sa_column=Column(Text, nullable=False))
    media_url: str | None = Field(default=None, sa_column=Column(Text))
    # Message kind and its extras (buttons, list rows, template name, ...), as JSON text.
    options: str = Field(default="{}", sa_column=Column(Text, nullable=False, server_default="{}"))
    region: str = Field(default="UG", max_length=2)
    source_file: str | None = Field(default=None, sa_column=Column(Text))
    quiet_hours: str | None = Field(default=None, max_length=11)  # "21:00-08:00"
    schedule_id: int | None = Field(default=None, foreign_key="schedule.id")
    occurrence: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    launch_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    resumed_at: datetime | None = None  # the last resume: answers given before it never pause it again
    # A canary start (campaigns.canary): only messages up to this id are sent until it is released (None: no
    # canary, or released); `canary_auto` releases it by itself after a clean slice; `canary_done_at` is when
    # the slice was all sent and the campaign paused for it.
    canary_until_id: int | None = Field(default=None, sa_column=Column(BIG_ID, nullable=True))
    canary_auto: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    canary_done_at: datetime | None = None
    # The account its messages go through now, when its own stopped and it failed over (campaigns.failover);
    # None: its own account.
    failover_account: str | None = Field(default=None, max_length=64)


class Message(SQLModel, table=True):
    __table_args__ = (
        Index("ix_message_campaign_state", "campaign_id", "state", "next_attempt_at"),
        # Partial: rows being ingested (pending, no provider id) cost these indexes nothing.
        Index("ix_message_provider_id", "provider_message_id",
              sqlite_where=text("provider_message_id IS NOT NULL"),
              postgresql_where=text("provider_message_id IS NOT NULL")),
        Index("ix_message_in_flight", "state", "updated_at",
              sqlite_where=text("state IN ('queued', 'sending', 'unknown')"),
              postgresql_where=text("state IN ('queued', 'sending', 'unknown')")),
        # A relative reminder's (schedule, phone, date value): never a second message for it.
        Index("uq_message_dedupe_key", "dedupe_key", unique=True,
              sqlite_where=text("dedupe_key IS NOT NULL"), postgresql_where=text("dedupe_key IS NOT NULL")),
    )

    id: int | None = Field(default=None, sa_column=Column(BIG_ID, primary_key=True, autoincrement=True))
    # No foreign key: Postgres would check it with a query per inserted row, a third of a million-row ingest's
    # time. Messages are written only by an ingest holding its campaign's job (campaigns.ingest.jobs), and
    # deleted with their campaign. Nor a unique (campaign, phone) index, for a half of what was left: the
    # ingest keeps one live message per recipient and checks it in one query before the campaign may start.
    campaign_id: int
    row_number: int | None = None  # the source file's row as a spreadsheet shows it (the header is row 1)
    phone: str | None = Field(default=None, max_length=20)  # E.164, None when invalid
    raw_phone: str | None = Field(default=None, max_length=64)
    variables: str = Field(default="{}", sa_column=Column(Text, nullable=False, server_default="{}"))
    body: str | None = Field(default=None, sa_column=Column(Text))
    state: str = Field(default=MessageState.PENDING, max_length=16)
    # The account it was last handed to, stamped when a worker claims it (campaigns.failover); None: never
    # handed to one, or sent before failover existed (then through its campaign's own account).
    account_name: str | None = Field(default=None, max_length=64)
    skip_reason: str | None = Field(default=None, max_length=200)
    # Server defaults too: an ingest's COPY leaves these three out (campaigns.ingest.writers).
    attempts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    next_attempt_at: datetime | None = None
    send_at: datetime | None = None  # earliest send time (relative reminders, quiet hours)
    timezone: str | None = Field(default=None, max_length=64)  # recipient's IANA zone (quiet hours)
    dedupe_key: str | None = Field(default=None, max_length=200)  # "schedule|phone|date" (relative reminders)
    provider_message_id: str | None = Field(default=None, max_length=100)
    cost: str | None = Field(default=None, max_length=32)
    error_code: str | None = Field(default=None, max_length=64)
    error_reason: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow, sa_column_kwargs={"server_default": _NOW})
    updated_at: datetime = Field(default_factory=utcnow, sa_column_kwargs={"server_default": _NOW})
    queued_at: datetime | None = None
    submitted_at: datetime | None = None
    sent_at: datetime | None = None
    delivered_at: datetime | None = None
    read_at: datetime | None = None
    failed_at: datetime | None = None


class IngestJob(SQLModel, table=True):
    """A contact file being read into a campaign's messages (campaigns.ingest.jobs), resumable: the rows up to
    `rows_done` are written, in the same transactions that moved it. Counts are the ingest report so far."""

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaign.id", unique=True)
    status: str = Field(default=IngestStatus.QUEUED, max_length=16)
    source_file: str = Field(sa_column=Column(Text, nullable=False))
    upload_token: str | None = Field(default=None, max_length=64)  # the web upload it came from (deleted when done)
    # How to read the file and start the campaign: phone_column, sheet, launch_at (ISO), start, kind (JSON text).
    options: str = Field(default="{}", sa_column=Column(Text, nullable=False, server_default="{}"))
    rows_done: int = 0  # the last row (as the spreadsheet shows it) whose message is written
    rows: int = 0
    valid: int = 0
    skipped: int = 0
    report: str = Field(default="{}", sa_column=Column(Text, nullable=False, server_default="{}"))
    error: str | None = Field(default=None, sa_column=Column(Text))
    attempts: int = 0  # times a worker took it
    lease_token: str | None = Field(default=None, max_length=32)
    lease_until: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None


class Attempt(SQLModel, table=True):
    """One call to a gateway for one message: when, what it meant, the gateway's code. Append-only."""

    __table_args__ = (Index("ix_attempt_message", "message_id"),)

    id: int | None = Field(default=None, primary_key=True)
    message_id: int = Field(sa_column=Column(BIG_ID, nullable=False))
    at: datetime = Field(default_factory=utcnow)
    outcome: str = Field(max_length=16)
    code: str | None = Field(default=None, max_length=64)
    detail: str | None = Field(default=None, sa_column=Column(Text))


class StatusEvent(SQLModel, table=True):
    """A delivery report or webhook event, normalised, with the gateway's raw payload. Append-only."""

    __table_args__ = (
        Index("ix_status_event_provider_id", "account_name", "provider_message_id"),
        Index("ix_status_event_message", "message_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    message_id: int | None = Field(default=None, sa_column=Column(BIG_ID))
    account_name: str = Field(max_length=64)
    provider_message_id: str | None = Field(default=None, max_length=100)
    kind: str = Field(max_length=16)
    error_code: str | None = Field(default=None, max_length=64)
    source: str = Field(default="webhook", max_length=16)  # webhook | poll
    occurred_at: datetime | None = None
    received_at: datetime = Field(default_factory=utcnow)
    applied: bool = False
    raw: str = Field(default="{}", sa_column=Column(Text, nullable=False))


class OptOut(SQLModel, table=True):
    phone: str = Field(primary_key=True, max_length=20)  # E.164
    reason: str = Field(default="opted out", max_length=200)
    source: str = Field(default="manual", max_length=64)
    created_at: datetime = Field(default_factory=utcnow)


class Schedule(SQLModel, table=True):
    """A reminder blast: cron in a time zone, one-off time, or relative to a date column."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    account_name: str = Field(foreign_key="account.name", max_length=64)
    kind: str = Field(max_length=16)  # cron | once | relative
    cron: str | None = Field(default=None, max_length=120)
    timezone: str = Field(default="UTC", max_length=64)
    run_at: datetime | None = None
    date_column: str | None = Field(default=None, max_length=120)
    offset_seconds: int | None = None  # relative: send at date_column + offset (negative = before)
    source_file: str = Field(sa_column=Column(Text, nullable=False))
    template: str = Field(sa_column=Column(Text, nullable=False))
    options: str = Field(default="{}", sa_column=Column(Text, nullable=False, server_default="{}"))
    region: str = Field(default="UG", max_length=2)
    quiet_hours: str | None = Field(default=None, max_length=11)
    enabled: bool = True
    next_fire_at: datetime | None = None
    last_fired_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class WebSession(SQLModel, table=True):
    """A logged-in operator's session on the web app. The cookie holds a random token and only its SHA-256
    is kept here, so reading this table opens no session; logout deletes the row, which ends the session
    wherever the cookie was copied to."""

    __table_args__ = (
        Index("ix_websession_user_name", "user_name"),
        Index("ix_websession_expires_at", "expires_at"),
    )

    token_hash: str = Field(primary_key=True, max_length=64)
    user_name: str = Field(max_length=200)
    # HMAC of the password the session was opened with: a session from before a password change is refused.
    password_fingerprint: str = Field(max_length=64)
    csrf_token: str = Field(max_length=64)
    data: str = Field(default="{}", sa_column=Column(Text, nullable=False, server_default="{}"))  # flash notes
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime


class LoginFailure(SQLModel, table=True):
    """A refused login (or one being checked), counted per user name and per client address to throttle
    guessing; kept in the database so every web process counts the same failures."""

    __table_args__ = (
        Index("ix_loginfailure_user_key_at", "user_key", "at"),
        Index("ix_loginfailure_address_at", "address", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    # HMAC of the name typed, not the name: people type their password into the user field.
    user_key: str = Field(max_length=64)
    address: str = Field(max_length=64)
    at: datetime = Field(default_factory=utcnow)


class ApiKey(SQLModel, table=True):
    """A key for /api/v1 (campaigns.apikeys): shown once at creation; only its SHA-256 is kept."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True)
    role: str = Field(max_length=16)  # admin, operator or viewer (campaigns.apikeys.ROLES)
    key_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow)
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class IdempotentRequest(SQLModel, table=True):
    """A POST to /api/v1 with an Idempotency-Key, and the answer it got: the same key and body get it again."""

    __table_args__ = (UniqueConstraint("api_key_id", "key", name="uq_idempotentrequest_key"),)

    id: int | None = Field(default=None, primary_key=True)
    api_key_id: int = Field(foreign_key="apikey.id")
    key: str = Field(max_length=200)
    request_hash: str = Field(max_length=64)  # SHA-256 of method, path and body
    status_code: int | None = None  # None while the first request is still being answered
    body: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow)


class WebUser(SQLModel, table=True):
    """A person who logs in to the web app (campaigns.users): a name, a role, and an argon2 hash of the
    password, never the password."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True)
    role: str = Field(max_length=16)  # admin, operator or viewer (campaigns.apikeys.ROLES)
    password_hash: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow)
    password_changed_at: datetime = Field(default_factory=utcnow)


class AuditEntry(SQLModel, table=True):
    """One change someone made (campaigns.audit): appended, never updated or deleted; the database refuses
    both (triggers made by migration 0009)."""

    __tablename__ = "auditlog"

    id: int | None = Field(default=None, sa_column=Column(BIG_ID, primary_key=True, autoincrement=True))
    at: datetime = Field(default_factory=utcnow)
    actor: str = Field(max_length=200)  # a user's name, key:<name>, cli:<os user>, or system
    action: str = Field(max_length=64)  # e.g. campaign.pause
    object_type: str = Field(max_length=32)
    object_id: str = Field(max_length=200)
    address: str = Field(max_length=64)  # the client's address, cli, or - for the system
    detail: str | None = Field(default=None, sa_column=Column(Text))  # JSON, never a secret


class WebhookSubscription(SQLModel, table=True):
    """A system that wants Blast's events POSTed to it (campaigns.webhooks), with the last answer it gave.

    `secret` is the signing key, kept because every POST is signed with it (campaigns/webhooks/subscriptions.py
    says how it is guarded); nothing that lists or shows subscriptions reads it."""

    id: int | None = Field(default=None, primary_key=True)
    url: str = Field(sa_column=Column(Text, nullable=False))
    events: str = Field(max_length=400)  # event types, comma-separated
    secret: str = Field(max_length=100)  # whsec_<base64>
    created_at: datetime = Field(default_factory=utcnow)
    last_attempt_at: datetime | None = None
    last_status_code: int | None = None  # None: no answer (timeout, refused)
    last_answer: str | None = Field(default=None, sa_column=Column(Text))  # the body's start, or the error
    # While the subscriber is down (campaigns.webhooks.deliveries.subscriber_down): since when, how many tries in a
    # row found it so, and when the next try (one event) may go; all cleared by the first answer that is not.
    down_since: datetime | None = None
    down_tries: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    next_try_at: datetime | None = None


class WebhookDelivery(SQLModel, table=True):
    """One event for one subscription: the outbox row (written in the transaction of the change it reports)
    and its delivery log. `body` is the exact JSON POSTed; `event_id` its stable `webhook-id`."""

    __table_args__ = (
        # The deliveries still to make, by subscription and time due: what a delivery task and beat's sweep read,
        # in the order a claim takes them.
        Index("ix_webhookdelivery_due", "subscription_id", "next_attempt_at", "id",
              sqlite_where=text("state = 'pending'"), postgresql_where=text("state = 'pending'")),
        Index("ix_webhookdelivery_subscription", "subscription_id", "id"),
    )

    id: int | None = Field(default=None, sa_column=Column(BIG_ID, primary_key=True, autoincrement=True))
    subscription_id: int
    event_id: str = Field(max_length=40)
    event_type: str = Field(max_length=40)
    body: str = Field(sa_column=Column(Text, nullable=False))
    state: str = Field(default="pending", max_length=16)  # pending, delivered, failed (given up)
    attempts: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    next_attempt_at: datetime = Field(default_factory=utcnow)
    lease_token: str | None = Field(default=None, max_length=32)
    lease_until: datetime | None = None
    last_attempt_at: datetime | None = None
    last_status_code: int | None = None
    last_answer: str | None = Field(default=None, sa_column=Column(Text))
    delivered_at: datetime | None = None


class ServiceWindow(SQLModel, table=True):
    """When a number last wrote to an account (inbound webhooks and polled inboxes): WhatsApp's 24-hour
    customer-service window opens there (campaigns.service_window)."""

    __tablename__ = "service_window"

    account_name: str = Field(primary_key=True, max_length=64)
    phone: str = Field(primary_key=True, max_length=20)  # E.164
    last_inbound_at: datetime = Field(default_factory=utcnow, index=True)


class GatewayTemplate(SQLModel, table=True):
    """An account's message template as its gateway keeps it (campaigns.approved_templates): name, language,
    status, category, the text to show, and its parameters in order (`slots`, JSON)."""

    __tablename__ = "gateway_template"

    account_name: str = Field(primary_key=True, max_length=64)
    name: str = Field(primary_key=True, max_length=512)
    language: str = Field(primary_key=True, max_length=16)
    status: str = Field(max_length=32)
    category: str = Field(default="", max_length=32)
    text: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    slots: str = Field(default="[]", sa_column=Column(Text, nullable=False, server_default="[]"))
    synced_at: datetime = Field(default_factory=utcnow)
