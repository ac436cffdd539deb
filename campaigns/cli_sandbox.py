"""`blast sandbox`: the four gateways, simulated on loopback."""

from __future__ import annotations

from typing import Annotated

import typer

from campaigns.cli import app


@app.command()
def sandbox(
    port: Annotated[int, typer.Option(help="TCP port on 127.0.0.1")] = 8900,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
) -> None:
    """The four gateways, simulated, for tests, demos and benchmarks."""
    from workers.sandbox.server import serve

    serve(host=host, port=port)
