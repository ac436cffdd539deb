"""WhatsApp HTTP API 2.0.0 (httpapi.txt), simulated: GET or POST {base}/api/<operation>?token=<instance id>.

Parameters come from the query string and, for POST, from a urlencoded, multipart (with a local `file`)
or JSON body. Answers are the document's samples: `00-Success` with `data.messageIDs`, numbered error
messages, `invalid object id` for a wrong token, and plain 502/503 pages when overloaded. Statuses are
read back with campaignStatus / campaignReport and pushed to the instance's webhook (`webhook_url`).
Times print in India's zone (+05:30), as in every sample.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs

import orjson
from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from workers.sandbox.callbacks import WEBHOOK_RETRY
from workers.sandbox.gateways.base import SandboxGateway
from workers.sandbox.runtime import Runtime
from workers.sandbox.state import (
    DELIVERED,
    FAILED,
    NOT_ON_WHATSAPP_CODE,
    READ,
    Account,
    BuiltinAccount,
    Incoming,
    Outgoing,
    e164,
)
from workers.sandbox.web import Request, Response, is_http_url, json_response, text_response

IST = timezone(timedelta(hours=5, minutes=30))
REPORT_DAYS = 7  # campaignReport covers "last 7 days"
MAX_TEXT_BYTES = 2000  # sendText / sendFileWithCaption: "maximum 2000 bytes"
MAX_BUTTON_MESSAGE = 1024  # buttons and lists: "maximum 1024 character text"
MAX_FOOTER = MAX_HEADER = 60
MAX_BUTTON_TEXT = 20
MAX_ROW_TEXT, MAX_ROW_DESCRIPTION = 20, 30
MAX_CONTACT_NAME = 30
MAX_UPLOAD_BYTES = 3 * 1024 * 1024  # local files: "maximum 3 mb file"
UNLIMITED_QUOTA_SHOWN = 1_000_000  # assumption: what checkBal shows for an account with no quota knob
INSTANCE_NUMBER = "919000000000"  # assumption: the connected WhatsApp number of every sandbox instance

# Required parameters per send operation ("*" in the document). `link` may be replaced by a `file` upload;
# `button1` is not required when a call or URL button is given.
SEND_OPERATIONS: dict[str, tuple[str, ...]] = {
    "sendText": ("phone", "message"),
    "sendFiles": ("phone", "link"),
    "sendFileWithCaption": ("phone", "link", "message"),
    "sendLocation": ("phone", "degreesLatitude", "degreesLongitude", "name"),
    "sendContact": ("phone", "contactName", "contactPhone"),
    "sendTextButton": ("phone", "message", "button1"),
    "sendFilesButton": ("phone", "link", "message", "button1"),
    "sendLocationButton": ("phone", "degreesLatitude", "degreesLongitude", "name", "message", "button1"),
    "sendList": ("phone", "message", "buttonText", "rows"),
}
# sendList's sample words its missing-parameter error this way (header is optional all the same).
SEND_LIST_REQUIRED = "please check request required header/message/buttonText/ at least one row"
# statusMessage codes (providers/README.md): 0 Pending, 1 Sent, 2 Sent (server acknowledged), 3 Delivered,
# 4 Read, 5 Failed.
PROGRESS_CODES = {DELIVERED: (3, "Delivered"), READ: (4, "Read"), FAILED: (5, "Failed")}
SENT_CODE = (1, "Sent")
UNLISTED_CODE = 9  # printed with a word nobody listed (the status_words knob)
MEDIA_TYPES = {".jpg": "image", ".jpeg": "image", ".png": "image", ".gif": "image", ".webp": "image",
               ".mp4": "video", ".3gp": "video", ".mp3": "audio", ".ogg": "audio", ".aac": "audio"}

NOT_REGISTERED = "04-Phone number not registered on whatsapp or your instance not connected"
PARSING_FAILED = "12-Parsing parameter failed"
LINK_NOT_VALID = "09-Link not valid"
SAVE_FAILED = "08-Save file / document failed"
DATA_NOT_FOUND = "14-Data not found"


class Params:
    """The request's parameters (query, then body), found by name regardless of case: the document spells
    some two ways (callButtonText / callbuttontext, Name / name)."""

    def __init__(self, values: dict[str, list[str]], files: dict[str, UploadFile]):
        self.values = values
        self.files = files
        self._lower: dict[str, list[str]] = {}
        for name, found in values.items():
            self._lower.setdefault(name.lower(), []).extend(found)

    def get(self, name: str) -> str:
        found = self._lower.get(name.lower())
        return found[0].strip() if found else ""

    def all(self, name: str) -> list[str]:
        return [v for v in self._lower.get(name.lower(), []) if v.strip()]

    def echo(self) -> dict[str, list[str]]:
        """What the document's error samples show under "request": every parameter as a list."""
        return dict(self.values)


