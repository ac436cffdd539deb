"""Text limits each gateway states, by message kind. Ingest skips a recipient whose rendered text breaks
one; the provider clients check the same table before sending.

Every row names the document it comes from; `DEFAULT_LIMIT` is our assumption where a document is
silent (WhatsApp's own limit on a text message body).
"""

from __future__ import annotations

from typing import Literal

Unit = Literal["characters", "bytes"]

TEXT_LIMITS: dict[tuple[str, str], tuple[int, Unit]] = {
    ("devino", "text"): (1000, "characters"),  # devino.txt, Sending: text "Up to 1000 UTF-8 characters"
    ("devino", "media"): (1000, "characters"),  # same field, sent with contentUrl
    ("httpapi", "text"): (2000, "bytes"),  # httpapi.txt 1.1: "maximum 2000 bytes allowed in 1 part"
    ("httpapi", "media"): (2000, "bytes"),  # httpapi.txt 1.3: "5 mb file and 2000 bytes text"
    ("httpapi", "buttons"): (1024, "characters"),  # httpapi.txt 1.6-1.8: "maximum 1024 character text"
    ("httpapi", "list"): (1024, "characters"),  # httpapi.txt 1.9: "maximum 1024 character message text"
    ("smsglobal", "media"): (1024, "characters"),  # assumption: WhatsApp's caption limit
    ("devino", "template"): (1000, "characters"),  # devino.txt: the same text field goes with templateId
}
# Kinds whose text is a media caption: the gateway's "media" row applies to them.
CAPTION_KINDS = frozenset({"image", "video", "document", "audio", "file_upload"})
# Assumption where a document is silent (Socnet, SMSGlobal text): WhatsApp's 4096-character body limit.
DEFAULT_LIMIT: tuple[int, Unit] = (4096, "characters")


def text_limit(provider: str, kind: str = "text") -> tuple[int, Unit]:
    if (provider, kind) not in TEXT_LIMITS and kind in CAPTION_KINDS:
        kind = "media"
    return TEXT_LIMITS.get((provider, kind), DEFAULT_LIMIT)


def measure(text: str, unit: Unit) -> int:
    return len(text.encode("utf-8")) if unit == "bytes" else len(text)


def too_long(text: str, provider: str, kind: str = "text") -> str | None:
    """The skip reason when `text` is over the gateway's limit for `kind`, else None."""
    limit, unit = text_limit(provider, kind)
    size = measure(text, unit)
    if size > limit:
        return f"text too long for {provider}: {size} {unit}, limit {limit}"
    return None
