"""SMSGlobal MXT REST API, WhatsApp (smsglobal.txt), with the MAC authentication of its SDKs and the
paths of providers/README.md ("Choices of ours": the WhatsApp paths are not public).

Kinds: text (options `preview_url`), template (options `template`, `params`: list of strings), image,
video, document, audio, media (options `media_url`, `filename` for documents, `content_type`,
`size_bytes`; the text is the caption), location (options `lat`, `lng`, `name`, `address`).
Delivery status is polled: `list_outgoing` pages through the outgoing messages, `get_outgoing` fetches one.

Its list filters are "in account timezone" (smsglobal.txt), and SMSGlobal's accounts are typically
Australian (+10:00 or +11:00): the filters are written in the account's `timezone` when blast.toml gives
one, else in the zone learned from the offsets of the gateway's own timestamps ("2016-08-16 23:30:05
+1000"). Either way every window is widened by the largest offset there is (14 hours) and the messages
are then picked by our own ids and times, so a wrong zone never loses a report.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

from campaigns.events import BadPayload, Inbound, StatusUpdate
from campaigns.settings import AccountConfig
from campaigns.states import EventKind, Outcome
from workers.providers.base import (
    UNDOCUMENTED,
    GatewayError,
    GatewayRequest,
    GatewaySpec,
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
    matches_sent,
    require_e164,
)
from workers.providers.events import (
    normalise_phone,
    offset_of,
    parse_time,
    text_or_none,
    undocumented_reason,
    word_family,
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
PAGES_PER_POLL_MAX = 200  # a bound on one poll's (or one lookup's) requests
OFFSET_PLUS_LIMIT_MAX = 10_000  # "maximum offset + limit = 10,000"
# "Date format <Y-m-d H:i:s> in account timezone": the account's `timezone`, else learned (module doc).
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
# The most a zone is away from UTC (UTC+14, Kiribati): every date filter is widened by it.
WIDEST_OFFSET = timedelta(hours=14)
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
    # DESIGN.md "Classification": a 500 may come after the gateway took the message (ambiguous); 502 and
    # 503 are a proxy or the gateway turning requests away before reading them (transient).
    "HTTP 500": Rule(A.AMBIGUOUS, "internal server error: the gateway may have taken the message"),
    "HTTP 502": Rule(A.TRANSIENT, "bad gateway"),
    "HTTP 503": Rule(A.TRANSIENT, "service unavailable"),
    "HTTP 5xx": Rule(A.AMBIGUOUS, "the gateway failed: it may have taken the message"),
}

# providers/README.md, SMSGlobal outgoing `status` (its SDKs add `scheduled`): (event, reason, outcome).
# queued and scheduled are not progress past our `submitted`: they change nothing (UNKNOWN). Any other
# word is read by its family; with `state` "final" a word of no family fails the message.
STATUSES: dict[str, tuple[EventKind, str | None, Outcome | None]] = {
    "queued": (EventKind.UNKNOWN, "queued at the gateway", None),
    "scheduled": (EventKind.UNKNOWN, "scheduled at the gateway", None),
    "sent": (EventKind.SENT, None, None),
    "delivered": (EventKind.DELIVERED, None, None),
    "read": (EventKind.READ, None, None),
    "undelivered": (EventKind.FAILED, "undelivered", None),
    "rejected": (EventKind.FAILED, "rejected by the gateway", Outcome.CONTENT),
    "nocredits": (EventKind.FAILED, "no credits left on the account", Outcome.QUOTA),
    "invalidnumber": (EventKind.FAILED, "invalid number", Outcome.RECIPIENT),
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


def mac_header(key: str, secret: str, method: str, url: str) -> str:
    """`Authorization: MAC id, ts, nonce, mac` over the request as it is sent (path with its query)."""
    parts = urlsplit(url)
    uri = parts.path + (f"?{parts.query}" if parts.query else "")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    ts = str(int(time.time()))
    nonce = secrets.token_hex(16)
    mac = mac_signature(secret, ts, nonce, method, uri, parts.hostname or "", port)
    return f'MAC id="{key}", ts="{ts}", nonce="{nonce}", mac="{mac}"'


class SmsGlobalClient(ProviderClient):
    provider: ClassVar[str] = "smsglobal"
    spec: ClassVar[GatewaySpec] = GatewaySpec(
        credentials=("api_key", "api_secret"),  # DESIGN.md "Accounts"
        secrets=("api_key", "api_secret"),
        kinds=KINDS,
        composer_kinds=("text", "media"),
        text_limits={"media": (1024, "characters")},  # assumption: WhatsApp's caption limit
        reports=True,  # the outgoing list keeps every message
        inbound=True,
        balance=True,
        # A message shows in the outgoing list as soon as the send is answered; this bounds a slow one.
        report_delay_seconds=60.0,
    )

    def __init__(self, account: AccountConfig):
        super().__init__(account)
        # The zone the list filters are written in: the account's, else learned from the gateway's own
        # timestamps (None until one is seen: UTC, with the widened windows covering any error).
        self.zone: tzinfo | None = account.zone

    def sign(self, method: str, url: str, headers: dict[str, str]) -> None:
        headers["Authorization"] = mac_header(self.account.secret("api_key"), self.account.secret("api_secret"),
                                              method, url)

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
        body = self.fetch("GET", PATHS["outgoing"], params=self.page(start, end, offset, limit, filters))
        items = _items(body)
        self.learn_zone(items)
        return [status_update(item) for item in items if item.get("id") is not None], _total(body)

    def get_outgoing(self, message_id: str | int) -> StatusUpdate:
        body = self.fetch("GET", PATHS["outgoing_one"].format(id=quote(str(message_id), safe="")))
        return status_update(body)

    def list_incoming(
        self,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        offset: int = 1,
        limit: int = PAGE_LIMIT_MAX,
        **filters: str,
    ) -> tuple[list[Inbound], int]:
        body = self.fetch("GET", PATHS["incoming"], params=self.page(start, end, offset, limit, filters))
        items = _items(body)
        self.learn_zone(items)
        return [inbound_message(item) for item in items], _total(body)

    def get_incoming(self, message_id: str | int) -> Inbound:
        return inbound_message(
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

    def balance(self) -> dict | None:
        return self.credit_balance()

    # ------------------------------------------------------------------ dates in the account's zone

    def learn_zone(self, items: Iterable[Mapping]) -> None:
        """Without a configured zone, take the offset the gateway prints in its timestamps."""
        if self.account.zone is not None:
            return
        for item in items:
            zone = offset_of(item.get("createdDate"))
            if zone is not None:
                self.zone = zone
                return

    def account_time(self, moment: datetime) -> str:
        """`moment` written as the list filters read it: in the account's zone, without an offset."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(self.zone or UTC).strftime(DATE_FORMAT)

    def page(self, start, end, offset: int, limit: int, filters: Mapping[str, str]) -> dict[str, Any]:
        """The query of one list page; `start`/`end` widened by WIDEST_OFFSET, so a wrong zone loses nothing
        (callers pick the messages by their own ids and times)."""
        if not 1 <= limit <= PAGE_LIMIT_MAX:
            raise ValueError(f"limit must be 1 to {PAGE_LIMIT_MAX}, got {limit}")
        if offset < 1 or offset + limit > OFFSET_PLUS_LIMIT_MAX:
            raise ValueError(f"offset starts at 1 and offset + limit is at most {OFFSET_PLUS_LIMIT_MAX}")
        params: dict[str, Any] = {"offset": offset, "limit": limit}
        if start is not None:
            params["startDate"] = self.account_time(start - WIDEST_OFFSET)
        if end is not None:
            params["endDate"] = self.account_time(end + WIDEST_OFFSET)
        for key in ("destination", "origin", "search"):
            if filters.get(key):
                params[key] = filters[key]
        unknown = set(filters) - {"destination", "origin", "search"}
        if unknown:
            raise ValueError(f"unknown filters: {', '.join(sorted(unknown))}")
        return params

    # ------------------------------------------------------------------ reports, as the engine asks

    def window(self, start: datetime, end: datetime, **filters: str) -> tuple[list[StatusUpdate], int]:
        """Every outgoing message made in [start, end] (widened), and the requests made. The list pages
        only to offset + limit = 10,000: a window holding more is split in halves."""
        updates: list[StatusUpdate] = []
        requests = self._window(start, end, updates, 0, filters)
        return updates, requests

    def _window(self, start: datetime, end: datetime, updates: list, requests: int, filters) -> int:
        offset = 1
        while requests < PAGES_PER_POLL_MAX:
            limit = min(PAGE_LIMIT_MAX, OFFSET_PLUS_LIMIT_MAX - offset)
            page, total = self.list_outgoing(start=start, end=end, offset=offset, limit=limit, **filters)
            requests += 1
            if offset == 1 and total >= OFFSET_PLUS_LIMIT_MAX and end - start > timedelta(seconds=2):
                middle = start + (end - start) / 2
                requests = self._window(start, middle, updates, requests, filters)
                return self._window(middle, end, updates, requests, filters)
            updates.extend(page)
            offset += len(page)
            if not page or offset > total or offset + 1 > OFFSET_PLUS_LIMIT_MAX:
                break
        return requests

    def poll_reports(self, *, since: datetime, until: datetime,
                     stragglers: Sequence[str] = ()) -> tuple[list[StatusUpdate], int]:
        return self.window(since, until)

    def poll_inbound(self, *, since: datetime, until: datetime) -> list[Inbound]:
        inbound, _total = self.list_incoming(start=since, end=until)
        return inbound

    def find_sent(self, queries: Sequence) -> dict[int, list[StatusUpdate]]:
        """Candidates for each unknown message: to its number, made after its attempt began, with its text.
        One list walk for all of them (from the earliest attempt on), a page per 1,000 messages."""
        if not queries:
            return {}
        start = min(query.since for query in queries)
        updates, _requests = self.window(start, datetime.now(UTC))
        found: dict[int, list[StatusUpdate]] = {}
        for query in queries:
            candidates = [update for update in updates
                          if matches_sent(query, to=str(update.raw.get("recipient", "")),
                                          at=parse_time(update.raw.get("createdDate"), self.zone),
                                          text=_text_of(update.raw))]
            if candidates:
                found[query.message_id] = sorted(candidates, key=_created)
        return found


