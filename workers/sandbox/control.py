"""The sandbox's own control API under /_sandbox/ (JSON): accounts, knobs, inbound messages, stats, reset.

Not part of any gateway: tests, demos and benchmarks use it (through `workers.sandbox.harness`) to set
the scene and to read what the gateways saw.
"""

from __future__ import annotations

from typing import Any

from workers.sandbox.runtime import Runtime
from workers.sandbox.state import Account, Incoming, KnobError, e164, stats_json
from workers.sandbox.web import Request, Response, json_response


def _error(status: int, message: str) -> Response:
    return json_response(status, {"error": message})


def _body(request: Request) -> dict[str, Any]:
    if not request.body:
        return {}
    try:
        body = request.json()
    except ValueError as error:
        raise KnobError("the body must be a JSON object") from error
    if not isinstance(body, dict):
        raise KnobError("the body must be a JSON object")
    return body


def _account_json(account: Account) -> dict[str, Any]:
    """An account as the control API shows it: never its secret."""
    return {"provider": account.provider, "key": account.key, "sender": account.sender,
            "knobs": account.knobs.as_json()}


class Control:
    def __init__(self, runtime: Runtime, gateways: dict[str, Any]):
        self.runtime = runtime
        self.gateways = gateways
        self.routes = {
            ("GET", "/health"): self._health,
            ("POST", "/accounts"): self._create_account,
            ("GET", "/accounts"): self._accounts,
            ("POST", "/knobs"): self._set_knobs,
            ("GET", "/knobs"): self._knobs,
            ("POST", "/inbound"): self._inbound,
            ("GET", "/stats"): self._stats,
            ("POST", "/reset"): self._reset,
            ("GET", "/callbacks"): self._callbacks,
        }

    async def handle(self, request: Request, path: str) -> Response:
        route = self.routes.get((request.method, path.rstrip("/")))
        if route is None:
            if any(p == path.rstrip("/") for _, p in self.routes):
                return _error(405, "method not allowed")
            return _error(404, "no such control endpoint")
        try:
            return route(request)
        except KnobError as error:
            return _error(400, str(error))

    def _find(self, provider: Any, key: Any) -> Account:
        if provider not in self.gateways:
            raise KnobError(f"provider must be one of {', '.join(self.gateways)}")
        account = self.runtime.sandbox.account(provider, key) if isinstance(key, str) else None
        if account is None:
            raise _NoAccount(provider, key)
        return account

    def _health(self, request: Request) -> Response:
        return json_response(200, {"status": "ok", "gateways": list(self.gateways)})

    def _create_account(self, request: Request) -> Response:
        body = _body(request)
        account = self.runtime.sandbox.add_account(
            body.get("provider"), body.get("key"), secret=body.get("secret"), sender=body.get("sender"))
        return json_response(200, _account_json(account))

    def _accounts(self, request: Request) -> Response:
        accounts = self.runtime.sandbox.accounts.values()
        return json_response(200, {"accounts": [_account_json(a) for a in accounts]})

    def _set_knobs(self, request: Request) -> Response:
        body = _body(request)
        try:
            account = self._find(body.pop("provider", None), body.pop("key", None))
        except _NoAccount as missing:
            return _error(404, str(missing))
        account.knobs.update(body)
        return json_response(200, _account_json(account))

    def _knobs(self, request: Request) -> Response:
        try:
            account = self._find(request.query_value("provider"), request.query_value("key"))
        except _NoAccount as missing:
            return _error(404, str(missing))
        return json_response(200, _account_json(account))

    def _inbound(self, request: Request) -> Response:
        body = _body(request)
        try:
            account = self._find(body.get("provider"), body.get("key"))
        except _NoAccount as missing:
            return _error(404, str(missing))
        sender, text = body.get("from"), body.get("text")
        if not isinstance(sender, str | int) or not 5 <= len(e164(sender)) - 1 <= 15:
            raise KnobError("from must be a phone number")
        if not isinstance(text, str):
            raise KnobError("text must be a string")
        sandbox = self.runtime.sandbox
        gateway = self.gateways[account.provider]
        message_id = sandbox.object_id() if getattr(gateway, "object_ids", False) else sandbox.numeric_id()
        incoming = Incoming(message_id, e164(sender), text)
        account.incoming[message_id] = incoming
        pushed = gateway.on_inbound(account, incoming)
        return json_response(200, {"id": message_id, "pushed": pushed})

    def _stats(self, request: Request) -> Response:
        return json_response(200, stats_json(self.runtime.sandbox, request.query_value("provider") or None,
                                             request.query_value("key") or None))

    def _reset(self, request: Request) -> Response:
        everything = bool(_body(request).get("all", False))
        self.runtime.sandbox.reset(everything=everything)
        self.runtime.callbacks.forget()
        return json_response(200, {"reset": "all" if everything else "messages and stats"})

    def _callbacks(self, request: Request) -> Response:
        return json_response(200, self.runtime.callbacks.as_json())


class _NoAccount(Exception):
    def __init__(self, provider: str, key: Any):
        super().__init__(f"no {provider} account with that key")
