"""`blast templates sync ACCOUNT | list [ACCOUNT] [--json]`: the approved templates of gateways that keep
them (Meta's Cloud API), copied from the gateway and listed (campaigns.approved_templates)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from campaigns.cli.output import console

commands = typer.Typer(no_args_is_help=True, help="Approved templates, for gateways that keep them.")


def _print(templates, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps([template.as_json() for template in templates]))
        return
    table = Table("account", "name", "language", "status", "category", "parameters")
    for template in templates:
        table.add_row(template.account_name, template.name, template.language, template.status, template.category,
                      ", ".join(template.as_json()["slots"]) or "-")
    console.print(table)


@commands.command("sync")
def sync(
    account: Annotated[str, typer.Argument(help="gateway account from blast.toml")],
    as_json: Annotated[bool, typer.Option("--json", help="print the templates as JSON")] = False,
) -> None:
    """Read the account's templates from its gateway (name, language, status, category, parameters)."""
    from campaigns import approved_templates
    from campaigns.db import get_engine, migrate
    from campaigns.settings import get_account

    migrate()
    _print(approved_templates.sync(get_engine(), get_account(account)), as_json)


@commands.command("list")
def list_templates(
    account: Annotated[str | None, typer.Argument(help="only this account's")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the templates as JSON")] = False,
) -> None:
    """The templates last synced: every account's, or one account's."""
    from campaigns import approved_templates
    from campaigns.db import get_engine, migrate
    from campaigns.settings import get_account

    if account is not None:
        get_account(account)
    migrate()
    _print(approved_templates.stored(get_engine(), account), as_json)
