"""Meta's WhatsApp Business Cloud API (providers/metacloud.md), Meta's own gateway on the Graph API.

One send is `POST /{api_version}/{phone_number_id}/messages` with `Authorization: Bearer <access_token>` and one
recipient (section 2); there is no batch call. A 200 answer carries the message's *wamid* and means "accepted
for processing" only: statuses (sent, delivered, read, failed with error codes) come later as webhooks signed
with the app secret (`X-Hub-Signature-256`, section 5), each echoing our message id in
`biz_opaque_callback_data`, so an `unknown` message waits for its webhook before any second send (section 9).

Kinds (options in brackets):
- template: an approved template [`template` (name), `language` (code, e.g. en_US), `slots`: the template's
  parameters in order, each `{"component": "body"|"header"|"button", "column": <the recipient's column>}`
  (header: plus `format` text|image|video|document; button: plus `index` and `sub_type` url|quick_reply|
  copy_code; body: plus `name` for templates with named parameters)]; each value is read from the
  recipient's columns (`Outbound.variables`);
- text [`preview_url`]; image, video, document, audio, media (by link: `media_url`, `filename`,
  `content_type`; the text is the caption; `media` picks the type from the content type);
- buttons (interactive reply buttons: `buttons` as titles or {id, title}, `header`, `footer`);
- list (interactive list: `button_text`, `sections` [{title, rows: [{id, title, description}]}] or flat
  `rows` with a `section` each, `header`, `footer`);
- location (`lat`, `lng`, `name`, `address`).
Only templates may reach a number outside its 24-hour customer-service window (section 6): Blast skips the
others before sending (GatewaySpec.service_window_hours).

Classification is by `error.code` (and for 100, its subcode), never by HTTP status (section 3): `OUTCOMES`,
one row per code of the section's table. Every choice the specification marks as uncertain is in `UNCERTAIN`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar

from campaigns.events import BadPayload, Inbound, StatusUpdate, id_text
from campaigns.settings import AccountConfig, load_accounts
from campaigns.states import EventKind, Outcome
from workers.providers.base import (
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
    require_e164,
)
from workers.providers.events import (
    from_unix,
    json_document,
    normalise_phone,
    text_or_none,
    undocumented_reason,
    word_family,
)

# ---------------------------------------------------------------------- every uncertain choice, in one table

# metacloud.md marks these as uncertain ([F], [3P], [ours], or "?"): what the client does about each. Change a
# value here when Meta's real behaviour is known; nothing else in the module hard-codes them.
UNCERTAIN: dict[str, Any] = {
    # s1 [ours]: the Graph version pinned when the account's `api_version` is not given.
    "api_version": "v21.0",
    # s4 [M]: 80 messages per second per number by default (1,000 is configured, never guessed).
    "rate": 80,
    # s3 [F]: throttling codes come with HTTP 400 (newer copies, captured answers) or 429 (older tables):
    # the code decides; a bare 429 without a JSON error is throttled too.
    "bare_429": Outcome.THROTTLED,
    # s3 [ours]: a 5xx without a JSON error, a timeout or a reset: the outcome is unknown (AMBIGUOUS), and the
    # message waits for a webhook carrying our id (section 9) this long before it is sent again.
    "unknown_wait_seconds": 120.0,
    # s3 code 4 [M*]: "pause sends for a few minutes" is not a figure: the message waits 60 s and the
    # account's rate backs off (the limiter's halving).
    "app_throttle_seconds": 60.0,
    # s4 [M*]/[F]: pair rate about one message every 6 s per recipient (a burst may pass [F]): 131056 waits
    # this long for that recipient only; the account's rate stays.
    "pair_rate_seconds": 6.0,
    # s3 131057 [M*]: maintenance mode is "transient on a long timer (minutes)": 300 s.
    "maintenance_seconds": 300.0,
    # s3 131047 [F]: re-engagement arrives synchronously (some BSPs) or as a failed webhook (others): both
    # are read; content, failing that recipient.
    "reengagement_sync_or_async": "both",
    # s3/s4 (tier) [F]: no code is documented for the 24-h messaging limit; reports show failed statuses or
    # 131048. 131048 pauses the account (quota); no other code is guessed. The limit itself is budgeted before a
    # launch from the account's `messaging_limit` (campaigns.messaging_limit), not during the send.
    "messaging_limit_code": 131048,
    # s3 130497 [M*]: "fails only that country's recipients": the recipient fails, the account goes on.
    "country_barred": Outcome.RECIPIENT,
    # s3 368/131031/131037/131045 [ours]: Blast has no "account restricted" pause reason: auth.
    "restricted_account": Outcome.AUTH,
    # s3 132015 [M*]: "keep messages pending and resume when the template is APPROVED again": content, held
    # (SendResult.template_held): the message waits unattempted, the campaign pauses at once, and beat resumes it
    # once the template list shows the template APPROVED. Meta's pause lasts 3 h, then 6 h [F].
    "paused_template": Outcome.CONTENT,
    # s3 131050 [3P]: the user stopped marketing messages: the recipient fails; no opt-out is recorded
    # (it stops marketing only, not every message).
    "marketing_stop_records_optout": False,
    # s2 [M*]: `index` of a button parameter is written as a string, as in Meta's samples.
    "button_index_as_string": True,
    # s5 [F]: older integrations checked SHA-1 `X-Hub-Signature`: never accepted; only X-Hub-Signature-256.
    "sha1_signature": False,
    # s2 [3P]: interactive body text at most 1,024 characters; list rows at most 10 across all sections.
    "interactive_body_max": 1024,
    "list_rows_max": 10,
    # s6 [F]: the default page size of the template listing is 25: the client asks for 100 per page.
    "templates_page_size": 100,
}

DEFAULT_BASE_URL = "https://graph.facebook.com"  # s1 [M]
SEND_PATH = "/{version}/{phone_number_id}/messages"  # s2 [M]
TEMPLATES_PATH = "/{version}/{waba_id}/message_templates"  # s6 [M]
TEMPLATE_FIELDS = "name,language,status,category,parameter_format,components"  # s6 [M]
SIGNATURE_HEADER = "x-hub-signature-256"  # s5 [M*]

KINDS = ("template", "text", "image", "video", "document", "audio", "media", "buttons", "list", "location")
MEDIA_KINDS = ("image", "video", "document", "audio", "media")
MB = 1024 * 1024
# s2 "Media by link" [M*]: the types and sizes Meta fetches.
MEDIA: dict[str, tuple[frozenset[str] | None, int]] = {
    "image": (frozenset({"image/jpeg", "image/png"}), 5 * MB),
    "video": (frozenset({"video/mp4", "video/3gpp"}), 16 * MB),
    "audio": (frozenset({"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"}), 16 * MB),
    "document": (None, 100 * MB),  # any type
}
BUTTONS_MAX, BUTTON_TITLE_MAX = 3, 20  # s2 interactive [M*]
LIST_BUTTON_MAX, ROW_TITLE_MAX, ROW_DESCRIPTION_MAX, SECTIONS_MAX = 20, 24, 72, 10  # s2 [3P]
HEADER_TEXT_MAX, FOOTER_MAX = 60, 60  # [3P] pywa's interactive header and footer limits
CALLBACK_DATA_MAX = 512  # s2 biz_opaque_callback_data [M*]
TEMPLATE_NAME = re.compile(r"^[a-z0-9_]{1,512}$")  # [M*] template names: lower case, digits, underscores
LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}(_[A-Za-z]{2,4})?$")  # en, en_US, zh_Hant
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")  # {{1}} or {{first_name}} (named)

A = Outcome
# s3 "Classification": error.code -> what it means for sending. Keys are codes as text; "100/33" is code 100
# with error_subcode 33; "HTTP ..." rows are answers without a Graph error object.
OUTCOMES: dict[str, Rule] = {
    "accepted": Rule(A.ACCEPTED, "accepted for processing"),  # s2 success answer
    # s3 throttling rows
    "4": Rule(A.THROTTLED, "app-level Graph call rate limit: the whole app backs off"),
    "80007": Rule(A.THROTTLED, "WABA-level call rate limit (management calls)"),
    "130429": Rule(A.THROTTLED, "the number's throughput was exceeded: the account's rate backs off"),
    "131056": Rule(A.THROTTLED, "pair rate limit: too many messages to this recipient in a short time"),
    # s3 quota rows
    "131048": Rule(A.QUOTA, "spam rate limit: the number is restricted after blocks or reports"),
    "131042": Rule(A.QUOTA, "business payment problem (no valid payment method or credit line)"),
    # s3 recipient rows
    "131049": Rule(A.RECIPIENT, "Meta chose not to deliver this marketing message to this user (wait 24 h)"),
    "131050": Rule(A.RECIPIENT, "the user stopped marketing messages from this business"),
    "131026": Rule(A.RECIPIENT, "undeliverable: not on WhatsApp, an old client, terms not accepted, or blocked"),
    "131021": Rule(A.RECIPIENT, "the recipient is the sender's own number"),
    "131030": Rule(A.RECIPIENT, "the recipient is not in the allowed list (test numbers only)"),
    "130497": Rule(UNCERTAIN["country_barred"], "the account may not message the recipient's country"),
    # s3 auth rows: the token, permissions, the number's registration
    "0": Rule(A.AUTH, "the access token is invalid, expired or revoked"),
    "190": Rule(A.AUTH, "the access token is invalid, expired or revoked: get a new token"),
    "3": Rule(A.AUTH, "the app lacks the capability (permission missing or removed)"),
    "10": Rule(A.AUTH, "permission denied or removed"),
    "200-299": Rule(A.AUTH, "permission missing or removed"),
    "131005": Rule(A.AUTH, "access denied: permission missing or removed"),
    "100/33": Rule(A.AUTH, "the phone number id or WABA id does not exist or the token lacks access to it"),
    "133010": Rule(A.AUTH, "the business number is not registered with the Cloud API"),
    "368": Rule(UNCERTAIN["restricted_account"], "the account is restricted for a policy violation"),
    "131031": Rule(UNCERTAIN["restricted_account"], "the business account is locked"),
    "131037": Rule(UNCERTAIN["restricted_account"], "the display name is not approved"),
    "131045": Rule(UNCERTAIN["restricted_account"], "number registration (certificate) problem"),
    # s3 content rows
    "100": Rule(A.CONTENT, "invalid or unknown parameter"),
    "131047": Rule(A.CONTENT, "more than 24 hours since the user last wrote: only a template may be sent"),
    "131051": Rule(A.CONTENT, "unsupported message type"),
    "131008": Rule(A.CONTENT, "a required parameter is missing"),
    "131009": Rule(A.CONTENT, "a parameter value is invalid"),
    "132000": Rule(A.CONTENT, "the number of parameters does not match the template"),
    "132001": Rule(A.CONTENT, "the template does not exist in that language or is not approved"),
    "132005": Rule(A.CONTENT, "the text is too long after substituting the parameters"),
    "132007": Rule(A.CONTENT, "a parameter value breaks the template's format-character policy"),
    "132008": Rule(A.CONTENT, "a parameter value or format does not fit the template"),
    "132012": Rule(A.CONTENT, "a parameter's format does not fit the template (e.g. text for an image)"),
    "132015": Rule(UNCERTAIN["paused_template"], "the template is paused for low quality"),
    "132016": Rule(A.CONTENT, "the template is disabled for good: choose another template"),
    "131053": Rule(A.CONTENT, "media upload error: Meta could not fetch or process the link"),
    "131052": Rule(A.CONTENT, "media download error (concerns media the user sent; never a send's answer)"),
    # s3 transient rows
    "1": Rule(A.TRANSIENT, "unknown error"),
    "131000": Rule(A.TRANSIENT, "unknown error"),
    "2": Rule(A.TRANSIENT, "service temporarily unavailable"),
    "131016": Rule(A.TRANSIENT, "service temporarily unavailable"),
    "133004": Rule(A.TRANSIENT, "service temporarily unavailable"),
    "131057": Rule(A.TRANSIENT, "the account is in maintenance mode"),
    # s3 last row [ours] and the doubtful throttling statuses [F]: answers without a Graph error object
    "HTTP 429": Rule(UNCERTAIN["bare_429"], "too many requests"),
    "HTTP 5xx": Rule(A.AMBIGUOUS, "the gateway failed without an error: it may have taken the message"),
}

# How long a message waits after these codes (seconds), where the table says more than "retry".
WAITS: dict[str, float] = {
    "4": UNCERTAIN["app_throttle_seconds"],
    "131056": UNCERTAIN["pair_rate_seconds"],
    "131057": UNCERTAIN["maintenance_seconds"],
}
# s3 131056 [M*]: "throttled for this recipient only ... Keep the account rate."
RECIPIENT_ONLY = frozenset({"131056"})
TEMPLATE_HELD = frozenset({"132015"})

# s5 status words [M*]; `played` (voice messages) is read as read; other words by their family.
STATUSES: dict[str, EventKind] = {
    "sent": EventKind.SENT,
    "delivered": EventKind.DELIVERED,
    "read": EventKind.READ,
    "played": EventKind.READ,
    "failed": EventKind.FAILED,
}


def error_key(code: Any, subcode: Any = None) -> str | None:
    """The OUTCOMES key of a Graph error code (and subcode), or None when no row lists it."""
    try:
        number = int(code)
    except (TypeError, ValueError):
        return None
    if number == 100 and str(subcode) == "33":
        return "100/33"
    if 200 <= number <= 299:
        return "200-299"
    return str(number) if str(number) in OUTCOMES else None


def rule_of(code: Any, subcode: Any = None) -> Rule | None:
    key = error_key(code, subcode)
    return OUTCOMES[key] if key is not None else None


class MetaCloudClient(ProviderClient):
    provider: ClassVar[str] = "metacloud"
    spec: ClassVar[GatewaySpec] = GatewaySpec(
        # DESIGN.md "Accounts" (metacloud) and metacloud.md s1
        credentials=("access_token", "phone_number_id", "waba_id", "app_secret", "verify_token"),
        secrets=("access_token", "app_secret", "verify_token"),
        optional=("api_version", "display_phone_number"),
        kinds=KINDS,
        composer_kinds=("text", "media", "template"),  # template: an approved one, picked on the page
        text_limits={
            "text": (4096, "characters"),  # s2 text body [M*]
            "media": (1024, "characters"),  # s2 captions [M*]
            "buttons": (UNCERTAIN["interactive_body_max"], "characters"),  # s2 [3P]
            "list": (UNCERTAIN["interactive_body_max"], "characters"),
            "template": (32768, "characters"),  # the rendered preview, not sent: Meta checks it (132005)
            "location": (4096, "characters"),
        },
        webhooks=True,
        echoes_reference=True,  # biz_opaque_callback_data comes back in every status webhook (s2)
        report_delay_seconds=UNCERTAIN["unknown_wait_seconds"],
        defaults={"base_url": DEFAULT_BASE_URL, "rate": UNCERTAIN["rate"]},
        templates=True,
        service_window_hours=24.0,  # s6 customer-service window [M*]
    )

    def __init__(self, account: AccountConfig):
        super().__init__(account)
        self.version = getattr(account, "api_version", None) or UNCERTAIN["api_version"]
        self.headers["Authorization"] = f"Bearer {account.secret('access_token')}"

    # ------------------------------------------------------------------ checks and payload

    def validate(self, message: Outbound) -> None:
        self.message_body(message)

    def build_payload(self, message: Outbound) -> GatewayRequest:
        path = SEND_PATH.format(version=self.version, phone_number_id=self.account.phone_number_id)
        return GatewayRequest("POST", path, json=self.message_body(message))

    def message_body(self, message: Outbound) -> dict[str, Any]:
        """The JSON of one send (s2); InvalidMessage when a stated limit is broken."""
        kind = message.kind
        if kind not in KINDS:
            raise InvalidMessage(f"metacloud: message kind {kind!r} is not offered (kinds: {', '.join(KINDS)})")
        digits = require_e164(message.to)
        own = str(getattr(self.account, "display_phone_number", "") or "").lstrip("+")
        if own and own == digits:
            raise InvalidMessage("metacloud: the recipient is the account's own number (131021)")
        options = message.options
        body: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual",
                                "to": "+" + digits}
        if kind == "template":
            body["type"], body["template"] = "template", self.template(options, message.variables)
        elif kind == "text":
            text = {"body": check_text("metacloud", "text", message.text), "preview_url": False}
            if options.get("preview_url") is not None:
                if not isinstance(options["preview_url"], bool):
                    raise InvalidMessage("metacloud: preview_url must be true or false")
                text["preview_url"] = options["preview_url"]
            body["type"], body["text"] = "text", text
        elif kind in MEDIA_KINDS:
            media_type, media = self.media(kind, message.text, options)
            body["type"], body[media_type] = media_type, media
        elif kind in ("buttons", "list"):
            body["type"], body["interactive"] = "interactive", interactive(kind, message.text, options)
        else:  # location
            lat, lng = check_coordinates("metacloud", options.get("lat"), options.get("lng"))
            location: dict[str, Any] = {"latitude": lat, "longitude": lng}
            for key in ("name", "address"):
                if options.get(key):
                    location[key] = str(options[key])
            body["type"], body["location"] = "location", location
        body["biz_opaque_callback_data"] = str(message.message_id)[:CALLBACK_DATA_MAX]  # s9: our id
        return body

    def media(self, kind: str, caption: str | None, options: Mapping[str, Any]) -> tuple[str, dict]:
        url = check_url("metacloud", "media_url", options.get("media_url"))
        content_type = content_type_of(options, options.get("filename"), url)
        media_type = kind if kind != "media" else media_of(content_type)
        allowed, limit = MEDIA[media_type]
        if allowed is not None and content_type is not None and content_type not in allowed:
            raise InvalidMessage(f"metacloud: {content_type} is not a supported {media_type} type "
                                 f"(supported: {', '.join(sorted(allowed))})")
        check_size("metacloud", f"the {media_type}", options.get("size_bytes"), limit)
        media: dict[str, Any] = {"link": url}
        if media_type != "audio":  # s2: audio has no caption
            text = check_text("metacloud", "media", caption, required=False, what="caption")
            if text:
                media["caption"] = text
        if media_type == "document" and options.get("filename"):
            media["filename"] = str(options["filename"])
        return media_type, media

    def template(self, options: Mapping[str, Any], variables: Mapping[str, str]) -> dict[str, Any]:
        """s2 "Template": name, language and the variable parts, filled from the recipient's columns."""
        name = options.get("template")
        if not isinstance(name, str) or not TEMPLATE_NAME.match(name):
            raise InvalidMessage(f"metacloud: a template message needs options 'template' (its name), got {name!r}")
        language = options.get("language") or "en_US"
        if not isinstance(language, str) or not LANGUAGE_CODE.match(language):
            raise InvalidMessage(f"metacloud: language {language!r} is not a code like en or en_US")
        template: dict[str, Any] = {"name": name, "language": {"code": language}}
        components = template_components(options.get("slots") or [], variables)
        if components:
            template["components"] = components
        return template

    # ------------------------------------------------------------------ answers

    def parse_result(self, answer: HttpAnswer, message: Outbound) -> SendResult:
        body = answer.body
        if answer.is_json and isinstance(body, dict):
            error = body.get("error")
            if isinstance(error, dict) and "code" in error:
                return self.error_result(error, answer)
            messages = body.get("messages")
            if 200 <= answer.status < 300 and isinstance(messages, list) and messages \
                    and isinstance(messages[0], dict) and messages[0].get("id"):
                wamid, problem = id_text(messages[0]["id"], "messages[0].id")
                if problem is None:
                    # s2: held_for_quality_assessment and paused keep their wamid; a webhook settles them
                    return self.result(OUTCOMES["accepted"], code=None, answer=answer, provider_message_id=wamid)
        if answer.status == 429:
            return self.result(OUTCOMES["HTTP 429"], code="HTTP 429", answer=answer)
        if answer.status >= 500:
            return self.result(OUTCOMES["HTTP 5xx"], code=f"HTTP {answer.status}", answer=answer)
        return self.undocumented(answer)

    def error_result(self, error: Mapping[str, Any], answer: HttpAnswer) -> SendResult:
        """s3: classified by `code` (and 100's subcode 33), never by the HTTP status or the message title."""
        key = error_key(error.get("code"), error.get("error_subcode"))
        if key is None:
            return self.undocumented(answer, f"Graph error code {error.get('code')!r} is not in the table")
        rule = OUTCOMES[key]
        details = (error.get("error_data") or {}).get("details") if isinstance(error.get("error_data"), dict) else None
        result = self.result(rule, code=str(error.get("code")), answer=answer, retry_after=WAITS.get(key),
                             detail=f"{rule.reason}: {details}" if details else rule.reason)
        result.recipient_only = key in RECIPIENT_ONLY
        result.template_held = key in TEMPLATE_HELD
        return result

    @classmethod
    def reason_of(cls, error_code: str) -> str | None:
        rule = rule_of(error_code)
        return rule.reason if rule is not None else None

    # ------------------------------------------------------------------ templates (s6)

    def list_templates(self) -> list[dict]:
        """Every template of the account's WABA, following Graph's cursor paging to the end."""
        path = TEMPLATES_PATH.format(version=self.version, waba_id=self.account.waba_id)
        params: dict[str, Any] = {"fields": TEMPLATE_FIELDS, "limit": UNCERTAIN["templates_page_size"]}
        templates: list[dict] = []
        for _page in range(1000):
            answer = self.call(GatewayRequest("GET", path, params=params))
            body = answer.body if answer.is_json and isinstance(answer.body, dict) else {}
            error = body.get("error")
            if isinstance(error, dict):
                rule = rule_of(error.get("code"), error.get("error_subcode")) or Rule(A.TRANSIENT, "Graph error")
                raise GatewayError(rule.outcome, str(error.get("code")), self.redact(rule.reason),
                                   raw=self.raw_of(answer))
            if answer.status != 200 or not isinstance(body.get("data"), list):
                raise GatewayError(A.TRANSIENT, f"HTTP {answer.status}", "the template list could not be read",
                                   raw=self.raw_of(answer))
            templates.extend(template_facts(item) for item in body["data"] if isinstance(item, dict))
            paging = body.get("paging") if isinstance(body.get("paging"), dict) else {}
            after = (paging.get("cursors") or {}).get("after") if isinstance(paging.get("cursors"), dict) else None
            if not paging.get("next") or not after:
                break
            params = {**params, "after": after}
        return templates

    # ------------------------------------------------------------------ webhooks (s5)

    @classmethod
    def webhook_signed(cls, account: AccountConfig, headers: Mapping[str, str], body: bytes) -> bool | None:
        """s5: `X-Hub-Signature-256: sha256=<hex>`, the lowercase HMAC-SHA256 of the raw body keyed with the app
        secret, compared in constant time. The raw bytes: Meta escapes non-ASCII, and a re-serialised body
        would hash differently."""
        given = headers.get(SIGNATURE_HEADER) or ""
        scheme, _, signature = given.partition("=")
        secret = account.secret("app_secret").encode("utf-8")
        expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
        return scheme == "sha256" and hmac.compare_digest(signature.strip().lower().encode(), expected.encode())

    @classmethod
    def webhook_challenge(cls, account: AccountConfig, query: Mapping[str, str]) -> str | None:
        """s5 verification: `hub.mode=subscribe` and our verify token give back `hub.challenge`; else None."""
        token = query.get("hub.verify_token") or ""
        expected = account.secret("verify_token")
        if query.get("hub.mode") != "subscribe" or not hmac.compare_digest(token.encode(), expected.encode()):
            return None
        return query.get("hub.challenge") or ""

    @classmethod
    def parse_webhook(cls, body: bytes, content_type: str) -> list[StatusUpdate | Inbound]:
        return parse_notification(body)

    @classmethod
    def route_webhook(cls, account: AccountConfig,
                      events: list[StatusUpdate | Inbound]) -> dict[str | None, list[StatusUpdate | Inbound]]:
        # only events naming another number need the other accounts (blast.toml read again)
        others = load_accounts() if any(event.number_id not in (None, str(account.phone_number_id))
                                        for event in events) else {}
        return route(account, others, events)


