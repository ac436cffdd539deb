"""The `blast` command line. DESIGN.md's contract: flags and JSON keys here are relied on by scripts.

Each command is a thin shell over a module; errors meant for the operator (`BlastError`) print as one
line on stderr with exit code 1, never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from campaigns.errors import BlastError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Blast: bulk WhatsApp campaigns.")
console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 1) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema (Alembic upgrade head)."""
    from campaigns.db import migrate as run_migrations

    run_migrations()
    console.print("schema is up to date")


@app.command()
def status(
    campaign_id: Annotated[int | None, typer.Argument(metavar="[ID]")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Tallies: total and a count per message state (one campaign, or all)."""
    from campaigns import tallies

    if campaign_id is None:
        reports = tallies.all_campaigns()
        if as_json:
            typer.echo(json.dumps(reports))
            return
        table = Table("id", "name", "status", "total", *tallies.SHOWN_STATES)
        for report in reports:
            table.add_row(str(report["id"]), report["name"], report["status"], str(report["total"]),
                          *(str(report["counts"][state]) for state in tallies.SHOWN_STATES))
        console.print(table)
        return
    report = tallies.campaign_report(campaign_id)
    if as_json:
        typer.echo(json.dumps(report))
        return
    tallies.print_report(console, report)


def main() -> None:
    from campaigns.settings import ConfigError

    try:
        app()
    except (BlastError, ConfigError) as error:
        err_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(1)


# Command groups live in their own modules and register on `app` when imported.
from campaigns import cli_campaigns, cli_ingest, cli_optout, cli_processes, cli_sandbox, cli_schedule

__all__ = ["Path", "app", "console", "err_console", "fail", "main"]


if __name__ == "__main__":
    # `python -m campaigns.cli` runs this file as __main__, but the command modules above register on the
    # importable `campaigns.cli` (a second copy of this module): run that one's app.
    from campaigns.cli import main as _main

    _main()
