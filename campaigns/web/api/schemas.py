"""The API's bodies (pydantic): what the OpenAPI document says, and what every answer is checked against."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Header, Path, Query
from pydantic import BaseModel, ConfigDict, Field

Scalar = str | int | float | bool | None
IDEMPOTENCY_HEADER = Header(alias="Idempotency-Key", max_length=200, description="repeat a POST safely")
CampaignId = Annotated[int, Path(ge=1, le=2**31 - 1, description="a campaign's id")]
# The next page starts after this (an id, as the last page gave it); at most 18 digits, a 64-bit integer.
Cursor = Annotated[str | None, Query(max_length=18, pattern=r"^\d+$", description="next_cursor of the last page")]


class Recipient(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: str = Field(min_length=1, max_length=64, description="the number, in any shape a contact list holds")
    variables: dict[str, Scalar] = Field(default_factory=dict, max_length=100,
                                         description="the template's variables for this recipient")


CANARY = ('send this many first ("50") or this share of the valid recipients ("5%"), then pause (reason canary) '
          "until resumed; only with launch: true")
CANARY_AUTO = ("with canary: resume by itself once the slice has settled, when its failures and opt-outs stay "
               "under the account's limits")


class CampaignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    account: str = Field(min_length=1, max_length=64, description="a gateway account of blast.toml")
    template: str = Field(min_length=1, max_length=20_000, description="the message, Jinja2 with the variables")
    recipients: list[Recipient] = Field(min_length=1, max_length=1_000_000)
    region: str = Field(default="UG", min_length=2, max_length=2,
                        description="the country of numbers written without a country code")
    media_url: str | None = Field(default=None, max_length=2000)
    at: str | None = Field(default=None, max_length=64, description="start time, ISO 8601 (default: now)")
    quiet_hours: str | None = Field(default=None, max_length=11, description='e.g. "21:00-08:00"')
    launch: bool = Field(default=True, description="start it (now or at `at`); false leaves a draft")
    canary: str | None = Field(default=None, max_length=16, description=CANARY)
    canary_auto: bool = Field(default=False, description=CANARY_AUTO)


class CampaignFileIn(BaseModel):
    """A campaign from a contact file (multipart/form-data): the file, and the other fields as form fields."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    account: str = Field(min_length=1, max_length=64, description="a gateway account of blast.toml")
    template: str = Field(min_length=1, max_length=20_000)
    region: str = Field(default="UG", min_length=2, max_length=2)
    phone_column: str | None = Field(default=None, max_length=200, description="default: the one found")
    media_url: str | None = Field(default=None, max_length=2000)
    at: str | None = Field(default=None, max_length=64)
    quiet_hours: str | None = Field(default=None, max_length=11)
    launch: bool = True
    canary: str | None = Field(default=None, max_length=16, description=CANARY)
    canary_auto: bool = Field(default=False, description=CANARY_AUTO)


class Failure(BaseModel):
    reason: str | None
    code: str | None
    count: int


class Campaign(BaseModel):
    """The shape of `blast status ID --json`."""

    id: int
    name: str
    status: str
    total: int
    counts: dict[str, int]
    pause_reason: str | None = None
    failures: list[Failure] = Field(default_factory=list)
    # Messages per account and state (more than one account after a failover).
    accounts: dict[str, dict[str, int]] = Field(default_factory=dict)


class CampaignPage(BaseModel):
    items: list[Campaign]
    next_cursor: str | None


class Message(BaseModel):
    phone: str | None
    state: str
    provider_message_id: str | None
    error_code: str | None
    error_reason: str | None
    updated_at: str


class MessagePage(BaseModel):
    items: list[Message]
    next_cursor: str | None


class Account(BaseModel):
    name: str
    provider: str
    rate: float
    balance: str | None = Field(description="what the gateway tells of the balance, when it does")


class OptOutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: str = Field(min_length=1, max_length=64)


class OptOut(BaseModel):
    phone: str
    reason: str | None
    source: str | None
    created_at: str


class OptOutPage(BaseModel):
    items: list[OptOut]


class ApiKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"\S", description="unique among the keys")
    role: Literal["viewer", "operator", "admin"]


class ApiKey(BaseModel):
    name: str
    role: str
    created_at: str
    last_used_at: str | None
    revoked_at: str | None


class NewApiKey(ApiKey):
    key: str | None = Field(description="the key itself: in the first answer only (null when repeated)")


class ScheduleIn(BaseModel):
    """A reminder blast for a list of recipients: on a `cron` (in `timezone`), once `at` a time, or `relative`
    to a date variable of each recipient ("24h before appointment_at"; `cron` is then how often the list is
    read again, default every 15 minutes)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    account: str = Field(min_length=1, max_length=64, description="a gateway account of blast.toml")
    template: str = Field(min_length=1, max_length=20_000)
    recipients: list[Recipient] = Field(min_length=1, max_length=1_000_000)
    cron: str | None = Field(default=None, max_length=120, description='e.g. "0 9 * * MON"')
    timezone: str = Field(default="UTC", min_length=1, max_length=64, description="e.g. Africa/Kampala")
    at: str | None = Field(default=None, max_length=64, description="a one-off time, ISO 8601")
    relative: str | None = Field(default=None, max_length=200, description='e.g. "24h before appointment_at"')
    region: str = Field(default="UG", min_length=2, max_length=2)
    media_url: str | None = Field(default=None, max_length=2000)
    quiet_hours: str | None = Field(default=None, max_length=11)


class Schedule(BaseModel):
    """The shape of `blast schedule list --json`'s items."""

    id: int
    name: str
    account: str
    kind: str
    cron: str | None
    timezone: str
    enabled: bool
    next_fire_at: str | None
    relative: str | None
    quiet_hours: str | None
    phone_column: str | None
    media_url: str | None


class SchedulePage(BaseModel):
    items: list[Schedule]
