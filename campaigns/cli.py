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

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Blast: bulk WhatsApp campaigns.",
                  pretty_exceptions_enable=False)
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
        _one_line(str(error))
    except Exception as error:
        message = operator_message(error)
        if message is None:
            raise  # a bug: the traceback is for us
        _one_line(message)


def _one_line(message: str) -> None:
    from rich.markup import escape

    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    sys.exit(1)


def operator_message(error: Exception) -> str | None:
    """One line for the operator when `error` is the configuration's fault (a setting that does not parse, a
    database, broker or Redis that cannot be reached or named), else None. Never a password."""
    from pydantic import ValidationError
    from sqlalchemy.exc import ArgumentError, InterfaceError, NoSuchModuleError, OperationalError

    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if isinstance(error, ValidationError):
        problem = error.errors()[0]
        name = "BLAST_" + str(problem["loc"][0]).upper() if problem.get("loc") else "a setting"
        return f"{name}: {problem['msg']}"
    if isinstance(error, OperationalError | InterfaceError):
        orig = str(getattr(error, "orig", error)).strip().splitlines()
        return f"the database (BLAST_DATABASE_URL) cannot be reached: {orig[0] if orig else first}"
    if isinstance(error, ArgumentError | NoSuchModuleError):
        return f"BLAST_DATABASE_URL is not a database URL Blast can use: {first}"
    module = type(error).__module__
    if module.startswith(("redis.", "kombu.")) or type(error).__name__ in ("ConnectionRefusedError",):
        return f"the broker or Redis (BLAST_BROKER_URL, BLAST_REDIS_URL) cannot be reached: {first}"
    return None


# Command groups live in their own modules and register on `app` when imported.
from campaigns import cli_campaigns, cli_ingest, cli_optout, cli_processes, cli_sandbox, cli_schedule

__all__ = ["Path", "app", "console", "err_console", "fail", "main"]


if __name__ == "__main__":
    # `python -m campaigns.cli` runs this file as __main__, but the command modules above register on the
    # importable `campaigns.cli` (a second copy of this module): run that one's app.
    from campaigns.cli import main as _main

    _main()
