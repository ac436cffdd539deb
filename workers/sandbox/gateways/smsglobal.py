"""SMSGlobal MXT REST API, WhatsApp (smsglobal.txt), simulated, on the paths of providers/README.md.

Every request is authenticated by the MAC scheme: `Authorization: MAC id, ts, nonce, mac`, where mac is
base64(HMAC-SHA256(api secret, ts\\nnonce\\nMETHOD\\nURI\\nhost\\nport\\n\\n)) and URI is the path exactly as
requested (here it includes the `/smsglobal` prefix) plus `?query` when there is one. Delivery status
comes by polling the outgoing list or one message by id; SMSGlobal pushes nothing.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
from datetime import UTC, datetime, tzinfo

from workers.sandbox.gateways.base import SandboxGateway
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
from workers.sandbox.web import Request, Response, is_http_url, json_response

# Assumptions where smsglobal.txt is silent (see workers/sandbox/__init__.py):
MAX_TEXT_CHARACTERS = 4096  # WhatsApp's limit on a text body
MAX_CAPTION_CHARACTERS = 1024  # WhatsApp's limit on a media caption
BUSINESS_NUMBER = "61400000000"  # the "to" of inbound messages when the account has no sender
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"  # the document's <Y-m-d H:i:s>, "in account timezone" (the knob; UTC)
PRINTED_DATE_FORMAT = "%Y-%m-%d %H:%M:%S %z"  # createdDate, as SMSGlobal's REST API prints dateTime
MAX_WINDOW = 10_000  # "maximum offset + limit = 10,000"

_AUTH_FIELD = re.compile(r'(\w+)\s*=\s*"([^"]*)"')
_NUMBER = re.compile(r"\+?\d{8,15}")
MEDIA_TYPES = ("image", "video", "document", "audio")
MESSAGE_TYPES = ("template", "text", *MEDIA_TYPES, "location")


@functools.lru_cache(maxsize=256)
def _keyed_hmac(secret: str) -> hmac.HMAC:
    return hmac.new(secret.encode(), digestmod=hashlib.sha256)


def mac_signature(secret: str, ts: str, nonce: str, method: str, uri: str, host: str, port: str) -> str:
    """The MAC SMSGlobal expects: base64(HMAC-SHA256(secret, the seven lines)), as in its SDKs."""
    text = f"{ts}\n{nonce}\n{method}\n{uri}\n{host}\n{port}\n\n"
    mac = _keyed_hmac(secret).copy()  # copying a keyed HMAC is much cheaper than keying a new one
    mac.update(text.encode())
    return base64.b64encode(mac.digest()).decode()


def _split_host(host_header: str) -> tuple[str, str]:
    """Host name without port, and the port (80 when the Host header names none: the sandbox is http)."""
    if host_header.startswith("["):  # IPv6 literal
        name, _, rest = host_header[1:].partition("]")
        return name, rest[1:] if rest.startswith(":") else "80"
    name, colon, port = host_header.rpartition(":")
    return (name, port) if colon and port.isdigit() else (host_header, "80")


def _error(status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return json_response(status, {"code": status, "message": message}, headers)


def _invalid(errors: dict[str, list[str]]) -> Response:
    return json_response(400, {"code": 400, "message": "Validation Failed", "errors": errors})


@functools.lru_cache(maxsize=4096)
def _printed_second(second: int, zone: tzinfo) -> str:
    return datetime.fromtimestamp(second, zone).strftime(PRINTED_DATE_FORMAT)


def _printed(unix_seconds: float, account: Account) -> str:
    """createdDate in the account's zone, with its offset: whole seconds, so a busy second formats once."""
    return _printed_second(int(unix_seconds), account.knobs.zone or UTC)


def _digits(number: str) -> str:
    return number.lstrip("+")