# ---------------------------------------------------------------------- message parts


def media_of(content_type: str | None) -> str:
    """The media type (image, video, audio, document) a content type is sent as."""
    major = (content_type or "").split("/")[0]
    return major if major in ("image", "video", "audio") else "document"


def template_components(slots: Any, variables: Mapping[str, str]) -> list[dict]:
    """s2: header, body and button components, each parameter's value from its column, in template order."""
    if not isinstance(slots, list | tuple):
        raise InvalidMessage("metacloud: template slots must be a list")
    header: list[dict] = []
    body: list[dict] = []
    buttons: dict[tuple[int, str], list[dict]] = {}
    for slot in slots:
        if not isinstance(slot, Mapping):
            raise InvalidMessage(f"metacloud: a template slot must be a mapping, got {slot!r}")
        column = slot.get("column")
        value = variables.get(column) if isinstance(column, str) else None
        if value is None or str(value).strip() == "":
            # s2: the counts must match component by component (132000): checked here before sending
            raise InvalidMessage(f"metacloud: template parameter from column {column!r} is empty for this "
                                 f"recipient (the template needs every parameter: 132000)")
        value = str(value)
        component = slot.get("component")
        if component == "body":
            parameter = {"type": "text", "text": value}
            if slot.get("name"):
                parameter["parameter_name"] = str(slot["name"])  # s2: named-parameter templates
            body.append(parameter)
        elif component == "header":
            header_format = str(slot.get("format") or "text").lower()
            if header_format == "text":
                header.append({"type": "text", "text": value})
            elif header_format in ("image", "video", "document"):
                header.append({"type": header_format, header_format: {"link": check_url(
                    "metacloud", f"the {header_format} header (column {column!r})", value)}})
            else:
                raise InvalidMessage(f"metacloud: header format {header_format!r} takes no column parameter")
        elif component == "button":
            sub_type = str(slot.get("sub_type") or "url").lower()
            index = slot.get("index", 0)
            if isinstance(index, bool) or not str(index).isdigit() or not 0 <= int(index) <= 9:
                raise InvalidMessage(f"metacloud: button index must be 0 to 9, got {index!r}")
            kinds = {"url": ("text", "text"), "quick_reply": ("payload", "payload"),
                     "copy_code": ("coupon_code", "coupon_code")}
            if sub_type not in kinds:
                raise InvalidMessage(f"metacloud: button sub_type {sub_type!r} is not url, quick_reply or copy_code")
            parameter_type, field = kinds[sub_type]
            buttons.setdefault((int(index), sub_type), []).append({"type": parameter_type, field: value})
        else:
            raise InvalidMessage(f"metacloud: template component {component!r} is not header, body or button")
    components: list[dict] = []
    if header:
        components.append({"type": "header", "parameters": header})
    if body:
        components.append({"type": "body", "parameters": body})
    for (index, sub_type), parameters in sorted(buttons.items()):
        components.append({"type": "button", "sub_type": sub_type,
                           "index": str(index) if UNCERTAIN["button_index_as_string"] else index,
                           "parameters": parameters})
    return components


