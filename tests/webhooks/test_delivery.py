"""Delivery to a real HTTP receiver: signed POSTs, a 2xx delivers, anything else is tried again by the
schedule and given up after its last step; claims never overlap; a claim whose worker died is delivered again."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from campaigns.models import WebhookDelivery, WebhookSubscription, aware, utcnow
from campaigns.settings import get_settings, reset_settings
from campaigns.webhooks import deliveries, outbox, subscriptions
from tests.support.subscribers import event_id, signed_by
from workers.webhooks import deliver, deliver_webhooks


def write_events(engine, subscription_id: int, count: int) -> list[str]:
    """`count` optout.added events for one subscription; their webhook-ids."""
    with engine.begin() as connection:
        outbox.write(connection, "optout.added", [{"phone": f"+2567000{i:05d}"} for i in range(count)],
                     subscription_ids=[subscription_id])
        return list(connection.execute(select(WebhookDelivery.event_id).order_by(WebhookDelivery.id)).scalars())


def rows(engine) -> list:
    with engine.connect() as connection:
        return connection.execute(select(WebhookDelivery).order_by(WebhookDelivery.id)).all()


@pytest.fixture
def fast_retries(monkeypatch):
    """Three quick retries instead of hours (BLAST_WEBHOOK_RETRY_SECONDS)."""
    monkeypatch.setenv("BLAST_WEBHOOK_RETRY_SECONDS", "0,0,0")
    reset_settings()


def test_every_event_is_posted_signed_and_recorded_as_delivered(engine, receiver):
    # given a subscription and five events for it
    subscription_id, secret = subscriptions.add(engine, receiver.url + "/blast", "optout.added")
    ids = write_events(engine, subscription_id, 5)
    # when its due events are delivered
    result = deliver(subscription_id, engine=engine)
    # then each was POSTed once, as JSON, with the stored body, signed with the subscription's secret
    assert result["delivered"] == 5
    posts = receiver.posts
    assert sorted(event_id(post) for post in posts) == sorted(ids)
    assert all(signed_by(post, secret) for post in posts)
    assert all(post["content_type"] == "application/json" and post["path"] == "/blast" for post in posts)
    assert {post["body"]["data"]["phone"] for post in posts} == {f"+2567000{i:05d}" for i in range(5)}
    # and each delivery and the subscription keep the answer
    assert [(row.state, row.attempts, row.last_status_code) for row in rows(engine)] == [("delivered", 1, 200)] * 5
    assert subscriptions.shown(engine, subscription_id)["last_status_code"] == 200


def test_a_failed_attempt_is_tried_again_by_the_schedule_then_given_up(engine, receiver, monkeypatch):
    # given a schedule of two retries, 60 s then 120 s, and a receiver that answers 500, then 302, then 503
    monkeypatch.setenv("BLAST_WEBHOOK_RETRY_SECONDS", "60,120")
    reset_settings()
    receiver.statuses = [500, 302, 503]
    subscription_id, _ = subscriptions.add(engine, receiver.url, "optout.added")
    write_events(engine, subscription_id, 1)
    # when it is delivered: the 500 schedules the next attempt 60 s later
    before = utcnow()
    assert deliver(subscription_id, engine=engine)["pending"] == 1
    [row] = rows(engine)
    assert (row.state, row.attempts, row.last_status_code) == ("pending", 1, 500)
    assert timedelta(seconds=59) < aware(row.next_attempt_at) - before < timedelta(seconds=62)
    # and nothing is posted again before then
    assert deliver(subscription_id, engine=engine)["pending"] == 0 and len(receiver.posts) == 1
    # when the time comes, the redirect is not followed and counts as a failure (120 s next)
    _make_due(engine)
    assert deliver(subscription_id, engine=engine)["pending"] == 1
    [row] = rows(engine)
    assert (row.state, row.attempts, row.last_status_code) == ("pending", 2, 302)
    # when the last attempt fails too, it is given up, with its answer kept
    _make_due(engine)
    assert deliver(subscription_id, engine=engine)["failed"] == 1
    [row] = rows(engine)
    assert (row.state, row.attempts, row.last_status_code) == ("failed", 3, 503)
    assert len(receiver.posts) == 3 and len({event_id(post) for post in receiver.posts}) == 1


def test_no_answer_is_a_failure_kept_with_its_kind(engine, fast_retries):
    # given a subscriber nobody listens at
    subscription_id, _ = subscriptions.add(engine, "http://127.0.0.1:9/down", "optout.added")
    write_events(engine, subscription_id, 2)
    # when delivered, then both wait for their next attempt, with no status and the kind of failure
    assert deliver(subscription_id, engine=engine, budget_seconds=0)["pending"] == 2
    assert {(row.state, row.last_status_code, row.last_answer) for row in rows(engine)} == {
        ("pending", None, "ConnectionRefusedError")}


def test_concurrent_claims_never_share_a_delivery(engine):
    # given 300 due deliveries
    subscription_id, _ = subscriptions.add(engine, "http://127.0.0.1:9/x", "optout.added")
    write_events(engine, subscription_id, 300)
    claimed: list[list[int]] = []
    start = threading.Barrier(4)

    def claimer():
        start.wait()
        while True:
            claim = deliveries.claim(engine, subscription_id, limit=25)
            if not claim.deliveries:
                return
            claimed.append([held.id for held in claim.deliveries])
            deliveries.record(engine, claim, [deliveries.Answer(held.id, 0, utcnow(), 204, "")
                                              for held in claim.deliveries])

    # when four threads claim batches at once, each recording its batch, until none is left
    threads = [threading.Thread(target=claimer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # then every delivery was claimed exactly once, at most 25 at a time
    assert max(len(batch) for batch in claimed) == 25
    every = [delivery_id for batch in claimed for delivery_id in batch]
    assert sorted(every) == [row.id for row in rows(engine)]


def claim_when_free(engine, subscription_id: int, *, limit: int, seconds: float = 30.0) -> deliveries.Claim:
    """Claim as another worker would, again and again until something is free (a lost claim frees its
    deliveries: at once, or when its lease or idle transaction times out)."""
    deadline = time.monotonic() + seconds
    while True:
        claim = deliveries.claim(engine, subscription_id, limit=limit)
        if claim.deliveries or time.monotonic() > deadline:
            return claim
        time.sleep(0.05)


def test_a_claim_held_by_a_live_worker_is_not_taken(engine):
    # given three deliveries claimed by a worker that is still POSTing them
    subscription_id, _ = subscriptions.add(engine, "http://127.0.0.1:9/x", "optout.added")
    write_events(engine, subscription_id, 3)
    held = deliveries.claim(engine, subscription_id, limit=10)
    assert len(held.deliveries) == 3
    # when another worker claims, then it gets none of them
    assert deliveries.claim(engine, subscription_id, limit=10).deliveries == []
    deliveries.release(held)


def test_a_claim_whose_worker_died_is_delivered_again(engine, receiver):
    # given deliveries claimed by a worker that died before recording anything: its connection cut (Postgres),
    # its lease already over (SQLite)
    subscription_id, _ = subscriptions.add(engine, receiver.url, "optout.added")
    ids = write_events(engine, subscription_id, 3)
    lost = deliveries.claim(engine, subscription_id, limit=10, lease_seconds=-1)
    assert len(lost.deliveries) == 3
    if lost.connection is not None:
        lost.connection.invalidate()
    # when another worker delivers, then it takes them and they are delivered
    assert deliver(subscription_id, engine=engine)["delivered"] == 3
    assert sorted(event_id(post) for post in receiver.posts) == sorted(ids)


def test_a_frozen_workers_claim_is_taken_over_and_its_late_answer_changes_nothing(engine, fast_retries):
    # given a delivery claimed by a worker that then froze past its lease (0.3 s), and taken over by another
    subscription_id, _ = subscriptions.add(engine, "http://127.0.0.1:9/x", "optout.added")
    write_events(engine, subscription_id, 1)
    slow = deliveries.claim(engine, subscription_id, limit=1, lease_seconds=0.3)
    taken = claim_when_free(engine, subscription_id, limit=1)
    assert [held.id for held in taken.deliveries] == [held.id for held in slow.deliveries]
    now = utcnow()
    deliveries.record(engine, taken, [deliveries.Answer(taken.deliveries[0].id, 0, now, 204, "")])
    # when the frozen worker wakes and records its failure, then nothing of it is recorded
    assert deliveries.record(engine, slow, [deliveries.Answer(slow.deliveries[0].id, 0, now, None, "ReadTimeout")]
                             ).get("pending", 0) == 0
    [row] = rows(engine)
    assert (row.state, row.attempts, row.last_status_code) == ("delivered", 1, 204)


def _make_due(engine) -> None:
    """The time of every delivery's next attempt, and of every subscription's next try, has come."""
    with engine.begin() as connection:
        connection.execute(update(WebhookDelivery).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
        connection.execute(update(WebhookSubscription).where(WebhookSubscription.next_try_at.is_not(None))
                           .values(next_try_at=utcnow() - timedelta(seconds=1)))


def test_bodies_are_the_contract_shape(engine, receiver):
    # given a test event for a subscription
    subscription_id, _ = subscriptions.add(engine, receiver.url, "optout.added")
    deliveries.add_test_event(engine, subscription_id)
    # when delivered, then the body has exactly type, timestamp and data
    deliver(subscription_id, engine=engine)
    [post] = receiver.posts
    assert set(post["body"]) == {"type", "timestamp", "data"} and post["body"]["type"] == "webhook.test"
    assert json.loads(post["raw"]) == post["body"]


def test_old_deliveries_done_with_are_pruned_and_pending_ones_kept(engine):
    # given five delivered, two given up and three pending deliveries, all three weeks old, and one new delivered
    subscription_id, _ = subscriptions.add(engine, "http://127.0.0.1:9/x", "optout.added")
    write_events(engine, subscription_id, 11)
    ids = [row.id for row in rows(engine)]
    states = ["delivered"] * 5 + ["failed"] * 2 + ["pending"] * 3 + ["delivered"]
    with engine.begin() as connection:
        for delivery_id, state in zip(ids, states, strict=True):
            connection.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery_id).values(
                state=state, created_at=utcnow() - timedelta(days=21)))
        connection.execute(update(WebhookDelivery).where(WebhookDelivery.id == ids[-1]).values(created_at=utcnow()))
    # when pruned (two weeks kept), in chunks of three
    assert deliveries.prune(engine, keep_days=14, chunk=3) == 7
    # then the pending ones and the new one are left
    assert [row.state for row in rows(engine)] == ["pending"] * 3 + ["delivered"]


def test_a_kept_alive_connection_the_subscriber_dropped_is_opened_again():
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from workers.webhooks import Connections

    # given a subscriber that keeps connections alive (HTTP/1.1) but drops each one after answering, unannounced
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()
            self.close_connection = True

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook?token=t"
        connections = Connections()
        # when three POSTs go out one after another on the thread's kept connection
        answers = [connections.post(url, b"{}", {"content-type": "application/json"}, 5) for _ in range(3)]
        # then each is answered: the dropped connection was found out and opened again
        assert [status for status, _body in answers] == [204, 204, 204]
    finally:
        server.shutdown()
        server.server_close()


class RawSubscriber:
    """A subscriber that answers each POST with the exact bytes given (one answer per connection when it
    closes), and records each request's head and body."""

    def __init__(self, answer: bytes, *, close_after: bool):
        import socket

        self.answer, self.close_after, self.requests, self.connections = answer, close_after, [], 0
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}/in?token=t"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            with connection:
                buffered = b""
                while True:
                    while b"\r\n\r\n" not in buffered:
                        data = connection.recv(65536)
                        if not data:
                            break
                        buffered += data
                    if b"\r\n\r\n" not in buffered:
                        break
                    head, buffered = buffered.split(b"\r\n\r\n", 1)
                    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                      if line.lower().startswith(b"content-length:")))
                    while len(buffered) < length:
                        buffered += connection.recv(65536)
                    self.requests.append((head.decode(), buffered[:length]))
                    buffered = buffered[length:]
                    try:
                        connection.sendall(self.answer)
                    except OSError:  # the client is gone
                        break
                    if self.close_after:
                        break

    def close(self) -> None:
        self.server.close()


