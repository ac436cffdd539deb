"""`blast schedule add|change|list|remove`: reminder blasts (cron in a time zone, one-off, or relative to a date
column of the contact list)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from campaigns.cli.output import console

commands = typer.Typer(no_args_is_help=True,
                           help="Reminder blasts: a campaign on a cron, once, or relative to a date column.")


@commands.command("add")
def add(
    file: Annotated[Path, typer.Argument(help="CSV or Excel contact list, read at each firing")],
    account: Annotated[str, typer.Option(help="gateway account from blast.toml")],
    template: Annotated[str, typer.Option(help="message template (Jinja2), or @FILE")],
    name: Annotated[str | None, typer.Option(help="schedule name")] = None,
    cron: Annotated[str | None, typer.Option(
        help='cron expression, e.g. "0 9 * * MON"; with --relative: how often the file is re-read '
             '(default every 15 minutes)')] = None,
    timezone: Annotated[str, typer.Option(
        help="time zone of the cron, and of --relative dates written without one, e.g. Africa/Kampala")] = "UTC",
    at: Annotated[str | None, typer.Option(help="one-off time, ISO 8601")] = None,
    relative: Annotated[str | None, typer.Option(
        help='each row at its own time, e.g. "24h before appointment_at", "2h after visit"')] = None,
    quiet_hours: Annotated[str | None, typer.Option(
        "--quiet-hours", help="no sends in this window of each recipient's local time, e.g. 21:00-08:00")] = None,
    region: Annotated[str, typer.Option(help="default region for numbers without a country code")] = "UG",
    phone_column: Annotated[str | None, typer.Option(
        "--phone-column", help="column holding the numbers (default: detected from the header)")] = None,
    media_url: Annotated[str | None, typer.Option(
        "--media-url", help="image, video or document URL sent with every message")] = None,
) -> None:
    """Add a reminder blast; prints its id."""
    from campaigns import lifecycle, reminders
    from campaigns.cli.campaigns import read_template
    from campaigns.db import get_engine

    schedule_id = reminders.add(get_engine(), name=name or file.stem, account_name=account, source_file=file,
                                template=read_template(template), cron=cron, timezone=timezone,
                                run_at=lifecycle.parse_when(at) if at else None, region=region,
                                relative=relative, quiet_hours=quiet_hours, phone_column=phone_column,
                                media_url=media_url)
    typer.echo(schedule_id)


@commands.command("change")
def change(
    schedule_id: Annotated[int, typer.Argument(help="schedule id")],
    cron: Annotated[str | None, typer.Option(help="new cron expression (cron and relative schedules)")] = None,
    timezone: Annotated[str | None, typer.Option(help="new time zone of the cron")] = None,
    at: Annotated[str | None, typer.Option(help="new one-off time, ISO 8601")] = None,
    template: Annotated[str | None, typer.Option(help="new message template, or @FILE")] = None,
    quiet_hours: Annotated[str | None, typer.Option(
        "--quiet-hours", help='new quiet window, e.g. 21:00-08:00; "" removes it')] = None,
) -> None:
    """Change a reminder blast while beat runs; prints its next firing."""
    from campaigns import lifecycle, reminders
    from campaigns.cli.campaigns import read_template
    from campaigns.db import get_engine

    schedule = reminders.change(get_engine(), schedule_id, cron=cron, timezone=timezone,
                                run_at=lifecycle.parse_when(at) if at else None,
                                template=read_template(template) if template is not None else None,
                                quiet_hours=quiet_hours)
    typer.echo(schedule.next_fire_at.isoformat() if schedule.next_fire_at else "-")


@commands.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """Every reminder blast with its next firing."""
    from campaigns import reminders
    from campaigns.db import get_engine

    rows = [reminders.described(schedule) for schedule in reminders.listed(get_engine())]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for row in rows:
        rule = f"{row['relative']}, re-read {row['cron']}" if row["relative"] else row["cron"] or ""
        quiet = f"  quiet {row['quiet_hours']}" if row["quiet_hours"] else ""
        console.print(f"{row['id']}  {row['name']}  {row['kind']} {rule} {row['timezone']}{quiet}  "
                      f"next {row['next_fire_at'] or '-'}", highlight=False)


@commands.command("remove")
def remove(schedule_id: Annotated[int, typer.Argument(help="schedule id")]) -> None:
    """Stop a reminder blast (campaigns it launched are kept)."""
    from campaigns import reminders
    from campaigns.db import get_engine

    reminders.remove(get_engine(), schedule_id)
    console.print(f"schedule {schedule_id} removed")
