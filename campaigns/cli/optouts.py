"""`blast optout add|remove|list`: the numbers no campaign sends to."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from campaigns.cli.output import console, fail

commands = typer.Typer(no_args_is_help=True, help="Numbers that opted out: no campaign sends to them.")


def _e164(numbers: list[str], region: str) -> list[str]:
    from campaigns.ingest import phones

    found = []
    for number in numbers:
        e164, reason = phones.normalise(number, phones.check_region(region.upper()))
        if e164 is None:
            fail(f"{number!r} is not a phone number ({reason})")
        found.append(e164)
    return found


@commands.command("add")
def add(
    numbers: Annotated[list[str], typer.Argument(help="phone numbers")],
    region: Annotated[str, typer.Option(help="region for numbers without a country code")] = "UG",
    reason: Annotated[str, typer.Option(help="why, kept with the number")] = "opted out",
) -> None:
    """Opt numbers out; their pending messages in live campaigns are skipped."""
    from campaigns import optouts
    from campaigns.db import get_engine

    phones = _e164(numbers, region)
    new = optouts.add(get_engine(), phones, reason=reason, source="manual")
    console.print(f"{new} number(s) added, {len(set(phones)) - new} already listed")


@commands.command("remove")
def remove(
    numbers: Annotated[list[str], typer.Argument(help="phone numbers")],
    region: Annotated[str, typer.Option(help="region for numbers without a country code")] = "UG",
) -> None:
    """Take numbers off the list (later campaigns send to them again)."""
    from campaigns import optouts
    from campaigns.db import get_engine

    console.print(f"{optouts.remove(get_engine(), _e164(numbers, region))} number(s) removed")


@commands.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """Every opted-out number with when, why and where from."""
    from campaigns import optouts
    from campaigns.db import get_engine

    rows = [{"phone": row.phone, "reason": row.reason, "source": row.source,
             "created_at": row.created_at.isoformat() if row.created_at else None}
            for row in optouts.listed(get_engine())]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for row in rows:
        console.print(f"{row['phone']}  {row['created_at']}  {row['source']}  {row['reason']}", highlight=False)