class HttpApiError(Exception):
    def __init__(self, message: str, *, status: int = 400, echo: bool = False, reason: str = ""):
        super().__init__(message)
        self.message = message
        self.status = status
        self.echo = echo
        self.reason = reason or message


def _instance_ids(account: Account) -> tuple[str, str]:
    """The instanceID and clientID the gateway prints for this token (stable, not the token itself)."""
    ids = account.gateway_data.get("ids")
    if ids is None:
        digest = hashlib.sha256(("sandbox-instance:" + account.key).encode()).hexdigest()
        ids = account.gateway_data["ids"] = (digest[:24], digest[24:48])
    return ids


def _zone(account: Account | None) -> timezone:
    """The account's zone: the `timezone` knob, else India's (+05:30, as the samples print)."""
    return (account.knobs.zone if account is not None else None) or IST


def _used_today(account: Account) -> int:
    """Messages the account took today, the gateway's day (its zone: India's unless the timezone knob says)."""
    day, used = account.gateway_data.get("today_usage", (None, 0))
    return used if day == datetime.now(_zone(account)).date() else 0


def _count_today(account: Account) -> None:
    account.gateway_data["today_usage"] = (datetime.now(_zone(account)).date(), _used_today(account) + 1)


def _ist(unix_seconds: float | None, account: Account | None = None) -> str | None:
    """RFC 3339 with milliseconds in the account's zone (+05:30 by default), as the samples print createdAt."""
    if unix_seconds is None:
        return None
    moment = datetime.fromtimestamp(unix_seconds, _zone(account))
    offset = moment.strftime("%z")
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}{offset[:3]}:{offset[3:]}"


def _day(text: str, zone: timezone = IST) -> datetime:
    """A dd-mm-yyyy date (the account's calendar day)."""
    return datetime.strptime(text, "%d-%m-%Y").replace(tzinfo=zone)


def _codes(account: Account, status: str) -> tuple[int, str]:
    """(number, word) of a status; a word the `status_words` knob sets comes with a number nobody listed."""
    code, word = PROGRESS_CODES.get(status, SENT_CODE)
    override = account.knobs.status_words.get(status)
    return (UNLISTED_CODE, override) if override else (code, word)


