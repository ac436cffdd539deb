"""Message templates a gateway keeps and approves (Meta's Cloud API: metacloud.md s6), for any gateway whose
spec says `templates`: `blast templates sync ACCOUNT` copies the account's list into `gateway_template`
(name, language, status, category, the text to show, and its parameters in order); a template campaign names
one, and only an APPROVED one is sent.

A template's parameters (`slots`) come in the order the gateway's module gives them (for Meta: the body's
{{1}}, {{2}}, ... first, then the header's, then each button's). A campaign maps each slot to a column of the
contact list (`blast launch --wa-template NAME --wa-param COLUMN ...`, in that order), and the text it renders
(`campaigns.templates`) is the template's text with every parameter written as its column: a recipient whose
cell is empty is skipped at ingest with `missing variable: <column>`, so every recipient sent has every
parameter (the per-recipient parameter count, checked before sending).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Engine

from campaigns import dispatch
from campaigns.errors import BlastError
from campaigns.ingest.sources import identifiers_for
from campaigns.models import GatewayTemplate, utcnow
from campaigns.settings import AccountConfig

log = logging.getLogger(__name__)

SENDABLE = "APPROVED"
KIND = "template"  # the message kind of a template campaign
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
_JINJA_MARKS = re.compile(r"\{[{%#]|[}%#]\}")


@dataclass(frozen=True)
class Template:
    account_name: str
    name: str
    language: str
    status: str
    category: str
    text: str
    slots: list[dict]

    @property
    def approved(self) -> bool:
        return self.status == SENDABLE

    def as_json(self) -> dict:
        return {"account": self.account_name, "name": self.name, "language": self.language, "status": self.status,
                "category": self.category, "text": self.text, "parameters": len(self.slots),
                "slots": [describe(slot) for slot in self.slots]}


def describe(slot: dict) -> str:
    """A slot as the operator reads it: "body {{1}}", "header image", "button 0 (url)"."""
    component = slot.get("component")
    if component == "body":
        return f"body {{{{{slot.get('placeholder')}}}}}"
    if component == "header":
        return f"header {slot.get('format', 'text')}"
    return f"button {slot.get('index')} ({slot.get('sub_type')})"


def supports(account: AccountConfig) -> bool:
    return bool(dispatch.gateway_spec(account.provider).templates)


def _require(account: AccountConfig) -> None:
    if not supports(account):
        raise BlastError(f"account {account.name!r}: provider {account.provider} keeps no templates")


def sync(engine: Engine, account: AccountConfig) -> list[Template]:
    """Replace the stored list of the account's templates with the gateway's, and return it."""
    _require(account)
    listed = dispatch.gateway_templates(account)
    now = utcnow()
    rows = {(item["name"], item["language"]): {
        "account_name": account.name, "name": item["name"], "language": item["language"],
        "status": item.get("status") or "", "category": item.get("category") or "", "text": item.get("text") or "",
        "slots": json.dumps(item.get("slots") or []), "synced_at": now} for item in listed if item.get("name")}
    with engine.begin() as connection:
        connection.execute(delete(GatewayTemplate).where(GatewayTemplate.account_name == account.name))
        if rows:
            connection.execute(insert(GatewayTemplate), list(rows.values()))
    return stored(engine, account.name)


def stored(engine: Engine, account_name: str | None = None) -> list[Template]:
    """The templates last synced (of one account, or every account), by account, name and language."""
    query = select(GatewayTemplate).order_by(GatewayTemplate.account_name, GatewayTemplate.name,
                                             GatewayTemplate.language)
    if account_name is not None:
        query = query.where(GatewayTemplate.account_name == account_name)
    with engine.connect() as connection:
        return [Template(row.account_name, row.name, row.language, row.status, row.category, row.text,
                         json.loads(row.slots or "[]")) for row in connection.execute(query).all()]


def find(engine: Engine, account: AccountConfig, name: str, language: str | None = None) -> Template:
    """The stored template `name` (in `language`, or its only language); refreshed from the gateway when it is
    not stored yet. BlastError when it does not exist or is not APPROVED."""
    _require(account)

    def matching(templates):
        return [t for t in templates if t.name == name and (language is None or t.language == language)]

    found = matching(stored(engine, account.name)) or matching(sync(engine, account))
    if not found:
        raise BlastError(f"account {account.name!r} has no template {name!r}"
                         + (f" in {language}" if language else "") + " (blast templates list)")
    if len(found) > 1:
        raise BlastError(f"template {name!r} exists in {', '.join(t.language for t in found)}: pass --language")
    template = found[0]
    if not template.approved:
        raise BlastError(f"template {name!r} ({template.language}) is {template.status}, not {SENDABLE}: "
                         f"only an approved template may be sent")
    return template


# How a campaign paused because its gateway holds the template says so (PauseReason.CONTENT): resume_held looks
# for it.
HELD = "template held by the gateway"


def held_detail(code: str) -> str:
    return (f"{HELD} (code {code}: paused for low quality); the campaign resumes by itself once the template is "
            f"{SENDABLE} again")


def resume_held(engine: Engine) -> list[int]:
    """Resume the campaigns paused because their gateway held their template (a send answered
    SendResult.template_held) whose template the gateway now lists as APPROVED; returns their ids. Each account
    with such a campaign has its list synced once; one whose gateway cannot be asked now is asked next time."""
    from campaigns import lifecycle
    from campaigns.errors import Conflict
    from campaigns.models import Campaign
    from campaigns.settings import ConfigError, get_account
    from campaigns.states import CampaignStatus, PauseReason

    with engine.connect() as connection:
        held = connection.execute(select(Campaign.id, Campaign.account_name, Campaign.options).where(
            Campaign.status == CampaignStatus.PAUSED, Campaign.pause_reason == PauseReason.CONTENT,
            Campaign.pause_detail.startswith(HELD))).all()
    resumed = []
    for account_name in sorted({row.account_name for row in held}):
        try:
            listed = {(t.name, t.language): t for t in sync(engine, get_account(account_name))}
        except (BlastError, ConfigError) as problem:
            log.warning("templates of account %s could not be synced (%s): held campaigns wait", account_name,
                        problem)
            continue
        for row in (row for row in held if row.account_name == account_name):
            options = json.loads(row.options or "{}")
            template = listed.get((options.get("template"), options.get("language")))
            if template is None or not template.approved:
                continue
            try:
                lifecycle.resume(row.id)
            except Conflict:  # resumed, or cancelled, meanwhile
                continue
            resumed.append(row.id)
    return resumed


def for_launch(engine: Engine, account: AccountConfig, name: str, language: str | None,
               columns: list[str]) -> tuple[str, dict]:
    """`campaign_parts` of the approved template `name`, with the account's list refreshed from the gateway first
    (metacloud.md s6: before each launch)."""
    sync(engine, account)
    return campaign_parts(find(engine, account, name, language), columns)


def campaign_parts(template: Template, columns: list[str]) -> tuple[str, dict]:
    """(the text each recipient's message renders, the campaign's options) for sending `template` with its
    parameters from `columns` (header names or identifiers), one per slot in order; BlastError when the count
    differs."""
    if len(columns) != len(template.slots):
        wanted = ", ".join(describe(slot) for slot in template.slots) or "none"
        raise BlastError(f"template {template.name!r} takes {len(template.slots)} parameters ({wanted}); "
                         f"{len(columns)} --wa-param columns were given")
    identifiers = [identifiers_for([column])[0] for column in columns]  # one column may fill several
    slots = [{**slot, "column": column} for slot, column in zip(template.slots, identifiers, strict=True)]
    return render_source(template, slots), {"kind": KIND, "template": template.name,
                                            "language": template.language, "slots": slots}


def render_source(template: Template, slots: list[dict]) -> str:
    """The template's text with each body and text-header placeholder written as its column (Jinja), and the
    other parameters (media headers, buttons) listed after it, so a recipient missing any is skipped."""
    body = {str(slot.get("placeholder")): slot["column"] for slot in slots if slot.get("component") == "body"}
    header = next((slot for slot in slots if slot.get("component") == "header" and slot.get("format") == "text"),
                  None)
    lines = template.text.split("\n")
    rendered = []
    for number, line in enumerate(lines):
        if header is not None and number == 0:  # the gateway's text starts with a text header's line
            rendered.append(_jinja(line, lambda _name, column=header["column"]: column))
        else:
            rendered.append(_jinja(line, lambda name: body.get(name)))
    others = [slot for slot in slots if slot.get("component") == "button"
              or (slot.get("component") == "header" and slot.get("format") != "text")]
    rendered += [f"[{describe(slot)}: {{{{ {slot['column']} }}}}]" for slot in others]
    return "\n".join(rendered)


def _jinja(line: str, column_of) -> str:
    """A line of the gateway's text as Jinja: placeholders as their columns, anything Jinja would read as its
    own marks written as literal text."""
    pieces, last = [], 0
    for match in _PLACEHOLDER.finditer(line):
        pieces.append(_literal(line[last:match.start()]))
        column = column_of(match.group(1))
        pieces.append("{{ " + column + " }}" if column else _literal(match.group(0)))
        last = match.end()
    pieces.append(_literal(line[last:]))
    return "".join(pieces)


def _literal(text: str) -> str:
    return _JINJA_MARKS.sub(lambda mark: "{{ '" + mark.group(0) + "' }}", text)