class SmsGlobalGateway(SandboxGateway):
    provider = "smsglobal"
    builtin = BuiltinAccount("sandbox-smsglobal-key", secret="sandbox-smsglobal-secret")
    signed_by_secret = True  # its MAC signs every request with the account's secret


    # ------------------------------------------------------------------ routing and authentication

    async def handle(self, request: Request, path: str) -> Response:
        account = self._authenticate(request)
        if account is None:
            return _error(401, "Authentication failed")
        account.stats.requests += 1
        accept = request.headers.get("accept", "")
        if accept and not any(kind in accept for kind in ("json", "*/*", "application/*")):
            return _error(406, "Not Acceptable: this resource answers application/json only")
        content_type = request.headers.get("content-type", "")
        if request.method == "POST" and request.body and "json" not in content_type:
            return _error(415, "Unsupported Media Type: send application/json")
        route, allowed = self._route(path)
        if route is None:
            return _error(404, "Not Found")
        if request.method not in allowed:
            return _error(405, "Method Not Allowed", (("Allow", ", ".join(allowed)),))
        return await allowed[request.method](account, request, route)

    def _route(self, path: str):
        parts = path.strip("/").split("/")
        if parts[:1] != ["v2"]:
            return None, {}
        rest = parts[1:]
        if rest == ["whatsapp"]:
            return "", {"GET": self._list_outgoing, "POST": self._send}
        if rest == ["whatsapp", "capability"]:
            return "", {"POST": self._capability}
        if rest == ["whatsapp", "opt-in"]:
            return "", {"GET": self._opt_ins, "POST": self._opt_in}
        if len(rest) == 2 and rest[0] == "whatsapp" and rest[1]:
            return rest[1], {"GET": self._get_outgoing}
        if rest == ["whatsapp-incoming"]:
            return "", {"GET": self._list_incoming}
        if len(rest) == 2 and rest[0] == "whatsapp-incoming" and rest[1]:
            return rest[1], {"GET": self._get_incoming}
        if rest == ["user", "credit-balance"]:
            return "", {"GET": self._credit_balance}
        return None, {}

    def _authenticate(self, request: Request) -> Account | None:
        header = request.headers.get("authorization", "")
        scheme, _, params = header.partition(" ")
        if scheme != "MAC":
            return None
        fields = dict(_AUTH_FIELD.findall(params))
        if not all(fields.get(name) for name in ("id", "ts", "nonce", "mac")):
            return None
        account = self.runtime.sandbox.account(self.provider, fields["id"])
        if account is None or not account.secret:
            return None
        uri = request.raw_path.decode("latin-1")
        if request.query_string:
            uri += "?" + request.query_string.decode("latin-1")
        host, port = _split_host(request.headers.get("host", ""))
        expected = mac_signature(account.secret, fields["ts"], fields["nonce"], request.method, uri,
                                 host, port)
        if not hmac.compare_digest(expected, fields["mac"]):
            account.reject("auth")
            return None
        return account

    # ------------------------------------------------------------------ sending

    async def _send(self, account: Account, request: Request, _: str) -> Response:
        runtime = self.runtime
        body = _json_object(request)
        recipients, errors = _recipients(body.get("to"))
        message, message_errors = _message(body.get("message"))
        errors.update(message_errors)
        if errors:
            account.reject("invalid:" + sorted(errors)[0].split("[")[0].split(".")[0])
            return _invalid(errors)
        count = len(recipients)
        await runtime.delay_send(account)
        if runtime.fails_at_random(account, count):
            return _error(503, "Service Unavailable")
        if runtime.lost_at_random(account, count):
            return _error(500, "Internal Server Error")
        capable = [r for r in recipients if not runtime.not_on_whatsapp(account, r)]
        refused = account.refusal(len(capable)) if capable else None
        if refused == "quota":
            account.reject("quota", count)
            return _error(402, "Payment Required: insufficient credit")
        if refused == "rate_cap":
            account.reject("rate_cap", count)
            return _error(429, "Too Many Requests", (("Retry-After", str(account.retry_after())),))
        sent = []
        for recipient in recipients:
            record = Outgoing(runtime.sandbox.numeric_id(), recipient, message,
                              extra={"origin": account.sender or BUSINESS_NUMBER})
            if recipient in capable:
                account.accept(record)
            else:
                record.status, record.error_code = FAILED, NOT_ON_WHATSAPP_CODE
                account.keep(record)
                account.reject("not_on_whatsapp")
            runtime.progress.start(account, record)
            sent.append(self._outgoing_json(account, record))
        garbled = runtime.garbled_answer(account)
        if garbled == "ambiguous":
            return _error(500, "Internal Server Error")
        if garbled == "undocumented":
            return json_response(200, {"data": {"queued": len(sent)}})
        return json_response(200, {"messages": sent})

    def _outgoing_json(self, account: Account, record: Outgoing) -> dict:
        if record.status == FAILED:
            status = "invalidNumber" if record.error_code == NOT_ON_WHATSAPP_CODE else "undelivered"
        else:
            status = {DELIVERED: "delivered", READ: "read"}.get(record.status, "sent")
        status = self.runtime.word(account, record.status, status)
        return {"id": record.id, "recipient": _digits(record.recipient), "status": status,
                "state": "final" if record.final else "pending", "message": record.text,
                "createdDate": _printed(record.created, account)}

    # ------------------------------------------------------------------ reports

    async def _list_outgoing(self, account: Account, request: Request, _: str) -> Response:
        window, errors = _paging(request, account.knobs.zone or UTC)
        if errors:
            return _invalid(errors)
        offset, limit, start, end = window
        destination = request.query_value("destination")
        origin = request.query_value("origin")
        search = request.query_value("search")
        chosen = []
        for record in account.outgoing.values():
            if (start is not None and record.created < start) or (end is not None and record.created >= end):
                continue
            if destination and _digits(record.recipient) != _digits(destination):
                continue
            record_origin = (record.extra or {}).get("origin", "")
            if origin and record_origin != origin:
                continue
            if search and not any(search in text for text in (record.text, record.recipient, record_origin)):
                continue
            chosen.append(record)
        page = chosen[offset - 1: offset - 1 + limit]
        return json_response(200, {"total": len(chosen), "offset": offset, "limit": limit,
                                   "messages": [self._outgoing_json(account, r) for r in page]})

    async def _get_outgoing(self, account: Account, request: Request, message_id: str) -> Response:
        record = account.outgoing.get(int(message_id)) if message_id.isdigit() else None
        if record is None:
            return _error(404, "Not Found")
        return json_response(200, self._outgoing_json(account, record))

    def _incoming_json(self, account: Account, incoming: Incoming) -> dict:
        return {"id": incoming.id, "from": _digits(incoming.sender), "to": account.sender or BUSINESS_NUMBER,
                "message": incoming.text, "createdDate": _printed(incoming.created, account)}

    async def _list_incoming(self, account: Account, request: Request, _: str) -> Response:
        window, errors = _paging(request, account.knobs.zone or UTC)
        if errors:
            return _invalid(errors)
        offset, limit, start, end = window
        destination = request.query_value("destination")
        origin = request.query_value("origin")
        search = request.query_value("search")
        to = account.sender or BUSINESS_NUMBER
        chosen = [
            incoming for incoming in account.incoming.values()
            if (start is None or incoming.created >= start) and (end is None or incoming.created < end)
            and (not origin or _digits(incoming.sender) == _digits(origin))
            and (not destination or _digits(destination) == to)
            and (not search or any(search in text for text in (incoming.text, incoming.sender, to)))
        ]
        page = chosen[offset - 1: offset - 1 + limit]
        return json_response(200, {"total": len(chosen), "offset": offset, "limit": limit,
                                   "messages": [self._incoming_json(account, i) for i in page]})

    async def _get_incoming(self, account: Account, request: Request, message_id: str) -> Response:
        incoming = account.incoming.get(int(message_id)) if message_id.isdigit() else None
        if incoming is None:
            return _error(404, "Not Found")
        return json_response(200, self._incoming_json(account, incoming))

    # ------------------------------------------------------------------ numbers and credit

    def _number_json(self, account: Account, number: str) -> dict:
        return {"name": _opt_ins(account).get(number, ""), "number": number,
                "capable": not self.runtime.not_on_whatsapp(account, e164(number)), "blacklist": False}

    async def _capability(self, account: Account, request: Request, _: str) -> Response:
        numbers = _json_object(request).get("numbers")
        if not isinstance(numbers, list) or not numbers:
            return _invalid({"numbers": ["This value should not be blank."]})
        bad = {f"numbers[{i}]": ["This value is not a valid phone number."]
               for i, n in enumerate(numbers) if not isinstance(n, str) or not _NUMBER.fullmatch(n)}
        if bad:
            return _invalid(bad)
        return json_response(200, {"capabilities": [self._number_json(account, _digits(n)) for n in numbers]})

    async def _opt_ins(self, account: Account, request: Request, _: str) -> Response:
        return json_response(200, {"optIn": [self._number_json(account, n) for n in _opt_ins(account)]})

    async def _opt_in(self, account: Account, request: Request, _: str) -> Response:
        entries = _json_object(request).get("opt-in")
        if not isinstance(entries, list) or not entries:
            return _invalid({"opt-in": ["This value should not be blank."]})
        errors = {}
        for i, entry in enumerate(entries):
            number = entry.get("number") if isinstance(entry, dict) else None
            if not isinstance(number, str) or not _NUMBER.fullmatch(number):
                errors[f"opt-in[{i}][number]"] = ["This value is not a valid phone number."]
        if errors:
            return _invalid(errors)
        added = []
        for entry in entries:
            number = _digits(entry["number"])
            _opt_ins(account)[number] = str(entry.get("name") or "")
            added.append(self._number_json(account, number))
        return json_response(200, {"optIn": added})

    async def _credit_balance(self, account: Account, request: Request, _: str) -> Response:
        quota = account.knobs.quota
        # Assumption: one credit per message; an unlimited sandbox account shows a large round balance.
        balance = float(quota if quota is not None else 1_000_000)
        return json_response(200, {"balance": balance, "currency": "AUD"})

    # ------------------------------------------------------------------ pushes

    def on_status(self, account: Account, message: Outgoing) -> None:
        """SMSGlobal pushes nothing: its clients poll."""

    def on_inbound(self, account: Account, incoming: Incoming) -> bool:
        """Inbound messages show in the incoming list; nothing is pushed."""
        return False