class HttpApiGateway(SandboxGateway):
    provider = "httpapi"
    builtin = BuiltinAccount("62b32c76758e0afb0d390793")
    object_ids = True  # its ids are 24 hex digits (MongoDB ObjectIds), the others' numbers

    def __init__(self, runtime: Runtime):
        super().__init__(runtime)
        self.handlers = {
            "campaignStatus": self._campaign_status, "campaignReport": self._campaign_report,
            "inboxReport": self._inbox_report, "inboxReportOffset": self._inbox_report_offset,
            "checkBal": self._check_balance, "qrCode": self._qr_code, "qrCodeLink": self._qr_code,
            "groups": self._groups, "contacts": self._contacts,
        }

    async def handle(self, request: Request, path: str) -> Response:
        started = time.perf_counter()
        operation = path[len("/api/"):] if path.startswith("/api/") else None
        if operation not in SEND_OPERATIONS and operation not in self.handlers:
            return text_response(404, "404 page not found")
        if request.method not in ("GET", "POST"):
            return text_response(405, "Method Not Allowed")
        try:
            params = await _read_params(request)
        except HttpApiError as error:
            return self._error(error, None, started)
        account = self.runtime.sandbox.account(self.provider, params.get("token"))
        if account is None:
            return self._answer(401, {"status": "error", "message": "invalid object id"}, started)
        account.stats.requests += 1
        try:
            if operation in SEND_OPERATIONS:
                return await self._send(account, operation, params, started)
            return self.handlers[operation](account, params, started)
        except HttpApiError as error:
            if operation in SEND_OPERATIONS:
                account.reject(error.reason)
            return self._error(error, params, started)

    @staticmethod
    def _answer(status: int, payload: dict, started: float) -> Response:
        payload["responsetime"] = round(time.perf_counter() - started, 9)
        return json_response(status, payload)

    def _error(self, error: HttpApiError, params: Params | None, started: float) -> Response:
        payload = {"status": "error", "message": error.message}
        if error.echo and params is not None:
            payload["request"] = params.echo()
        return self._answer(error.status, payload, started)

    # ------------------------------------------------------------------ sending

    async def _send(self, account: Account, operation: str, params: Params, started: float) -> Response:
        runtime = self.runtime
        await runtime.delay_send(account)
        if runtime.fails_at_random(account):
            return text_response(503, "503 Service Unavailable")
        if runtime.lost_at_random(account):
            return text_response(500, "HTTP ERROR")
        text, extra = _validate(operation, params)
        recipient = e164(params.get("phone"))
        refused = account.refusal()
        if refused == "quota":
            raise HttpApiError("05-Quota expiry", echo=True, reason="quota")
        if refused is None and _used_today(account) >= (account.knobs.daily_limit or math.inf):
            # Assumption (the document is silent): past the day's quotaLimit the answer is the quota one.
            raise HttpApiError("05-Quota expiry", echo=True, reason="daily_limit")
        if refused == "rate_cap":
            account.reject("rate_cap")
            return text_response(502, "502 Bad Gateway")
        record = Outgoing(runtime.sandbox.object_id(), recipient, text, extra=extra)
        extra["waMessageID"] = secrets.token_hex(10).upper()
        if runtime.not_on_whatsapp(account, recipient):
            # Accepted at the door; the report then says Failed (the contract's choice for this gateway).
            record.status, record.error_code = FAILED, NOT_ON_WHATSAPP_CODE
            account.keep(record)
            account.reject("not_on_whatsapp")
        else:
            account.accept(record)
            _count_today(account)
        runtime.progress.start(account, record)
        garbled = runtime.garbled_answer(account)
        if garbled == "ambiguous":
            return text_response(500, "HTTP ERROR")
        if garbled == "undocumented":
            return self._answer(200, {"status": "accepted", "message": "Queued for delivery",
                                      "data": {"queue": [record.id]}}, started)
        return self._answer(200, {"status": "success", "message": "00-Success",
                                  "data": {"connStatus": True, "messageIDs": [record.id]}}, started)

    # ------------------------------------------------------------------ reports

    def _record_json(self, account: Account, record: Outgoing, client_key: str) -> dict:
        instance_id, client_id = _instance_ids(account)
        extra = record.extra or {}
        if record.status == FAILED:
            status, status_info = _codes(account, FAILED)
        else:
            status, status_info = _codes(account, "sent")
        progress, progress_info = _codes(account, record.status)
        return {
            "messageID": record.id, client_key: client_id, "instanceID": instance_id, "creditID": "",
            "phone": record.recipient.lstrip("+"), "full_push_name": "", "text": record.text,
            "link": extra.get("link", ""), "serverSend": False, "isMedia": extra.get("isMedia", False),
            "mediaType": extra.get("mediaType", ""), "mediaPath": "", "isLocation": "location" in extra,
            "location": extra.get("location"), "isContact": "contact" in extra,
            "contact": extra.get("contact"),
            "isButton": "button" in extra, "button": extra.get("button"), "isList": "list" in extra,
            "list": extra.get("list"), "wacheck": True, "waID": account.sender or INSTANCE_NUMBER,
            "waMessageID": extra.get("waMessageID", ""), "status": status, "timedOut": 0,
            "statusInfo": status_info, "statusMessage": progress, "statusMessageInfo": progress_info,
            "mode": "API", "deliveredAt": _ist(record.delivered_at, account),
            "readAt": _ist(record.read_at, account), "createdAt": _ist(record.created, account),
            "updatedAt": _ist(record.updated, account), "value": None,
        }

    def _campaign_status(self, account: Account, params: Params, started: float) -> Response:
        message_id = params.get("msg_id")
        if not message_id:
            raise HttpApiError("please check request required msg_id/", echo=True)
        record = account.outgoing.get(message_id)
        if record is None:
            # "500 HTTP ERROR: Invalid message id" (the document gives no body; this is ours).
            raise HttpApiError("invalid message id", status=500)
        return self._answer(200, {"status": "success", "message": "00-Success",
                                  "data": self._record_json(account, record, "clientID")}, started)

    def _campaign_report(self, account: Account, params: Params, started: float) -> Response:
        oldest = time.time() - REPORT_DAYS * 86400
        start, end, limit = _date_range(params, oldest_allowed=oldest, zone=_zone(account))
        chosen = [r for r in reversed(account.outgoing.values()) if start <= r.created < end]
        return self._report(chosen, limit, lambda r: self._record_json(account, r, "clientId"), started)

    def _inbox_json(self, account: Account, incoming: Incoming) -> dict:
        instance_id, client_id = _instance_ids(account)
        phone = incoming.sender.lstrip("+")
        return {
            "messageID": incoming.id, "clientId": client_id, "instanceID": instance_id, "creditID": "",
            "phone": phone, "full_push_name": "", "text": incoming.text, "link": "", "serverSend": False,
            "isMedia": False, "mediaType": "", "mediaPath": "", "isLocation": False, "location": None,
            "isContact": False, "contact": None, "isButton": False, "button": None, "isList": False,
            "list": None, "wacheck": False, "waID": f"{phone}@s.whatsapp.net",
            "waMessageID": incoming.wa_message_id,
            "status": 3, "timedOut": 0, "statusInfo": "Delivered", "statusMessage": 0,
            "statusMessageInfo": "",
            "mode": "", "deliveredAt": None, "readAt": None, "createdAt": _ist(incoming.created, account),
            "updatedAt": _ist(incoming.created, account), "webhookURL": account.knobs.webhook_url or "",
            "webhookStatus": incoming.webhook_status, "value": None,
        }

    def _inbox_report(self, account: Account, params: Params, started: float) -> Response:
        start, end, limit = _date_range(params, oldest_allowed=None, zone=_zone(account))
        chosen = [i for i in reversed(account.incoming.values()) if start <= i.created < end]
        return self._report(chosen, limit, lambda i: self._inbox_json(account, i), started)

    def _inbox_report_offset(self, account: Account, params: Params, started: float) -> Response:
        after = params.get("offset")
        limit = _limit(params)
        ordered = list(account.incoming.values())  # oldest first: "new records only" after `offset`
        if after:
            ids = [i.id for i in ordered]
            if after not in ids:
                raise HttpApiError(DATA_NOT_FOUND)
            ordered = ordered[ids.index(after) + 1:]
        return self._report(ordered, limit, lambda i: self._inbox_json(account, i), started)

    def _report(self, chosen: list, limit: int, render, started: float) -> Response:
        if not chosen:
            raise HttpApiError(DATA_NOT_FOUND)
        shown = chosen[:limit] if limit else chosen
        return self._answer(200, {"status": "success", "message": "00-Success",
                                  "data": [render(item) for item in shown],
                                  "total": len(chosen), "offset": 0, "limit": limit}, started)

    # ------------------------------------------------------------------ the instance

    def _expiry(self) -> datetime:
        return (datetime.now(IST) + timedelta(days=365)).replace(hour=23, minute=59, second=59, microsecond=0)

    def _check_balance(self, account: Account, params: Params, started: float) -> Response:
        quota = account.knobs.quota
        return self._answer(200, {"status": "success", "message": "00-Success", "data": {
            "backup": None, "expiryDate": self._expiry().strftime("%Y-%m-%d %H:%M:%S +0530 IST"),
            "quota": quota if quota is not None else UNLIMITED_QUOTA_SHOWN, "status": "active"}}, started)

    def _qr_code(self, account: Account, params: Params, started: float) -> Response:
        """A sandbox instance is always connected, so both QR operations answer the instance's status."""
        instance_id, client_id = _instance_ids(account)
        quota = account.knobs.quota
        return self._answer(200, {"status": "success", "message": "00-Success", "data": {
            "instanceID": instance_id, "clientID": client_id, "name": "Sandbox", "login": True,
            "status": True,
            "creditID": "", "creditReadID": "", "isUnlimited": quota is None,
            "quotaLimit": account.knobs.daily_limit or 0,
            "quota": quota if quota is not None else UNLIMITED_QUOTA_SHOWN, "todayUsage": _used_today(account),
            "todayUsageUpdate": "0001-01-01T00:00:00Z", "usage": account.stats.accepted,
            "quotaUpdate": _ist(time.time()), "expired": self._expiry().isoformat(), "isRead": True,
            "chatbotID": "", "readExpired": self._expiry().isoformat(),
            "webHook": account.knobs.webhook_url or "",
            "info": {"Battery": 0, "Platform": "MD", "Connected": True, "Pushname": "Blast sandbox",
                     "Wid": account.sender or INSTANCE_NUMBER, "Lc": "",
                     "Phone": {"Mcc": "N/A", "Mnc": "N/A", "OsVersion": "N/A", "DeviceManufacturer": "N/A",
                               "DeviceModel": "N/A", "OsBuildNumber": "N/A", "WaVersion": "N/A"},
                     "Plugged": False, "Tos": 0, "Lg": "", "Is24h": False},
            "backup": None, "backupRead": None, "client": None, "voucher": None, "voucherRead": None,
            "isValid": True, "virtualCredit": False, "virtualCreditLvl2": False, "autoRecharge": False,
            "autoRechargeVoucherID": "", "autoRechargeVoucherInfo": ""}}, started)

    def _groups(self, account: Account, params: Params, started: float) -> Response:
        members = sorted({i.sender.lstrip("+") for i in account.incoming.values()})
        if not members:
            raise HttpApiError(DATA_NOT_FOUND)
        group = {"id": f"{account.sender or INSTANCE_NUMBER}-1600000000", "name": "Sandbox",
                 "participants": members}
        return self._answer(200, {"status": "success", "message": "00-Success", "data": [group]}, started)

    def _contacts(self, account: Account, params: Params, started: float) -> Response:
        """The instance's contacts: everyone who wrote to it."""
        senders = sorted({i.sender.lstrip("+") for i in account.incoming.values()})
        if not senders:
            raise HttpApiError(DATA_NOT_FOUND)
        return self._answer(200, {"status": "success", "message": "00-Success",
                                  "data": [{"id": s, "name": s} for s in senders]}, started)

    # ------------------------------------------------------------------ pushes

    def on_status(self, account: Account, message: Outgoing) -> None:
        url = account.knobs.webhook_url
        if not url:
            return
        instance_id, client_id = _instance_ids(account)
        code, word = _codes(account, message.status)
        report = {
            "clientID": client_id, "createdAt": _ist(message.updated, account), "instanceID": instance_id,
            "messageID": message.id, "phone": message.recipient.lstrip("+"), "reportType": "delivery",
            "status": code, "statusInfo": word, "waID": account.sender or INSTANCE_NUMBER,
            "waMessageID": (message.extra or {}).get("waMessageID", ""),
        }
        self.runtime.push(account, lambda: self.runtime.callbacks.post(url, report, WEBHOOK_RETRY))

    def on_inbound(self, account: Account, incoming: Incoming) -> bool:
        incoming.wa_message_id = secrets.token_hex(10).upper()
        url = account.knobs.webhook_url
        if not url:
            return False
        instance_id, client_id = _instance_ids(account)
        phone = incoming.sender.lstrip("+")

        def remember(status: int) -> None:
            incoming.webhook_status = status

        self.runtime.callbacks.post(url, {
            "clientID": client_id, "createdAt": _ist(incoming.created, account), "instanceID": instance_id,
            "phone": phone, "reportType": "inbox", "status": 3, "statusInfo": "Delivered", "type": "text",
            "value": incoming.text, "waID": f"{phone}@s.whatsapp.net", "waMessageID": incoming.wa_message_id,
        }, WEBHOOK_RETRY, on_result=remember)
        return True


