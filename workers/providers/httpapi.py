"""WhatsApp HTTP API 2.0.0 (httpapi.txt), the API of many Indian resellers.

Every operation is `{base}/api/<operation>?token=<instance id>`. Sends are POSTed with every parameter in
the query string, as the document's own URLs and its public integrations do (providers/README.md); a body
only carries a local file (multipart). Reports and account calls are GETs.

The report's dates are the gateway's local days (India, +05:30, in its samples; the account's `timezone`
when blast.toml gives one): a lookup asks for a day either side and picks messages by number, text and
time, never the latest message to a number.

Kinds and their options:
  text            sendText
  media, image, video, document, audio
                  sendFileWithCaption when there is a text (the caption), else sendFiles; `media_url`,
                  `size_bytes`
  file_upload     the same operations with a local file: `file_path` (multipart field `file`)
  location        sendLocation: `lat`, `lng`, `name`, `address`, `url`
  contact         sendContact: `name`, `phone`, `organization`
  buttons         sendTextButton; sendFilesButton with `media_url` or `file_path`; sendLocationButton with
                  `lat`/`lng`/`name`. `buttons`: up to 3, each a quick-reply text, {"type": "reply", "text"},
                  {"type": "call", "text", "value": phone} or {"type": "url", "text", "value": url}; `footer`
  list            sendList: `header`, `footer`, `button_text`, `rows`: "section:title:description" strings or
                  {"section", "title", "description"}
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from io import BytesIO
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs

import python_multipart

from campaigns.events import BadPayload, Inbound, StatusUpdate, id_text
from campaigns.settings import AccountConfig
from campaigns.states import EventKind, Outcome
from workers.providers.base import (
    E164,
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
    dd_mm_yyyy,
    json_items,
    normalise_phone,
    parse_time,
    text_or_none,
    undocumented_reason,
    word_family,
)

API = "/api/"
KINDS = (
    "text",
    "media",
    "image",
    "video",
    "document",
    "audio",
    "file_upload",
    "location",
    "contact",
    "buttons",
    "list",
)
MEDIA_KINDS = ("media", "image", "video", "document", "audio")
MB = 1024 * 1024
LINK_FILE_MAX = 5 * MB  # httpapi.txt 1.2, 1.3, 1.7: "maximum 5 mb file"
UPLOAD_FILE_MAX = 3 * MB  # httpapi.txt 1.2(a), 1.3(a), 1.7(a): "maximum 3 mb file"
CONTACT_NAME_MAX = 30  # 1.5: "maximum 30 character name"
FOOTER_MAX = 60  # 1.6-1.9: "maximum 60 character footer text"
HEADER_MAX = 60  # 1.9: "maximum 60 character header text"
BUTTON_TEXT_MAX = 20  # 1.6-1.9: "maximum 20 characters button text"
BUTTONS_MAX = 3  # 1.6-1.8: "A maximum of 3 buttons you can use at a time"
SECTION_MAX = 20  # 1.9: "maximum 20 character section text, title text"
TITLE_MAX = 20
DESCRIPTION_MAX = 30  # 1.9: "30 character description text"
# 1.7: sendFilesButton "supports image, video, word, excel, ppt, pdf files"
BUTTON_FILE_TYPES = frozenset(
    {
        "image/jpeg",
        "image/png",
        "video/mp4",
        "video/3gpp",
        "application/pdf",
        "application/msword",
        "application/vnd.ms-excel",
        "application/vnd.ms-powerpoint",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    }
)

A = Outcome
LIST_PARAMETER_MISSING = "please check request required header/message/buttontext/ at least one row"
# Every answer httpapi.txt lists: first by the body's `message` (its leading number for the numbered
# messages of section 9, "Error Codes List"), then by the HTTP status.
OUTCOMES: dict[str, Rule] = {
    "00": Rule(A.ACCEPTED, "success"),  # 9; 1.x 200 OK "Message Successfully Submitted to Portal"
    "01": Rule(A.AUTH, "access token failed"),  # 9
    "02": Rule(A.AUTH, "client id not found"),  # 9
    "03": Rule(A.AUTH, "instance id not found"),  # 9
    # 9: "Phone number not registered on whatsapp or your instance not connected"
    "04": Rule(A.RECIPIENT, "phone number not registered on WhatsApp (or the instance is not connected)"),
    "05": Rule(A.QUOTA, "quota expiry: credit balance not available or finished"),  # 9; 1.x 400
    "06": Rule(A.QUOTA, "not enough quota"),  # 9
    "07": Rule(A.QUOTA, "quota limit"),  # 9
    "08": Rule(A.TRANSIENT, "save file / document failed: file not uploaded properly"),  # 9; 1.2(a) 400
    "09": Rule(A.CONTENT, "link not valid: invalid URL or file not on the source path"),  # 9; 1.2 400
    # 9; 1.2 400: "File mime-type not supported or extension wrong or some permission issue on source server"
    "10": Rule(A.CONTENT, "download file failed: type not supported, wrong extension or no permission"),
    "11": Rule(A.CONTENT, "unknown file type"),  # 9
    "12": Rule(A.CONTENT, "parsing parameter failed"),  # 9
    "13": Rule(A.CONTENT, "parameter required"),  # 9
    "14": Rule(A.TRANSIENT, "data not found (no account connected)"),  # 9; 4.1, 6, 7 400
    "15": Rule(A.TRANSIENT, "QR code failed"),  # 9
    "invalid object id": Rule(A.AUTH, "invalid instance id or API key or access token"),  # 1.x 401
    # 1.9 400 "When required parameter not used"
    LIST_PARAMETER_MISSING: Rule(A.CONTENT, "a required list parameter is missing"),
    # 9, the HTTP statuses
    "HTTP 400": Rule(A.CONTENT, "bad request"),
    "HTTP 401": Rule(A.AUTH, "unauthorised: wrong instance id, API key or access token"),
    "HTTP 403": Rule(A.TRANSIENT, "forbidden (the service hung completely)"),
    # 9: "HTTP error (null or invalid request characters)"; on a send it may also come after the message
    # was taken (a crash after the gateway's commit): never sent again before the reports are asked.
    "HTTP 500": Rule(A.AMBIGUOUS, "HTTP error: the gateway may have taken the message"),
    # DESIGN.md "Classification": HTTP API 502 overloaded is throttled
    "HTTP 502": Rule(A.THROTTLED, "bad gateway: overloaded, or the two systems cannot talk"),
    "HTTP 503": Rule(A.TRANSIENT, "service unavailable (restarting)"),
}
_NUMBERED = re.compile(r"^\s*(\d{2})\s*-")

# providers/README.md, "report codes": words first (statusMessageInfo, statusInfo), numbers second; any
# other word is read by its family. Pending is not progress past our `submitted`: it changes nothing.
WORDS: dict[str, EventKind] = {
    "pending": EventKind.UNKNOWN,
    "sent": EventKind.SENT,
    "delivered": EventKind.DELIVERED,
    "read": EventKind.READ,
    "failed": EventKind.FAILED,
}
NUMBERS: dict[int, EventKind] = {
    0: EventKind.UNKNOWN,
    1: EventKind.SENT,
    2: EventKind.SENT,
    3: EventKind.DELIVERED,
    4: EventKind.READ,
    5: EventKind.FAILED,
}
# The gateway's zone where the account gives none: its samples print +05:30 (India).
INDIA = timezone(timedelta(hours=5, minutes=30))
REPORT_WINDOW = timedelta(days=7)  # 2.2: the report covers the last 7 days
STRAGGLERS_MAX = 50  # messages asked one by one per poll (campaignStatus), oldest first


def message_key(message: Any) -> str | None:
    """The table key of a body's `message`: "05" for "05-Quota expiry", else the words in lower case."""
    if not isinstance(message, str) or not message.strip():
        return None
    numbered = _NUMBERED.match(message)
    return numbered.group(1) if numbered else " ".join(message.strip().lower().split())


