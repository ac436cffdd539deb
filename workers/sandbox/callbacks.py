"""Callbacks and webhooks the sandbox POSTs to its clients, from background tasks.

Request handlers only enqueue (never wait); a few worker tasks POST with one keep-alive HTTP client.
A failed POST is retried later by a timer, so a slow or dead receiver never holds up anything else.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import orjson


@dataclass(frozen=True)
class RetryPolicy:
    """When a POST counts as received, and how long to wait before each retry (seconds)."""

    delays: tuple[float, ...]  # the wait before retry 1, 2, ...; the last one repeats while `keep_trying_for`
    keep_trying_for: float = 0.0  # seconds since the first try during which the last delay repeats
    only_200: bool = False  # True: only HTTP 200 counts as received; False: any 2xx

    def received(self, status: int) -> bool:
        return status == 200 if self.only_200 else 200 <= status < 300

    def next_delay(self, retries_done: int, elapsed: float) -> float | None:
        if retries_done < len(self.delays):
            return self.delays[retries_done]
        if elapsed < self.keep_trying_for:
            return self.delays[-1]
        return None


# Devino retries a callback for 24 hours until the receiver answers 200 (providers/README.md).
DEVINO_RETRY = RetryPolicy(delays=(0.1, 0.25, 0.5, 1.0, 2.0, 5.0), keep_trying_for=24 * 3600.0, only_200=True)
# metacloud.md s5: Meta retries a webhook not answered 200 with growing delays for up to 7 days.
META_RETRY = RetryPolicy(delays=(0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0), keep_trying_for=7 * 24 * 3600.0,
                         only_200=True)
# Assumption: the HTTP API's document says nothing about retries; the sandbox tries 3 more times.
WEBHOOK_RETRY = RetryPolicy(delays=(0.2, 1.0, 3.0))

MAX_BATCH = 100  # statuses per Devino callback POST (assumption: the document shows an array, no size)


class _Delivery:
    __slots__ = ("body", "first_try", "generation", "headers", "on_result", "policy", "retries", "url")

    def __init__(self, url: str, body: bytes, policy: RetryPolicy, generation: int,
                 on_result: Callable[[int], None] | None, headers: dict[str, str] | None = None):
        self.url = url
        self.body = body
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self.policy = policy
        self.generation = generation
        self.on_result = on_result
        self.first_try = time.monotonic()
        self.retries = 0


class CallbackSender:
    """Queue of JSON POSTs with retries; `generation()` tells which POSTs a reset has made obsolete."""

    def __init__(self, generation: Callable[[], int], *, workers: int = 16, timeout: float = 5.0):
        self._generation = generation
        self._workers = workers
        self._timeout = timeout
        self._queue: asyncio.Queue[_Delivery] = asyncio.Queue()
        self._batches: dict[tuple[str, RetryPolicy], list] = {}
        self._tasks: list[asyncio.Task] = []
        self._client: httpx.AsyncClient | None = None
        self.delivered = 0  # POSTs the receiver acknowledged
        self.failed_attempts = 0  # POSTs that failed (each retry counts)
        self.abandoned = 0  # POSTs given up after the last retry
        self.waiting_retries = 0

    async def start(self) -> None:
        self._client = httpx.AsyncClient(
            timeout=self._timeout, trust_env=False,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        )
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self._workers)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    def post(self, url: str, payload: object, policy: RetryPolicy,
             on_result: Callable[[int], None] | None = None) -> None:
        """POST `payload` as JSON to `url` soon; `on_result(http_status or 0)` after each try."""
        self._queue.put_nowait(_Delivery(url, orjson.dumps(payload), policy, self._generation(), on_result))

    def post_bytes(self, url: str, body: bytes, headers: dict[str, str], policy: RetryPolicy) -> None:
        """POST these exact bytes with these headers (a body the gateway signs) to `url` soon."""
        self._queue.put_nowait(_Delivery(url, body, policy, self._generation(), None, headers))

    def post_in_batch(self, url: str, item: object, policy: RetryPolicy) -> None:
        """Add `item` to the JSON array POSTed to `url` at the end of this loop turn (Devino's callbacks)."""
        key = (url, policy)
        batch = self._batches.get(key)
        if batch is None:
            batch = self._batches[key] = []
            asyncio.get_running_loop().call_soon(self._flush, key)
        batch.append(item)
        if len(batch) >= MAX_BATCH:
            self._flush(key)

    def _flush(self, key: tuple[str, RetryPolicy]) -> None:
        batch = self._batches.pop(key, None)
        if batch:
            self.post(key[0], batch, key[1])

    def forget(self) -> None:
        """Drop everything queued (a reset); retries already scheduled see the new generation and stop."""
        self._batches.clear()
        while not self._queue.empty():
            self._queue.get_nowait()

    def as_json(self) -> dict[str, int]:
        return {"delivered": self.delivered, "failed_attempts": self.failed_attempts,
                "abandoned": self.abandoned, "queued": self._queue.qsize(),
                "waiting_retries": self.waiting_retries}

    def _requeue(self, delivery: _Delivery) -> None:
        self.waiting_retries -= 1
        if delivery.generation == self._generation():
            self._queue.put_nowait(delivery)

    async def _work(self) -> None:
        assert self._client is not None
        while True:
            delivery = await self._queue.get()
            if delivery.generation != self._generation():
                continue
            try:
                answer = await self._client.post(delivery.url, content=delivery.body, headers=delivery.headers)
                status = answer.status_code
            except Exception:
                # Refused, timed out, or a URL httpx cannot use: not received. The worker lives on.
                status = 0
            if delivery.on_result is not None:
                delivery.on_result(status)
            if delivery.policy.received(status):
                self.delivered += 1
                continue
            self.failed_attempts += 1
            delay = delivery.policy.next_delay(delivery.retries, time.monotonic() - delivery.first_try)
            if delay is None:
                self.abandoned += 1
                continue
            delivery.retries += 1
            self.waiting_retries += 1
            asyncio.get_running_loop().call_later(delay, self._requeue, delivery)
