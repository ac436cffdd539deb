"""The reconciler's answer to an `unknown` message, on SQLite and Postgres, against the sandbox over HTTP:
found in the gateway's reports (this message, never an earlier one to the same number), waited for in
Devino's callbacks, held for the operator or sent again as the account says, and failed at max_attempts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from campaigns import delivery, lifecycle
from campaigns.events import StatusUpdate
from campaigns.models import Message, utcnow
from campaigns.settings import reset_settings
from campaigns.states import EventKind
from tests.support.engine import write_config
from tests.support.factories import make_campaign, make_messages
from workers import reconciler
from workers.providers.base import Outbound, client_for

ACCOUNTS = {
    "sg": {"provider": "smsglobal", "rate": 10, "unknown_wait_seconds": 30},
    "ha": {"provider": "httpapi", "rate": 10, "unknown_wait_seconds": 30},
    "dv": {"provider": "devino", "rate": 10, "unknown_wait_seconds": 30},
    "sn": {"provider": "socnet", "rate": 10},
    "sn-resend": {"provider": "socnet", "rate": 10, "on_unknown": "resend", "max_attempts": 2},
}


@pytest.fixture
def gateways(engine, sandbox, tmp_path, monkeypatch):
    monkeypatch.setenv("BLAST_CONFIG", str(tmp_path / "blast.toml"))
    write_config(tmp_path / "blast.toml", sandbox, ACCOUNTS)
    reset_settings()
    return sandbox


def unknown(engine, account: str, phones_and_texts: list[tuple[str, str]], *, attempts: int = 1,
            queued_ago: float = 5.0, unknown_for: float = 0.0) -> list[int]:
    """Given messages left `unknown` by an ambiguous answer: queued `queued_ago` seconds ago, unknown for
    `unknown_for` seconds."""
    campaign = make_campaign(engine, account=account, provider=ACCOUNTS[account]["provider"], status="running")
    ids = make_messages(engine, campaign.id, len(phones_and_texts), state="unknown")
    now = utcnow()
    with engine.begin() as connection:
        for message_id, (phone, text) in zip(ids, phones_and_texts, strict=True):
            connection.execute(update(Message).where(Message.id == message_id).values(
                phone=phone, body=text, attempts=attempts, queued_at=now - timedelta(seconds=queued_ago),
                updated_at=now - timedelta(seconds=unknown_for)))
    return ids


def rows(engine, ids: list[int]) -> list:
    with engine.connect() as connection:
        found = {row.id: row for row in connection.execute(select(Message).where(Message.id.in_(ids))).all()}
    return [found[message_id] for message_id in ids]


def send(account: str, to: str, text: str) -> str:
    from campaigns.settings import get_account

    return client_for(get_account(account)).send(Outbound(message_id=0, to=to, text=text)).provider_message_id


@pytest.mark.parametrize("account", ["sg", "ha"])
def test_a_message_in_the_reports_is_found_and_one_not_there_is_sent_again_once_settled(engine, gateways, account):
    # given the gateway took one message (and answered 500), and never got two others
    taken = send(account, "+61400000001", "Your visit is tomorrow")
    found_id, fresh_id, settled_id = unknown(engine, account, [("+61400000001", "Your visit is tomorrow"),
                                                               ("+61400000002", "Your visit is tomorrow")]) + \
        unknown(engine, account, [("+61400000003", "Your visit is tomorrow")], unknown_for=60)
    # when the reconciler asks the gateway's reports
    counts = reconciler.resolve_unknown(engine, utcnow())
    found, fresh, settled = rows(engine, [found_id, fresh_id, settled_id])
    # then the one the gateway has is submitted with its id; the one not there waits while the reports may
    # still be catching up, and the settled one is sent again
    assert found.provider_message_id == taken and found.state in ("submitted", "sent", "delivered", "read")
    assert fresh.state == "unknown" and settled.state == "pending"
    assert counts["found"] == 1 and counts["resent"] == 1


@pytest.mark.parametrize("account", ["sg", "ha"])
def test_an_earlier_message_to_the_same_number_is_never_taken_for_the_unknown_one(engine, gateways, account):
    # given yesterday's reminder, recorded with its provider id, and today's with the same words, lost
    earlier_provider_id = send(account, "+61400000009", "Your visit is tomorrow")
    campaign = make_campaign(engine, account=account, provider=ACCOUNTS[account]["provider"], status="finished",
                             name="yesterday")
    [earlier] = make_messages(engine, campaign.id, 1, state="submitted", start=900)
    with engine.begin() as connection:
        connection.execute(update(Message).where(Message.id == earlier).values(
            phone="+61400000009", provider_message_id=earlier_provider_id))
    [today] = unknown(engine, account, [("+61400000009", "Your visit is tomorrow")], unknown_for=60)
    # when the reconciler asks the reports
    reconciler.resolve_unknown(engine, utcnow())
    # then today's message is not the earlier one: it is sent again
    [row] = rows(engine, [today])
    assert (row.state, row.provider_message_id) == ("pending", None)


def test_devino_callbacks_resolve_by_our_id_even_before_the_500_is_recorded(engine, gateways):
    # given a Devino message left unknown, whose callback came while the worker still had it `sending`
    [waiting_id, silent_id] = unknown(engine, "dv", [("+79001234567", "hi"), ("+79001234568", "hi")])
    delivery.apply_updates(engine, "dv", [StatusUpdate("devino-77", EventKind.DELIVERED,
                                                       reference=str(waiting_id))])
    # when the reconciler runs before the wait is over
    reconciler.resolve_unknown(engine, utcnow())
    waiting, silent = rows(engine, [waiting_id, silent_id])
    # then the callback's message took its id and status; the silent one waits for its callback
    assert (waiting.state, waiting.provider_message_id) == ("delivered", "devino-77")
    assert silent.state == "unknown"
    # and once the wait is over with no callback, it is sent again
    reconciler.resolve_unknown(engine, utcnow() + timedelta(seconds=31))
    assert rows(engine, [silent_id])[0].state == "pending"


def test_a_late_callback_for_a_message_already_sent_again_changes_nothing(engine, gateways):
    [message_id] = unknown(engine, "dv", [("+79001234569", "hi")], unknown_for=60)
    reconciler.resolve_unknown(engine, utcnow())
    delivery.apply_updates(engine, "dv", [StatusUpdate("devino-old", EventKind.READ, reference=str(message_id))])
    [row] = rows(engine, [message_id])
    assert (row.state, row.provider_message_id) == ("pending", None)


def test_socnet_holds_the_unknown_for_the_operator_who_sends_each_once(engine, gateways):
    # given Socnet messages left unknown (no reports, no callbacks; on_unknown = hold)
    ids = unknown(engine, "sn", [("+256701000001", "hi"), ("+256701000002", "hi")])
    # when the reconciler runs
    assert reconciler.resolve_unknown(engine, utcnow())["held"] == 2
    # then they stay unknown, held, and the campaign can finish around them
    assert {(row.state, row.error_code) for row in rows(engine, ids)} == {("unknown", "held")}
    from workers.pacer import finish_done_campaigns

    with engine.begin() as connection:
        assert finish_done_campaigns(connection, utcnow()) == [rows(engine, ids)[0].campaign_id]
    # and `retry --reason unknown` sends each again, once
    assert lifecycle.retry(rows(engine, ids)[0].campaign_id, reason="unknown") == 2
    assert {row.state for row in rows(engine, ids)} <= {"pending", "queued"}  # the pacer may have picked them
    assert lifecycle.retry(rows(engine, ids)[0].campaign_id, reason="unknown") == 0


def test_an_account_that_says_resend_sends_again_until_max_attempts(engine, gateways):
    again_id, spent_id = unknown(engine, "sn-resend", [("+256701000003", "hi"), ("+256701000004", "hi")])
    with engine.begin() as connection:
        connection.execute(update(Message).where(Message.id == spent_id).values(attempts=2))
    reconciler.resolve_unknown(engine, utcnow())
    again, spent = rows(engine, [again_id, spent_id])
    assert again.state == "pending"
    assert (spent.state, spent.error_code) == ("failed", "unknown")
