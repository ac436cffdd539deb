"""`blast webhooks add|list|remove|test`: systems that want Blast's events POSTed to them (campaigns.webhooks)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from campaigns.cli.output import console, err_console

commands = typer.Typer(no_args_is_help=True, help="Outbound webhooks: Blast's events POSTed to other systems.")


def _engine():
    from campaigns.db import get_engine, migrate

    migrate()
    return get_engine()


@commands.command()
def add(
    url: Annotated[str, typer.Argument(metavar="URL", help="where to POST the events (http or https)")],
    events: Annotated[str, typer.Option("--events", help="event types, comma-separated: message.status, "
                                                         "campaign.started, campaign.paused, campaign.finished, "
                                                         "optout.added, campaign.failover")],
) -> None:
    """A new subscription: its secret (whsec_...) is printed once, alone on the last line."""
    from campaigns.webhooks import subscriptions

    subscription_id, secret = subscriptions.add(_engine(), url, events)
    err_console.print(f"webhook subscription {subscription_id} created; its signing secret is shown once, here:",
                      highlight=False)
    typer.echo(secret)


@commands.command("list")
def list_subscriptions(as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """Every subscription with its events and the last answer it gave (never its secret), and, while its
    subscriber is down, since when and when the next try goes."""
    from campaigns.webhooks import subscriptions

    rows = subscriptions.listing(_engine())
    if as_json:
        typer.echo(json.dumps(rows, default=str))
        return
    table = Table("id", "url", "events", "created", "last attempt", "last answer")
    for row in rows:
        answer = "" if row["last_attempt_at"] is None else (
            f"{row['last_status_code'] or 'no answer'} {row['last_answer'] or ''}".strip()[:60])
        if row["down_since"] is not None:
            answer += f" (down since {str(row['down_since'])[:19]}; next try {str(row['next_try_at'] or 'now')[:19]})"
        table.add_row(str(row["id"]), row["url"], row["events"], str(row["created_at"])[:19],
                      str(row["last_attempt_at"] or "")[:19], answer)
    console.print(table)


@commands.command()
def remove(subscription_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
    """Delete the subscription and its undelivered events: nothing more is POSTed to it."""
    from campaigns.webhooks import subscriptions

    subscriptions.remove(_engine(), subscription_id)
    console.print(f"webhook subscription {subscription_id} removed")


@commands.command()
def test(subscription_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
    """POST a signed `webhook.test` event to the subscription now and print its answer (a failure is retried
    later, as any event)."""
    import time

    from campaigns import dispatch
    from campaigns.errors import BlastError
    from campaigns.settings import get_settings
    from campaigns.webhooks import deliveries, subscriptions

    engine = _engine()
    subscriptions.shown(engine, subscription_id)  # NotFound for an unknown id
    delivery_id = deliveries.add_test_event(engine, subscription_id, kick=False)
    answers = dispatch.deliver_webhooks_now(subscription_id, [delivery_id])
    # a worker's sweep took it first: its answer, once it has one
    deadline = time.monotonic() + get_settings().webhook_timeout_seconds * 3 + 5
    while not answers and time.monotonic() < deadline:
        time.sleep(0.2)
        answers = [answer] if (answer := deliveries.last_answer_of(engine, delivery_id)) else []
    if not answers:
        raise BlastError("the test event is being delivered by a worker, which has not had an answer yet")
    answer = answers[0]
    shown = f"{answer.status_code or 'no answer'}: {answer.text[:200]}".rstrip(": ")
    if not answer.delivered:
        raise BlastError(f"the subscriber did not take the test event ({shown}); it is tried again later")
    console.print(f"test event delivered to subscription {subscription_id}: {shown}", highlight=False)
