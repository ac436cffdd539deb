"""Campaign commands: launch, pause, resume, cancel, retry, export, demo, status."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from campaigns import canary as canaries
from campaigns import lifecycle
from campaigns.cli.output import console, err_console, reading_progress
from campaigns.errors import BlastError
from campaigns.settings import get_settings

commands = typer.Typer()


def read_template(value: str) -> str:
    """`--template TEXT` or `--template @FILE`."""
    if value.startswith("@"):
        path = Path(value[1:])
        if not path.is_file():
            raise BlastError(f"template file {path} does not exist")
        return path.read_text(encoding="utf-8")
    return value


def embedded() -> bool:
    """No broker server configured: the worker runs inside the command that waits."""
    return get_settings().broker_url.startswith("filesystem://")


@commands.command()
def launch(
    file: Annotated[Path, typer.Argument(help="CSV or Excel contact list")],
    account: Annotated[str, typer.Option(help="gateway account from blast.toml")],
    template: Annotated[str | None, typer.Option(help="message template (Jinja2), or @FILE")] = None,
    name: Annotated[str | None, typer.Option(help="campaign name")] = None,
    media_url: Annotated[str | None, typer.Option("--media-url", help="image/document URL to send")] = None,
    at: Annotated[str | None, typer.Option(help="start time, ISO 8601 (default: now)")] = None,
    region: Annotated[str, typer.Option(help="default region for numbers without a country code")] = "UG",
    phone_column: Annotated[str | None, typer.Option("--phone-column", help="column holding the numbers")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="show progress and exit when the campaign ends")] = False,
    quiet_hours: Annotated[str | None, typer.Option(
        "--quiet-hours", help="no sends in this window of each recipient's local time, e.g. 21:00-08:00")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="only forecast: recipients, time, cost and balance; sends and creates nothing")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="with --dry-run: print the forecast as JSON")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="launch even when the balance does not cover the cost")] = False,
    canary: Annotated[str | None, typer.Option(
        "--canary", help="send this many first (50) or this share of the list (5%), then pause until resumed")] = None,
    canary_auto: Annotated[bool, typer.Option(
        "--canary-auto", help="with --canary: resume by itself when the slice's failures and opt-outs stay under "
                              "the account's thresholds")] = False,
    wa_template: Annotated[str | None, typer.Option(
        "--wa-template", help="an approved template of the account's gateway (blast templates list)")] = None,
    language: Annotated[str | None, typer.Option(
        "--language", help="with --wa-template: its language, e.g. en_US (needed when it has several)")] = None,
    wa_param: Annotated[list[str] | None, typer.Option(
        "--wa-param", help="with --wa-template: the column of each parameter, in order: the body's {{1}}, {{2}}, "
                           "..., then the header's, then each button's")] = None,
) -> None:
    """Create a campaign from a contact list and start it; prints the campaign id."""
    from campaigns.db import migrate

    if as_json and not dry_run:
        raise BlastError("--json goes with --dry-run (a launch prints the campaign id)")
    canaries.check_spec(canary, auto=canary_auto)
    text, options = launch_content(account, template, wa_template, language, wa_param or [])
    if dry_run:
        figures = forecast_launch(file, account, text, media_url=media_url, at=lifecycle.parse_when(at),
                                  region=region, phone_column=phone_column, quiet_hours=quiet_hours, options=options)
        if as_json:
            typer.echo(json.dumps(figures.as_json()))
        else:
            print_forecast(figures)
        return
    if not yes:
        confirm_cost(file, account, text, media_url=media_url, at=lifecycle.parse_when(at), region=region,
                     phone_column=phone_column, quiet_hours=quiet_hours, options=options)
    migrate()
    with reading_progress(file.name) as progress:
        campaign_id, report = lifecycle.launch(
            file, account_name=account, template=text, name=name, media_url=media_url,
            at=lifecycle.parse_when(at), region=region, phone_column=phone_column, quiet_hours=quiet_hours,
            on_progress=progress, canary=canary, canary_auto=canary_auto, options=options)
    typer.echo(campaign_id)
    err_console.print(f"{report.get('valid', 0)} recipients, {report.get('rows', 0) - report.get('valid', 0)} "
                      f"skipped", highlight=False)
    if wait:
        code = wait_for(campaign_id)
        raise typer.Exit(code)


def launch_content(account_name: str, template: str | None, wa_template: str | None, language: str | None,
                   columns: list[str]) -> tuple[str, dict | None]:
    """(the text to render, the campaign's options): `--template`, or an approved gateway template with its
    parameters from `columns` (campaigns.approved_templates), checked against the gateway's list now."""
    if wa_template is None:
        if template is None:
            raise BlastError("give --template TEXT|@FILE, or --wa-template NAME for an approved template")
        if language is not None or columns:
            raise BlastError("--language and --wa-param go with --wa-template")
        return read_template(template), None
    if template is not None:
        raise BlastError("give --template or --wa-template, not both")
    from campaigns import approved_templates
    from campaigns.db import get_engine, migrate
    from campaigns.settings import get_account

    migrate()
    return approved_templates.for_launch(get_engine(), get_account(account_name), wa_template, language, columns)


def forecast_launch(file: Path, account_name: str, template: str, *, media_url: str | None, at, region: str,
                    phone_column: str | None, quiet_hours: str | None, facts: tuple | None = None,
                    options: dict | None = None):
    """The forecast of this launch (campaigns.forecast), with the gateway's balance answer and daily cap
    (`facts`, campaigns.web.balances.gateway_facts; asked now when not given); it creates nothing, not even
    the database."""
    from campaigns import forecast
    from campaigns.cli.imports import existing_database
    from campaigns.settings import get_account
    from campaigns.web.balances import gateway_facts

    account = get_account(account_name)
    balance_answer, cap = facts if facts is not None else gateway_facts(account)
    with reading_progress(file.name):
        return forecast.forecast(file, account=account, template=template, region=region,
                                 phone_column=phone_column, media_url=media_url, quiet_hours_window=quiet_hours,
                                 at=at, engine=existing_database(), balance_answer=balance_answer, daily_cap=cap,
                                 options=options)


def print_forecast(figures) -> None:
    """The forecast as the operator reads it."""
    from datetime import timedelta

    from campaigns.prices import text as money

    table = Table(show_header=False)
    table.add_column("")
    table.add_column("", justify="right")
    table.add_row("recipients (rows)", f"{figures.recipients:,}")
    table.add_row("to send", f"{figures.valid:,}", style="green")
    table.add_row("skipped", f"{figures.skipped:,}")
    for reason, count in figures.reasons.items():
        table.add_row(f"  {reason}", f"{count:,}", style="dim")
    table.add_row("rate", f"{figures.rate:g}/s (about {figures.achieved_rate:.1f}/s sent)")
    if figures.daily_cap:
        table.add_row("gateway's daily cap", f"{figures.daily_cap:,}")
    table.add_row("done in", str(timedelta(seconds=round(figures.eta_seconds))))
    if figures.last_send is not None:
        table.add_row("last message", f"{figures.last_send:%Y-%m-%d %H:%M:%S} UTC")
    table.add_row("calendar days", str(figures.days))
    table.add_row("cost", money(figures.cost, figures.currency))
    table.add_row("balance", money(figures.balance, figures.currency))
    if figures.balance_ok is not None:
        table.add_row("balance covers it", "yes" if figures.balance_ok else "NO",
                      style="green" if figures.balance_ok else "bold red")
    console.print(table)


def confirm_cost(file: Path, account_name: str, template: str, **launch) -> None:
    """Before a launch on a gateway that tells its balance: when the balance does not cover the cost, ask on
    a terminal; without one, refuse (BlastError), creating nothing. `--yes` skips this. The file is read for it
    only when the gateway answered with a balance (one that cannot be asked now lets the launch go ahead)."""
    from campaigns import prices
    from campaigns.settings import get_account
    from campaigns.web.balances import gateway_facts, tells_balance

    account = get_account(account_name)
    if not tells_balance(account):
        return
    facts = gateway_facts(account)
    if prices.balance_of(account, facts[0]) is None:
        return
    figures = forecast_launch(file, account_name, template, facts=facts, **launch)
    if figures.balance_ok is not False:
        return
    shortfall = (f"the cost ({prices.text(figures.cost, figures.currency)} for {figures.valid:,} messages) is "
                 f"more than the balance ({prices.text(figures.balance, figures.currency)})")
    if not sys.stdin.isatty():
        raise BlastError(f"{shortfall}: nothing launched; pass --yes to launch anyway")
    if not typer.confirm(f"The{shortfall[3:]}. Launch anyway?", default=False, err=True):
        raise BlastError("not launched")


def wait_for(campaign_id: int) -> int:
    """A progress bar until the campaign finishes or is cancelled (0), or pauses (2)."""
    if embedded():
        from workers.embedded import EmbeddedWorker

        with EmbeddedWorker():
            return _progress(campaign_id)
    return _progress(campaign_id)


def _progress(campaign_id: int) -> int:
    from campaigns.progress import follow

    report = follow(campaign_id, console=console)
    if report["status"] == "paused":
        console.print(f"campaign {campaign_id} paused ({report.get('pause_reason')}): "
                      f"`blast resume {campaign_id}` continues it")
        return 2
    return 0


@commands.command()
def pause(campaign_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
    """Pause: no new message starts; messages in flight finish."""
    lifecycle.pause(campaign_id)
    console.print(f"campaign {campaign_id} paused")


@commands.command()
def resume(campaign_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
    """Resume a paused campaign."""
    lifecycle.resume(campaign_id)
    console.print(f"campaign {campaign_id} running")


@commands.command()
def cancel(campaign_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
    """Cancel: every message not yet sent is cancelled."""
    cancelled = lifecycle.cancel(campaign_id)
    console.print(f"campaign {campaign_id} cancelled ({cancelled} messages not sent)")


@commands.command()
def retry(
    campaign_id: Annotated[int, typer.Argument(metavar="ID")],
    reason: Annotated[str | None, typer.Option(
        help="only failures with this error code or reason; 'unknown' also sends the messages held unknown")
    ] = None,
) -> None:
    """Send failed messages again (all, or those of one reason; `--reason unknown` also the held ones)."""
    moved = lifecycle.retry(campaign_id, reason)
    console.print(f"campaign {campaign_id}: {moved} messages will be sent again")


@commands.command()
def export(
    campaign_id: Annotated[int, typer.Argument(metavar="ID")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="CSV file (default: stdout)")] = None,
) -> None:
    """One row per recipient: phone, state, provider id, error, timestamps."""
    from campaigns import export as exporter

    if output is None:
        exporter.write_csv(campaign_id, sys.stdout)
        return
    with output.open("w", newline="", encoding="utf-8") as stream:
        count = exporter.write_csv(campaign_id, stream)
    console.print(f"{count} rows written to {output}")



@commands.command()
def demo(
    contacts: Annotated[int, typer.Option(help="how many contacts to generate")] = 2000,
    web_port: Annotated[int, typer.Option(help="the web app's port (another one when taken)")] = 8000,
    keep_web: Annotated[bool, typer.Option(help="keep the web app up after the campaign, until Ctrl-C")] = False,
    gateway: Annotated[str, typer.Option(
        help="the sandbox gateway: socnet, or metacloud (an approved template, statuses by signed webhooks)")
    ] = "socnet",
) -> None:
    """A whole campaign on the embedded default, against the sandbox, with a progress bar and the web app."""
    from campaigns import demo as demo_run

    final = demo_run.run(contacts=contacts, console=console, web_port=web_port, keep_web=keep_web, gateway=gateway)
    raise typer.Exit(0 if final["status"] == "finished" else 1)


@commands.command()
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
        typer.echo(json.dumps({**report, **progress_of(report)}))
        return
    tallies.print_report(console, report)


def progress_of(report: dict) -> dict:
    """`progress` (0..1: messages settled of those to send) and `eta_seconds` (to send the rest at the account's
    effective rate now; null unless running), as the campaign page shows them (campaigns.web.insights)."""
    from campaigns.settings import load_accounts
    from campaigns.web import insights

    account = load_accounts().get(insights.account_of(report["id"]) or "")
    shown = insights.campaign_progress(report, account)
    to_send = shown["to_send"]
    return {"progress": round(shown["done"] / to_send, 4) if to_send else 1.0, "eta_seconds": shown["eta_seconds"]}