def interactive(kind: str, text: str | None, options: Mapping[str, Any]) -> dict[str, Any]:
    """s2 "Interactive": reply buttons (1 to 3) or a list (sections of rows)."""
    part: dict[str, Any] = {"type": "button" if kind == "buttons" else "list",
                            "body": {"text": check_text("metacloud", kind, text)}}
    header = check_length("metacloud", "header", options.get("header"), HEADER_TEXT_MAX)
    if header:
        part["header"] = {"type": "text", "text": header}
    footer = check_length("metacloud", "footer", options.get("footer"), FOOTER_MAX)
    if footer:
        part["footer"] = {"text": footer}
    if kind == "buttons":
        buttons = options.get("buttons")
        if not isinstance(buttons, list | tuple) or not 1 <= len(buttons) <= BUTTONS_MAX:
            raise InvalidMessage(f"metacloud: a buttons message needs options 'buttons': 1 to {BUTTONS_MAX}")
        replies = []
        for number, button in enumerate(buttons, start=1):
            spec = {"title": button} if isinstance(button, str) else button
            if not isinstance(spec, Mapping):
                raise InvalidMessage(f"metacloud: a button must be a title or a mapping, got {button!r}")
            title = check_length("metacloud", "button title", spec.get("title"), BUTTON_TITLE_MAX, required=True)
            replies.append({"type": "reply", "reply": {"id": str(spec.get("id") or f"button-{number}"),
                                                       "title": title}})
        part["action"] = {"buttons": replies}
        return part
    label = check_length("metacloud", "list button text (options 'button_text')", options.get("button_text"),
                         LIST_BUTTON_MAX, required=True)
    sections = list_sections(options)
    rows = sum(len(section["rows"]) for section in sections)
    if not 1 <= rows <= UNCERTAIN["list_rows_max"] or len(sections) > SECTIONS_MAX:
        raise InvalidMessage(f"metacloud: a list holds 1 to {UNCERTAIN['list_rows_max']} rows in at most "
                             f"{SECTIONS_MAX} sections, got {rows} rows in {len(sections)}")
    part["action"] = {"button": label, "sections": sections}
    return part


