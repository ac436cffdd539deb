"""`blast import`: a dry-run ingest report (built with the ingest module). It writes no messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from campaigns.cli.output import console, reading_progress

commands = typer.Typer()


def existing_database():
    """The database's engine when it is there, else None: a dry run never creates one (opening a SQLite
    file that is not there would create it), and goes on without one when its server cannot be reached."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from campaigns import db
    from campaigns.settings import get_settings

    url = db.normalise_url(get_settings().database_url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not (parsed.database and Path(parsed.database).is_file()):
        return None
    try:
        engine = db.engine_for(url)
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception:  # an unreachable server: a dry run goes on without it
        return None
    return engine


def _optouts_if_database_exists() -> frozenset[str]:
    """The opt-out list, or nothing when the database (or its schema) is not there yet."""
    from campaigns import ingest

    return ingest.load_optouts(existing_database())


@commands.command("import")
def import_contacts(
    file: Annotated[Path, typer.Argument(help="contact list: .csv (any delimiter, UTF-8 or cp1252), .xlsx")],
    region: Annotated[str, typer.Option("--region", help="region of numbers without +country")] = "UG",
    phone_column: Annotated[str | None, typer.Option("--phone-column", help="phone column header")] = None,
    sheet: Annotated[str | None, typer.Option("--sheet", help="Excel sheet (default: the first)")] = None,
    rejects: Annotated[Path | None, typer.Option("--rejects", help="write skipped rows to this CSV")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Dry-run ingest report: rows read, valid, duplicates, invalid by reason, opted out."""
    from campaigns import ingest

    stream = ingest.read_contacts(file, region=region, phone_column=phone_column, sheet=sheet,
                                  opted_out=_optouts_if_database_exists())
    chunks = stream if rejects is None else ingest.write_rejects(rejects, stream)
    with reading_progress(file.name) as progress:
        for _chunk in chunks:
            progress(stream.report, stream.source.fraction_read())
    report = stream.report
    if as_json:
        typer.echo(json.dumps(report.as_dict()))
        return
    console.print(f"{file.name}: {stream.source.describe()}; phone column {stream.phone_column!r}",
                  highlight=False)
    table = Table(show_header=True)
    table.add_column("")
    table.add_column("rows", justify="right")
    table.add_row("rows read", str(report.rows))
    table.add_row("valid", str(report.valid), style="green")
    table.add_row("duplicates", str(report.duplicates))
    table.add_row("invalid", str(report.invalid))
    for reason, count in report.reasons.most_common():
        if reason not in (ingest.DUPLICATE, ingest.OPTED_OUT):
            table.add_row(f"  {reason}", str(count), style="dim")
    table.add_row("opted out", str(report.opted_out))
    console.print(table)
    if rejects is not None:
        skipped = report.rows - report.valid
        console.print(f"{skipped} skipped rows written to {rejects}", highlight=False)
