"""`blast apikey create|list|revoke`: keys for the HTTP API (campaigns.apikeys)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from campaigns.cli.output import console, err_console
from campaigns.errors import BlastError

commands = typer.Typer(no_args_is_help=True, help="Keys for the HTTP API (/api/v1).")


def _engine():
    from campaigns.db import get_engine, migrate

    migrate()
    return get_engine()


@commands.command()
def create(
    name: Annotated[str, typer.Option("--name", help="what the key is for, e.g. the system that uses it")],
    role: Annotated[str, typer.Option("--role", help="admin, operator or viewer")],
) -> None:
    """A new key: printed once, alone on the last line; only its hash is kept."""
    from campaigns import apikeys

    key = apikeys.create(_engine(), name, role)
    err_console.print(f"API key {name!r} ({role}) created; it is shown once, here:", highlight=False)
    typer.echo(key)


@commands.command("list")
def list_keys(as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """Every key's name, role, creation, last use and revocation (never a key)."""
    from campaigns import apikeys

    keys = apikeys.listing(_engine())
    if as_json:
        typer.echo(json.dumps(keys))
        return
    table = Table("name", "role", "created", "last used", "revoked")
    for key in keys:
        table.add_row(key["name"], key["role"], key["created_at"][:19], (key["last_used_at"] or "")[:19],
                      (key["revoked_at"] or "")[:19])
    console.print(table)


@commands.command()
def revoke(name: Annotated[str, typer.Argument(metavar="NAME")]) -> None:
    """Refuse the key from its next request on."""
    from campaigns import apikeys

    if not apikeys.revoke(_engine(), name):
        raise BlastError(f"no key named {name!r} that is not revoked already")
    console.print(f"API key {name!r} revoked")
