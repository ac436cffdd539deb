"""What every gateway client shares: the outbound message, the classified answer, the send steps, the
gateway's declarative spec, the checks that several documents state alike, and one keep-alive HTTP session
per worker thread per account.

A client knows HTTP and its gateway's words, never our tables. `send()` never raises for gateway or network
trouble: every answer becomes a `SendResult` with one `Outcome` (DESIGN.md, "Classification"). An answer
that may mean the gateway took the message (HTTP 500, a body nobody documented, a read timeout, a
connection dropped after the request was written) is AMBIGUOUS: the engine never sends it again blindly.

Everything Blast knows about a gateway lives in its module: its `GatewaySpec` (credentials, kinds, limits,
what it offers), its classification table, its status words, webhook parsing, report and inbox polling,
balance. The base class answers "not offered" for what a gateway lacks.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from email.utils import parsedate_to_datetime
from pathlib import PurePosixPath
from typing import Any, ClassVar, NamedTuple, Protocol
from urllib.parse import urlencode, urlsplit
from urllib.request import getproxies, proxy_bypass

import orjson
import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    DecodeError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    SSLError,
)

from campaigns.events import Inbound, StatusUpdate
from campaigns.gateway_limits import Unit, measure, text_limit
from campaigns.settings import AccountConfig
from campaigns.states import Outcome

log = logging.getLogger("blast.providers")

# Seconds to open a TCP connection; the account's `timeout_seconds` bounds the wait for an answer.
CONNECT_TIMEOUT_SECONDS = 5.0
# Connections kept alive per client (one client per worker thread per account, so a few suffice).
POOL_SIZE = 4
# The most of an unparseable answer's text kept in `SendResult.raw`, in characters.
RAW_TEXT_LIMIT = 2000

E164 = re.compile(r"^\+?[1-9]\d{6,14}$")
HTTP_URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)
_QUERY_TOKEN = re.compile(r"(token=)[^&\s\"']+")


class _QueryTokenFilter(logging.Filter):
    """urllib3 logs every request line at DEBUG, query string included: the HTTP API's token is in it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "token=" in message:
            record.msg, record.args = _QUERY_TOKEN.sub(r"\1****", message), ()
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_QueryTokenFilter())


@dataclass(frozen=True)
class GatewaySpec:
    """What Blast knows about a gateway besides its send steps, declared once in the gateway's module.
    Settings, the web app, beat and delivery read this; none of them switches on a provider's name."""

    credentials: tuple[str, ...]  # keys its blast.toml table must give (DESIGN.md "Accounts")
    secrets: tuple[str, ...] = ()  # keys never shown anywhere (held as SecretStr, masked in answers)
    optional: tuple[str, ...] = ()  # other keys its table may give
    kinds: tuple[str, ...] = ("text",)  # message kinds its client sends
    composer_kinds: tuple[str, ...] = ("text",)  # the kinds the web page composes ("template": an approved one
    # picked from the account's list, for gateways whose spec says `templates`)
    media_with_buttons: bool = False  # buttons may carry a file
    # Text limits per kind, from its document: kind -> (limit, "characters" | "bytes"); other kinds get
    # campaigns.gateway_limits.DEFAULT_LIMIT. Caption kinds (image, video, ...) read the "media" row.
    text_limits: Mapping[str, tuple[int, Unit]] = field(default_factory=dict)
    batch_size: int = 1  # messages one call may carry (the account's batch_size bounds it further)
    reports: bool = False  # keeps reports: polled by beat, and asked about an unknown message (find_sent)
    webhooks: bool = False  # posts status or inbound messages to /hooks/<provider>/<account>
    inbound: bool = False  # its inbox can be polled (a STOP opts the sender out)
    balance: bool = False  # tells the account's balance
    echoes_reference: bool = False  # callbacks carry our message id: an unknown message waits for one
    # How long a sent message may take to show in its reports (or its callback to come), in seconds, before
    # "not there" means "never arrived"; an account's `unknown_wait_seconds` overrides it.
    report_delay_seconds: float = 120.0
    # Values its accounts take when blast.toml gives none (e.g. Meta's own base_url and default rate).
    defaults: Mapping[str, Any] = field(default_factory=dict)
    # Keeps approved templates (names, languages, statuses, parameters): `list_templates` reads them, and a
    # template campaign names one (campaigns.approved_templates; `blast templates sync|list`).
    templates: bool = False
    # Free-form (non-template) messages reach only numbers that wrote to the account within this many hours
    # (WhatsApp's customer-service window, campaigns.service_window); None: the gateway has no such rule.
    service_window_hours: float | None = None


