"""Outbound webhooks delivered: task `blast.deliver_webhooks` (one subscription's due events POSTed, on the
`webhooks` queue, away from the send path) and `blast.sweep_webhooks` (beat's safety net: every subscription
with an event due gets a delivery task, so nothing waits on a Celery message that was lost).

Arguments are subscription ids only: the worker reads the URL and the secret from the database.
A task claims a batch of due deliveries (campaigns.webhooks.deliveries), POSTs them `webhook_concurrency` at a
time from a thread pool (`webhook_pipeline` of them written together on each kept-alive connection), records every
answer, and goes on until none is due, its time is up (then it hands over to a fresh task, so a backlog never
holds a worker) or the subscriber is down (then one event tries it again when the subscription says).
"""

from __future__ import annotations

import logging
import math
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httptools

from campaigns.db import get_engine
from campaigns.models import utcnow
from campaigns.settings import get_settings
from campaigns.webhooks import deliveries, subscriptions
from campaigns.webhooks.deliveries import Answer, Claimed
from campaigns.webhooks.signing import Signer
from workers.app import app, ensure_configured

log = logging.getLogger("blast.webhooks")

BATCH = 200  # deliveries claimed at once: POSTed together, recorded in one transaction
BUDGET_SECONDS = 20.0  # a task that has delivered this long hands over to a fresh one
USER_AGENT = "Blast-Webhooks/1"

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_delivering: set[int] = set()  # the subscriptions this process's delivery tasks are delivering now
_delivering_lock = threading.Lock()


def publish_delivery(subscription_id: int) -> None:
    """A delivery task for the subscription. Not retried when the broker is away: a kick only saves time (beat's
    sweep hands the events out anyway), and it runs on the committing thread, which may be a send task's."""
    ensure_configured(app)
    deliver_webhooks.apply_async((subscription_id,), queue="webhooks", retry=False)


@app.task(name="blast.deliver_webhooks", acks_late=True, ignore_result=True)
def deliver_webhooks(subscription_id: int) -> dict:
    """POST the subscription's due events (a lost or repeated task is harmless: deliveries are claimed).

    One task per subscription at a time in a process: another one returns at once, since the running one goes on
    until nothing is due. (Its POSTs share the process's threads anyway; on Postgres each task also holds a
    connection through its batch, and a worker that also sends would run short of them behind a slow
    subscriber.)"""
    with _delivering_lock:
        if subscription_id in _delivering:
            return {"delivered": 0, "pending": 0, "failed": 0}
        _delivering.add(subscription_id)
    try:
        result = deliver(subscription_id)
    finally:
        with _delivering_lock:
            _delivering.discard(subscription_id)
    if result.pop("more"):
        publish_delivery(subscription_id)
    result.pop("answers")
    return result


@app.task(name="blast.sweep_webhooks", ignore_result=True)
def sweep_webhooks() -> int:
    return sweep()


@app.task(name="blast.prune_webhooks", ignore_result=True)
def prune_webhooks() -> int:
    """Deliveries done with, older than BLAST_WEBHOOK_KEEP_DAYS, deleted (a message.status per message per
    subscription would otherwise grow the table without end)."""
    return deliveries.prune(get_engine())


def sweep() -> int:
    """A delivery task for every subscription with an event due (a retry whose time came, a lost kick)."""
    due = deliveries.due_subscriptions(get_engine())
    for subscription_id in due:
        publish_delivery(subscription_id)
    return len(due)


def deliver(subscription_id: int, *, engine=None, only: list[int] | None = None,
            budget_seconds: float = BUDGET_SECONDS) -> dict:
    """Deliver the subscription's due events (or only those of `only`); returns counts per outcome, the
    answers when `only` was given, and whether more may be due ("more")."""
    engine = engine or get_engine()
    settings = get_settings()
    target = subscriptions.target(engine, subscription_id)
    result = {"delivered": 0, "pending": 0, "failed": 0, "answers": [], "more": False}
    if target is None:  # removed meanwhile
        return result
    if only is None and target.next_try_at is not None and target.next_try_at > utcnow():
        return result  # its subscriber is down: nothing before the next try (an operator's test goes anyway)
    url, signer = target.url, Signer(target.secret)
    delays = deliveries.retry_delays()
    rate = settings.webhook_rate_per_subscription
    batch = BATCH if not rate or only is not None else max(1, min(BATCH, math.floor(rate)))
    limit = 1 if only is None and target.down_since is not None else batch  # one event tries a subscriber down
    started = time.monotonic()
    while True:
        claim = deliveries.claim(engine, subscription_id, limit=limit, only=only)
        if not claim.deliveries:
            return result
        try:
            if rate and only is None:  # for what was claimed: a task that finds nothing takes no turn
                take_turn(subscription_id, rate, len(claim.deliveries))
            answers = post_batch(url, signer, claim.deliveries, settings)
            for state, count in deliveries.record(engine, claim, answers, delays).items():
                result[state] += count
        finally:
            deliveries.release(claim)
        if only is not None:
            result["answers"].extend(answers)
            return result
        if deliveries.subscriber_down(answers):
            return result  # the next try is when the subscription says
        limit = batch
        if time.monotonic() - started > budget_seconds:
            result["more"] = True
            return result


