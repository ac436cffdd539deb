"""`blast sandbox`: the four gateways, simulated on loopback."""

from __future__ import annotations

from typing import Annotated

import typer

commands = typer.Typer()



@commands.command()
def sandbox(
    port: Annotated[int, typer.Option(help="TCP port on 127.0.0.1")] = 8900,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    latency_ms: Annotated[float, typer.Option(help="every account: milliseconds added before a send")] = 0.0,
    rate_cap: Annotated[float | None, typer.Option(help="every account: messages/s accepted")] = None,
    quota: Annotated[int | None, typer.Option(help="every account: messages left (default: no end)")] = None,
    fail_fraction: Annotated[float, typer.Option(help="every account: share of sends answered 503")] = 0.0,
) -> None:
    """The four gateways, simulated, for tests, demos and benchmarks."""
    from workers.sandbox.server import serve

    serve(host=host, port=port, latency_ms=latency_ms, rate_cap=rate_cap, quota=quota,
          fail_fraction=fail_fraction)