# ---------------------------------------------------------------------- parameters


async def _read_params(request: Request) -> Params:
    values = {name: list(found) for name, found in request.query.items()}
    files: dict[str, UploadFile] = {}
    if request.method == "POST" and request.body:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("application/x-www-form-urlencoded") or not content_type:
            body_values = parse_qs(request.body.decode("utf-8", "replace"), keep_blank_values=True)
        elif content_type.startswith("multipart/form-data"):
            body_values = {}
            try:
                form = await _parse_multipart(request, content_type)
            except MultiPartException as error:
                raise HttpApiError(SAVE_FAILED) from error
            for name, value in form.multi_items():
                if isinstance(value, UploadFile):
                    files[name] = value
                else:
                    body_values.setdefault(name, []).append(value)
        elif "json" in content_type:
            try:
                decoded = orjson.loads(request.body)
            except ValueError as error:
                raise HttpApiError(PARSING_FAILED) from error
            if not isinstance(decoded, dict):
                raise HttpApiError(PARSING_FAILED)
            body_values = {name: [str(v) for v in (value if isinstance(value, list) else [value])]
                           for name, value in decoded.items()}
        else:
            raise HttpApiError(PARSING_FAILED)
        for name, found in body_values.items():
            values.setdefault(name, []).extend(found)
    return Params(values, files)


