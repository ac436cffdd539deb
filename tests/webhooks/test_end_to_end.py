"""Webhooks end to end with a real Celery worker (threads, the embedded default's broker) and real HTTP: a
campaign sent through the sandbox is heard of, signed, by its subscriber; a subscriber that fails for a while
still gets every event; the secret is in no log and no task's arguments."""

from __future__ import annotations

import logging

import pytest
from celery.signals import before_task_publish

from campaigns import lifecycle
from campaigns.settings import reset_settings
from campaigns.webhooks import outbox, subscriptions
from tests.support.engine import wait_for_status, write_config, write_contacts
from tests.support.subscribers import event_id, signed_by

RECIPIENTS = 12


@pytest.fixture
def published():
    """Every Celery task published meanwhile: (name, args, kwargs) as they went to the broker."""
    seen = []

    def record(sender=None, body=None, headers=None, **_):
        seen.append((sender, repr(body), repr(headers)))

    before_task_publish.connect(record, weak=False)
    yield seen
    before_task_publish.disconnect(record)


@pytest.fixture
def all_logs(caplog):
    caplog.set_level(logging.DEBUG)
    return caplog


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_campaign_is_heard_of_signed_from_start_to_finish(database_url, tmp_path, sandbox, receiver, published,
                                                            all_logs):
    from workers.embedded import EmbeddedWorker

    # given a sandbox Socnet account and a subscriber to the campaign's start, messages and finish
    write_config(tmp_path / "blast.toml", sandbox, {"uganda": {"provider": "socnet", "rate": 100}})
    reset_settings()
    from campaigns.db import get_engine

    subscription_id, secret = subscriptions.add(get_engine(), receiver.url + "/events",
                                                "campaign.started,message.status,campaign.finished")
    numbers = write_contacts(tmp_path / "contacts.csv", RECIPIENTS)
    # when a campaign is sent with a worker in threads
    with EmbeddedWorker(concurrency=4):
        campaign_id, _report = lifecycle.launch(tmp_path / "contacts.csv", account_name="uganda",
                                                template="Hello {{ name }}")
        wait_for_status(campaign_id, ("finished",), timeout=60)
        receiver.wait_for(lambda posts: any(p["body"]["type"] == "campaign.finished" for p in posts),
                          timeout=30, what="campaign.finished")
        receiver.wait_for(lambda posts: len(_of_type(posts, "message.status")) >= RECIPIENTS, timeout=30,
                          what="a message.status per recipient")
    posts = receiver.posts
    # then every POST is signed with the subscription's secret (checked by the receiver's own computation)
    assert posts and all(signed_by(post, secret) for post in posts)
    # and it heard the start, each recipient's submission and the finish, with the contract's data
    named = {"campaign_id": campaign_id, "name": "contacts"}
    assert [p["body"]["data"] for p in _of_type(posts, "campaign.started")] == [named]
    assert [p["body"]["data"] for p in _of_type(posts, "campaign.finished")] == [named]
    statuses = [p["body"]["data"] for p in _of_type(posts, "message.status")]
    assert sorted(d["phone"] for d in statuses) == sorted(numbers)
    assert all(d["campaign_id"] == campaign_id and d["state"] == "submitted" and d["provider_message_id"]
               and d["error_code"] is None for d in statuses)
    assert len({event_id(post) for post in posts}) == len(posts)  # a 200 each time: nothing sent twice
    # and the secret went into no task's arguments and no log line
    deliveries_published = [entry for entry in published if entry[0] == "blast.deliver_webhooks"]
    assert deliveries_published and all(f"[{subscription_id}]" in body or f"({subscription_id}," in body
                                        for _name, body, _headers in deliveries_published)
    _assert_secret_nowhere(secret, published, all_logs.text)


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
def test_a_subscriber_failing_for_a_while_still_gets_every_event(database_url, engine, receiver, monkeypatch,
                                                                 published, all_logs):
    from workers.embedded import EmbeddedWorker

    # given quick retries (the schedule's hours as tenths of seconds) and a subscriber that answers 500 to its
    # first 25 POSTs, then 200
    monkeypatch.setenv("BLAST_WEBHOOK_RETRY_SECONDS", "0.1,0.2,0.4,0.8,1,1,1,1,1,1")
    reset_settings()
    receiver.statuses = [500] * 25
    _subscription_id, secret = subscriptions.add(engine, receiver.url, "optout.added")
    # when 20 events are written (in two transactions) while a worker delivers
    with EmbeddedWorker(concurrency=2):
        for start in (0, 10):
            with engine.begin() as connection:
                outbox.write(connection, "optout.added",
                             [{"phone": f"+25670000{i:04d}"} for i in range(start, start + 10)])
        with engine.connect() as connection:
            sent = _event_ids(connection)
        # then every event is taken (a 200) at least once, none lost
        receiver.wait_for(lambda posts: {event_id(p) for p in posts if p["answered"] == 200} >= set(sent),
                          timeout=30, what="every event answered 200")
    failed = {event_id(p) for p in receiver.posts if p["answered"] == 500}
    assert len(sent) == 20 and failed <= set(sent) and failed
    _assert_secret_nowhere(secret, published, all_logs.text)


def _event_ids(connection) -> list[str]:
    from sqlalchemy import select

    from campaigns.models import WebhookDelivery

    return list(connection.execute(select(WebhookDelivery.event_id)).scalars())


def _of_type(posts: list[dict], event_type: str) -> list[dict]:
    return [post for post in posts if post["body"]["type"] == event_type]


def _assert_secret_nowhere(secret: str, published: list, logs: str) -> None:
    key = secret.removeprefix("whsec_")
    for name, body, headers in published:
        assert key not in body and key not in headers, name
    assert key not in logs
