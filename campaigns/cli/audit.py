"""`blast audit [--json] [--limit N]`: the audit log, newest first (campaigns.audit)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from campaigns.cli.output import console

commands = typer.Typer()


@commands.command()
def audit(
    as_json: Annotated[bool, typer.Option("--json", help="a JSON array of entries")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="at most this many, the newest")] = 100,
) -> None:
    """Who changed what, on which object, when and from where: newest first."""
    from campaigns import audit as log
    from campaigns.db import get_engine, migrate

    migrate()
    entries = log.listing(get_engine(), limit)
    if as_json:
        typer.echo(json.dumps(entries))
        return
    table = Table("at (UTC)", "actor", "action", "object", "address", "detail")
    for column in table.columns[:3]:  # these are read whole, or grepped for; the detail may wrap
        column.no_wrap = True
    for entry in entries:
        detail = json.dumps(entry["detail"], sort_keys=True) if entry["detail"] else ""
        table.add_row(entry["at"][:19].replace("T", " "), entry["actor"], entry["action"],
                      f"{entry['object_type']} {entry['object_id']}", entry["address"], detail)
    console.print(table)