def list_sections(options: Mapping[str, Any]) -> list[dict]:
    """`sections` as Meta writes them, or flat `rows` each naming its `section`."""
    given = options.get("sections")
    if given is None:
        grouped: dict[str, list] = {}
        for row in options.get("rows") or []:
            section = str(row.get("section") or "") if isinstance(row, Mapping) else ""
            grouped.setdefault(section, []).append(row)
        given = [{"title": title, "rows": rows} for title, rows in grouped.items()]
    if not isinstance(given, list | tuple):
        raise InvalidMessage("metacloud: sections must be a list")
    sections = []
    number = 0
    for section in given:
        if not isinstance(section, Mapping) or not isinstance(section.get("rows"), list | tuple):
            raise InvalidMessage(f"metacloud: a section needs rows, got {section!r}")
        rows = []
        for row in section["rows"]:
            number += 1
            spec = {"title": row} if isinstance(row, str) else row
            if not isinstance(spec, Mapping):
                raise InvalidMessage(f"metacloud: a list row must be a title or a mapping, got {row!r}")
            item = {"id": str(spec.get("id") or f"row-{number}"),
                    "title": check_length("metacloud", "row title", spec.get("title"), ROW_TITLE_MAX, required=True)}
            description = check_length("metacloud", "row description", spec.get("description"), ROW_DESCRIPTION_MAX)
            if description:
                item["description"] = description
            rows.append(item)
        entry: dict[str, Any] = {"rows": rows}
        title = check_length("metacloud", "section title", section.get("title"), ROW_TITLE_MAX)
        if title:
            entry["title"] = title
        sections.append(entry)
    return sections