async def _parse_multipart(request: Request, content_type: str):
    async def stream():
        yield request.body
        yield b""

    parser = MultiPartParser(Headers({"content-type": content_type}), stream(),
                             max_part_size=MAX_UPLOAD_BYTES + 1024)
    return await parser.parse()


def _validate(operation: str, params: Params) -> tuple[str, dict]:
    """The message's text for reports and its extra fields; `HttpApiError` as the document words it."""
    required = SEND_OPERATIONS[operation]
    has_file = "file" in params.files
    has_call_or_url = bool(params.get("callButtonText") or params.get("urlButtonText"))
    missing = [
        name for name in required
        if not (params.all(name) if name == "rows" else params.get(name))
        and not (name == "link" and has_file) and not (name == "button1" and has_call_or_url)
    ]
    if missing:
        text = SEND_LIST_REQUIRED if operation == "sendList" else (
            "please check request required " + "".join(f"{name}/" for name in missing))
        raise HttpApiError(text, echo=True, reason="missing:" + missing[0])
    phone = params.get("phone")
    if not phone.isdigit():
        raise HttpApiError(PARSING_FAILED, reason="invalid:phone")
    if not 8 <= len(phone) <= 15:
        raise HttpApiError(NOT_REGISTERED, reason="invalid:phone")
    extra: dict = {"operation": operation}
    text = params.get("message")
    if operation in ("sendText", "sendFileWithCaption") and len(text.encode("utf-8")) > MAX_TEXT_BYTES:
        raise HttpApiError(PARSING_FAILED, reason="too_long:message")
    if "link" in required:
        _media(params, extra, has_file)
    if "degreesLatitude" in required:
        extra["location"] = _location(params)
        text = text or extra["location"]["name"]
    if operation == "sendContact":
        name, number = params.get("contactName"), params.get("contactPhone")
        if len(name) > MAX_CONTACT_NAME or not re.fullmatch(r"\+?\d{5,15}", number):
            raise HttpApiError(PARSING_FAILED, reason="invalid:contact")
        extra["contact"] = {"name": name, "phone": number, "organization": params.get("contactOrganization")}
        text = name
    if "button1" in required:
        extra["button"] = _buttons(params, text)
    if operation == "sendList":
        extra["list"] = _list(params, text)
    return text or extra.get("link", ""), extra


