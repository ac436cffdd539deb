"""The `blast` command line. DESIGN.md's contract: flags and JSON keys here are relied on by scripts.

This root registers every command, each group in its own module (campaigns, imports, processes, sandbox,
optouts, schedules, apikeys, users, audit); each command is a thin shell over a module. Every command but the
long-running processes acts as `cli:<os user>` for the audit log (campaigns.audit). Errors meant for the operator
(`BlastError`, a configuration problem) print as one line on stderr with exit code 1, never a traceback.
"""

from __future__ import annotations

import sys

import typer

from campaigns.cli import (
    apikeys,
    audit,
    campaigns,
    imports,
    optouts,
    processes,
    sandbox,
    schedules,
    templates,
    users,
    webhooks,
)
from campaigns.cli.output import err_console
from campaigns.errors import BlastError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Blast: bulk WhatsApp campaigns.",
                  pretty_exceptions_enable=False)
for commands in (campaigns.commands, imports.commands, processes.commands, sandbox.commands, audit.commands):
    app.add_typer(commands)
app.add_typer(optouts.commands, name="optout")
app.add_typer(schedules.commands, name="schedule")
app.add_typer(apikeys.commands, name="apikey")
app.add_typer(webhooks.commands, name="webhooks")
app.add_typer(users.commands, name="user")
app.add_typer(templates.commands, name="templates")

# These run for long and act for others (the web app's users and keys, beat's schedules, workers): they set
# no actor of their own, so what they change without one is the system's.
PROCESSES = frozenset({"web", "worker", "beat", "flower", "sandbox"})


@app.callback()
def _acting(ctx: typer.Context) -> None:
    """Changes made by this command are recorded as the operating system user's, from `cli`."""
    from campaigns import audit as log

    if ctx.invoked_subcommand not in PROCESSES:
        token = log.act_as(log.cli_actor())
        ctx.call_on_close(lambda: log.stop_acting(token))


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


