"""The outbox: events are written in the transaction of the change they report, only for subscriptions that
want them, and never for a change that rolled back."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from campaigns import lifecycle, optouts
from campaigns.models import Campaign, WebhookDelivery, aware, utcnow
from campaigns.states import CampaignStatus, MessageState, PauseReason
from campaigns.transitions import move_campaigns, transition, transition_each
from campaigns.webhooks import outbox, subscriptions
from tests.support.factories import make_campaign, make_messages

M = MessageState
ALL_EVENTS = ",".join(subscriptions.EVENT_TYPES)


def events(engine) -> list[dict]:
    with engine.connect() as connection:
        rows = connection.execute(select(WebhookDelivery).order_by(WebhookDelivery.id)).all()
    return [{"subscription_id": row.subscription_id, "event_id": row.event_id, "type": row.event_type,
             **json.loads(row.body)} for row in rows]


def test_with_no_subscription_nothing_is_written(engine):
    # given a running campaign and no subscription
    campaign = make_campaign(engine, status="running")
    ids = make_messages(engine, campaign.id, 3, state="sending")
    # when its messages are submitted and it finishes
    with engine.begin() as connection:
        transition(connection, ids, expected=M.SENDING, to=M.SUBMITTED, provider_message_id="p")
        move_campaigns(connection, where=[Campaign.id == campaign.id], expected=CampaignStatus.RUNNING,
                       to=CampaignStatus.FINISHED)
    # then the outbox is empty
    assert events(engine) == []


def test_message_moves_are_events_for_each_subscription_that_wants_them(engine):
    # given two subscriptions to message.status and one to campaign events only
    first, _ = subscriptions.add(engine, "http://127.0.0.1:9/a", "message.status")
    second, _ = subscriptions.add(engine, "http://127.0.0.1:9/b", "message.status,campaign.finished")
    subscriptions.add(engine, "http://127.0.0.1:9/c", "campaign.started")
    campaign = make_campaign(engine, status="running")
    ids = make_messages(engine, campaign.id, 3, state="queued")
    # when the messages are claimed (not an event), two submitted one by one and one failed in bulk
    with engine.begin() as connection:
        transition(connection, ids, expected=M.QUEUED, to=M.SENDING)
        transition_each(connection, [{"id": ids[0], "provider_message_id": "p-0", "error_code": None},
                                     {"id": ids[1], "provider_message_id": "p-1", "error_code": None}],
                        expected=M.SENDING, to=M.SUBMITTED)
        transition(connection, ids[2], expected=M.SENDING, to=M.FAILED, error_code="2305")
    # then each subscription to message.status has one event per reported move, with the contract's data
    written = events(engine)
    assert len(written) == 6
    for subscription_id in (first, second):
        data = sorted((e["data"] for e in written if e["subscription_id"] == subscription_id),
                      key=lambda d: d["phone"])
        assert data == [
            {"campaign_id": campaign.id, "phone": "+256700000000", "state": "submitted",
             "provider_message_id": "p-0", "error_code": None},
            {"campaign_id": campaign.id, "phone": "+256700000001", "state": "submitted",
             "provider_message_id": "p-1", "error_code": None},
            {"campaign_id": campaign.id, "phone": "+256700000002", "state": "failed",
             "provider_message_id": None, "error_code": "2305"},
        ]
    assert {e["type"] for e in written} == {"message.status"}
    assert all(e["timestamp"].endswith("Z") for e in written)
    # and one event has one webhook-id for every subscription it goes to
    by_phone = {}
    for e in written:
        by_phone.setdefault(e["data"]["phone"], set()).add(e["event_id"])
    assert all(len(ids) == 1 for ids in by_phone.values())


def test_campaign_starts_pauses_finishes_and_optouts_are_events(engine):
    # given a subscription to every event type
    subscriptions.add(engine, "http://127.0.0.1:9/all", ALL_EVENTS)
    campaign = make_campaign(engine, name="November reminders")
    from campaigns.lifecycle import start_draft

    # when the campaign starts, pauses for quota, resumes (not an event), is paused by the operator (through a
    # Session), finishes; and a number opts out
    with engine.begin() as connection:
        start_draft(connection, campaign.id)
    with engine.begin() as connection:
        move_campaigns(connection, where=[Campaign.id == campaign.id], expected=CampaignStatus.RUNNING,
                       to=CampaignStatus.PAUSED, reason=PauseReason.QUOTA, detail="05-Quota expiry")
    with engine.begin() as connection:
        move_campaigns(connection, where=[Campaign.id == campaign.id], expected=CampaignStatus.PAUSED,
                       to=CampaignStatus.RUNNING)
    lifecycle.pause(campaign.id)
    with engine.begin() as connection:
        move_campaigns(connection, where=[Campaign.id == campaign.id], expected=CampaignStatus.PAUSED,
                       to=CampaignStatus.RUNNING)
        move_campaigns(connection, where=[Campaign.id == campaign.id], expected=CampaignStatus.RUNNING,
                       to=CampaignStatus.FINISHED)
    optouts.add(engine, ["+256700000009"])
    # then the subscriber has, in order, started, paused (with each reason), finished and the opt-out
    named = {"campaign_id": campaign.id, "name": "November reminders"}
    assert [(e["type"], e["data"]) for e in events(engine)] == [
        ("campaign.started", named),
        ("campaign.paused", {**named, "reason": "quota"}),
        ("campaign.paused", {**named, "reason": "user"}),
        ("campaign.finished", named),
        ("optout.added", {"phone": "+256700000009"}),
    ]


def test_a_change_that_rolls_back_writes_no_event(engine):
    # given a subscription to everything and a running campaign with a message being sent
    subscriptions.add(engine, "http://127.0.0.1:9/all", ALL_EVENTS)
    campaign = make_campaign(engine, status="running")
    ids = make_messages(engine, campaign.id, 1, state="sending")

    # when the message is submitted and the campaign finished, and then the transaction fails
    class Crash(Exception):
        pass

    with pytest.raises(Crash), engine.begin() as connection:
        transition(connection, ids, expected=M.SENDING, to=M.SUBMITTED, provider_message_id="p")
        move_campaigns(connection, where=[Campaign.id == campaign.id], expected=CampaignStatus.RUNNING,
                       to=CampaignStatus.FINISHED)
        assert len(events_in(connection)) == 2  # written, in the transaction
        raise Crash
    # then neither the change nor its events are there
    assert events(engine) == []
    with engine.connect() as connection:
        assert connection.execute(select(Campaign.status).where(Campaign.id == campaign.id)).scalar() == "running"


def events_in(connection) -> list:
    return connection.execute(select(WebhookDelivery.id)).all()


def test_a_large_move_is_written_whole(engine):
    # given two subscriptions to message.status and 4,500 messages being sent
    subscriptions.add(engine, "http://127.0.0.1:9/a", "message.status")
    subscriptions.add(engine, "http://127.0.0.1:9/b", "message.status")
    campaign = make_campaign(engine, status="running")
    ids = make_messages(engine, campaign.id, 4500, state="sending")
    # when all fail in one transition (9,000 events: 72,000 values, more than one Postgres statement may bind)
    with engine.begin() as connection:
        transition_each(connection, [{"id": i, "error_code": "2305"} for i in ids], expected=M.SENDING,
                        to=M.FAILED)
    # then every event is written, once per subscription
    with engine.connect() as connection:
        written = connection.execute(select(WebhookDelivery.subscription_id, WebhookDelivery.body)).all()
    assert len(written) == 9000
    assert {json.loads(body)["data"]["phone"] for _s, body in written} == {f"+2567{i:08d}" for i in range(4500)}


@pytest.mark.parametrize("count", [1, outbox.VALUES_ROWS, outbox.VALUES_ROWS + 1, 40])
def test_a_write_of_any_size_makes_the_same_rows(engine, count):
    # given a subscription (a few events go as one VALUES, more as arrays)
    subscription_id, _ = subscriptions.add(engine, "http://127.0.0.1:9/a", "optout.added")
    at = utcnow()
    # when `count` events are written at once
    with engine.begin() as connection:
        assert outbox.write(connection, "optout.added", [{"phone": f"+2567{i:08d}"} for i in range(count)],
                            at=at) == count
    # then each row is the event, pending, never tried, due when it was made, with a webhook-id of its own
    with engine.connect() as connection:
        written = connection.execute(select(WebhookDelivery).order_by(WebhookDelivery.id)).all()
    assert [json.loads(row.body)["data"]["phone"] for row in written] == [f"+2567{i:08d}" for i in range(count)]
    assert {(row.subscription_id, row.event_type, row.state, row.attempts, aware(row.created_at),
             aware(row.next_attempt_at)) for row in written} == {
        (subscription_id, "optout.added", "pending", 0, at, at)}
    assert len({row.event_id for row in written}) == count


def test_a_transaction_lost_with_its_connection_fails_with_the_databases_own_error(engine, monkeypatch):
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    # given a database that drops the connection in the middle of a transaction (a restart), as the driver
    # reports it: a disconnect, so the connection is invalidated and its transaction rolled back
    lost = engine.dialect.loaded_dbapi.OperationalError("server closed the connection unexpectedly")
    monkeypatch.setattr(engine.dialect, "is_disconnect", lambda error, *args: error is lost)

    def drop(*args, **kwargs):
        raise lost

    # when a statement of the transaction meets the drop, then the error is the database's (what the send path
    # waits out, recording the gateway's answers once the database is back), not one the outbox's rollback hook
    # made by asking the dead connection for its state
    with pytest.raises(OperationalError) as raised, engine.begin() as connection:
        connection.execute(text("SELECT 1"))
        monkeypatch.setattr(engine.dialect, "do_execute", drop)
        connection.execute(text("SELECT 2"))
    assert raised.value.connection_invalidated
