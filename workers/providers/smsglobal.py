"""SMSGlobal MXT REST API, WhatsApp (smsglobal.txt), with the MAC authentication of its SDKs and the
paths of providers/README.md ("Choices of ours": the WhatsApp paths are not public).

Kinds: text (options `preview_url`), template (options `template`, `params`: list of strings), image,
video, document, audio, media (options `media_url`, `filename` for documents, `content_type`,
`size_bytes`; the text is the caption), location (options `lat`, `lng`, `name`, `address`).
Delivery status is polled: `list_outgoing` pages through the outgoing messages, `get_outgoing` fetches one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

import requests

from campaigns.settings import AccountConfig
from campaigns.states import Outcome
from workers.providers.base import (
    UNDOCUMENTED,
    GatewayError,
    GatewayRequest,
    HttpAnswer,
    InvalidMessage,
    Outbound,
    ProviderClient,
    Rule,
    SendResult,
    check_coordinates,
    check_length,
    check_size,
    check_text,
    check_url,
    content_type_of,
    require_e164,
)
from workers.providers.events import (
    Inbound,
    StatusUpdate,
    normalise_phone,
    smsglobal_inbound,
    smsglobal_status,
)

# providers/README.md "Choices of ours", SMSGlobal WhatsApp: every path, in one place.
PATHS = {
    "send": "/v2/whatsapp",
    "outgoing": "/v2/whatsapp",
    "outgoing_one": "/v2/whatsapp/{id}",
    "capability": "/v2/whatsapp/capability",
    "incoming": "/v2/whatsapp-incoming",
    "incoming_one": "/v2/whatsapp-incoming/{id}",
    "opt_in": "/v2/whatsapp/opt-in",
    "credit_balance": "/v2/user/credit-balance",  # README: SMSGlobal's REST paths
}
KINDS = ("text", "template", "image", "video", "document", "audio", "media", "location")
MEDIA_KINDS = ("image", "video", "document", "audio")
PAGE_LIMIT_MAX = 1000  # list endpoints: "maximum 1000"
OFFSET_PLUS_LIMIT_MAX = 10_000  # "maximum offset + limit = 10,000"
# "Date format <Y-m-d H:i:s> in account timezone"; assumption: the account's timezone is UTC.
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
MB = 1024 * 1024
# Assumption: template names follow WhatsApp's rule (at most 512 characters); the document is silent.
TEMPLATE_NAME_MAX = 512

# smsglobal.txt, the table of supported content types and post-processing size limits per message type.
_IMAGE = frozenset({"image/jpeg", "image/png"})
_AUDIO = frozenset({"audio/aac", "audio/mp4", "audio/amr", "audio/mpeg", "audio/ogg", "audio/opus"})
_VIDEO = frozenset({"video/mp4", "video/3gpp"})
MEDIA: dict[str, tuple[frozenset[str], int]] = {
    "image": (_IMAGE, 5 * MB),
    "audio": (_AUDIO, 16 * MB),
    "video": (_VIDEO, 16 * MB),
    # "Any content type listed for other message types" and these ("application/rtf.0" read as rtf)
    "document": (
        _IMAGE
        | _AUDIO
        | _VIDEO
        | {"image/webp"}
        | frozenset(
            {
                "text/plain",
                "text/csv",
                "application/pdf",
                "application/msword",
                "application/x-tar",
                "application/rtf",
                "application/vnd.ms-powerpoint",
                "application/vnd.openxmlformats-officedocument.presentationml.presentation",
                "application/vnd.oasis.opendocument.text",
            }
        ),
        100 * MB,
    ),
}

A = Outcome
# Every answer smsglobal.txt and providers/README.md give for a send: the HTTP status when it is not 200,
# else the `status` of the message object (compared in lower case).
OUTCOMES: dict[str, Rule] = {
    # README "Choices of ours", outgoing `status`: the message is at the gateway
    "queued": Rule(A.ACCEPTED, "queued"),
    "scheduled": Rule(A.ACCEPTED, "scheduled"),  # README, "statuses seen in its SDKs"
    "sent": Rule(A.ACCEPTED, "sent"),
    "delivered": Rule(A.ACCEPTED, "delivered"),
    "read": Rule(A.ACCEPTED, "read"),
    # README, outgoing `status`: refused at once
    "undelivered": Rule(A.RECIPIENT, "undelivered"),
    "rejected": Rule(A.CONTENT, "rejected by the gateway"),
    "nocredits": Rule(A.QUOTA, "no credits left on the account"),
    "invalidnumber": Rule(A.RECIPIENT, "invalid number (not on WhatsApp)"),
    # smsglobal.txt, "The following response codes apply to all requests"
    "HTTP 400": Rule(A.CONTENT, "the request contained invalid or missing data"),
    "HTTP 401": Rule(A.AUTH, "authentication failed"),
    "HTTP 403": Rule(A.AUTH, "forbidden"),  # listed for every operation, without words
    "HTTP 404": Rule(A.AUTH, "the URI does not match any resource: check the account's base_url"),
    "HTTP 405": Rule(A.AUTH, "method not allowed: check the account's base_url"),
    "HTTP 406": Rule(A.CONTENT, "not acceptable (Accept header)"),
    "HTTP 415": Rule(A.CONTENT, "unsupported media type (Content-Type header)"),
    # providers/README.md: "402 means no credit, 429 (with Retry-After seconds) means too many requests"
    "HTTP 402": Rule(A.QUOTA, "payment required: no credit"),
    "HTTP 429": Rule(A.THROTTLED, "too many requests"),
    # DESIGN.md "Classification": 500, 502, 503 are transient
    "HTTP 5xx": Rule(A.TRANSIENT, "the gateway failed or is unavailable"),
}


def rule_for_status(status: int) -> Rule | None:
    return OUTCOMES.get(f"HTTP {status}") or (OUTCOMES["HTTP 5xx"] if status >= 500 else None)


# ---------------------------------------------------------------------- MAC authentication


def mac_signature(
    secret: str, ts: str, nonce: str, method: str, uri: str, host: str, port: int | str, ext: str = ""
) -> str:
    """base64(HMAC-SHA256(secret, seven lines each ending in a newline)), as SMSGlobal's SDKs sign."""
    message = f"{ts}\n{nonce}\n{method.upper()}\n{uri}\n{host}\n{port}\n{ext}\n"
    digest = hmac.new(secret.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


class MacAuth(requests.auth.AuthBase):
    """`Authorization: MAC id, ts, nonce, mac` over the request as it is sent (path with its query)."""

    def __init__(self, key: str, secret: str):
        self.key = key
        self.secret = secret

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        parts = urlsplit(request.url)
        uri = parts.path + (f"?{parts.query}" if parts.query else "")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        ts = str(int(time.time()))
        nonce = secrets.token_hex(16)
        mac = mac_signature(self.secret, ts, nonce, request.method or "GET", uri, parts.hostname or "", port)
        request.headers["Authorization"] = f'MAC id="{self.key}", ts="{ts}", nonce="{nonce}", mac="{mac}"'
        return request

    def __repr__(self) -> str:
        return "MacAuth(****)"


class SmsGlobalClient(ProviderClient):
    provider: ClassVar[str] = "smsglobal"
    reports_are_complete: ClassVar[bool] = True  # the outgoing list keeps every message

    def __init__(self, account: AccountConfig):
        super().__init__(account)
        self.session.auth = MacAuth(account.secret("api_key"), account.secret("api_secret"))

    # ------------------------------------------------------------------ send

    def validate(self, message: Outbound) -> None:
        self.message_object(message)

    def message_object(self, message: Outbound) -> dict[str, Any]:
        """The `message` object of smsglobal.txt for this kind; InvalidMessage when a limit is broken."""
        require_e164(message.to)
        kind, options = message.kind, message.options
        if kind not in KINDS:
            raise InvalidMessage(
                f"smsglobal: message kind {kind!r} is not offered (kinds: {', '.join(KINDS)})"
            )
        if kind == "text":
            body: dict[str, Any] = {"type": "text", "text": check_text("smsglobal", "text", message.text)}
            if options.get("preview_url") is not None:
                if not isinstance(options["preview_url"], bool):
                    raise InvalidMessage("smsglobal: preview_url must be true or false")
                body["preview_url"] = options["preview_url"]
            return body
        if kind == "template":
            name = check_length(
                "smsglobal",
                "template name (options 'template')",
                options.get("template"),
                TEMPLATE_NAME_MAX,
                required=True,
            )
            body = {"type": "template", "template_name": name}
            params = options.get("params")
            if params is not None:
                if not isinstance(params, list | tuple) or not all(
                    isinstance(p, str | int | float) for p in params
                ):
                    raise InvalidMessage("smsglobal: params must be a list of strings")
                body["params"] = [str(p) for p in params]
            return body
        if kind == "location":
            lat, lng = check_coordinates("smsglobal", options.get("lat"), options.get("lng"))
            body = {"type": "location", "lat": lat, "lng": lng}
            for key in ("name", "address"):
                if options.get(key):
                    body[key] = str(options[key])
            return body
        return self.media_object(message)

    def media_object(self, message: Outbound) -> dict[str, Any]:
        options = message.options
        url = check_url("smsglobal", "media_url", options.get("media_url"))
        content_type = content_type_of(options, options.get("filename"), url)
        media = message.kind if message.kind != "media" else media_of(content_type)
        allowed, limit = MEDIA[media]
        if content_type is not None and content_type not in allowed:
            raise InvalidMessage(
                f"smsglobal: {content_type} is not a supported {media} type "
                f"(supported: {', '.join(sorted(allowed))})"
            )
        check_size("smsglobal", f"the {media}", options.get("size_bytes"), limit)
        body: dict[str, Any] = {"type": media, "url": url}
        if media == "audio":
            if message.text:
                raise InvalidMessage("smsglobal: an audio message takes no caption (smsglobal.txt, audio)")
            return body
        caption = check_text("smsglobal", "media", message.text, required=False, what="caption")
        if caption:
            body["caption"] = caption
        if media == "document" and options.get("filename"):
            body["filename"] = str(options["filename"])
        return body

    def build_payload(self, message: Outbound) -> GatewayRequest:
        return GatewayRequest(
            "POST",
            PATHS["send"],
            json={"to": [require_e164(message.to)], "message": self.message_object(message)},
        )

    def parse_result(self, answer: HttpAnswer, message: Outbound) -> SendResult:
        if not 200 <= answer.status < 300:
            rule = rule_for_status(answer.status)
            if rule is None:
                return self.undocumented(answer)
            return self.result(
                rule, code=f"HTTP {answer.status}", answer=answer, detail=_error_words(answer.body)
            )
        item = _first_message(answer.body)
        status = str(item.get("status") or "") if item else ""
        rule = OUTCOMES.get(status.lower())
        if item is None or rule is None:
            return self.undocumented(answer)
        if rule.outcome == Outcome.ACCEPTED:
            if item.get("id") is None:
                return self.undocumented(answer, "an accepted message without id")
            return self.result(rule, code=None, answer=answer, provider_message_id=str(item["id"]))
        return self.result(rule, code=status, answer=answer)

    # ------------------------------------------------------------------ reports and account

    def fetch(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None
    ) -> Any:
        """The parsed body of a successful call; GatewayError (classified like a send) otherwise."""
        answer = self.call(GatewayRequest(method, path, params=params, json=json))
        if 200 <= answer.status < 300 and answer.is_json:
            return answer.body
        rule = rule_for_status(answer.status) or UNDOCUMENTED
        raise self.gateway_error(rule, f"HTTP {answer.status}", answer)

    def list_outgoing(
        self,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        offset: int = 1,
        limit: int = PAGE_LIMIT_MAX,
        **filters: str,
    ) -> tuple[list[StatusUpdate], int]:
        """One page of outgoing messages (one request) and the total; filters: destination, origin, search."""
        body = self.fetch("GET", PATHS["outgoing"], params=_page(start, end, offset, limit, filters))
        return [smsglobal_status(item) for item in _items(body) if item.get("id") is not None], _total(body)

    def get_outgoing(self, message_id: str | int) -> StatusUpdate:
        body = self.fetch("GET", PATHS["outgoing_one"].format(id=quote(str(message_id), safe="")))
        return smsglobal_status(body)

    def list_incoming(
        self,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        offset: int = 1,
        limit: int = PAGE_LIMIT_MAX,
        **filters: str,
    ) -> tuple[list[Inbound], int]:
        body = self.fetch("GET", PATHS["incoming"], params=_page(start, end, offset, limit, filters))
        return [smsglobal_inbound(item) for item in _items(body)], _total(body)

    def get_incoming(self, message_id: str | int) -> Inbound:
        return smsglobal_inbound(
            self.fetch("GET", PATHS["incoming_one"].format(id=quote(str(message_id), safe="")))
        )

    def capability(self, numbers: Iterable[str]) -> dict[str, dict]:
        """Whether each number can receive WhatsApp messages: {"+61400000000": {"name", "number",
        "capable", "blacklist"}, ...}, keyed by the number in E.164."""
        digits = [require_e164(number) for number in numbers]
        body = self.fetch("POST", PATHS["capability"], json={"numbers": digits})
        items = body.get("capabilities") if isinstance(body, dict) else None
        return {
            normalise_phone(item.get("number", "")): item for item in items or [] if isinstance(item, dict)
        }

    def opt_in(self, numbers: Iterable[str | Mapping[str, str]]) -> list[dict]:
        """Opt numbers in: E.164 strings or {"number", "name"}; returns the gateway's optIn list."""
        entries = []
        for entry in numbers:
            if isinstance(entry, Mapping):
                item = {"number": require_e164(entry["number"])}
                if entry.get("name"):
                    item["name"] = str(entry["name"])
            else:
                item = {"number": require_e164(entry)}
            entries.append(item)
        body = self.fetch("POST", PATHS["opt_in"], json={"opt-in": entries})
        return list(body.get("optIn") or []) if isinstance(body, dict) else []

    def opted_in(self) -> list[dict]:
        body = self.fetch("GET", PATHS["opt_in"])
        return list(body.get("optIn") or []) if isinstance(body, dict) else []

    def credit_balance(self) -> dict | None:
        """The account's balance as the gateway words it; None when the gateway has no such resource."""
        try:
            body = self.fetch("GET", PATHS["credit_balance"])
        except GatewayError as error:
            if error.code == "HTTP 404":
                return None
            raise
        return body if isinstance(body, dict) else None

    def find_sent(self, *, to: str, since: datetime) -> StatusUpdate | None:
        """The latest outgoing message to `to` made since `since` (the reconciler's question after a crash),
        or None. Pages through the list, one request per page."""
        digits = require_e164(to)
        found = None
        offset = 1
        while offset + PAGE_LIMIT_MAX - 1 <= OFFSET_PLUS_LIMIT_MAX:
            updates, total = self.list_outgoing(
                start=since, offset=offset, limit=PAGE_LIMIT_MAX, destination=digits
            )
            for update in updates:
                if str(update.raw.get("recipient", "")).lstrip("+") == digits:
                    found = update if found is None or _later(update, found) else found
            offset += PAGE_LIMIT_MAX
            if not updates or offset > total:
                break
        return found


def media_of(content_type: str | None) -> str:
    """A "media" message's type from its content type: image, video, audio, else document."""
    if content_type:
        for media in ("image", "video", "audio"):
            if content_type in MEDIA[media][0]:
                return media
    return "document"


def _page(start, end, offset: int, limit: int, filters: Mapping[str, str]) -> dict[str, Any]:
    if not 1 <= limit <= PAGE_LIMIT_MAX:
        raise ValueError(f"limit must be 1 to {PAGE_LIMIT_MAX}, got {limit}")
    if offset < 1 or offset + limit > OFFSET_PLUS_LIMIT_MAX:
        raise ValueError(f"offset starts at 1 and offset + limit is at most {OFFSET_PLUS_LIMIT_MAX}")
    params: dict[str, Any] = {"offset": offset, "limit": limit}
    if start is not None:
        params["startDate"] = _account_time(start)
    if end is not None:
        params["endDate"] = _account_time(end)
    for key in ("destination", "origin", "search"):
        if filters.get(key):
            params[key] = filters[key]
    unknown = set(filters) - {"destination", "origin", "search"}
    if unknown:
        raise ValueError(f"unknown filters: {', '.join(sorted(unknown))}")
    return params


def _account_time(moment: datetime) -> str:
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime(DATE_FORMAT)


def _items(body: Any) -> list[dict]:
    messages = body.get("messages") if isinstance(body, dict) else None
    return [item for item in messages or [] if isinstance(item, dict)]


def _total(body: Any) -> int:
    try:
        return int(body.get("total"))
    except (AttributeError, TypeError, ValueError):
        return len(_items(body))


def _first_message(body: Any) -> dict | None:
    items = _items(body)
    if items:
        return items[0]
    return body if isinstance(body, dict) and "status" in body and "id" in body else None


def _error_words(body: Any) -> str | None:
    """The gateway's own words for an error, when the body has any."""
    if isinstance(body, dict):
        for key in ("message", "error", "errors", "detail"):
            if body.get(key):
                return str(body[key])[:500]
    return None


def _later(one: StatusUpdate, other: StatusUpdate) -> bool:
    a, b = str(one.raw.get("createdDate", "")), str(other.raw.get("createdDate", ""))
    return (a, one.provider_message_id) > (b, other.provider_message_id)
