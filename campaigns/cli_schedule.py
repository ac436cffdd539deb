"""`blast schedule add|list|remove`: reminder blasts (cron in a time zone, or one-off)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from campaigns.cli import app, console

schedule_app = typer.Typer(no_args_is_help=True, help="Reminder blasts: a campaign on a cron or once.")
app.add_typer(schedule_app, name="schedule")


@schedule_app.command("add")
def add(
    file: Annotated[Path, typer.Argument(help="CSV or Excel contact list, read at each firing")],
    account: Annotated[str, typer.Option(help="gateway account from blast.toml")],
    template: Annotated[str, typer.Option(help="message template (Jinja2), or @FILE")],
    name: Annotated[str | None, typer.Option(help="schedule name")] = None,
    cron: Annotated[str | None, typer.Option(help='cron expression, e.g. "0 9 * * MON"')] = None,
    timezone: Annotated[str, typer.Option(help="time zone of the cron, e.g. Africa/Kampala")] = "UTC",
    at: Annotated[str | None, typer.Option(help="one-off time, ISO 8601")] = None,
    region: Annotated[str, typer.Option(help="default region for numbers without a country code")] = "UG",
) -> None:
    """Add a reminder blast; prints its id."""
    from campaigns import lifecycle, reminders
    from campaigns.cli_campaigns import read_template
    from campaigns.db import get_engine

    schedule_id = reminders.add(get_engine(), name=name or file.stem, account_name=account, source_file=file,
                                template=read_template(template), cron=cron, timezone=timezone,
                                run_at=lifecycle.parse_when(at) if at else None, region=region)
    typer.echo(schedule_id)


@schedule_app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """Every reminder blast with its next firing."""
    from campaigns import reminders
    from campaigns.db import get_engine

    rows = [{"id": s.id, "name": s.name, "account": s.account_name, "kind": s.kind, "cron": s.cron,
             "timezone": s.timezone, "enabled": s.enabled,
             "next_fire_at": s.next_fire_at.isoformat() if s.next_fire_at else None}
            for s in reminders.listed(get_engine())]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for row in rows:
        console.print(f"{row['id']}  {row['name']}  {row['kind']} {row['cron'] or ''} {row['timezone']}  "
                      f"next {row['next_fire_at'] or '-'}", highlight=False)


@schedule_app.command("remove")
def remove(schedule_id: Annotated[int, typer.Argument(help="schedule id")]) -> None:
    """Stop a reminder blast (campaigns it launched are kept)."""
    from campaigns import reminders
    from campaigns.db import get_engine

    reminders.remove(get_engine(), schedule_id)
    console.print(f"schedule {schedule_id} removed")
