"""The sandbox server: one plain ASGI app serving every simulated gateway under its path prefix, run by
uvicorn (httptools parser, uvloop event loop when installed) on one core.

    /<provider>/... each module of `workers.sandbox.gateways` (socnet.txt, smsglobal.txt, devino.txt, ...)
    /_sandbox/...   the control API (accounts, knobs, inbound, stats, reset)
"""

from __future__ import annotations

import importlib.util
import logging
import random
import sys
import time

from campaigns.errors import BlastError
from workers.heap import freeze_startup_objects
from workers.sandbox.control import Control
from workers.sandbox.gateways import gateway_classes
from workers.sandbox.gateways.base import SandboxGateway
from workers.sandbox.runtime import Runtime
from workers.sandbox.state import ARRIVED, Account, KnobError, Knobs, Outgoing, Sandbox
from workers.sandbox.web import Request, Response, text_response

log = logging.getLogger("blast.sandbox")


class SandboxApp:
    """The ASGI application. `defaults` are the knobs every account starts with (the CLI's flags)."""

    def __init__(self, defaults: Knobs | None = None, *, seed: int | None = None):
        self.sandbox = Sandbox(gateway_classes(), defaults)
        self.runtime = Runtime(self.sandbox, self._notify, rng=random.Random(seed))
        self.gateways: dict[str, SandboxGateway] = {
            provider: gateway(self.runtime) for provider, gateway in gateway_classes().items()}
        self._not_found = "Not Found: the sandbox serves " + " ".join(f"/{name}" for name in self.gateways)
        self.control = Control(self.runtime, self.gateways)

    def _notify(self, account: Account, message: Outgoing) -> None:
        self.gateways[account.provider].on_status(account, message)

    async def __call__(self, scope: dict, receive, send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.runtime.callbacks.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.runtime.callbacks.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: dict, receive, send) -> None:
        ARRIVED.set(time.monotonic())
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {name.decode("latin-1").lower(): value.decode("latin-1")
                   for name, value in scope["headers"]}
        path = scope["path"]
        request = Request(scope["method"], path, scope.get("raw_path") or path.encode(),
                          scope["query_string"], headers, body)
        try:
            response = await self.dispatch(request)
        except Exception:
            log.exception("sandbox: unexpected error answering %s %s", request.method, path)
            response = text_response(500, "Internal Server Error")
        await send({"type": "http.response.start", "status": response.status, "headers": [
            (b"content-type", response.content_type.encode()),
            (b"content-length", str(len(response.body)).encode()),
            *((name.encode(), value.encode()) for name, value in response.headers),
        ]})
        await send({"type": "http.response.body", "body": response.body})

    async def dispatch(self, request: Request) -> Response:
        path = request.path
        slash = path.find("/", 1)
        prefix, rest = (path[1:slash], path[slash:]) if slash > 0 else (path[1:], "")
        gateway = self.gateways.get(prefix)
        if gateway is not None:
            return await gateway.handle(request, rest)
        if prefix == "_sandbox":
            return await self.control.handle(request, rest)
        return text_response(404, self._not_found)


def _fastest(module: str, fast: str) -> str:
    return fast if importlib.util.find_spec(module) is not None else "auto"


def serve(host: str, port: int, *, latency_ms: float = 0.0, rate_cap: float | None = None,
          quota: int | None = None, fail_fraction: float = 0.0) -> None:
    """Serve every simulated gateway on host:port until interrupted (blocking). The keyword arguments are the
    knobs every account starts with (the control API changes them per account)."""
    import uvicorn

    defaults = Knobs()
    try:
        defaults.update({"latency_ms": latency_ms, "rate_cap": rate_cap, "quota": quota,
                         "fail_fraction": fail_fraction})
    except KnobError as error:
        raise BlastError(f"sandbox: {error}") from error
    app = SandboxApp(defaults)
    config = uvicorn.Config(
        app, host=host, port=port, lifespan="on", access_log=False, log_level="warning",
        loop=_fastest("uvloop", "uvloop"), http=_fastest("httptools", "httptools"),
        backlog=4096, timeout_keep_alive=60, server_header=False, proxy_headers=False,
    )
    print(f"sandbox gateways on http://{host}:{port}/{{{','.join(gateway_classes())}}} "
          f"(control: /_sandbox/)", file=sys.stderr, flush=True)
    server = uvicorn.Server(config)
    freeze_startup_objects()  # a full collection's pause would stamp the arrivals it held up together, late
    server.run()

