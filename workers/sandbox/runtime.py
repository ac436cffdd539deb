"""What every gateway module shares while the server runs: the accounts, the callback sender, the
progress of accepted messages through sent -> delivered -> read, and the knobs every send obeys."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

from workers.sandbox.callbacks import CallbackSender
from workers.sandbox.state import DELIVERED, FAILED, READ, Account, Outgoing, Sandbox

Notify = Callable[[Account, Outgoing], None]


class Progress:
    """Moves accepted messages on: sent at once, delivered `progress_seconds` later, then read (for a
    `read_fraction` of them) after as long again. `notify` hears of every status, the first one included.

    The knobs are read at each step, so a change applies to messages already under way.
    """

    def __init__(self, sandbox: Sandbox, notify: Notify, rng: random.Random):
        self._sandbox = sandbox
        self._notify = notify
        self._rng = rng

    def start(self, account: Account, message: Outgoing) -> None:
        """`message` was just taken (status sent, or failed with an error code): tell, then schedule."""
        self._notify(account, message)
        if message.status == FAILED:
            message.final = True
            return
        self._schedule(account, message, DELIVERED)

    def _schedule(self, account: Account, message: Outgoing, step: str) -> None:
        seconds = account.knobs.progress_seconds
        if seconds is None:
            return
        asyncio.get_running_loop().call_later(seconds, self._advance, account, message, step,
                                              self._sandbox.generation)

    def _advance(self, account: Account, message: Outgoing, step: str, generation: int) -> None:
        if generation != self._sandbox.generation:
            return
        now = time.time()
        message.status = step
        message.updated = now
        if step == DELIVERED:
            message.delivered_at = now
            if self._rng.random() < account.knobs.read_fraction:
                self._schedule(account, message, READ)
            else:
                message.final = True
        else:
            message.read_at = now
            message.final = True
        self._notify(account, message)


class Runtime:
    """The shared services a gateway module works with."""

    def __init__(self, sandbox: Sandbox, notify: Notify, *, rng: random.Random | None = None):
        self.sandbox = sandbox
        self.rng = rng or random.Random()
        self.callbacks = CallbackSender(lambda: sandbox.generation)
        self.progress = Progress(sandbox, notify, self.rng)

    async def delay_send(self, account: Account) -> None:
        """The account's `latency_ms`, spent before a send is answered."""
        latency = account.knobs.latency_ms
        if latency > 0:
            await asyncio.sleep(latency / 1000.0)

    def fails_at_random(self, account: Account, count: int = 1) -> bool:
        """True for a `fail_fraction` share of send requests (counted as rejected "fail_fraction")."""
        fraction = account.knobs.fail_fraction
        if fraction > 0 and self.rng.random() < fraction:
            account.reject("fail_fraction", count)
            return True
        return False

    def not_on_whatsapp(self, account: Account, recipient: str) -> bool:
        return recipient in account.knobs.not_on_whatsapp
