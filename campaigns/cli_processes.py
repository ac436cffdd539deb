"""The processes: `blast worker` and `blast beat` are thin wrappers over celery."""

from __future__ import annotations

from typing import Annotated

import typer

from campaigns.cli import app

CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}


@app.command(context_settings=CONTEXT)
def worker(
    ctx: typer.Context,
    concurrency: Annotated[int, typer.Option("-c", "--concurrency", help="threads sending at once")] = 16,
    queues: Annotated[str, typer.Option("-Q", "--queues", help="queues to consume")] = "send,pace,reports",
    loglevel: Annotated[str, typer.Option("-l", "--loglevel")] = "INFO",
) -> None:
    """A Celery worker (thread pool: sending waits on the network, not the CPU). Extra flags go to celery."""
    from workers.app import app as celery_app

    celery_app.worker_main(["worker", "--pool", "threads", "--concurrency", str(concurrency), "--queues", queues,
                            "--loglevel", loglevel, "--without-mingle", "--without-gossip", *ctx.args])


@app.command(context_settings=CONTEXT)
def beat(
    ctx: typer.Context,
    loglevel: Annotated[str, typer.Option("-l", "--loglevel")] = "INFO",
) -> None:
    """Celery beat with Blast's schedule (pacer, reconciler, report polling, reminder blasts)."""
    from campaigns.settings import get_settings
    from workers.app import app as celery_app

    home = get_settings().home
    home.mkdir(parents=True, exist_ok=True)
    celery_app.start(["beat", "--loglevel", loglevel, "--schedule", str(home / "beat-schedule"), *ctx.args])


@app.command()
def web(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
) -> None:
    """The web app: pages and webhooks."""
    import uvicorn

    from campaigns.web.app import create_app

    uvicorn.run(create_app(), host=host, port=port, log_level="info", proxy_headers=True)