def media_of(content_type: str | None) -> str:
    """A "media" message's type from its content type: image, video, audio, else document."""
    if content_type:
        for media in ("image", "video", "audio"):
            if content_type in MEDIA[media][0]:
                return media
    return "document"


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


def _created(update: StatusUpdate) -> tuple[str, str]:
    return str(update.raw.get("createdDate", "")), update.provider_message_id


def _text_of(item: Mapping) -> str | None:
    text = item.get("message")
    return text if isinstance(text, str) else None


# ---------------------------------------------------------------------- status words


def status_update(item: Any) -> StatusUpdate:
    """One outgoing message of the list: {id, recipient, status, state, message, createdDate}."""
    if not isinstance(item, Mapping) or item.get("id") is None or isinstance(item.get("id"), dict | list):
        raise BadPayload("an SMSGlobal message without id")
    word = str(item.get("status") or "")
    known = STATUSES.get(word.strip().lower())
    if known is not None:
        kind, reason, outcome = known
    else:
        kind, outcome = word_family(word), None
        if kind == EventKind.UNKNOWN and str(item.get("state") or "").strip().lower() == "final":
            kind = EventKind.FAILED  # final, and no word says it arrived
        reason = undocumented_reason(word, kind)
    return StatusUpdate(
        provider_message_id=str(item["id"]),
        kind=kind,
        error_code=word[:64] if kind == EventKind.FAILED else None,
        reason=reason,
        occurred_at=None,  # createdDate is when the message was made, not when its status changed
        raw=dict(item),
        outcome=outcome,
    )


def inbound_message(item: Mapping) -> Inbound:
    """One incoming message of the list: {id, from, to, message, createdDate}."""
    return Inbound(
        from_phone=normalise_phone(item.get("from") or ""),
        text=str(item.get("message") or ""),
        received_at=parse_time(item.get("createdDate")),
        provider_message_id=text_or_none(item.get("id")),
        raw=dict(item),
    )