# ---------------------------------------------------------------------- templates (s6)


def template_facts(item: Mapping[str, Any]) -> dict[str, Any]:
    """One template of the listing: its facts, its text to show, and its parameters in order (`slots`: body
    {{1}}.. first, then the header's, then each button's), counted from its placeholders (s6)."""
    components = [c for c in item.get("components") or [] if isinstance(c, Mapping)]
    slots: list[dict] = []
    lines: list[str] = []
    header_slots: list[dict] = []
    button_slots: list[dict] = []
    for component in components:
        kind = str(component.get("type") or "").upper()
        text = str(component.get("text") or "")
        if kind == "HEADER":
            header_format = str(component.get("format") or "TEXT").upper()
            if header_format == "TEXT":
                lines.append(text)
                header_slots += [{"component": "header", "format": "text", "placeholder": name}
                                 for name in _placeholders(text)[:1]]
            elif header_format in ("IMAGE", "VIDEO", "DOCUMENT"):
                header_slots.append({"component": "header", "format": header_format.lower(),
                                     "placeholder": header_format.lower()})
        elif kind == "BODY":
            lines.append(text)
            named = str(item.get("parameter_format") or "").upper() == "NAMED"
            slots += [{"component": "body", "placeholder": name, **({"name": name} if named else {})}
                      for name in _placeholders(text)]
        elif kind == "FOOTER":
            lines.append(text)
        elif kind == "BUTTONS":
            for index, button in enumerate(component.get("buttons") or []):
                if not isinstance(button, Mapping):
                    continue
                button_type = str(button.get("type") or "").upper()
                if button_type == "URL" and PLACEHOLDER.search(str(button.get("url") or "")):
                    button_slots.append({"component": "button", "index": index, "sub_type": "url",
                                         "placeholder": f"button {index}"})
                elif button_type == "COPY_CODE":
                    button_slots.append({"component": "button", "index": index, "sub_type": "copy_code",
                                         "placeholder": f"button {index}"})
                label = button.get("text")
                if label:
                    lines.append(f"[{label}]")
    return {
        "name": str(item.get("name") or ""),
        "language": str(item.get("language") or ""),
        "status": str(item.get("status") or "").upper(),
        "category": str(item.get("category") or "").upper(),
        "text": "\n".join(line for line in lines if line),
        "slots": slots + header_slots + button_slots,
        "components": components,
    }


