"""`blast user add|list|remove|password`: the people who log in to the web app (campaigns.users).

A password is never an argument (it would stay in the shell's history and in `ps`): `add` and `password` ask
for it twice, hidden, or read one line from standard input with `--password-stdin` (for scripts).
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.table import Table

from campaigns.cli.output import console
from campaigns.errors import BlastError

commands = typer.Typer(no_args_is_help=True, help="The people who log in to the web app, and their roles.")

PasswordStdin = Annotated[bool, typer.Option("--password-stdin", help="read the password from one line of stdin")]


def _engine():
    from campaigns.db import get_engine, migrate

    migrate()
    return get_engine()


def _password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        password = password[:-1] if password.endswith("\r") else password
        if not password:
            raise BlastError("--password-stdin read no password (one line, not empty)")
        return password
    first = typer.prompt("Password", hide_input=True)
    if typer.prompt("Password again", hide_input=True) != first:
        raise BlastError("the two passwords differ; nothing was changed")
    return first


@commands.command()
def add(
    name: Annotated[str, typer.Argument(metavar="NAME")],
    role: Annotated[str, typer.Option("--role", help="admin, operator or viewer")],
    password_stdin: PasswordStdin = False,
) -> None:
    """A new user with a role; the password is asked twice (hidden), or read from stdin."""
    from campaigns import apikeys, users

    users.check_name(name)
    apikeys.check_role(role)
    users.add(_engine(), name, role, _password(password_stdin))
    console.print(f"user {name.strip()!r} ({role}) added", highlight=False)


@commands.command("list")
def list_users(as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """Every user's name, role and times (never a password nor its hash)."""
    from campaigns import users

    listed = users.listing(_engine())
    if as_json:
        typer.echo(json.dumps(listed))
        return
    table = Table("name", "role", "created", "password changed")
    for user in listed:
        table.add_row(user["name"], user["role"], user["created_at"][:19], user["password_changed_at"][:19])
    console.print(table)


@commands.command()
def remove(name: Annotated[str, typer.Argument(metavar="NAME")]) -> None:
    """Remove a user: their open sessions end at once. The last admin cannot be removed."""
    from campaigns import users

    users.remove(_engine(), name)
    console.print(f"user {name!r} removed", highlight=False)


@commands.command()
def password(name: Annotated[str, typer.Argument(metavar="NAME")], password_stdin: PasswordStdin = False) -> None:
    """A new password for a user: their open sessions end at once."""
    from campaigns import users

    engine = _engine()
    if users.find(engine, name) is None:
        raise BlastError(f"no user named {name!r}")
    users.set_password(engine, name, _password(password_stdin))
    console.print(f"password of {name!r} changed; their sessions ended", highlight=False)
