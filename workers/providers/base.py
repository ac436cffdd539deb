"""What every gateway client shares: the outbound message, the classified answer, the send steps, the
checks that several documents state alike, and one keep-alive HTTP session per worker thread per account.

A client knows HTTP and its gateway's words, never our tables. `send()` never raises for gateway or network
trouble: every answer becomes a `SendResult` with one `Outcome` (DESIGN.md, "Classification").
"""

from __future__ import annotations

import logging
import mimetypes
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import PurePosixPath
from typing import Any, ClassVar, NamedTuple
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from campaigns.gateway_limits import measure, text_limit
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


UNDOCUMENTED = Rule(Outcome.TRANSIENT, "an answer the gateway's document does not list")


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
    """Subclasses (one module per gateway) set `provider` and implement validate, build_payload and
    parse_result; `send` runs them in that order and turns every failure into a `SendResult`."""

    provider: ClassVar[str]
    max_batch: ClassVar[int] = 1
    # Gateways that take a status URL per message (Devino) get the web app's hook in Outbound.callback_url.
    wants_callback_url: ClassVar[bool] = False
    SECRET_FIELDS: ClassVar[tuple[str, ...]] = ("api_key", "api_secret", "token", "webhook_secret")

    _registry: ClassVar[dict[str, type[ProviderClient]]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if getattr(cls, "provider", None):
            ProviderClient._registry[cls.provider] = cls

    def __init__(self, account: AccountConfig):
        self.account = account
        self.base_url = account.base_url.rstrip("/")
        self.timeouts = (min(CONNECT_TIMEOUT_SECONDS, account.timeout_seconds), account.timeout_seconds)
        self.closed = False
        self.session = requests.Session()
        # max_retries=0: a send is never repeated behind the engine's back
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=POOL_SIZE, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["Accept"] = "application/json"
        self._secrets = [
            value.get_secret_value()
            for name in self.SECRET_FIELDS
            if (value := getattr(account, name, None)) is not None and value.get_secret_value()
        ]

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

    def send(self, message: Outbound) -> SendResult:
        """validate -> build_payload -> post -> parse_result. Never raises for gateway or network trouble."""
        try:
            self.validate(message)
            request = self.build_payload(message)
        except InvalidMessage as error:
            return SendResult(Outcome.CONTENT, code="invalid", detail=self.redact(str(error)))
        except OSError as error:  # a local file to upload could not be read
            return SendResult(Outcome.CONTENT, code="invalid", detail=f"file unreadable: {error.strerror}")
        answer = self.post(request)
        if isinstance(answer, SendResult):
            return answer
        try:
            return self.parse_result(answer, message)
        except Exception as error:  # an answer shaped unlike the document: retry later, keep what came
            log.warning("%s: unreadable answer (%s)", self.provider, type(error).__name__)
            return self.undocumented(answer)

    def send_batch(self, messages: Sequence[Outbound]) -> list[SendResult]:
        """One result per message, in order. Gateways without batch sending post one call each."""
        return [self.send(message) for message in messages]

    def close(self) -> None:
        self.session.close()
        self.closed = True

    # ------------------------------------------------------------------ HTTP

    def url(self, path: str) -> str:
        return self.base_url + path

    def post(self, request: GatewayRequest) -> HttpAnswer | SendResult:
        """Make the call; a timeout or connection error comes back as a TRANSIENT SendResult."""
        try:
            return self.call(request)
        except GatewayError as error:
            return SendResult(error.outcome, code=error.code, detail=error.detail)

    def call(self, request: GatewayRequest) -> HttpAnswer:
        """Make the call; a timeout or connection error raises GatewayError(TRANSIENT), without the URL
        (which may carry a token)."""
        try:
            response = self.session.request(
                request.method,
                self.url(request.path),
                params=request.params,
                json=request.json,
                data=request.data,
                files=request.files,
                timeout=self.timeouts,
            )
        except requests.ConnectTimeout:
            raise GatewayError(
                Outcome.TRANSIENT,
                "connect timeout",
                f"the gateway did not accept a connection within {self.timeouts[0]:g} s",
            ) from None
        except requests.Timeout:
            # The gateway may have accepted the message before the answer was lost.
            raise GatewayError(
                Outcome.TRANSIENT, "timeout", f"no answer from the gateway within {self.timeouts[1]:g} s"
            ) from None
        except requests.RequestException as error:
            raise GatewayError(
                Outcome.TRANSIENT, "connection error", f"{type(error).__name__} talking to the gateway"
            ) from None
        return self.answer_of(response)

    def answer_of(self, response: requests.Response) -> HttpAnswer:
        text = response.text
        try:
            body = response.json()
        except ValueError:
            body = text
        return HttpAnswer(status=response.status_code, headers=response.headers, body=body, text=text)

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
        """Nobody documented this answer: retry later, and keep it for a human to read."""
        return SendResult(
            Outcome.TRANSIENT,
            code=f"HTTP {answer.status}",
            detail=detail,
            retry_after=retry_after_seconds(answer.headers),
            raw=self.raw_of(answer),
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
    import workers.providers  # noqa: F401  (registers every gateway's client)

    clients: dict[str, ProviderClient] = getattr(_local, "clients", None)
    if clients is None:
        clients = _local.clients = {}
    current = clients.get(account.name)
    if current is not None and (current.account is account or current.account == account):
        return current
    if current is not None:
        current.close()
    try:
        cls = ProviderClient._registry[account.provider]
    except KeyError:
        raise ValueError(f"no client for provider {account.provider!r}") from None
    clients[account.name] = client = cls(account)
    return client


def close_clients() -> None:
    """Close this thread's clients (worker shutdown, tests)."""
    for client in (getattr(_local, "clients", None) or {}).values():
        client.close()
    _local.clients = {}