def post_batch(url: str, signer: Signer, batch: list[Claimed], settings) -> list[Answer]:
    """POST a claimed batch, `webhook_pipeline` at a time on each of the pool's connections; the answers of those
    POSTed. Once a group's answers all say the subscriber is down, the groups not yet begun are not POSTed: they
    keep their attempts for when it is back."""
    depth, timeout = settings.webhook_pipeline, settings.webhook_timeout_seconds
    down = threading.Event()

    def post(group: list[Claimed]) -> list[Answer]:
        if down.is_set():
            return []
        answers = post_group(url, signer, group, timeout)
        if deliveries.subscriber_down(answers):
            down.set()
        return answers

    groups = [batch[start:start + depth] for start in range(0, len(batch), depth)]
    return [answer for answers in pool().map(post, groups) for answer in answers]


def take_turn(subscription_id: int, rate: float, count: int) -> None:
    """Wait for `count` slots of the subscription's `rate` (events a second) from the limiter the gateways'
    sends use: one schedule per subscription for every worker, through Redis when it is configured."""
    from workers.rate_limits import get_limiter

    while not get_limiter().acquire(f"webhooks:{subscription_id}", rate=rate, max_wait=1.0, count=count):
        pass


def pool() -> ThreadPoolExecutor:
    """The process's POSTing threads, shared by its delivery tasks: settings.webhook_concurrency POSTs in flight,
    settings.webhook_pipeline of them on each thread's connection."""
    global _pool
    with _pool_lock:
        if _pool is None:
            settings = get_settings()
            threads = -(-settings.webhook_concurrency // settings.webhook_pipeline)
            _pool = ThreadPoolExecutor(threads, thread_name_prefix="blast-webhook")
        return _pool


READ_AT_MOST = 64 * 1024  # an answer's bytes read to keep its connection; past this the connection is closed
RECEIVE_BYTES = 64 * 1024  # asked of the socket at a time
DEFAULT_PORTS = {"http": 80, "https": 443}


class _Answers:
    """The answers httptools' parser finds in what a connection received, in order (its callbacks, by name)."""

    __slots__ = ("bodies", "complete", "keep_alive", "parser", "sizes", "statuses")

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.complete = 0  # answers read to their end
        self.keep_alive = True  # the last whole answer left the connection open (asked once the answer is whole:
        # between answers the parser has forgotten)
        self.statuses: list[int] = []
        self.bodies: list[list[bytes]] = []
        self.sizes: list[int] = []

    def on_message_begin(self) -> None:
        self.statuses.append(0)
        self.bodies.append([])
        self.sizes.append(0)

    def on_headers_complete(self) -> None:
        self.statuses[-1] = self.parser.get_status_code()

    def on_body(self, data: bytes) -> None:
        if self.sizes[-1] < READ_AT_MOST:
            self.bodies[-1].append(data)
        self.sizes[-1] += len(data)

    def on_message_complete(self) -> None:
        self.complete += 1
        self.keep_alive = self.parser.should_keep_alive()

    def answer(self, index: int) -> tuple[int, bytes]:
        return self.statuses[index], b"".join(self.bodies[index])[:READ_AT_MOST]


class Connection:
    """One kept-alive HTTP/1.1 connection to a subscriber. POSTs are written together (pipelined, RFC 9112
    section 9.3.2) and their answers, which come in the same order, parsed by httptools (llhttp, the parser
    uvicorn and Node use). http.client cost twice the CPU per POST, most of it building headers one call at a
    time and parsing answers with the email package; a POST needs nothing of what it adds (no redirects,
    proxies, cookies or retries: the schedule retries).

    The RFC asks a client not to pipeline a POST unless it can detect and recover from a partial failure: a
    subscriber drops a repeated event by its `webhook-id`, and a POST left unanswered is sent again."""

    def __init__(self, parts, timeout: float) -> None:
        self.socket = socket.create_connection((parts.hostname, parts.port or DEFAULT_PORTS[parts.scheme]),
                                               timeout=timeout)
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if parts.scheme == "https":
            self.socket = ssl.create_default_context().wrap_socket(self.socket, server_hostname=parts.hostname)
        self.host = parts.netloc.rsplit("@", 1)[-1].encode("idna")
        self.open = True

    def exchange(self, target: bytes, requests: list[tuple[bytes, bytes]],
                 timeout: float) -> tuple[list[tuple[int, bytes]], BaseException | None]:
        """POST each (headers, body) of `requests`; their answers in order, fewer when the subscriber closed the
        connection after answering some (or none), and the error that stopped the reading (a timeout, a malformed
        answer), if one did."""
        answers = _Answers()
        error = None
        try:
            self.socket.settimeout(timeout)
            self.socket.sendall(b"".join(
                b"POST %s HTTP/1.1\r\nhost: %s\r\n%scontent-length: %d\r\n\r\n%s"
                % (target, self.host, headers, len(body), body) for headers, body in requests))
            while answers.complete < len(requests):
                reading = len(answers.statuses) > answers.complete  # an answer begun, not yet whole
                if not reading and not answers.keep_alive:
                    break  # the last answer said the subscriber closes the connection
                if reading and answers.sizes[-1] > READ_AT_MOST:
                    answers.complete += 1  # the rest of a long answer is not read: the connection is closed
                    answers.keep_alive = False
                    break
                data = self.socket.recv(RECEIVE_BYTES)
                if not data:
                    if reading and answers.statuses[-1] and not answers.parser.should_keep_alive():
                        answers.complete += 1  # a body that runs to the connection's end (no length given)
                        answers.keep_alive = False
                    break
                answers.parser.feed_data(data)
        except (OSError, httptools.HttpParserError) as raised:
            error = raised
        if error is not None or answers.complete < len(requests) or not answers.keep_alive:
            self.close()
        return [answers.answer(index) for index in range(answers.complete)], error

    def close(self) -> None:
        self.open = False
        self.socket.close()


class Connections:
    """Each POSTing thread's kept-alive connections, one per subscriber's scheme, host and port. `timeout`
    bounds each connect, send and read."""

    def __init__(self) -> None:
        self._local = threading.local()

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
        """One POST; its answer (status, body's start) or the error."""
        answer = self.post_all(url, [(body, headers)], timeout)[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def post_all(self, url: str, requests: list[tuple[bytes, dict[str, str]]],
                 timeout: float) -> list[tuple[int, bytes] | BaseException]:
        """POST each (body, headers) of `requests` on one connection, pipelined; the answer or error of each, in
        order. A POST the subscriber left unanswered by closing the connection (an idle connection it had
        dropped, or `Connection: close` after an earlier answer) is sent again on a new one; one left unanswered
        on a new connection too is a `ConnectionResetError`."""
        parts = urlsplit(url)
        target = ((parts.path or "/") + (f"?{parts.query}" if parts.query else "")).encode()
        pending = [("".join(f"{name}: {value}\r\n" for name, value in headers.items()).encode(), body)
                   for body, headers in requests]
        key = (parts.scheme, parts.hostname, parts.port)
        kept = self._local.__dict__.setdefault("connections", {})
        results: list[tuple[int, bytes] | BaseException] = []
        fresh_failures = 0
        while pending:
            connection = kept.get(key)
            fresh = connection is None or not connection.open
            try:
                if fresh:
                    connection = kept[key] = Connection(parts, timeout)
            except OSError as error:  # refused, unreachable, a bad certificate
                return results + [error] * len(pending)
            answers, error = connection.exchange(target, pending, timeout)
            results.extend(answers)
            pending = pending[len(answers):]
            if error is not None:
                return results + [error] * len(pending)
            if pending and fresh and not answers:
                fresh_failures += 1
                if fresh_failures > 1:
                    error = ConnectionResetError("the subscriber closed the connection without answering")
                    return results + [error] * len(pending)
        return results


connections = Connections()


def post_group(url: str, signer: Signer, group: list[Claimed], timeout: float) -> list[Answer]:
    """POSTs of a few deliveries, pipelined on this thread's connection; each answer as recorded. Only a 2xx
    delivers: a redirect is not followed (the subscriber's URL is what it registered), a timeout or a refused
    connection is tried again later."""
    requests = []
    for claimed in group:
        headers = {"content-type": "application/json", "user-agent": USER_AGENT,
                   **signer.headers(claimed.event_id, claimed.body, at=time.time())}
        requests.append((claimed.body.encode(), headers))
    answers = []
    for claimed, answer in zip(group, connections.post_all(url, requests, timeout), strict=True):
        if isinstance(answer, BaseException):
            # the kind of failure only: an error's text may repeat the URL, which may carry the subscriber's token
            status_code, text = None, type(answer).__name__
        else:
            status_code, data = answer
            text = data[:deliveries.ANSWER_KEPT * 4].decode("utf-8", "replace")[:deliveries.ANSWER_KEPT]
        answers.append(Answer(claimed.id, claimed.attempts, utcnow(), status_code, text))
    return answers