def _placeholders(text: str) -> list[str]:
    """The distinct {{n}} (or {{name}}) of a text, in order of first use; positional ones sorted by number."""
    seen: list[str] = []
    for match in PLACEHOLDER.finditer(text):
        if match.group(1) not in seen:
            seen.append(match.group(1))
    if all(name.isdigit() for name in seen):
        seen.sort(key=int)
    return seen


# ---------------------------------------------------------------------- notifications (s5)


def parse_notification(body: bytes) -> list[StatusUpdate | Inbound]:
    """Every status and inbound message of one POST: entries, changes, statuses and messages are arrays."""
    document = json_document(body)
    if not isinstance(document, dict) or not isinstance(document.get("entry"), list):
        raise BadPayload("not a WhatsApp Business Account notification (no entry array)")
    events: list[StatusUpdate | Inbound] = []
    for entry in document["entry"]:
        for change in (entry.get("changes") or []) if isinstance(entry, dict) else []:
            value = change.get("value") if isinstance(change, dict) else None
            if not isinstance(value, dict):
                continue
            metadata = value.get("metadata")
            number_id = text_or_none(metadata.get("phone_number_id")) if isinstance(metadata, dict) else None
            events += [replace(status_update(item), number_id=number_id)
                       for item in value.get("statuses") or [] if isinstance(item, dict)]
            for item in value.get("messages") or []:
                if isinstance(item, dict):
                    events += [replace(inbound, number_id=number_id) for inbound in inbound_messages(item)]
    return events


