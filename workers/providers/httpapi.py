"""WhatsApp HTTP API 2.0.0 (httpapi.txt), the API of many Indian resellers.

Every operation is `{base}/api/<operation>?token=<instance id>`. Sends are POSTed with their parameters
as a form (multipart when a local file goes with them); reports and account calls are GETs.

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
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from campaigns.settings import AccountConfig
from campaigns.states import Outcome
from workers.providers.base import (
    E164,
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
    dd_mm_yyyy,
    httpapi_inbound,
    httpapi_report_status,
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
    "HTTP 500": Rule(A.TRANSIENT, "HTTP error (null or invalid request characters)"),
    # DESIGN.md "Classification": HTTP API 502 overloaded is throttled
    "HTTP 502": Rule(A.THROTTLED, "bad gateway: overloaded, or the two systems cannot talk"),
    "HTTP 503": Rule(A.TRANSIENT, "service unavailable (restarting)"),
}
_NUMBERED = re.compile(r"^\s*(\d{2})\s*-")


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
    reports_are_complete: ClassVar[bool] = True  # campaignReport keeps the last 7 days

    def __init__(self, account: AccountConfig):
        super().__init__(account)
        self.token = account.secret("token")

    # ------------------------------------------------------------------ send

    def validate(self, message: Outbound) -> None:
        self.operation(message, read_files=False)

    def build_payload(self, message: Outbound) -> GatewayRequest:
        operation, fields, upload = self.operation(message, read_files=True)
        return GatewayRequest(
            "POST", API + operation, params={"token": self.token}, data=fields, files=upload
        )

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
        return httpapi_report_status(data) if isinstance(data, dict) else None

    def campaign_report(
        self, *, start_date: date | None = None, end_date: date | None = None, limit: int | None = None
    ) -> list[StatusUpdate]:
        """2.2: statuses of the messages sent in the last 7 days, or between two dates within them."""
        body = self.fetch("campaignReport", **_date_range(start_date, end_date), limit=limit)
        return [
            httpapi_report_status(item)
            for item in _data_items(body)
            if item.get("messageID") or item.get("messageId")
        ]

    def inbox_report(
        self, *, start_date: date | None = None, end_date: date | None = None, limit: int | None = None
    ) -> list[Inbound]:
        """4.1: messages received, all or between two dates."""
        body = self.fetch("inboxReport", **_date_range(start_date, end_date), limit=limit)
        return [httpapi_inbound(item) for item in _data_items(body)]

    def inbox_report_offset(self, *, offset: str | None = None, limit: int | None = None) -> list[Inbound]:
        """4.2: messages received after the incoming message id `offset` (the newest only)."""
        body = self.fetch("inboxReportOffset", offset=offset, limit=limit)
        return [httpapi_inbound(item) for item in _data_items(body)]

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

    def find_sent(self, *, to: str, since: datetime) -> StatusUpdate | None:
        """The latest message to `to` in the delivery report since `since` (a day earlier, as the report's
        dates are the gateway's local days), or None."""
        digits = require_e164(to)
        start = (since - timedelta(days=1)).date()
        today = date.today() + timedelta(days=1)
        matches = [
            update
            for update in self.campaign_report(start_date=start, end_date=today)
            if str(update.raw.get("phone", "")).lstrip("+") == digits
        ]
        if not matches:
            return None
        return max(matches, key=lambda update: str(update.raw.get("createdAt", "")))


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
