"""Text limits each gateway states, by message kind. Ingest skips a recipient whose rendered text breaks
one; the provider clients check the same limits before sending.

Each gateway's rows are in its module's spec (`GatewaySpec.text_limits`, every row naming its document);
`DEFAULT_LIMIT` is our assumption where a document is silent (WhatsApp's own limit on a text body).
"""

from __future__ import annotations

from functools import cache
from typing import Literal

Unit = Literal["characters", "bytes"]

# Kinds whose text is a media caption: the gateway's "media" row applies to them.
CAPTION_KINDS = frozenset({"image", "video", "document", "audio", "file_upload"})
# Assumption where a document is silent (Socnet, SMSGlobal text): WhatsApp's 4096-character body limit.
DEFAULT_LIMIT: tuple[int, Unit] = (4096, "characters")


@cache
def text_limit(provider: str, kind: str = "text") -> tuple[int, Unit]:
    """(limit, unit) of the text of a `kind` message on `provider`'s gateway."""
    from campaigns.dispatch import gateway_spec

    limits = gateway_spec(provider).text_limits
    if kind not in limits and kind in CAPTION_KINDS:
        kind = "media"
    return limits.get(kind, DEFAULT_LIMIT)


def measure(text: str, unit: Unit) -> int:
    return len(text.encode("utf-8")) if unit == "bytes" else len(text)


def too_long(text: str, provider: str, kind: str = "text") -> str | None:
    """The skip reason when `text` is over the gateway's limit for `kind`, else None."""
    limit, unit = text_limit(provider, kind)
    size = measure(text, unit)
    if size > limit:
        return f"text too long for {provider}: {size} {unit}, limit {limit}"
    return None
