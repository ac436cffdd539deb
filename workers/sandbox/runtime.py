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

    @staticmethod
    def _due(account: Account, knob: str) -> bool:
        """Exactly a `knob` share of the send requests, evenly spread (the share is carried from request to
        request, so 0.2 is every fifth): a test sees the fault however few requests it makes."""
        fraction = getattr(account.knobs, knob)
        if fraction <= 0:
            account.carry.pop(knob, None)
            return False
        account.carry[knob] = account.carry.get(knob, 0.0) + fraction
        if account.carry[knob] >= 1.0 - 1e-9:
            account.carry[knob] -= 1.0
            return True
        return False

    def lost_at_random(self, account: Account, count: int = 1) -> bool:
        """True for a `lost_fraction` share of send requests: answered 500, nothing taken."""
        if self._due(account, "lost_fraction"):
            account.reject("lost_fraction", count)
            return True
        return False

    def garbled_answer(self, account: Account) -> str | None:
        """After a send was taken: "ambiguous" (answer 500) for an `ambiguous_fraction` share of the requests,
        "undocumented" (answer 200 with a body nobody documented) for an `undocumented_fraction` share, else
        None."""
        if self._due(account, "ambiguous_fraction"):
            account.stats.garbled["ambiguous"] += 1
            return "ambiguous"
        if self._due(account, "undocumented_fraction"):
            account.stats.garbled["undocumented"] += 1
            return "undocumented"
        return None

    def push(self, account: Account, send: Callable[[], None]) -> None:
        """A status callback or webhook, after `callback_delay_seconds`, or never for a
        `callback_drop_fraction` share."""
        knobs = account.knobs
        if self._due(account, "callback_drop_fraction"):
            return
        if knobs.callback_delay_seconds > 0:
            generation = self.sandbox.generation
            asyncio.get_running_loop().call_later(
                knobs.callback_delay_seconds, lambda: generation == self.sandbox.generation and send())
            return
        send()

    @staticmethod
    def word(account: Account, status: str, documented: str) -> str:
        """The word printed for a status: the `status_words` knob's, else the documented one."""
        return account.knobs.status_words.get(status, documented)