# ---------------------------------------------------------------------- request validation


def _json_object(request: Request) -> dict:
    try:
        body = request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _opt_ins(account: Account) -> dict[str, str]:
    return account.gateway_data.setdefault("opt_ins", {})


def _is_number(value: object) -> bool:
    valid_type = isinstance(value, str | int) and not isinstance(value, bool)
    return valid_type and bool(_NUMBER.fullmatch(str(value)))


def _recipients(to: object) -> tuple[list[str], dict[str, list[str]]]:
    if isinstance(to, str):
        to = [to]
    if not isinstance(to, list) or not to:
        return [], {"to": ["This value should not be blank."]}
    errors = {f"to[{i}]": ["This value is not a valid phone number."]
              for i, number in enumerate(to) if not _is_number(number)}
    return ([] if errors else [e164(n) for n in to]), errors


def _message(message: object) -> tuple[str, dict[str, list[str]]]:
    """The message's printable text, and validation errors by field (smsglobal.txt's message objects)."""
    if isinstance(message, str):  # a bare string means text (providers/README.md)
        message = {"type": "text", "text": message}
    if not isinstance(message, dict):
        return "", {"message": ["This value should not be blank."]}
    kind = message.get("type")
    if kind not in MESSAGE_TYPES:
        choices = ", ".join(MESSAGE_TYPES)
        return "", {"message.type": [f"The value you selected is not a valid choice: {choices}."]}
    if kind == "text":
        # The document's table spells the field "Text"; providers/README.md's example "text". Both are read.
        text = message.get("text", message.get("Text"))
        if not isinstance(text, str) or not text:
            return "", {"message.text": ["This value should not be blank."]}
        if len(text) > MAX_TEXT_CHARACTERS:
            return "", {"message.text": [f"Too long: at most {MAX_TEXT_CHARACTERS} characters."]}
        return text, {}
    if kind == "template":
        name, params = message.get("template_name"), message.get("params", [])
        if not isinstance(name, str) or not name:
            return "", {"message.template_name": ["This value should not be blank."]}
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            return "", {"message.params": ["This value should be a list of strings."]}
        return " ".join([name, *params]), {}
    if kind == "location":
        errors = {}
        for key, bound in (("lat", 90), ("lng", 180)):
            value = message.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float) or not -bound <= value <= bound:
                errors[f"message.{key}"] = [f"This value should be a number between -{bound} and {bound}."]
        if errors:
            return "", errors
        return str(message.get("name") or f"{message['lat']},{message['lng']}"), {}
    url, caption = message.get("url"), message.get("caption")
    if not is_http_url(url):
        return "", {"message.url": ["This value is not a valid URL (http or https)."]}
    if caption is not None and (not isinstance(caption, str) or len(caption) > MAX_CAPTION_CHARACTERS):
        return "", {"message.caption": [f"Text of at most {MAX_CAPTION_CHARACTERS} characters, please."]}
    return caption or url, {}