def _media(params: Params, extra: dict, has_file: bool) -> None:
    if has_file:
        upload = params.files["file"]
        if not upload.filename or (upload.size or 0) > MAX_UPLOAD_BYTES or not upload.size:
            raise HttpApiError(SAVE_FAILED, reason="invalid:file")
        name = upload.filename
        extra["link"] = ""
    else:
        link = params.get("link")
        if not is_http_url(link):
            raise HttpApiError(LINK_NOT_VALID, reason="invalid:link")
        name = link.split("?", 1)[0]
        extra["link"] = link
    suffix = name[name.rfind("."):].lower() if "." in name.rsplit("/", 1)[-1] else ""
    extra["isMedia"] = True
    extra["mediaType"] = MEDIA_TYPES.get(suffix, "document")


def _location(params: Params) -> dict:
    try:
        latitude = float(params.get("degreesLatitude"))
        longitude = float(params.get("degreesLongitude"))
    except ValueError as error:
        raise HttpApiError(PARSING_FAILED, reason="invalid:location") from error
    finite = math.isfinite(latitude) and math.isfinite(longitude)
    if not finite or abs(latitude) > 90 or abs(longitude) > 180:
        raise HttpApiError(PARSING_FAILED, reason="invalid:location")
    return {"degreesLatitude": latitude, "degreesLongitude": longitude, "name": params.get("name"),
            "address": params.get("address"), "url": params.get("url")}