class NotOffered(NotImplementedError):
    """The gateway does not offer this (its spec says so); callers ask the spec first."""


@dataclass(frozen=True, slots=True)
class SentQuery:
    """An `unknown` message, to be looked for in the gateway's own records."""

    message_id: int  # our id (a gateway that takes a reference has it)
    to: str  # E.164
    text: str | None  # the rendered body, when the gateway's records show text
    since: datetime  # aware UTC: this attempt began after it; no earlier message may match


@dataclass(frozen=True, slots=True)
class Outbound:
    """One message to one recipient, as the dispatch engine hands it to a client."""

    message_id: int  # our id; sent as callbackData / reference where a gateway takes one
    to: str  # E.164, e.g. "+256701234567"
    text: str | None = None  # rendered body (or caption)
    kind: str = "text"  # text | template | otp | image | video | document | audio | media | location |
    # contact | buttons | list | file_upload  (each client supports its document's kinds)
    options: Mapping[str, Any] = field(default_factory=dict)  # kind-specific extras, see each client
    callback_url: str | None = None  # where the gateway posts status (Devino callbackUrl)
    # The recipient's columns (identifiers as templates see them), for gateways whose templates take their
    # parameters separately from the text (Meta's Cloud API).
    variables: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class SendResult:
    """A gateway's answer to one send, classified."""

    outcome: Outcome
    provider_message_id: str | None = None
    cost: str | None = None
    code: str | None = (
        None  # the gateway's own code or word ("2301", "05-Quota expiry", "HTTP 503", "invalid")
    )
    detail: str | None = None  # human reason
    retry_after: float | None = None  # seconds, when the gateway hints
    raw: Any = None  # parsed body or text, kept (secrets masked)
    undocumented: bool = False  # an answer the gateway's document does not list (AMBIGUOUS)
    # THROTTLED for this recipient only (WhatsApp's pair rate, Meta 131056): the message waits `retry_after`,
    # and the account's rate stays as it is.
    recipient_only: bool = False
    # CONTENT about the template as the gateway holds it now, not about this message (Meta 132015: the template
    # is paused for low quality): the message waits, unattempted, and the campaign pauses at once (reason
    # content) until the template is approved again (campaigns.approved_templates.resume_held).
    template_held: bool = False


class Deadline(Protocol):
    """By when a request must be written, as the rate limiter gives it (workers.rate_limits.limiter): a late
    request asks it, just before it is written, whether it may still go (the limiter may extend its slot)."""

    def allows(self, now: float) -> bool: ...


def in_time(deadline: float | Deadline, now: float) -> bool:
    """Whether a request written at `now` (time.monotonic()) keeps to `deadline` (a time.monotonic() or the
    limiter's `Deadline`)."""
    return now <= deadline if isinstance(deadline, int | float) else deadline.allows(now)


class SlotMissed(Exception):
    """The request would leave after its rate slot's deadline (a starved thread): it is not sent, and the
    engine hands the message back. Sent that late it could share a second at the gateway with the rate's
    worth of messages after it."""


class InvalidMessage(ValueError):
    """A limit the gateway's document states is broken; the message says which and by how much."""


class GatewayError(Exception):
    """A report, balance or list call the gateway refused or could not answer (polling methods raise it).

    `outcome` classifies it like a send answer: TRANSIENT means ask again later, AUTH means the
    credentials are wrong. The text never contains a secret.
    """

    def __init__(self, outcome: Outcome, code: str | None, detail: str | None = None, raw: Any = None):
        super().__init__(f"{code or outcome.value}: {detail}" if detail else (code or outcome.value))
        self.outcome = outcome
        self.code = code
        self.detail = detail
        self.raw = raw


class Rule(NamedTuple):
    """One row of a gateway's classification table: what an answer means, in the document's words."""

    outcome: Outcome
    reason: str


UNDOCUMENTED = Rule(Outcome.AMBIGUOUS, "an answer the gateway's document does not list")
# The error code prefix of an undocumented answer: several in a row pause the account's campaigns.
UNDOCUMENTED_CODE = "undocumented"