def classify(answer: HttpAnswer) -> tuple[str | None, Rule | None]:
    """(code, row): the body's message when the table lists it, else the HTTP status."""
    body = answer.body
    words = body.get("message") if isinstance(body, dict) else None
    key = message_key(words)
    if key is not None and key in OUTCOMES:
        return words.strip(), OUTCOMES[key]
    status = f"HTTP {answer.status}"
    return status, OUTCOMES.get(status)


class HttpApiClient(ProviderClient):
    provider: ClassVar[str] = "httpapi"
    spec: ClassVar[GatewaySpec] = GatewaySpec(
        credentials=("token",),  # DESIGN.md "Accounts"
        secrets=("token",),
        kinds=KINDS,
        composer_kinds=("text", "media", "buttons", "list"),
        media_with_buttons=True,  # 1.7 sendFilesButton
        text_limits={
            "text": (2000, "bytes"),  # 1.1: "maximum 2000 bytes allowed in 1 part"
            "media": (2000, "bytes"),  # 1.3: "5 mb file and 2000 bytes text"
            "buttons": (1024, "characters"),  # 1.6-1.8: "maximum 1024 character text"
            "list": (1024, "characters"),  # 1.9: "maximum 1024 character message text"
        },
        reports=True,  # campaignReport keeps the last 7 days
        webhooks=True,  # 8: delivery and inbox reports
        inbound=True,  # 4.1 inboxReport
        balance=True,  # 5 checkBal
        report_delay_seconds=60.0,
    )

    def __init__(self, account: AccountConfig):
        super().__init__(account)
        self.token = account.secret("token")

    # ------------------------------------------------------------------ send

    def validate(self, message: Outbound) -> None:
        self.operation(message, read_files=False)

    def build_payload(self, message: Outbound) -> GatewayRequest:
        operation, fields, upload = self.operation(message, read_files=True)
        # providers/README.md: parameters in the query string; a body only for a local file.
        return GatewayRequest("POST", API + operation, params={"token": self.token, **fields}, files=upload)

    def operation(self, message: Outbound, *, read_files: bool) -> tuple[str, dict[str, Any], dict | None]:
        """(operation, form fields, files) for the message; InvalidMessage when a stated limit is broken."""
        kind, options = message.kind, message.options
        if kind not in KINDS:
            raise InvalidMessage(f"httpapi: message kind {kind!r} is not offered (kinds: {', '.join(KINDS)})")
        fields: dict[str, Any] = {"phone": require_e164(message.to)}
        if kind == "text":
            fields["message"] = check_text("httpapi", "text", message.text)
            return "sendText", fields, None
        if kind in MEDIA_KINDS or kind == "file_upload":
            caption = check_text("httpapi", "media", message.text, required=False, what="caption")
            upload = self.attach_file(fields, options, kind, read_files=read_files)
            if caption:
                fields["message"] = caption
            return ("sendFileWithCaption" if caption else "sendFiles"), fields, upload
        if kind == "location":
            fields.update(self.location(options))
            return "sendLocation", fields, None
        if kind == "contact":
            fields["contactName"] = check_length(
                "httpapi",
                "contact name (options 'name')",
                options.get("name"),
                CONTACT_NAME_MAX,
                required=True,
            )
            fields["contactPhone"] = dialable("contact phone (options 'phone')", options.get("phone"))
            if options.get("organization"):
                fields["contactOrganization"] = str(options["organization"])
            return "sendContact", fields, None
        if kind == "buttons":
            fields["message"] = check_text("httpapi", "buttons", message.text)
            fields.update(button_fields(options))
            if options.get("media_url") or options.get("file_path"):
                source = "file_upload" if options.get("file_path") else "media"
                upload = self.attach_file(
                    fields, options, source, read_files=read_files, allowed=BUTTON_FILE_TYPES
                )
                return "sendFilesButton", fields, upload
            if options.get("lat") is not None or options.get("lng") is not None:
                fields.update(self.location(options))
                return "sendLocationButton", fields, None
            return "sendTextButton", fields, None
        # list
        fields["message"] = check_text("httpapi", "list", message.text)
        fields.update(list_fields(options))
        return "sendList", fields, None

    def attach_file(
        self,
        fields: dict,
        options: Mapping[str, Any],
        kind: str,
        *,
        read_files: bool,
        allowed: frozenset[str] | None = None,
    ) -> dict | None:
        """`link` for a file by URL, or the multipart `file` for a local one (read only when sending)."""
        if kind != "file_upload":
            url = check_url("httpapi", "media_url", options.get("media_url"))
            content_type = content_type_of(options, url)
            if allowed is not None and content_type is not None and content_type not in allowed:
                raise InvalidMessage(
                    f"httpapi: {content_type} files cannot go with buttons (image, video, word, "
                    "excel, ppt, pdf)"
                )
            check_size("httpapi", "the file", options.get("size_bytes"), LINK_FILE_MAX)
            fields["link"] = url
            return None
        path_text = options.get("file_path")
        if not path_text:
            raise InvalidMessage("httpapi: a file upload needs options 'file_path'")
        path = Path(str(path_text))
        if not path.is_file():
            raise InvalidMessage(f"httpapi: file {path.name!r} to upload does not exist")
        content_type = content_type_of(options, path.name) or "application/octet-stream"
        if allowed is not None and content_type not in allowed:
            raise InvalidMessage(
                f"httpapi: {content_type} files cannot go with buttons (image, video, word, excel, ppt, pdf)"
            )
        check_size("httpapi", f"file {path.name!r}", os.path.getsize(path), UPLOAD_FILE_MAX)
        name = str(options.get("filename") or path.name)
        if not read_files:
            return None
        return {"file": (name, path.read_bytes(), content_type)}

    def location(self, options: Mapping[str, Any]) -> dict[str, Any]:
        lat, lng = check_coordinates("httpapi", options.get("lat"), options.get("lng"))
        fields: dict[str, Any] = {"degreesLatitude": str(lat), "degreesLongitude": str(lng)}
        if not options.get("name"):  # 1.4 and 1.8: name* is required
            raise InvalidMessage("httpapi: a location needs its name (options 'name')")
        fields["name"] = str(options["name"])
        if options.get("address"):
            fields["address"] = str(options["address"])
        if options.get("url"):
            fields["url"] = check_url("httpapi", "location url", options["url"])
        return fields

    def parse_result(self, answer: HttpAnswer, message: Outbound) -> SendResult:
        code, rule = classify(answer)
        if rule is None:
            return self.undocumented(answer)
        if rule.outcome == Outcome.ACCEPTED:
            if not (200 <= answer.status < 300):
                return self.undocumented(answer, "a success message with an error status")
            return self.result(rule, code=None, answer=answer, provider_message_id=message_id_of(answer.body))
        return self.result(rule, code=code, answer=answer)

    # ------------------------------------------------------------------ reports and account

    def fetch(self, operation: str, **params: Any) -> dict | None:
        """The body of a successful call; None for "14-Data not found"; GatewayError otherwise."""
        query = {"token": self.token, **{k: v for k, v in params.items() if v is not None}}
        answer = self.call(GatewayRequest("GET", API + operation, params=query))
        code, rule = classify(answer)
        if rule is not None and rule.outcome == Outcome.ACCEPTED and answer.is_json:
            return answer.body
        if isinstance(answer.body, dict) and message_key(answer.body.get("message")) == "14":
            return None
        if (
            200 <= answer.status < 300
            and isinstance(answer.body, dict)
            and answer.body.get("data") is not None
            and str(answer.body.get("status", "")).lower() in ("success", "qrcode")
        ):
            return answer.body  # 3.1: {"data": ..., "message": "success", "status": "qrcode"}
        raise self.gateway_error(rule or UNDOCUMENTED, code, answer)

    def campaign_status(self, msg_id: str) -> StatusUpdate | None:
        """2.1: one message's status; None when the gateway does not know the id (500 or 14)."""
        try:
            body = self.fetch("campaignStatus", msg_id=msg_id)
        except GatewayError as error:
            if error.code == "HTTP 500":  # 2.1: "500 HTTP ERROR: Invalid message id"
                return None
            raise
        data = (body or {}).get("data")
        if isinstance(data, list):
            data = data[0] if data else None
        return report_status(data) if isinstance(data, dict) else None

    def campaign_report(
        self, *, start_date: date | None = None, end_date: date | None = None, limit: int | None = None
    ) -> list[StatusUpdate]:
        """2.2: statuses of the messages sent in the last 7 days, or between two dates within them."""
        body = self.fetch("campaignReport", **_date_range(start_date, end_date), limit=limit)
        return [
            report_status(item)
            for item in _data_items(body)
            if item.get("messageID") or item.get("messageId")
        ]

    def inbox_report(
        self, *, start_date: date | None = None, end_date: date | None = None, limit: int | None = None
    ) -> list[Inbound]:
        """4.1: messages received, all or between two dates."""
        body = self.fetch("inboxReport", **_date_range(start_date, end_date), limit=limit)
        return [inbound_message(item) for item in _data_items(body)]

    def inbox_report_offset(self, *, offset: str | None = None, limit: int | None = None) -> list[Inbound]:
        """4.2: messages received after the incoming message id `offset` (the newest only)."""
        body = self.fetch("inboxReportOffset", offset=offset, limit=limit)
        return [inbound_message(item) for item in _data_items(body)]

    def check_balance(self) -> dict:
        """5: {"backup", "expiryDate", "quota", "status"}."""
        body = self.fetch("checkBal")
        return dict((body or {}).get("data") or {})

    def qr_code(self) -> dict:
        """3.1: {"status": "qrcode", "data": <base64 PNG>} when not connected, else {"status": "success",
        "data": <the instance's status>}."""
        return dict(self.fetch("qrCode") or {})

    def qr_code_link(self) -> dict:
        """3.2: like qr_code, with an image URL instead of base64."""
        return dict(self.fetch("qrCodeLink") or {})

    def groups(self) -> list[dict]:
        """6: [{"id", "name", "participants": [...]}]; empty when no account is connected."""
        return _data_items(self.fetch("groups"))

    def contacts(self) -> list[dict]:
        """7: [{"id", "name"}]; empty when no account is connected."""
        return _data_items(self.fetch("contacts"))

    # ------------------------------------------------------------------ as the engine asks

    def balance(self) -> dict | None:
        return self.check_balance()

    def daily_cap(self) -> tuple[int, int, tzinfo] | None:
        """The instance status's `quotaLimit` (messages a day) and `todayUsage` (3.1 qrCode, when connected),
        days in the gateway's zone. A `quotaLimit` of 0, or an instance not connected, caps nothing."""
        answer = self.qr_code()
        status = answer.get("data") if answer.get("status") == "success" else None
        if not isinstance(status, dict):
            return None
        try:
            per_day, used = int(status.get("quotaLimit") or 0), int(status.get("todayUsage") or 0)
        except (TypeError, ValueError):
            return None
        return (per_day, used, self.account.zone or INDIA) if per_day > 0 else None

    def local_day(self, moment: datetime) -> date:
        """The gateway's calendar day of `moment` (its zone: the account's, else India's, as its samples)."""
        return moment.astimezone(self.account.zone or INDIA).date()

    def poll_reports(self, *, since: datetime, until: datetime,
                     stragglers: Sequence[str] = ()) -> tuple[list[StatusUpdate], int]:
        """The report of the last 7 days (one request, no dates: dates would be the gateway's local days),
        then campaignStatus for each straggler the report did not show (up to STRAGGLERS_MAX)."""
        updates = self.campaign_report()
        requests = 1
        reported = {update.provider_message_id for update in updates}
        for provider_id in [s for s in stragglers if s not in reported][:STRAGGLERS_MAX]:
            found = self.campaign_status(provider_id)
            requests += 1
            if found is not None:
                updates.append(found)
        return updates, requests

    def poll_inbound(self, *, since: datetime, until: datetime) -> list[Inbound]:
        # A day either side: the gateway's dates are its local days.
        return self.inbox_report(start_date=self.local_day(since) - timedelta(days=1),
                                 end_date=self.local_day(until) + timedelta(days=1))

    def find_sent(self, queries: Sequence) -> dict[int, list[StatusUpdate]]:
        """Candidates for each unknown message from one report request (the earliest attempt's day, a day
        either side): to its number, made after its attempt began, with its text; oldest first."""
        if not queries:
            return {}
        now = datetime.now(UTC)
        start = max(min(query.since for query in queries), now - REPORT_WINDOW)
        updates = self.campaign_report(start_date=self.local_day(start) - timedelta(days=1),
                                       end_date=self.local_day(now) + timedelta(days=1))
        found: dict[int, list[StatusUpdate]] = {}
        for query in queries:
            candidates = [update for update in updates
                          if matches_sent(query, to=str(update.raw.get("phone", "")),
                                          at=parse_time(update.raw.get("createdAt"), self.account.zone or INDIA),
                                          text=_text_of(update.raw))]
            if candidates:
                found[query.message_id] = sorted(candidates, key=lambda u: str(u.raw.get("createdAt", "")))
        return found

    @classmethod
    def parse_webhook(cls, body: bytes, content_type: str) -> list[StatusUpdate | Inbound]:
        return parse_webhook(body, content_type)


