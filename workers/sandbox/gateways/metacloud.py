"""Meta's WhatsApp Business Cloud API (providers/metacloud.md), simulated from the specification alone.

    POST /{version}/{phone_number_id}/messages      one message, `Authorization: Bearer <access token>`
    GET  /{version}/{waba_id}/message_templates      the account's templates, cursor paging (`after`)

An account's key is its access token, its secret the app secret that signs the webhooks, its sender the
phone-number id; its WABA id is WABA_ID. Statuses go to the `webhook_url` knob as Graph notifications signed
`X-Hub-Signature-256: sha256=<HMAC-SHA256 of the raw body, keyed with the app secret>`, with non-ASCII
escaped, and echo `biz_opaque_callback_data`. Inbound messages (the control API's /inbound) go there too and
open the number's 24-hour customer-service window: outside it only a template may be sent (131047).

Knobs: `error_code` / `error_codes` answer any code of section 3's table, at once (an HTTP error with a Graph
error object) or, for the codes the table says arrive later, accepted then failed by webhook;
`template_status` changes a built-in template's status; `rate_cap` answers 130429, `quota` 131048.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time

from workers.sandbox.callbacks import META_RETRY
from workers.sandbox.gateways.base import SandboxGateway
from workers.sandbox.state import FAILED, Account, BuiltinAccount, Incoming, Outgoing, e164
from workers.sandbox.web import Request, Response, is_http_url, json_response, text_response

WABA_ID = "102290129340398"
PHONE_NUMBER_ID = "106540352242922"
DISPLAY_NUMBER = "15550783881"
WINDOW_SECONDS = 24 * 3600  # s6: the customer-service window
PAGE_SIZE = 25  # s6 [F]: Graph's default page size
VERSION = re.compile(r"^v\d{1,2}\.\d$")
PATHS = re.compile(r"^/(?P<version>[^/]+)/(?P<node>\d+)/(?P<edge>messages|message_templates)$")

# s3: code -> (HTTP status, title, how it arrives). "sync": answered at once; "async": the send is accepted,
# then a `failed` status webhook carries it. HTTP statuses per s3 (400 for the throttling codes, the newer
# copies' and every captured answer's).
ERRORS: dict[int, tuple[int, str, str]] = {
    0: (401, "AuthException", "sync"),
    1: (500, "API Unknown", "sync"),
    2: (503, "API Service", "sync"),
    3: (500, "API Method", "sync"),
    4: (400, "Too many calls", "sync"),
    10: (403, "Permission Denied", "sync"),
    100: (400, "Invalid parameter", "sync"),
    190: (401, "Access token has expired", "sync"),
    200: (403, "API Permission", "sync"),
    368: (403, "Temporarily blocked for policies violations", "sync"),
    80007: (400, "Rate limit issues", "sync"),
    130429: (400, "Rate limit hit", "sync"),
    130497: (403, "Business account is restricted from messaging users in this country", "sync"),
    131000: (500, "Something went wrong", "sync"),
    131005: (403, "Access denied", "sync"),
    131008: (400, "Required parameter is missing", "sync"),
    131009: (400, "Parameter value is not valid", "sync"),
    131016: (503, "Service unavailable", "sync"),
    131021: (400, "Recipient cannot be sender", "sync"),
    131026: (400, "Message Undeliverable", "async"),
    131030: (400, "Recipient phone number not in allowed list", "sync"),
    131031: (403, "Account has been locked", "sync"),
    131037: (400, "WhatsApp provided number needs display name approval before message can be sent", "sync"),
    131042: (400, "Business eligibility payment issue", "sync"),
    131045: (400, "Incorrect certificate", "sync"),
    131047: (400, "Re-engagement message", "sync"),
    131048: (400, "Spam rate limit hit", "sync"),
    131049: (400, "This message was not delivered to maintain healthy ecosystem engagement", "async"),
    131050: (400, "User has stopped marketing messages", "async"),
    131051: (400, "Unsupported message type", "sync"),
    131052: (400, "Media download error", "async"),
    131053: (400, "Media upload error", "async"),
    131056: (400, "(Business Account, Consumer Account) pair rate limit hit", "sync"),
    131057: (500, "Account in maintenance mode", "sync"),
    132000: (400, "Number of parameters does not match the expected number of params", "sync"),
    132001: (404, "Template name does not exist in the translation", "sync"),
    132005: (400, "Translated text too long", "sync"),
    132007: (400, "Template Format Character Policy Violated", "sync"),
    132008: (400, "Template Parameter Format Mismatch", "sync"),
    132012: (400, "Template Parameter Format Mismatch", "sync"),
    132015: (400, "Template is Paused", "sync"),
    132016: (400, "Template is Disabled", "sync"),
    133004: (503, "Server Temporarily Unavailable", "sync"),
    133010: (400, "Phone number Not Registered", "sync"),
}

# The templates every account starts with (s6 shapes); `template_status` changes their statuses.
TEMPLATES: tuple[dict, ...] = (
    {"name": "order_update", "language": "en_US", "status": "APPROVED", "category": "UTILITY",
     "parameter_format": "POSITIONAL", "components": [
         {"type": "HEADER", "format": "TEXT", "text": "Order {{1}}"},
         {"type": "BODY", "text": "Hi {{1}}, your order {{2}} is on its way."},
         {"type": "FOOTER", "text": "Reply STOP to opt out"},
         {"type": "BUTTONS", "buttons": [{"type": "URL", "text": "Track", "url": "https://shop.example/t/{{1}}"},
                                         {"type": "QUICK_REPLY", "text": "Stop"}]}]},
    {"name": "appointment_reminder", "language": "en_US", "status": "APPROVED", "category": "UTILITY",
     "parameter_format": "POSITIONAL", "components": [
         {"type": "BODY", "text": "Hello {{1}}, this is a reminder of your appointment on {{2}}."}]},
    {"name": "appointment_reminder", "language": "fr", "status": "APPROVED", "category": "UTILITY",
     "parameter_format": "POSITIONAL", "components": [
         {"type": "BODY", "text": "Bonjour {{1}}, rappel de votre rendez-vous le {{2}}."}]},
    {"name": "spring_sale", "language": "en_US", "status": "APPROVED", "category": "MARKETING",
     "parameter_format": "POSITIONAL", "components": [
         {"type": "HEADER", "format": "IMAGE"},
         {"type": "BODY", "text": "{{1}}, our spring sale starts today."}]},
    {"name": "welcome", "language": "en_US", "status": "APPROVED", "category": "MARKETING",
     "parameter_format": "POSITIONAL", "components": [{"type": "BODY", "text": "Welcome to our service!"}]},
    {"name": "new_offer", "language": "en_US", "status": "PENDING", "category": "MARKETING",
     "parameter_format": "POSITIONAL", "components": [{"type": "BODY", "text": "A new offer for {{1}}."}]},
    {"name": "loud_promo", "language": "en_US", "status": "REJECTED", "category": "MARKETING",
     "parameter_format": "POSITIONAL", "components": [{"type": "BODY", "text": "BUY NOW {{1}}!!!"}]},
)
HEADER_MEDIA = ("IMAGE", "VIDEO", "DOCUMENT")


def error_body(code: int, details: str = "", subcode: int | None = None) -> tuple[int, dict]:
    status, title, _ = ERRORS.get(code, (400, "Error", "sync"))
    error = {"message": f"(#{code}) {title}", "type": "OAuthException", "code": code,
             "error_data": {"messaging_product": "whatsapp", "details": details or title},
             "fbtrace_id": "AsandboxTrace"}
    if subcode is not None:
        error["error_subcode"] = subcode
    return status, {"error": error}


def graph_error(code: int, details: str = "", subcode: int | None = None) -> Response:
    status, body = error_body(code, details, subcode)
    return json_response(status, body)


def placeholders(text: str) -> int:
    return len(set(re.findall(r"\{\{\s*(\w+)\s*\}\}", text or "")))


class MetaCloudGateway(SandboxGateway):
    provider = "metacloud"
    builtin = BuiltinAccount("sandbox-metacloud-token", secret="sandbox-metacloud-app-secret",
                             sender=PHONE_NUMBER_ID)
    default_sender = PHONE_NUMBER_ID
    object_ids = False

    async def handle(self, request: Request, path: str) -> Response:
        match = PATHS.match(path)
        if match is None:
            return graph_error(100, "Unknown path components", subcode=33)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        account = self.runtime.sandbox.account(self.provider, token.strip()) if scheme == "Bearer" else None
        if account is None:
            return graph_error(190, "Invalid OAuth access token")
        account.stats.requests += 1
        version, node, edge = match.group("version", "node", "edge")
        if not VERSION.match(version):
            return graph_error(100, f"Unknown version {version}")
        if edge == "message_templates":
            if request.method != "GET":
                return text_response(405, "Method Not Allowed")
            if node != WABA_ID:
                return graph_error(100, "Object does not exist or the token lacks access", subcode=33)
            return self.templates(account, request)
        if request.method != "POST":
            return text_response(405, "Method Not Allowed")
        if node != account.sender:
            return graph_error(100, "Object does not exist or the token lacks access", subcode=33)
        return await self.send(account, request)

    # ------------------------------------------------------------------ templates

    @staticmethod
    def template_list(account: Account) -> list[dict]:
        statuses = account.knobs.template_status
        return [{**template, "id": str(9000 + number), "status": statuses.get(template["name"], template["status"])}
                for number, template in enumerate(TEMPLATES)]

    def templates(self, account: Account, request: Request) -> Response:
        listed = self.template_list(account)
        for name in ("name", "language", "status", "category"):
            wanted = request.query_value(name)
            if wanted:
                listed = [t for t in listed if str(t[name]).upper() == wanted.upper()]
        try:
            start = int(request.query_value("after") or 0)
            limit = max(1, min(int(request.query_value("limit") or PAGE_SIZE), 1000))
        except ValueError:
            return graph_error(100, "after and limit must be numbers")
        page = listed[start:start + limit]
        paging: dict = {"cursors": {"before": str(start), "after": str(start + len(page))}}
        if start + limit < len(listed):
            paging["next"] = f"https://graph.facebook.com/{request.path.split('/', 3)[2]}?after={start + limit}"
        return json_response(200, {"data": page, "paging": paging})

    # ------------------------------------------------------------------ sending

    async def send(self, account: Account, request: Request) -> Response:
        runtime = self.runtime
        try:
            body = request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or body.get("messaging_product") != "whatsapp":
            account.reject("131009")
            return graph_error(131009, "messaging_product must be whatsapp")
        to = body.get("to")
        if not isinstance(to, str) or not re.fullmatch(r"\+?[1-9]\d{6,14}", to):
            account.reject("131009")
            return graph_error(131009, "to is not a phone number")
        recipient = e164(to)
        await runtime.delay_send(account)
        if runtime.fails_at_random(account):
            return text_response(503, "Service Unavailable")
        if runtime.lost_at_random(account):
            return text_response(500, "Internal Server Error")
        code = self.forced_code(account, recipient)
        if code is None:
            code = self.problem(account, body, recipient)
        if code is None:
            refused = account.refusal()
            code = {"quota": 131048, "rate_cap": 130429}.get(refused) if refused else None
        if code is not None and ERRORS.get(code, (0, "", "sync"))[2] == "sync":
            account.reject(str(code))
            return graph_error(code)
        record = Outgoing(self.wamid(), recipient, text_of(body), extra={"type": body.get("type")},
                          callback_data=body.get("biz_opaque_callback_data"))
        if code is not None:  # accepted, then failed by webhook
            record.status, record.error_code = FAILED, code
            account.keep(record)
            account.reject(str(code))
        else:
            account.accept(record)
        runtime.progress.start(account, record)
        garbled = runtime.garbled_answer(account)
        if garbled == "ambiguous":
            return text_response(500, "Internal Server Error")
        answer = {"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": recipient.lstrip("+")}],
                  "messages": [{"id": record.id}]}
        if body.get("type") == "template":
            answer["messages"][0]["message_status"] = "accepted"
        if garbled == "undocumented":
            return json_response(200, {"success": True})
        return json_response(200, answer)

    def wamid(self) -> str:
        return f"wamid.SANDBOX{self.runtime.sandbox.numeric_id()}"

    @staticmethod
    def forced_code(account: Account, recipient: str) -> int | None:
        """The `error_codes` knob's code for this recipient (a list answers each code once), else `error_code`."""
        forced = account.knobs.error_codes.get(recipient)
        if isinstance(forced, list):
            if forced:
                return forced.pop(0)
        elif forced is not None:
            return forced
        return account.knobs.error_code

    def problem(self, account: Account, body: dict, recipient: str) -> int | None:
        """What Meta would refuse in this message (s2, s3, s6), as an error code; None when it is fine."""
        kind = body.get("type") or "text"
        if recipient.lstrip("+") == DISPLAY_NUMBER:
            return 131021
        if kind != "template":
            if not self.window_open(account, recipient):
                return 131047
            if kind == "text":
                text = body.get("text")
                if not isinstance(text, dict) or not isinstance(text.get("body"), str) or not text["body"]:
                    return 131008
                return 131009 if len(text["body"]) > 4096 else None
            if kind in ("image", "video", "document", "audio"):
                media = body.get(kind)
                return None if isinstance(media, dict) and is_http_url(media.get("link")) else 131008
            if kind == "interactive":
                part = body.get("interactive")
                return None if isinstance(part, dict) and part.get("type") in ("button", "list") \
                    and isinstance(part.get("action"), dict) else 131009
            if kind == "location":
                place = body.get("location")
                return None if isinstance(place, dict) and "latitude" in place and "longitude" in place else 131008
            return 131051
        return self.template_problem(account, body.get("template"))

    def template_problem(self, account: Account, template: object) -> int | None:
        if not isinstance(template, dict) or not isinstance(template.get("language"), dict):
            return 131008
        name, language = template.get("name"), template["language"].get("code")
        found = next((t for t in self.template_list(account)
                      if t["name"] == name and t["language"] == language), None)
        if found is None:
            return 132001
        if found["status"] != "APPROVED":
            return {"PAUSED": 132015, "DISABLED": 132016}.get(found["status"], 132001)
        given = {(c.get("type"), str(c.get("index", ""))): c.get("parameters") or []
                 for c in template.get("components") or [] if isinstance(c, dict)}
        for component in found["components"]:
            kind = component["type"]
            if kind == "HEADER":
                parameters = given.get(("header", ""), [])
                if component.get("format") in HEADER_MEDIA:
                    if len(parameters) != 1:
                        return 132000
                    if parameters[0].get("type") != component["format"].lower():
                        return 132012
                elif len(parameters) != placeholders(component.get("text", "")):
                    return 132000
            elif kind == "BODY":
                if len(given.get(("body", ""), [])) != placeholders(component["text"]):
                    return 132000
            elif kind == "BUTTONS":
                for index, button in enumerate(component["buttons"]):
                    needed = 1 if button["type"] == "URL" and "{{" in button.get("url", "") else 0
                    if len(given.get(("button", str(index)), [])) != needed:
                        return 132000
        return None

    @staticmethod
    def window_open(account: Account, recipient: str) -> bool:
        """s6: the number wrote to this account within the last 24 hours."""
        since = time.time() - WINDOW_SECONDS
        return any(item.sender == recipient and item.created >= since for item in account.incoming.values())

    # ------------------------------------------------------------------ webhooks (s5)

    def notify(self, account: Account, value: dict) -> None:
        url = account.knobs.webhook_url
        if not url:
            return
        envelope = {"object": "whatsapp_business_account", "entry": [{"id": WABA_ID, "changes": [{
            "field": "messages", "value": {"messaging_product": "whatsapp", "metadata": {
                "display_phone_number": DISPLAY_NUMBER, "phone_number_id": account.sender}, **value}}]}]}
        raw = json.dumps(envelope, ensure_ascii=True).encode("ascii")  # s5: non-ASCII escaped as \\uXXXX
        signature = hmac.new((account.secret or "").encode("utf-8"), raw, hashlib.sha256).hexdigest()
        self.runtime.push(account, lambda: self.runtime.callbacks.post_bytes(
            url, raw, {"X-Hub-Signature-256": f"sha256={signature}"}, META_RETRY))

    def on_status(self, account: Account, message: Outgoing) -> None:
        status = {"id": message.id, "status": self.runtime.word(account, message.status, message.status),
                  "timestamp": str(int(message.updated)), "recipient_id": message.recipient.lstrip("+")}
        if message.callback_data is not None:
            status["biz_opaque_callback_data"] = message.callback_data
        if message.status == FAILED and message.error_code is not None:
            _, title, _ = ERRORS.get(message.error_code, (400, "Error", "async"))
            status["errors"] = [{"code": message.error_code, "title": title, "message": title,
                                 "error_data": {"details": title}}]
        else:
            status["pricing"] = {"billable": True, "pricing_model": "PMP", "category": "utility", "type": "regular"}
        self.notify(account, {"statuses": [status]})

    def on_inbound(self, account: Account, incoming: Incoming) -> bool:
        sender = incoming.sender.lstrip("+")
        self.notify(account, {
            "contacts": [{"profile": {"name": "Sandbox user"}, "wa_id": sender}],
            "messages": [{"from": sender, "id": f"wamid.IN{incoming.id}", "timestamp": str(int(incoming.created)),
                          "type": "text", "text": {"body": incoming.text}}]})
        return bool(account.knobs.webhook_url)


def text_of(body: dict) -> str:
    """What a message says, for the record."""
    kind = body.get("type") or "text"
    part = body.get(kind) if isinstance(body.get(kind), dict) else {}
    if kind == "template":
        return str(part.get("name") or "")
    if kind == "text":
        return str(part.get("body") or "")
    if kind == "interactive":
        return str((part.get("body") or {}).get("text") or "")
    return str(part.get("caption") or part.get("link") or part.get("name") or "")
