"""Report and inbox polling against the sandbox, and the beat lock that keeps a second beat idle."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from campaigns.models import Message, OptOut
from campaigns.settings import reset_settings
from schedules import locks, polling, tasks
from tests.support.factories import make_campaign, make_messages
from tests.support.waiting import wait_until
from workers.providers.base import Outbound, client_for


def sent_through(engine, sandbox, provider: str, count: int) -> tuple[object, list[int]]:
    """Given `count` messages really sent to the sandbox and recorded as submitted."""
    account = sandbox.account(provider)
    sandbox.knobs(provider, progress_seconds=0.05, read_fraction=1.0)
    campaign = make_campaign(engine, account=account.name, provider=provider, status="running")
    ids = make_messages(engine, campaign.id, count, state="submitted")
    gateway = client_for(account)
    with engine.begin() as connection:
        for message_id in ids:
            phone = connection.execute(select(Message.phone).where(Message.id == message_id)).scalar_one()
            result = gateway.send(Outbound(message_id=message_id, to=phone, text="hello"))
            assert result.provider_message_id, result
            connection.execute(update(Message).where(Message.id == message_id)
                               .values(provider_message_id=result.provider_message_id))
    return account, ids


def all_read(engine, ids) -> bool:
    with engine.connect() as connection:
        found = connection.execute(select(Message.state).where(Message.id.in_(ids))).scalars().all()
    return sorted(found) == ["read"] * len(ids)


@pytest.mark.parametrize("provider", ["smsglobal", "httpapi"])
def test_polled_reports_reach_read(engine, sandbox, provider):
    account, ids = sent_through(engine, sandbox, provider, 3)

    def poll():
        counts = polling.poll_reports(engine, account)
        # requests per page (and per straggler), never per reported message
        assert counts["requests"] <= 1 + len(ids)
        return all_read(engine, ids)

    wait_until(poll, timeout=15, interval=0.02, message="the polled reports to reach read")


@pytest.mark.parametrize("provider", ["smsglobal", "httpapi"])
def test_polled_stop_opts_the_sender_out(engine, sandbox, provider):
    account = sandbox.account(provider)
    campaign = make_campaign(engine, account=account.name, provider=provider, status="running")
    [pending] = make_messages(engine, campaign.id, 1, start=900)
    with engine.connect() as connection:
        phone = connection.execute(select(Message.phone).where(Message.id == pending)).scalar_one()
    sandbox.inbound(provider, None, phone, "  Stop ")

    assert polling.poll_inbound(engine, account) == 1
    with engine.connect() as connection:
        assert connection.execute(select(OptOut.phone)).scalars().all() == [phone]
        assert connection.execute(select(Message.state).where(Message.id == pending)).scalar_one() == "skipped"


@pytest.fixture(params=["file", "redis"])
def lock_backend(request, blast_home, monkeypatch):
    if request.param == "redis":
        monkeypatch.setenv("BLAST_REDIS_URL", request.getfixturevalue("redis_url"))
    reset_settings()
    yield request.param
    reset_settings()


def test_a_second_beat_does_not_fire_a_held_job(lock_backend):
    with locks.job_lock("apply_waiting_events", ttl_seconds=30) as first:
        assert first
        with locks.job_lock("apply_waiting_events", ttl_seconds=30) as second:
            assert not second
        assert tasks.apply_waiting_events() == {"skipped": "another beat holds the lock"}
    with locks.job_lock("apply_waiting_events", ttl_seconds=30) as later:
        assert later
