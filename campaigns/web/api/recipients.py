"""A JSON list of recipients as the contact file the ingest reads: the phone column, then each variable."""

from __future__ import annotations

import csv
import secrets
from collections.abc import Sequence
from pathlib import Path

from campaigns.settings import get_settings
from campaigns.web.api.problems import Problem


def written(recipients: Sequence, *, under: str) -> Path:
    """`recipients` (schemas.Recipient) as `BLAST_HOME/<under>/<random>/recipients.csv`, its variables as
    columns in the order they first appear; a variable named phone is refused (the number is that column)."""
    names: dict[str, None] = {}
    for recipient in recipients:
        names.update(dict.fromkeys(recipient.variables))
    if any(name.strip().lower() == "phone" for name in names):
        raise Problem(422, "Invalid request", "a variable may not be named phone (the recipient's number is)")
    folder = Path(get_settings().home) / under / secrets.token_hex(16)
    folder.mkdir(parents=True)
    path = folder / "recipients.csv"
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["phone", *names])
        for recipient in recipients:
            values = recipient.variables
            writer.writerow([recipient.phone, *("" if values.get(name) is None else str(values[name])
                                                for name in names)])
    return path