def _text_of(item: Mapping) -> str | None:
    text = item.get("text")
    return text if isinstance(text, str) and text else None


def message_id_of(body: Any) -> str | None:
    """data.messageIDs[0] (the document also spells it messageIds)."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        return None
    for key, value in data.items():
        if key.lower() == "messageids" and isinstance(value, list) and value:
            return str(value[0])
    return None


def dialable(what: str, value: Any) -> str:
    """A number that can be dialled, as digits (with its country code)."""
    if not isinstance(value, str | int) or not E164.match(re.sub(r"[\s()-]", "", str(value))):
        raise InvalidMessage(f"httpapi: {what} must be a phone number with its country code, got {value!r}")
    return re.sub(r"[\s()+-]", "", str(value))


def button_fields(options: Mapping[str, Any]) -> dict[str, str]:
    """httpapi.txt 1.6-1.8: button1-3 (quick reply), or call/URL buttons with at most one quick reply."""
    buttons = options.get("buttons")
    if not isinstance(buttons, list | tuple) or not buttons:
        raise InvalidMessage("httpapi: a buttons message needs options 'buttons' (1 to 3 buttons)")
    if len(buttons) > BUTTONS_MAX:
        raise InvalidMessage(f"httpapi: {len(buttons)} buttons, at most {BUTTONS_MAX} at a time")
    replies, calls, urls = [], [], []
    for button in buttons:
        spec = {"type": "reply", "text": button} if isinstance(button, str) else button
        if not isinstance(spec, Mapping):
            raise InvalidMessage(f"httpapi: a button must be a text or a mapping, got {button!r}")
        kind = str(spec.get("type") or "reply").lower()
        text = check_length(
            "httpapi", f"button text {spec.get('text')!r}", spec.get("text"), BUTTON_TEXT_MAX, required=True
        )
        if kind == "reply":
            replies.append(text)
        elif kind == "call":
            calls.append((text, dialable("call button value", spec.get("value") or spec.get("phone"))))
        elif kind == "url":
            urls.append(
                (text, check_url("httpapi", "URL button value", spec.get("value") or spec.get("url")))
            )
        else:
            raise InvalidMessage(f"httpapi: button type {kind!r} is not reply, call or url")
    if len(calls) > 1 or len(urls) > 1:
        raise InvalidMessage("httpapi: at most one call button and one URL button")
    if (calls or urls) and len(replies) > 1:
        raise InvalidMessage(
            "httpapi: call-to-action buttons go with at most one quick reply button (button1)"
        )
    fields = {f"button{number}": text for number, text in enumerate(replies, start=1)}
    if calls:
        fields["callButtonText"], fields["callButtonValue"] = calls[0]
    if urls:
        fields["urlButtonText"], fields["urlButtonValue"] = urls[0]
    footer = check_length("httpapi", "footer", options.get("footer"), FOOTER_MAX)
    if footer:
        fields["footer"] = footer
    return fields


def list_fields(options: Mapping[str, Any]) -> dict[str, Any]:
    """httpapi.txt 1.9: header, footer, buttonText and rows "section:title:description"."""
    fields: dict[str, Any] = {}
    header = check_length("httpapi", "list header", options.get("header"), HEADER_MAX)
    if header:
        fields["header"] = header
    footer = check_length("httpapi", "footer", options.get("footer"), FOOTER_MAX)
    if footer:
        fields["footer"] = footer
    fields["buttonText"] = check_length(
        "httpapi",
        "list button text (options 'button_text')",
        options.get("button_text"),
        BUTTON_TEXT_MAX,
        required=True,
    )
    rows = options.get("rows")
    if not isinstance(rows, list | tuple) or not rows:
        raise InvalidMessage("httpapi: a list message needs at least one row (options 'rows')")
    fields["rows"] = [list_row(row) for row in rows]
    return fields


def list_row(row: Any) -> str:
    """One row as "section:title:description"; the colon separates, so no part may contain one."""
    if isinstance(row, str):
        parts = row.split(":")
        if len(parts) != 3:
            raise InvalidMessage(
                f"httpapi: list row {row!r} must be 'section:title:description' (two colons)"
            )
        section, title, description = parts
    elif isinstance(row, Mapping):
        section, title, description = (str(row.get(key) or "") for key in ("section", "title", "description"))
    else:
        raise InvalidMessage(f"httpapi: list row {row!r} must be a text or a mapping")
    for what, value in (("section", section), ("title", title), ("description", description)):
        if ":" in value:
            raise InvalidMessage(f"httpapi: list row {what} {value!r} contains a colon, the row separator")
    check_length("httpapi", "list section text", section, SECTION_MAX)
    check_length("httpapi", "list title text", title, TITLE_MAX, required=True)
    check_length("httpapi", "list description text", description, DESCRIPTION_MAX)
    return f"{section}:{title}:{description}"


# ---------------------------------------------------------------------- status words and webhooks



def kind_of(words: tuple[Any, ...], numbers: tuple[Any, ...]) -> tuple[EventKind, bool, Any]:
    """(kind, documented, word): the first known word, else the first known number, else the first word's
    family (undocumented)."""
    for word in words:
        if isinstance(word, str) and word.strip().lower() in WORDS:
            return WORDS[word.strip().lower()], True, word
    for number in numbers:
        try:
            if number is not None and number != "" and int(number) in NUMBERS:
                return NUMBERS[int(number)], True, number
        except (TypeError, ValueError, OverflowError):
            continue
    word = next((w for w in words if isinstance(w, str) and w.strip()), None)
    if word is None:
        word = next((n for n in numbers if n not in (None, "")), None)
    return word_family(word), False, word


def report_status(item: Mapping) -> StatusUpdate:
    """One message of campaignStatus / campaignReport (2.1, 2.2)."""
    message_id = item.get("messageID") or item.get("messageId")
    if not message_id or isinstance(message_id, dict | list):
        raise BadPayload("an HTTP API report item without messageID")
    found = kind_of((item.get("statusMessageInfo"), item.get("statusInfo")),
                    (item.get("statusMessage"), item.get("status")))
    return _update(str(message_id), item, *found)


def _update(message_id: str, item: Mapping, kind: EventKind, documented: bool, word: Any) -> StatusUpdate:
    if not documented:
        reason = undocumented_reason(word, kind)
    elif kind == EventKind.UNKNOWN:
        reason = "pending at the gateway"
    elif kind == EventKind.FAILED:
        reason = str(word or "failed")
    else:
        reason = None
    when = {EventKind.READ: "readAt", EventKind.DELIVERED: "deliveredAt"}.get(kind)
    occurred = parse_time(item.get(when)) if when else None
    occurred = occurred or parse_time(item.get("updatedAt")) or parse_time(item.get("createdAt"))
    error_code = None
    if kind == EventKind.FAILED:
        error_code = "failed" if documented else str(word)[:64]
    return StatusUpdate(provider_message_id=message_id, kind=kind, reason=reason, occurred_at=occurred,
                        error_code=error_code, raw=dict(item))


def inbound_message(item: Mapping) -> Inbound:
    """An incoming message: the webhook's inbox event or an inboxReport item (4.1, 8)."""
    value = item.get("value")
    if isinstance(value, Mapping):
        text = value.get("caption") or ""
    else:
        text = item.get("text") if item.get("text") not in (None, "") else (value or "")
    return Inbound(
        from_phone=normalise_phone(item.get("phone") or item.get("waID") or ""),
        text=str(text),
        received_at=parse_time(item.get("createdAt")),
        provider_message_id=text_or_none(item.get("messageID") or item.get("waMessageID")),
        raw=dict(item),
    )


