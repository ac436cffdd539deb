"""What every simulated gateway is: a class with its provider's name, the account the sandbox has for it
from the start, and three entry points (a request under its path prefix, a status change of a message it
took, an inbound message). Subclasses register themselves by `provider`."""

from __future__ import annotations

from typing import ClassVar

from workers.sandbox.runtime import Runtime
from workers.sandbox.state import Account, BuiltinAccount, Incoming, Outgoing
from workers.sandbox.web import Request, Response


class SandboxGateway:
    """One simulated gateway, served under `/<provider>/`.

    Class attributes each gateway module sets:
    - `provider`: the name blast.toml uses, and the path prefix;
    - `builtin`: the account the sandbox has from the start (the contract's credentials);
    - `signed_by_secret`: every request is signed with the account's secret, so an account needs one;
    - `default_sender`: the sender of an account created without one (None: no sender).
    """

    provider: ClassVar[str]
    builtin: ClassVar[BuiltinAccount]
    signed_by_secret: ClassVar[bool] = False
    default_sender: ClassVar[str | None] = None

    _registry: ClassVar[dict[str, type[SandboxGateway]]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "provider" in cls.__dict__:
            SandboxGateway._registry[cls.provider] = cls

    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    async def handle(self, request: Request, path: str) -> Response:
        """Answer a request to `/<provider><path>`."""
        raise NotImplementedError

    def on_status(self, account: Account, message: Outgoing) -> None:
        """A message this gateway took changed status (push it where the gateway pushes; default: nowhere)."""

    def on_inbound(self, account: Account, incoming: Incoming) -> bool:
        """Someone wrote to the account: push it where the gateway pushes inbound messages; True if pushed.
        Default: kept for the record, pushed nowhere."""
        return False