def route(account: AccountConfig, accounts: Mapping[str, AccountConfig],
          events: list[StatusUpdate | Inbound]) -> dict[str | None, list[StatusUpdate | Inbound]]:
    """s5: one callback address serves every number of the app, so each event goes to the account whose
    `phone_number_id` its `metadata` names, among the accounts this app's secret signs for (the one the address
    names, and those sharing its app secret); None for a number no such account has. An event without the
    metadata is the addressed account's."""
    app_secret = account.secret("app_secret")
    numbers = {str(getattr(other, "phone_number_id", "")): other.name for other in accounts.values()
               if other.provider == account.provider and getattr(other, "app_secret", None) is not None
               and hmac.compare_digest(other.secret("app_secret").encode(), app_secret.encode())}
    numbers[str(account.phone_number_id)] = account.name
    routed: dict[str | None, list[StatusUpdate | Inbound]] = {account.name: []}
    for event in events:
        name = account.name if event.number_id is None else numbers.get(event.number_id)
        routed.setdefault(name, []).append(event)
    return routed


def status_update(item: Mapping[str, Any]) -> StatusUpdate:
    if item.get("id") in (None, ""):
        raise BadPayload("a status without its wamid (id)")
    wamid, problem = id_text(item["id"], "id")
    word = str(item.get("status") or "").strip().lower()
    kind = STATUSES.get(word)
    documented = kind is not None
    if kind is None:
        kind = word_family(word)
    errors = [error for error in item.get("errors") or [] if isinstance(error, dict)]
    code = errors[0].get("code") if errors else None
    rule = rule_of(code) if code is not None else None
    reason = None
    if kind == EventKind.FAILED:
        if rule is not None and rule.outcome == Outcome.THROTTLED:
            kind = EventKind.THROTTLED  # sent again later, like any throttled answer
        title = errors[0].get("title") or errors[0].get("message") if errors else None
        reason = rule.reason if rule is not None else (str(title or word) if documented else None)
        if reason is None:
            reason = undocumented_reason(word, kind)
    elif not documented:
        reason = undocumented_reason(word, kind)
    reference = item.get("biz_opaque_callback_data")
    return StatusUpdate(
        provider_message_id=wamid,
        kind=kind,
        error_code=str(code) if code is not None and kind in (EventKind.FAILED, EventKind.THROTTLED) else None,
        reason=reason,
        occurred_at=from_unix(item.get("timestamp")),
        reference=str(reference) if isinstance(reference, str | int) and reference != "" else None,
        raw=dict(item),
        outcome=rule.outcome if rule is not None and kind in (EventKind.FAILED, EventKind.THROTTLED) else None,
        problem=problem,
    )