def parse_webhook(body: bytes, content_type: str) -> list[StatusUpdate | Inbound]:
    """8: JSON, or multipart/form-data with the JSON in the `json` field (media arrive as files, which are
    not kept). reportType "delivery" is a status, "inbox" an incoming message; others are ignored."""
    events: list[StatusUpdate | Inbound] = []
    for item in _webhook_items(body, content_type or ""):
        report = str(item.get("reportType") or "").strip().lower()
        if report == "delivery":
            message_id = item.get("messageID") or item.get("messageId")
            if not message_id or isinstance(message_id, dict | list):
                raise BadPayload("an HTTP API delivery report without messageID")
            provider_id, problem = id_text(message_id, "messageID")
            update = _update(provider_id, item, *kind_of((item.get("statusInfo"),), (item.get("status"),)))
            events.append(replace(update, problem=problem) if problem else update)
        elif report == "inbox":
            events.append(inbound_message(item))
    return events


def _webhook_items(body: bytes, content_type: str) -> list[Mapping]:
    media = content_type.split(";")[0].strip().lower()
    if media == "multipart/form-data":
        return json_items(_multipart_field(body, content_type, "json"))
    if media == "application/x-www-form-urlencoded":
        try:
            values = parse_qs(body.decode("utf-8"), strict_parsing=True).get("json")
        except (UnicodeDecodeError, ValueError):
            raise BadPayload("not a readable form body") from None
        if not values:
            raise BadPayload("a form body without the 'json' field")
        return json_items(values[0].encode("utf-8"))
    return json_items(body)


