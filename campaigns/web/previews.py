"""The compose preview, shared by the page (no script) and its JSON twin (typed-ahead): the first
recipients' texts with the gateway's length check, and any problem of the template or of the extras."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from campaigns import gateway_limits
from campaigns.errors import BlastError
from campaigns.settings import AccountConfig
from campaigns.templates import TemplateProblem
from campaigns.web import compose, uploads


@dataclass
class ComposePreview:
    extras: compose.Extras | None  # None when the extras do not fit the gateway (see problem)
    previews: list[dict] = field(default_factory=list)  # uploads.render_preview's items
    problem: str | None = None  # a template that does not parse, or extras the gateway refuses
    limit: int | None = None  # the gateway's text limit for this kind
    unit: str | None = None  # characters | bytes

    def as_dict(self) -> dict:
        return {"kind": self.extras.kind if self.extras else None, "previews": self.previews,
                "problem": self.problem, "limit": self.limit, "unit": self.unit}


def compose_preview(upload: uploads.Upload, account: AccountConfig | None, values: Mapping[str, str], *,
                    region: str, phone_column: str | None, rows: int = uploads.PREVIEW_RECIPIENTS
                    ) -> ComposePreview:
    """Render the first `rows` valid recipients of the upload with `values["template"]` for `account`."""
    if account is None:
        return ComposePreview(None, problem="no account configured (blast.toml)")
    try:
        extras = compose.extras_from_form(values, account.provider, account)
    except compose.ComposeProblem as problem:
        return ComposePreview(None, problem=str(problem))
    result = ComposePreview(extras)
    result.limit, result.unit = gateway_limits.text_limit(account.provider, extras.kind)
    template = extras.text or values.get("template") or ""
    if not template:
        return result
    try:
        result.previews = uploads.render_preview(upload, template=template, provider=account.provider,
                                                 region=region, phone_column=phone_column, kind=extras.kind,
                                                 n=rows)
    except (TemplateProblem, BlastError) as problem:
        result.problem = str(problem)
        return result
    first_text = next((p["text"] for p in result.previews if p["text"] is not None and not p["skip_reason"]), None)
    try:
        compose.check_with_gateway(account, extras, first_text)
    except compose.ComposeProblem as problem:
        result.problem = str(problem)
    return result