def inbound_messages(item: Mapping[str, Any]) -> list[Inbound]:
    """s5 inbound: the words a STOP can be in are `text.body`, and a quick-reply tap's `button.payload` and
    `button.text` alike (each given as its own Inbound when they differ); other types keep their type's name."""
    sender = item.get("from")
    if not sender or isinstance(sender, dict | list):
        raise BadPayload("an inbound message without 'from'")
    kind = str(item.get("type") or "")
    texts: list[str] = []
    if kind == "text" and isinstance(item.get("text"), dict):
        texts.append(str(item["text"].get("body") or ""))
    elif kind == "button" and isinstance(item.get("button"), dict):
        texts += [str(item["button"][key]) for key in ("payload", "text") if item["button"].get(key)]
    elif kind == "interactive" and isinstance(item.get("interactive"), dict):
        reply = item["interactive"].get("button_reply") or item["interactive"].get("list_reply") or {}
        texts += [str(reply[key]) for key in ("id", "title") if isinstance(reply, dict) and reply.get(key)]
    texts = list(dict.fromkeys(texts)) or [f"[{kind or 'message'}]"]
    return [Inbound(from_phone=normalise_phone(sender), text=text, received_at=from_unix(item.get("timestamp")),
                    provider_message_id=text_or_none(item.get("id")), raw=dict(item)) for text in texts]