def _paging(request: Request, zone: tzinfo) -> tuple[tuple[int, int, float | None, float | None],
                                                     dict[str, list[str]]]:
    errors: dict[str, list[str]] = {}
    numbers = {}
    for name, default, low, high in (("offset", 1, 1, MAX_WINDOW), ("limit", 20, 1, 1000)):
        raw = request.query_value(name, str(default))
        if not raw.isdigit() or not low <= int(raw) <= high:
            errors[name] = [f"This value should be a whole number from {low} to {high}."]
        else:
            numbers[name] = int(raw)
    if not errors and numbers["offset"] + numbers["limit"] > MAX_WINDOW:
        errors["offset"] = [f"offset + limit must be at most {MAX_WINDOW}."]
    dates = {}
    for name in ("startDate", "endDate"):
        raw = request.query_value(name)
        if not raw:
            dates[name] = None
            continue
        try:
            moment = datetime.strptime(raw, DATE_FORMAT).replace(tzinfo=zone).timestamp()
            # endDate names a whole second: everything created before the next one is in range.
            dates[name] = moment + 1.0 if name == "endDate" else moment
        except ValueError:
            errors[name] = ["This value is not a valid datetime (Y-m-d H:i:s)."]
    if errors:
        return (0, 0, None, None), errors
    return (numbers["offset"], numbers["limit"], dates["startDate"], dates["endDate"]), {}