@dataclass(frozen=True, slots=True)
class GatewayRequest:
    """An HTTP call a client is about to make; `path` is appended to the account's base_url."""

    method: str
    path: str
    params: Mapping[str, Any] | None = None
    json: Any = None
    data: Mapping[str, Any] | None = None
    files: Mapping[str, tuple[str, bytes, str]] | None = None


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """What came back: the status, the headers, the body parsed as JSON when it is JSON, else its text."""

    status: int
    headers: Mapping[str, str]
    body: Any
    text: str

    @property
    def is_json(self) -> bool:
        return not isinstance(self.body, str)


class ProviderClient:
    """Subclasses (one module per gateway) set `provider` and `spec` and implement validate, build_payload
    and parse_result; `send` runs them in that order and turns every failure into a `SendResult`. What a
    gateway offers beyond sending (reports, webhooks, inbox, balance) it implements too; the base answers
    NotOffered."""

    provider: ClassVar[str]
    spec: ClassVar[GatewaySpec]
    max_batch: ClassVar[int] = 1
    # Gateways that take a status URL per message (Devino) get the web app's hook in Outbound.callback_url.
    wants_callback_url: ClassVar[bool] = False
    # What the web app answers a webhook it stored (Devino wants 200 with an empty body).
    webhook_reply: ClassVar[str | None] = "json"

    _registry: ClassVar[dict[str, type[ProviderClient]]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if getattr(cls, "provider", None):
            ProviderClient._registry[cls.provider] = cls

    def __init__(self, account: AccountConfig):
        self.account = account
        self.base_url = account.base_url.rstrip("/")
        self.timeouts = urllib3.Timeout(connect=min(CONNECT_TIMEOUT_SECONDS, account.timeout_seconds),
                                        read=account.timeout_seconds)
        self.closed = False
        self.http = _connection_pool(self.base_url)
        self.headers: dict[str, str] = {"Accept": "application/json", "User-Agent": "blast"}
        self._secrets = account.secret_values()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(account={self.account.name!r}, base_url={self.base_url!r})"

    # ------------------------------------------------------------------ the send steps

    def validate(self, message: Outbound) -> None:
        """Raise InvalidMessage when the message breaks a limit the gateway's document states."""
        raise NotImplementedError

    def build_payload(self, message: Outbound) -> GatewayRequest:
        raise NotImplementedError

    def parse_result(self, answer: HttpAnswer, message: Outbound) -> SendResult:
        raise NotImplementedError

    def send(self, message: Outbound, *, deadline: float | Deadline | None = None) -> SendResult:
        """validate -> build_payload -> post -> parse_result. Never raises for gateway or network trouble;
        SlotMissed when the request would leave after `deadline` (time.monotonic())."""
        try:
            self.validate(message)
            request = self.build_payload(message)
        except InvalidMessage as error:
            return SendResult(Outcome.CONTENT, code="invalid", detail=self.redact(str(error)))
        except OSError as error:  # a local file to upload could not be read
            return SendResult(Outcome.CONTENT, code="invalid", detail=f"file unreadable: {error.strerror}")
        answer = self.post(request, deadline=deadline)
        if isinstance(answer, SendResult):
            return answer
        try:
            return self.parse_result(answer, message)
        except Exception as error:  # an answer shaped unlike the document: the gateway may have it
            log.warning("%s: unreadable answer (%s)", self.provider, type(error).__name__)
            return self.undocumented(answer)

    def send_batch(self, messages: Sequence[Outbound], *, deadline: float | Deadline | None = None) -> list[SendResult]:
        """One result per message, in order. Gateways without batch sending post one call each; only the
        first is held to `deadline` (a later SlotMissed would lose the answers before it)."""
        return [self.send(message, deadline=deadline if index == 0 else None)
                for index, message in enumerate(messages)]

    def close(self) -> None:
        self.http.clear()
        self.closed = True

    # ------------------------------------------------------------------ HTTP

    def url(self, path: str) -> str:
        return self.base_url + path

    def post(self, request: GatewayRequest, *, deadline: float | Deadline | None = None) -> HttpAnswer | SendResult:
        """Make the call; a network failure comes back as a SendResult: TRANSIENT when nothing reached the
        gateway, AMBIGUOUS when the request may have been read. SlotMissed, sending nothing, when it is
        later than `deadline` (time.monotonic()) once the request is built, just before it is written."""
        try:
            return self.call(request, deadline=deadline)
        except GatewayError as error:
            return SendResult(error.outcome, code=error.code, detail=error.detail)

    def sign(self, method: str, url: str, headers: dict[str, str]) -> None:
        """Add the headers that authenticate this request (gateways that sign each request override it)."""

    def call(self, request: GatewayRequest, *, deadline: float | Deadline | None = None) -> HttpAnswer:
        """Make the call (urllib3 directly: about two thirds of the CPU requests takes, bench/http_clients.py); a
        network failure raises GatewayError without the URL (which may carry a token): TRANSIENT when no
        connection was made (nothing was written), AMBIGUOUS when the request went out and no answer came
        (read timeout, connection dropped). Never retried, never redirected for a POST: a send is never
        repeated behind the engine's back."""
        url = self.url(request.path)
        if request.params:
            url += ("&" if "?" in url else "?") + urlencode(
                {name: value for name, value in request.params.items() if value is not None}, doseq=True)
        headers = dict(self.headers)
        body = None
        if request.files:
            body, headers["Content-Type"] = urllib3.encode_multipart_formdata(
                {**(request.data or {}), **request.files})
        elif request.json is not None:
            body, headers["Content-Type"] = orjson.dumps(request.json), "application/json"
        elif request.data is not None:
            body = urlencode(request.data, doseq=True)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.sign(request.method, url, headers)
        _departure.at = checked = time.monotonic()  # replaced by the moment it was written, once it is
        if deadline is not None and not in_time(deadline, checked):
            raise SlotMissed("the request would leave past its rate slot's deadline")
        try:
            response = self.http.request(request.method, url, body=body, headers=headers, timeout=self.timeouts,
                                         retries=False, redirect=request.method == "GET", preload_content=True)
        except (NewConnectionError, ProxyError, SSLError):  # before anything was written
            raise GatewayError(
                Outcome.TRANSIENT, "connection refused", "the gateway did not take the connection"
            ) from None
        except ConnectTimeoutError:
            raise GatewayError(
                Outcome.TRANSIENT,
                "connect timeout",
                f"the gateway did not accept a connection within {self.timeouts.connect_timeout:g} s",
            ) from None
        except ReadTimeoutError:
            # The gateway may have accepted the message before the answer was lost.
            raise GatewayError(
                Outcome.AMBIGUOUS, "timeout", f"no answer from the gateway within {self.timeouts.read_timeout:g} s"
            ) from None
        except (ProtocolError, DecodeError, OSError) as error:
            # The request was (or may have been) written: the gateway may have the message.
            raise GatewayError(
                Outcome.AMBIGUOUS, "connection dropped", f"{type(error).__name__} after the request went out"
            ) from None
        except HTTPError as error:
            raise GatewayError(
                Outcome.TRANSIENT, "request error", f"{type(error).__name__} before the request went out"
            ) from None
        return answer_of(response)

    # ------------------------------------------------------------------ results

    def result(
        self,
        rule: Rule,
        *,
        code: str | None,
        answer: HttpAnswer | None = None,
        raw: Any = None,
        detail: str | None = None,
        provider_message_id: str | None = None,
        cost: str | None = None,
        retry_after: float | None = None,
    ) -> SendResult:
        """A SendResult from a table row. The raw body (or the given part of it) is kept with secrets masked;
        an accepted result carries no detail."""
        if raw is None and answer is not None:
            raw = self.raw_of(answer)
        if retry_after is None and answer is not None:
            retry_after = retry_after_seconds(answer.headers)
        if rule.outcome != Outcome.ACCEPTED:
            detail = self.redact(detail or rule.reason)
        return SendResult(
            rule.outcome,
            provider_message_id=provider_message_id,
            cost=cost,
            code=code,
            detail=detail,
            retry_after=retry_after,
            raw=self.redact(raw),
        )

    def undocumented(self, answer: HttpAnswer, detail: str = UNDOCUMENTED.reason) -> SendResult:
        """Nobody documented this answer: the gateway may have the message (AMBIGUOUS), and a human should
        read what came (kept in `raw`, and in the attempt's detail)."""
        return SendResult(
            Outcome.AMBIGUOUS,
            code=f"{UNDOCUMENTED_CODE} HTTP {answer.status}",
            detail=detail,
            retry_after=retry_after_seconds(answer.headers),
            raw=self.raw_of(answer),
            undocumented=True,
        )

    def raw_of(self, answer: HttpAnswer) -> Any:
        if answer.is_json:
            return self.redact(answer.body)
        return self.redact(answer.text[:RAW_TEXT_LIMIT])

    def redact(self, value: Any) -> Any:
        """`value` with every credential of the account replaced by ****, at any depth."""
        if not self._secrets:
            return value
        if isinstance(value, str):
            for secret in self._secrets:
                value = value.replace(secret, "****")
            return value
        if isinstance(value, Mapping):
            return {self.redact(key): self.redact(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.redact(item) for item in value]
        return value

    def gateway_error(self, rule: Rule, code: str | None, answer: HttpAnswer) -> GatewayError:
        return GatewayError(rule.outcome, code, self.redact(rule.reason), raw=self.raw_of(answer))

    # ------------------------------------------------------------------ beyond sending (per the spec)

    def find_sent(self, queries: Sequence[SentQuery]) -> dict[int, list[StatusUpdate]]:
        """For each unknown message (by our id), the messages in the gateway's records that may be it: to
        its number, made after its `since`, with its text (or our reference) where the records show one;
        oldest first. The caller drops those already recorded for another message. Gateways with reports."""
        raise NotOffered(f"{self.provider} keeps no reports")

    def poll_reports(self, *, since: datetime, until: datetime,
                     stragglers: Sequence[str] = ()) -> tuple[list[StatusUpdate], int]:
        """Status updates of the messages made in [since, until] (and of `stragglers`, provider ids still
        waiting, where the gateway answers one id at a time), and the requests made."""
        raise NotOffered(f"{self.provider} keeps no reports")

    def poll_inbound(self, *, since: datetime, until: datetime) -> list[Inbound]:
        """Messages received in [since, until]."""
        raise NotOffered(f"{self.provider} has no inbox to poll")

    def balance(self) -> dict | None:
        """The account's balance in the gateway's words; None when it has none for this account."""
        raise NotOffered(f"{self.provider} tells no balance")

    def daily_cap(self) -> tuple[int, int, tzinfo] | None:
        """(messages the gateway takes per day, how many it took today, the zone of its days); None when it
        caps nothing for this account."""
        raise NotOffered(f"{self.provider} tells no daily cap")

    def list_templates(self) -> list[dict]:
        """The account's message templates as the gateway keeps them: dicts with `name`, `language`, `status`,
        `category`, `components` (the gateway's words) and `parameters` (how many each component takes);
        GatewayError when the gateway refuses. Gateways whose spec says `templates`."""
        raise NotOffered(f"{self.provider} keeps no templates")

    @classmethod
    def parse_webhook(cls, body: bytes, content_type: str) -> list[StatusUpdate | Inbound]:
        """The events of one webhook request; BadPayload (a 400) when the body is not the gateway's."""
        raise NotOffered(f"{cls.provider} posts no webhooks")

    @classmethod
    def route_webhook(cls, account: AccountConfig,
                      events: list[StatusUpdate | Inbound]) -> dict[str | None, list[StatusUpdate | Inbound]]:
        """The events of a webhook that came to `account`'s address, by the name of the account each is about
        (None: no account here). Most gateways call one address per account: all of them are `account`'s."""
        return {account.name: events}

    @classmethod
    def webhook_signed(cls, account: AccountConfig, headers: Mapping[str, str], body: bytes) -> bool | None:
        """Whether the gateway's own signature on a webhook request is good (checked in constant time on the
        raw body); None for gateways that sign nothing, whose webhooks carry the account's webhook_secret."""
        return None

    @classmethod
    def webhook_challenge(cls, account: AccountConfig, query: Mapping[str, str]) -> str | None:
        """The answer to a gateway's GET verification of the webhook address (the challenge to echo), or None
        when the request is not the gateway's or its token is wrong (a 403)."""
        raise NotOffered(f"{cls.provider} verifies no webhook address")

    @classmethod
    def reason_of(cls, error_code: str) -> str | None:
        """A delivery failure's error code in the gateway's words, where its document has a table."""
        return None


_departure = threading.local()


def departed_at() -> float | None:
    """When (time.monotonic()) this thread's last gateway call handed its request to the kernel, or was
    checked against its slot's deadline when it was not written; None when there was none since the last
    question. A rate slot's lateness is measured there."""
    at, _departure.at = getattr(_departure, "at", None), None
    return at


def answer_came_at() -> float | None:
    """When (time.monotonic()) the answer to this thread's last gateway call came in (its status line and
    headers read), before anything of it was parsed; None when there was none since the last question. How
    long a gateway takes to answer is measured there, so that the parsing's own variation is not taken for
    the way's (rate_limits/jitter.py)."""
    at, _departure.answered = getattr(_departure, "answered", None), None
    return at


class _NotesDeparture:
    """Mixed into urllib3's connections: note when the request's bytes were handed to the kernel, and when
    the answer's head was read."""

    def request(self, *args, **kwargs) -> None:
        _departure.answered = None
        super().request(*args, **kwargs)
        _departure.at = time.monotonic()

    def getresponse(self, *args, **kwargs):
        response = super().getresponse(*args, **kwargs)
        _departure.answered = time.monotonic()
        return response


class _TimedConnection(_NotesDeparture, urllib3.connection.HTTPConnection):
    pass


class _TimedHttpsConnection(_NotesDeparture, urllib3.connection.HTTPSConnection):
    pass


class _TimedPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _TimedConnection


class _TimedHttpsPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _TimedHttpsConnection


def _connection_pool(base_url: str) -> urllib3.PoolManager:
    """Keep-alive connections to the gateway, through the proxy the environment names for its URL (as
    requests does: HTTPS_PROXY, HTTP_PROXY, NO_PROXY); each notes when it wrote a request (`departed_at`)."""
    parts = urlsplit(base_url)
    proxy = getproxies().get(parts.scheme)
    if proxy and not proxy_bypass(parts.hostname or ""):
        manager = urllib3.ProxyManager(proxy, num_pools=1, maxsize=POOL_SIZE)
    else:
        manager = urllib3.PoolManager(num_pools=1, maxsize=POOL_SIZE)
    manager.pool_classes_by_scheme = {"http": _TimedPool, "https": _TimedHttpsPool}
    return manager


def answer_of(response: urllib3.BaseHTTPResponse) -> HttpAnswer:
    """The status, headers and body of an answer: JSON when it parses as JSON, else its text."""
    data = response.data
    charset = "utf-8"
    content_type = response.headers.get("Content-Type", "")
    if "charset=" in content_type:
        charset = content_type.rsplit("charset=", 1)[1].split(";")[0].strip().strip('"') or charset
    try:
        text = data.decode(charset, errors="replace")
    except LookupError:  # a charset Python does not know
        text = data.decode("utf-8", errors="replace")
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        try:
            body = json.loads(text)  # what orjson refuses and Python reads (NaN, another charset)
        except ValueError:
            body = text
    return HttpAnswer(status=response.status, headers=response.headers, body=body, text=text)


def matches_sent(query: SentQuery, *, to: str, at: datetime | None, text: str | None,
                 reference: str | None = None, skew_seconds: float = 60.0) -> bool:
    """Whether a message in a gateway's records may be the unknown one: the same number; made no earlier
    than the attempt began (less `skew_seconds` of clock difference); and the same text, or our reference,
    where the record shows one. A record without a time cannot be told from an earlier message: no match."""
    if to.lstrip("+") != query.to.lstrip("+"):
        return False
    if at is None or at < query.since - timedelta(seconds=skew_seconds):
        return False
    if reference is not None:
        return reference == str(query.message_id)
    if text is not None and query.text is not None:
        return text.strip() == query.text.strip()
    return True


# ---------------------------------------------------------------------- shared checks


def require_e164(to: str) -> str:
    """The number's digits, without "+"; InvalidMessage unless `to` is E.164."""
    if not isinstance(to, str) or not E164.match(to.strip()):
        raise InvalidMessage(f"recipient {to!r} is not an E.164 number (+ then 7 to 15 digits)")
    return to.strip().lstrip("+")


def check_text(
    provider: str, limit_kind: str, text: str | None, *, required: bool = True, what: str = "text"
) -> str:
    """The text, checked against the gateway's stated limit (campaigns.gateway_limits)."""
    if not text:
        if required:
            raise InvalidMessage(f"{provider}: {what} is required for this kind of message")
        return ""
    limit, unit = text_limit(provider, limit_kind)
    size = measure(text, unit)
    if size > limit:
        raise InvalidMessage(f"{provider}: {what} is {size} {unit}, over the limit of {limit} {unit}")
    return text


def check_length(
    provider: str, what: str, value: str | None, maximum: int, *, required: bool = False, minimum: int = 1
) -> str | None:
    """A short field (footer, button, name...) of at most `maximum` characters."""
    if value is None or value == "":
        if required:
            raise InvalidMessage(f"{provider}: {what} is required")
        return None
    if not isinstance(value, str):
        raise InvalidMessage(f"{provider}: {what} must be text, got {type(value).__name__}")
    if len(value) > maximum:
        raise InvalidMessage(f"{provider}: {what} is {len(value)} characters, over the limit of {maximum}")
    if len(value) < minimum:
        raise InvalidMessage(f"{provider}: {what} is {len(value)} characters, under the minimum of {minimum}")
    return value


def check_url(provider: str, what: str, url: Any) -> str:
    if not isinstance(url, str) or not HTTP_URL.match(url.strip()):
        raise InvalidMessage(f"{provider}: {what} must be an http or https URL, got {url!r}")
    return url.strip()


def check_coordinates(provider: str, lat: Any, lng: Any) -> tuple[float, float]:
    """Latitude in [-90, 90] and longitude in [-180, 180], in decimal degrees."""
    values = []
    for what, value, bound in (("latitude", lat, 90), ("longitude", lng, 180)):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InvalidMessage(f"{provider}: {what} must be a number, got {value!r}") from None
        if not -bound <= number <= bound:
            raise InvalidMessage(f"{provider}: {what} {number:g} is outside [-{bound}, {bound}]")
        values.append(number)
    return values[0], values[1]


def content_type_of(options: Mapping[str, Any], *names: str | None) -> str | None:
    """The media's MIME type: `content_type` when given, else guessed from the first name or URL path
    that has a known extension; None when nothing says."""
    given = options.get("content_type")
    if given:
        return str(given).split(";")[0].strip().lower()
    for name in names:
        if name:
            guessed, _ = mimetypes.guess_type(PurePosixPath(urlsplit(name).path).name)
            if guessed:
                return guessed
    return None


def file_name_of(url: str | None) -> str | None:
    """The last path segment of a URL (or a path), or None."""
    if not url:
        return None
    return PurePosixPath(urlsplit(url).path).name or None


def check_size(provider: str, what: str, size: Any, maximum_bytes: int) -> None:
    """A media's size in bytes, when known (option `size_bytes` or a local file), against the document's."""
    if size is None:
        return
    try:
        size = int(size)
    except (TypeError, ValueError):
        raise InvalidMessage(f"{provider}: size_bytes must be a whole number, got {size!r}") from None
    if size > maximum_bytes:
        raise InvalidMessage(
            f"{provider}: {what} is {_megabytes(size)}, over the limit of {_megabytes(maximum_bytes)}"
        )


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB" if size >= 1024 * 1024 else f"{size / 1024:.0f} KB"


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """Retry-After in seconds, from delta-seconds or an HTTP date (RFC 9110); None when absent or garbled."""
    if not headers:
        return None
    value = headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def money(value: Any) -> str | None:
    """A cost as the gateway wrote it, as text (None when absent)."""
    if value is None or value == "":
        return None
    return str(value)


# ---------------------------------------------------------------------- one client per thread per account

_local = threading.local()


def client_for(account: AccountConfig) -> ProviderClient:
    """This thread's client for the account: one keep-alive session per worker thread per account. A
    changed AccountConfig (settings reloaded with other values) closes the old client and makes a new one."""
    from workers.providers.registry import client_class

    clients: dict[str, ProviderClient] = getattr(_local, "clients", None)
    if clients is None:
        clients = _local.clients = {}
    current = clients.get(account.name)
    if current is not None and (current.account is account or current.account == account):
        return current
    if current is not None:
        current.close()
    clients[account.name] = client = client_class(account.provider)(account)
    return client


def close_clients() -> None:
    """Close this thread's clients (worker shutdown, tests)."""
    for client in (getattr(_local, "clients", None) or {}).values():
        client.close()
    _local.clients = {}