def _multipart_field(body: bytes, content_type: str, name: str) -> bytes:
    found: dict[str, bytes] = {}

    def on_field(part) -> None:
        if part.field_name and part.field_name.decode("utf-8", "replace") == name:
            found[name] = part.value or b""

    try:
        python_multipart.parse_form(
            {"Content-Type": content_type.encode("latin-1"), "Content-Length": str(len(body)).encode()},
            BytesIO(body),
            on_field,
            lambda _file: None,
        )
    except Exception:
        raise BadPayload("not a readable multipart body") from None
    if name not in found:
        raise BadPayload(f"a multipart body without the '{name}' field")
    return found[name]


def _date_range(start: date | None, end: date | None) -> dict[str, str | None]:
    """dd-mm-yyyy dates; the document needs both or neither."""
    if (start is None) != (end is None):
        raise ValueError("give both start_date and end_date, or neither")
    if start is None:
        return {"start_date": None, "end_date": None}
    return {"start_date": dd_mm_yyyy(start), "end_date": dd_mm_yyyy(end)}


def _data_items(body: dict | None) -> list[dict]:
    """`data` as a list of objects (a single object, as in the 4.1 sample, becomes a list of one)."""
    data = (body or {}).get("data")
    if isinstance(data, dict):
        data = [data]
    return [item for item in data or [] if isinstance(item, dict)]
