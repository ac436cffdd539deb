"""What the compose form sends besides the text: a media URL, buttons or a list, where the account's gateway
offers them (each gateway's client module lists its kinds), turned into launch's `media_url` and `options`.

The form's fields:
  kind          text | media | buttons | list (offered per gateway: its spec's composer_kinds)
  media_url     http(s) URL of an image, video or document (media; buttons where the gateway takes one)
  buttons       one button a line: `Label` (quick reply), `Label | +256701234567` (call) or
                `Label | https://...` (link)
  footer        small text under buttons or a list
  list_header, list_button, list_rows (one row a line: `section:title:description`)
  wa_template   an approved template of the account's gateway, `name|language` (template; gateways that keep
                templates: campaigns.approved_templates); a template that is not APPROVED is refused
  wa_params     the column of each of its parameters, comma-separated, in the template's order

A finished message is checked by the gateway's own client (`validate`), so the page refuses exactly what
the gateway's document refuses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from campaigns.errors import BlastError
from campaigns.settings import AccountConfig

TEXT, MEDIA, BUTTONS, LIST, TEMPLATE = "text", "media", "buttons", "list", "template"
FORM_FIELDS = ("kind", "media_url", "buttons", "footer", "list_header", "list_button", "list_rows", "wa_template",
               "wa_params")


class ComposeProblem(BlastError):
    """The extras do not fit the gateway (the text says which field and why)."""


@dataclass(frozen=True)
class Extras:
    """What launch and a test send need beyond the template."""

    kind: str  # text | media | buttons | list | template
    media_url: str | None = None
    options: dict = field(default_factory=dict)  # launch's `options`, with "kind" for buttons and lists
    # an approved template's text with each parameter written as its column: what each recipient renders
    text: str | None = None
    template: object = None  # the approved template (campaigns.approved_templates.Template)

    def outbound_options(self) -> dict:
        """The options a gateway client reads (as the send path builds them from the campaign row)."""
        options = {key: value for key, value in self.options.items() if key != "kind"}
        if self.media_url:
            options.setdefault("media_url", self.media_url)
        return options


def _spec(provider: str):
    from workers.providers.registry import spec_of

    return spec_of(provider)


def kinds_for(provider: str) -> tuple[str, ...]:
    """The kinds the page composes for a gateway (its spec's composer_kinds: templates and OTPs need names
    approved at the gateway, which the page does not know)."""
    return _spec(provider).composer_kinds


def features(accounts: Mapping[str, AccountConfig]) -> dict[str, dict]:
    """Per account: its provider and the kinds the page offers ({"provider", "kinds", "media_with_buttons"})."""
    return {name: {"provider": account.provider, "kinds": list(kinds_for(account.provider)),
                   "media_with_buttons": _spec(account.provider).media_with_buttons}
            for name, account in accounts.items()}


def _lines(text: str) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def parse_buttons(text: str) -> list:
    """`Label` -> a quick reply; `Label | value` -> a call (a phone) or a link (an http(s) URL)."""
    buttons: list = []
    for line in _lines(text):
        label, bar, value = (part.strip() for part in line.partition("|"))
        if not bar:
            buttons.append(label)
        elif value.lower().startswith(("http://", "https://")):
            buttons.append({"type": "url", "text": label, "value": value})
        else:
            buttons.append({"type": "call", "text": label, "value": value})
    return buttons


def approved_for(account: AccountConfig | None) -> list:
    """The account's approved templates for the page (campaigns.approved_templates), read from its gateway the
    first time; empty for gateways that keep none, or when the gateway cannot be asked now."""
    from campaigns import approved_templates
    from campaigns.db import get_engine

    if account is None or not approved_templates.supports(account):
        return []
    engine = get_engine()
    stored = approved_templates.stored(engine, account.name)
    if not stored:
        try:
            stored = approved_templates.sync(engine, account)
        except BlastError:
            return []
    return [template for template in stored if template.approved]


def template_extras(form: Mapping[str, str], account: AccountConfig | None) -> Extras:
    """An approved template with a column for each parameter; ComposeProblem for one that is not approved, or a
    column count that differs."""
    from campaigns import approved_templates
    from campaigns.db import get_engine

    chosen = (form.get("wa_template") or "").strip()
    if account is None or not chosen:
        raise ComposeProblem("pick an approved template")
    name, _, language = chosen.partition("|")
    columns = [column.strip() for column in (form.get("wa_params") or "").split(",") if column.strip()]
    try:
        template = approved_templates.find(get_engine(), account, name.strip(), language.strip() or None)
        text, options = approved_templates.campaign_parts(template, columns)
    except BlastError as problem:
        raise ComposeProblem(str(problem)) from None
    return Extras(TEMPLATE, None, options, text=text, template=template)


def extras_from_form(form: Mapping[str, str], provider: str, account: AccountConfig | None = None) -> Extras:
    """The form's extras for a gateway; ComposeProblem when a field is missing or not offered."""
    kind = (form.get("kind") or "").strip() or TEXT
    media_url = (form.get("media_url") or "").strip() or None
    if kind == TEXT and media_url:
        kind = MEDIA  # the form without the kind selector (no script, older pages): a URL means media
    offered = kinds_for(provider)
    if kind not in offered:
        raise ComposeProblem(f"{provider} accounts take {', '.join(offered)} messages here, not {kind}")
    footer = (form.get("footer") or "").strip()
    if kind == TEMPLATE:
        return template_extras(form, account)
    if kind == MEDIA:
        if not media_url:
            raise ComposeProblem("a media message needs its media URL")
        return Extras(MEDIA, media_url)
    if kind == BUTTONS:
        buttons = parse_buttons(form.get("buttons") or "")
        if not buttons:
            raise ComposeProblem("give at least one button (one a line)")
        if media_url and not _spec(provider).media_with_buttons:
            raise ComposeProblem(f"{provider} buttons cannot carry a media file")
        options = {"kind": BUTTONS, "buttons": buttons, **({"footer": footer} if footer else {})}
        return Extras(BUTTONS, media_url, options)
    if kind == LIST:
        options = {"kind": LIST, "button_text": (form.get("list_button") or "").strip(),
                   "rows": _lines(form.get("list_rows") or "")}
        if (form.get("list_header") or "").strip():
            options["header"] = form["list_header"].strip()
        if footer:
            options["footer"] = footer
        return Extras(LIST, None, options)
    return Extras(TEXT)


def check_with_gateway(account: AccountConfig, extras: Extras, text: str | None) -> None:
    """Ask the gateway's client whether a message of these extras (and `text`, or a stand-in when there is
    no rendered text yet) is one its document accepts; ComposeProblem with the client's words if not."""
    from workers.providers.base import InvalidMessage, Outbound
    from workers.providers.registry import client_class

    if extras.kind == TEMPLATE:  # approved at the gateway; its parameters are checked per recipient at ingest
        return
    client = client_class(account.provider)(account)
    message = Outbound(message_id=0, to="+256701234567", text=text or "text", kind=extras.kind,
                       options=extras.outbound_options())
    try:
        client.validate(message)
    except InvalidMessage as problem:
        raise ComposeProblem(str(problem)) from None
    finally:
        client.close()


def launch_options(extras: Extras) -> dict | None:
    """launch's `options`: None for plain text and media (launch infers media from the URL)."""
    return dict(extras.options) or None


def compose_values(params) -> dict[str, str]:
    """The compose form's fields (template and extras) from a query or a posted form, as text."""
    names = ("template", "account", "region", "phone_column", "quiet_hours", *FORM_FIELDS)
    return {name: str(params.get(name) or "") for name in names}