LARGE = 70 * 1024  # over what is read of an answer (READ_AT_MOST)


@pytest.mark.parametrize(("answer", "close_after", "expected"), [
    (b"HTTP/1.1 204 No Content\r\n\r\n", False, (204, b"")),
    (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", False, (200, b"ok")),
    (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n3\r\n!!!\r\n0\r\n\r\n", False,
     (200, b"ok!!!")),
    (b"HTTP/1.0 410 Gone\r\n\r\ngone for good", True, (410, b"gone for good")),  # the body runs to the close
    (b"HTTP/1.1 500 Oops\r\ncontent-length: %d\r\n\r\n%s" % (LARGE, b"x" * LARGE), False, (500, b"x" * 65536)),
], ids=["no-body", "content-length", "chunked", "until-close", "over-what-is-read"])
@pytest.mark.parametrize("together", [1, 2], ids=["one-at-a-time", "pipelined"])
def test_an_answer_is_read_as_http_frames_it(answer, close_after, expected, together):
    from workers.webhooks import Connections

    # given a subscriber answering in one of HTTP/1.1's ways (or 1.0's)
    subscriber = RawSubscriber(answer, close_after=close_after)
    try:
        connections = Connections()
        # when two POSTs go out one after another, or written together
        requests = [(b'{"n":%d}' % n, {"webhook-id": f"msg_{n}"}) for n in range(2)]
        answers = [answer for start in range(0, 2, together)
                   for answer in connections.post_all(subscriber.url, requests[start:start + together], 5)]
        # then each got the answer's status and body (at most what is read), and the subscriber got each POST
        # whole: its target, host, headers and body
        assert answers == [expected, expected]
        heads = [head.split("\r\n") for head, _body in subscriber.requests]
        assert [head[0] for head in heads] == ["POST /in?token=t HTTP/1.1"] * 2
        assert all(f"host: 127.0.0.1:{subscriber.url.split(':')[2].split('/')[0]}" in head for head in heads)
        assert [f"webhook-id: msg_{n}" in heads[n] for n in range(2)] == [True, True]
        assert [body for _head, body in subscriber.requests] == [b'{"n":0}', b'{"n":1}']
    finally:
        subscriber.close()


def test_a_subscriber_that_closes_without_answering_is_an_error_not_an_answer():
    from workers.webhooks import Connections

    # given a subscriber that reads each POST and closes without a word
    subscriber = RawSubscriber(b"", close_after=True)
    try:
        # when a POST goes out on a new connection, then it is not taken for an answer
        with pytest.raises(OSError):
            Connections().post(subscriber.url, b"{}", {}, 5)
    finally:
        subscriber.close()


@pytest.mark.parametrize(("answer", "close_after", "connections"), [
    (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", False, 1),
    (b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok", True, 3),
    (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", True, 3),  # closes unannounced
], ids=["keeps-alive", "announces-close", "closes-unannounced"])
def test_posts_written_together_are_each_answered_once_whatever_the_subscriber_does(answer, close_after,
                                                                                     connections):
    from workers.webhooks import Connections

    # given a subscriber that keeps its connections, or reads one POST per connection and drops what came after
    subscriber = RawSubscriber(answer, close_after=close_after)
    try:
        # when three POSTs are written together on one connection
        answers = Connections().post_all(subscriber.url, [(b'{"n":%d}' % n, {}) for n in range(3)], 5)
        # then each was answered, and each reached the subscriber once, in order: on one connection, or each
        # dropped one again on a new connection
        assert answers == [(200, b"ok")] * 3
        assert [body for _head, body in subscriber.requests] == [b'{"n":0}', b'{"n":1}', b'{"n":2}']
        assert subscriber.connections == connections
    finally:
        subscriber.close()


def test_a_subscriptions_rate_spreads_a_backlog_over_the_seconds_it_needs(engine, receiver, monkeypatch):
    # given a cap of 30 events a second per subscription, and 90 events waiting
    monkeypatch.setenv("BLAST_WEBHOOK_RATE_PER_SUBSCRIPTION", "30")
    reset_settings()
    subscription_id, _ = subscriptions.add(engine, receiver.url, "optout.added")
    write_events(engine, subscription_id, 90)
    # when they are delivered
    assert deliver(subscription_id, engine=engine)["delivered"] == 90
    # then they took three one-second windows of the limiter, so the last arrived two seconds after the first
    # (less what a slow first POST may have lost); with no cap they all arrive within a few milliseconds
    arrivals = sorted(post["arrived"] for post in receiver.posts)
    assert len(arrivals) == 90
    assert arrivals[-1] - arrivals[0] >= 1.5


def test_a_second_delivery_task_for_a_subscription_being_delivered_returns_at_once(engine, receiver):
    # given a delivery task POSTing three events to a subscriber that has not answered yet
    subscription_id, _ = subscriptions.add(engine, receiver.url, "optout.added")
    ids = write_events(engine, subscription_id, 3)
    receiver.hold = threading.Event()
    results: list[dict] = []
    first = threading.Thread(target=lambda: results.append(deliver_webhooks.run(subscription_id)))
    first.start()
    receiver.wait_for(lambda posts: len(posts) >= 1, what="the first POST")
    # when two more events are written and another task for the same subscription runs in the same process
    with engine.begin() as connection:
        outbox.write(connection, "optout.added", [{"phone": "+256700099998"}, {"phone": "+256700099999"}],
                     subscription_ids=[subscription_id], kick=False)
    second = deliver_webhooks.run(subscription_id)
    # then it returns at once having POSTed nothing, and the first, once answered, delivers all five
    assert second == {"delivered": 0, "pending": 0, "failed": 0}
    receiver.hold.set()
    first.join(timeout=60)
    assert results == [{"delivered": 5, "pending": 0, "failed": 0}]
    assert len({event_id(post) for post in receiver.posts}) == len(receiver.posts) == 5
    assert set(ids) <= {event_id(post) for post in receiver.posts}


@pytest.mark.parametrize(("status_code", "down"), [
    (None, True), (500, True), (502, True), (503, True), (408, True), (429, True),  # it cannot take any event now
    (200, False), (204, False), (400, False), (404, False), (410, False), (302, False),  # it answered about this one
])
def test_what_says_a_subscriber_is_down(status_code, down):
    assert deliveries.Answer(1, 0, utcnow(), status_code, "").down is down


def test_a_subscriber_that_is_down_is_tried_with_one_event_until_it_is_back(engine, receiver):
    # given 100 events for a subscriber that answers 503 to everything
    receiver.statuses = [503] * 10_000
    subscription_id, _ = subscriptions.add(engine, receiver.url, "optout.added")
    ids = write_events(engine, subscription_id, 100)
    # when they are delivered
    result = deliver(subscription_id, engine=engine)
    # then the groups begun before the first answers came back were POSTed, and no more
    posted = len(receiver.posts)
    assert result["pending"] == posted <= get_settings().webhook_concurrency < 100
    # and the subscription is down, tried again at the schedule's first step (5 s) after its last answer
    shown = subscriptions.shown(engine, subscription_id)
    assert shown["down_since"] is not None and shown["last_status_code"] == 503
    assert aware(shown["next_try_at"]) - aware(shown["last_attempt_at"]) == timedelta(seconds=5)
    # and the events not POSTed kept every attempt
    assert sorted(row.attempts for row in rows(engine)) == [0] * (100 - posted) + [1] * posted
    # when it is delivered again (a kick, the sweep) before that time, then nothing is POSTed, nor handed out
    assert deliver(subscription_id, engine=engine)["pending"] == 0 and len(receiver.posts) == posted
    assert deliveries.due_subscriptions(engine) == []
    # when the time comes and it is still down, then one event tries it, and the next try is 300 s on
    _make_due(engine)
    assert subscription_id in deliveries.due_subscriptions(engine)
    assert deliver(subscription_id, engine=engine)["pending"] == 1 and len(receiver.posts) == posted + 1
    shown = subscriptions.shown(engine, subscription_id)
    assert aware(shown["next_try_at"]) - aware(shown["last_attempt_at"]) == timedelta(seconds=300)
    # when it is back and the time comes, then every event is delivered, none given up
    receiver.statuses = []
    _make_due(engine)
    assert deliver(subscription_id, engine=engine)["delivered"] == 100
    assert {row.state for row in rows(engine)} == {"delivered"}
    assert {event_id(post) for post in receiver.posts} == set(ids)
    shown = subscriptions.shown(engine, subscription_id)
    assert (shown["down_since"], shown["next_try_at"]) == (None, None)


def test_a_hanging_subscriber_holds_a_batch_for_one_round_of_timeouts(engine, receiver, monkeypatch):
    # given a subscriber that takes POSTs and never answers, a half-second timeout, and 200 events
    monkeypatch.setenv("BLAST_WEBHOOK_TIMEOUT_SECONDS", "0.5")
    reset_settings()
    receiver.hold = threading.Event()
    subscription_id, _ = subscriptions.add(engine, receiver.url, "optout.added")
    write_events(engine, subscription_id, 200)
    try:
        # when they are delivered
        result = deliver(subscription_id, engine=engine)
    finally:
        receiver.hold.set()
    # then only the groups begun at once were POSTed (one connection each, so at most their first POSTs were
    # read): the other 25 groups of 8 did not each wait out a timeout, and kept their attempts
    settings = get_settings()
    threads = -(-settings.webhook_concurrency // settings.webhook_pipeline)
    assert result["pending"] <= settings.webhook_concurrency
    assert len(receiver.posts) <= threads
    assert sum(row.attempts == 0 for row in rows(engine)) >= 200 - settings.webhook_concurrency
    assert subscriptions.shown(engine, subscription_id)["last_answer"] == "TimeoutError"


def test_an_operators_test_event_goes_to_a_subscriber_that_is_down_and_its_2xx_ends_the_wait(engine, receiver):
    # given a subscription found down, with its next try an hour away and an event waiting
    receiver.statuses = [503]
    subscription_id, _ = subscriptions.add(engine, receiver.url, "optout.added")
    write_events(engine, subscription_id, 1)
    deliver(subscription_id, engine=engine)
    with engine.begin() as connection:
        connection.execute(update(WebhookSubscription).values(next_try_at=utcnow() + timedelta(hours=1)))
    # when the operator sends a test event (blast webhooks test, the page's button)
    test_id = deliveries.add_test_event(engine, subscription_id, kick=False)
    result = deliver(subscription_id, engine=engine, only=[test_id])
    # then it is POSTed at once and taken, and the subscription is no longer down: the waiting event goes next
    assert result["delivered"] == 1
    assert subscriptions.shown(engine, subscription_id)["next_try_at"] is None
    assert deliveries.due_subscriptions(engine) == []  # the event's own retry (5 s) has not come yet
    _make_due(engine)
    assert deliver(subscription_id, engine=engine)["delivered"] == 1
