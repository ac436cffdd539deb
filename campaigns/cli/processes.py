"""The processes: `blast worker` and `blast beat` are thin wrappers over celery; `blast web`, `blast flower`;
`blast migrate` readies the database they share."""

from __future__ import annotations

from typing import Annotated

import typer

from campaigns.cli.output import console

commands = typer.Typer()


CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}


def check_configuration() -> None:
    """A process refuses to start on a configuration it cannot run with: settings that do not parse, a
    blast.toml that names a missing ${VAR}, a database it cannot reach (each a one-line error, cli.main)."""
    from sqlalchemy import text

    from campaigns.db import get_engine
    from campaigns.settings import get_settings, load_accounts

    get_settings()
    load_accounts()
    with get_engine().connect() as connection:
        connection.execute(text("SELECT 1"))


def lowest_priority() -> None:
    """This process, and the threads it starts from now on, at the lowest CPU priority: Linux's SCHED_IDLE, which
    runs only when no ordinary process wants the CPU and gives way to one the moment it wakes (a niced process
    still takes a share, and keeps a waking sender waiting for its turn); elsewhere, nice 19."""
    import os

    if hasattr(os, "SCHED_IDLE"):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    else:
        os.nice(19)


@commands.command(context_settings=CONTEXT)
def worker(
    ctx: typer.Context,
    concurrency: Annotated[int, typer.Option("-c", "--concurrency", help="threads sending at once")] = 16,
    queues: Annotated[str, typer.Option("-Q", "--queues", help="queues to consume")] = (
        "send,pace,reports,ingest,webhooks"),
    loglevel: Annotated[str, typer.Option("-l", "--loglevel")] = "INFO",
    idle_priority: Annotated[bool, typer.Option(
        "--idle-priority", help="take only the CPU the host's other processes leave (the webhooks worker: "
        "sending comes first)")] = False,
) -> None:
    """A Celery worker (thread pool: sending waits on the network, not the CPU). Extra flags go to celery."""
    check_configuration()
    if idle_priority:
        lowest_priority()
    from celery.signals import worker_ready

    from workers.app import app as celery_app
    from workers.heap import freeze_startup_objects

    worker_ready.connect(lambda **_: freeze_startup_objects(), weak=False)
    celery_app.worker_main(["worker", "--pool", "threads", "--concurrency", str(concurrency), "--queues", queues,
                            "--loglevel", loglevel, "--without-mingle", "--without-gossip", *ctx.args])


@commands.command(context_settings=CONTEXT)
def beat(
    ctx: typer.Context,
    loglevel: Annotated[str, typer.Option("-l", "--loglevel")] = "INFO",
) -> None:
    """Celery beat with Blast's schedule (pacer, reconciler, report polling, reminder blasts). Only one beat
    sends at a time: another one started by mistake stands by (schedules.beat.OneBeatScheduler)."""
    check_configuration()
    from workers.app import app as celery_app

    celery_app.start(["beat", "--loglevel", loglevel, "--scheduler", "schedules.beat:OneBeatScheduler",
                      *ctx.args])


@commands.command()
def web(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
) -> None:
    """The web app: pages and webhooks."""
    check_configuration()
    import uvicorn

    from campaigns.web.app import create_app

    uvicorn.run(create_app(), host=host, port=port, log_level="info", proxy_headers=True)


@commands.command(context_settings=CONTEXT)
def flower(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="TCP port")] = 5555,
    address: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
) -> None:
    """Flower on Blast's broker, behind basic auth (BLAST_FLOWER_USER / BLAST_FLOWER_PASSWORD)."""
    import os

    from campaigns.settings import get_settings
    from workers.app import app as celery_app

    settings = get_settings()
    if settings.flower_password is None or not settings.flower_password.get_secret_value():
        raise typer.BadParameter("set BLAST_FLOWER_PASSWORD: Flower never runs without a login")
    # Flower reads FLOWER_* variables as options: the password stays out of the process's command line.
    os.environ["FLOWER_BASIC_AUTH"] = f"{settings.flower_user}:{settings.flower_password.get_secret_value()}"
    celery_app.start(["flower", f"--port={port}", f"--address={address}", *ctx.args])


@commands.command()
def migrate() -> None:
    """Create or upgrade the database schema (Alembic upgrade head)."""
    from campaigns.db import migrate as run_migrations

    run_migrations()
    console.print("schema is up to date")