def _buttons(params: Params, message: str) -> dict:
    quick = [params.get(f"button{i}") for i in (1, 2, 3) if params.get(f"button{i}")]
    call = (params.get("callButtonText"), params.get("callButtonValue"))
    url = (params.get("urlButtonText"), params.get("urlButtonValue"))
    actions = [b for b in (call, url) if b[0]]
    # "either Quick Reply buttons or call to action buttons, or call to action with 1 Quick Reply
    # button (button1)", "a maximum of 3 buttons at a time".
    if (actions and len(quick) > 1) or len(quick) + len(actions) > 3:
        raise HttpApiError(PARSING_FAILED, reason="invalid:buttons")
    if len(message) > MAX_BUTTON_MESSAGE or len(params.get("footer")) > MAX_FOOTER:
        raise HttpApiError(PARSING_FAILED, reason="too_long:message")
    if any(len(text) > MAX_BUTTON_TEXT for text in [*quick, *(a[0] for a in actions)]):
        raise HttpApiError(PARSING_FAILED, reason="too_long:button")
    if call[0] and not re.fullmatch(r"\+?\d{5,15}", call[1]):
        raise HttpApiError(PARSING_FAILED, reason="invalid:callButtonValue")
    if url[0] and not is_http_url(url[1]):
        raise HttpApiError(LINK_NOT_VALID, reason="invalid:urlButtonValue")
    return {"footer": params.get("footer"), "buttons": quick,
            "call": {"text": call[0], "value": call[1]} if call[0] else None,
            "url": {"text": url[0], "value": url[1]} if url[0] else None}


def _list(params: Params, message: str) -> dict:
    header, footer, button_text = params.get("header"), params.get("footer"), params.get("buttonText")
    if (len(message) > MAX_BUTTON_MESSAGE or len(header) > MAX_HEADER or len(footer) > MAX_FOOTER
            or len(button_text) > MAX_BUTTON_TEXT):
        raise HttpApiError(PARSING_FAILED, reason="too_long:list")
    rows = []
    for row in params.all("rows"):
        parts = row.split(":")
        # "Sectiontext:Titletext*:Descriptiontext": the colons are compulsory, the title too.
        if len(parts) != 3 or not parts[1].strip():
            raise HttpApiError(PARSING_FAILED, reason="invalid:rows")
        section, title, description = (p.strip() for p in parts)
        if len(section) > MAX_ROW_TEXT or len(title) > MAX_ROW_TEXT or len(description) > MAX_ROW_DESCRIPTION:
            raise HttpApiError(PARSING_FAILED, reason="too_long:rows")
        rows.append({"section": section, "title": title, "description": description})
    return {"header": header, "footer": footer, "buttonText": button_text, "rows": rows}


def _limit(params: Params) -> int:
    raw = params.get("limit")
    if not raw:
        return 0
    if not raw.isdigit():
        raise HttpApiError(PARSING_FAILED)
    return int(raw)


def _date_range(params: Params, *, oldest_allowed: float | None, zone: timezone = IST
                ) -> tuple[float, float, int]:
    """[start, end) in UNIX seconds from dd-mm-yyyy days (inclusive), clipped to `oldest_allowed`."""
    limit = _limit(params)
    start_text, end_text = params.get("start_date"), params.get("end_date")
    try:
        start = _day(start_text, zone).timestamp() if start_text else (oldest_allowed or 0.0)
        end = (_day(end_text, zone) + timedelta(days=1)).timestamp() if end_text else math.inf
    except ValueError as error:
        raise HttpApiError(PARSING_FAILED) from error
    if oldest_allowed is not None:
        start = max(start, oldest_allowed)
    return start, end, limit

