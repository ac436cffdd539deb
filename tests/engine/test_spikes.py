"""Pauses on spikes (campaigns.spikes): a running campaign pauses with reason error_rate when its recent
failures, throttling answers or opt-outs cross the account's thresholds, judged on a full window since it
(re)started; and end to end, a campaign whose list turns to numbers not on WhatsApp midway pauses within the
window, and once resumed finishes with no one messaged twice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import insert, select, update

from campaigns import delivery, lifecycle
from campaigns.events import Inbound
from campaigns.models import Attempt, Campaign, Message, utcnow
from campaigns.settings import AccountConfig, reset_settings
from campaigns.spikes import answers_spike
from campaigns.states import CampaignStatus, Outcome
from tests.support.engine import wait_for_status, write_config, write_contacts
from tests.support.factories import make_campaign, make_messages

ACCOUNT = AccountConfig(name="acct", provider="socnet", base_url="http://127.0.0.1:9", rate=10, pause_window=20,
                        pause_failure_rate=0.25, pause_throttle_rate=0.5, pause_optout_rate=0.1)


def running_campaign(engine, count: int = 40, *, state: str = "pending") -> tuple[int, list[int]]:
    campaign = make_campaign(engine, status=CampaignStatus.RUNNING, started_at=utcnow() - timedelta(minutes=5))
    return campaign.id, make_messages(engine, campaign.id, count, state=state)


def answered(engine, message_ids: list[int], outcomes: list[Outcome], *, at=None) -> None:
    at = at or utcnow()
    with engine.begin() as connection:
        connection.execute(insert(Attempt), [{"message_id": message_id, "at": at, "outcome": outcome.value}
                                             for message_id, outcome in zip(message_ids, outcomes, strict=True)])


def test_failures_and_throttling_are_judged_on_a_full_window(engine):
    campaign_id, ids = running_campaign(engine)
    # given 19 answers, 10 of them failures: the window of 20 is not full
    answered(engine, ids[:19], [Outcome.ACCEPTED] * 9 + [Outcome.RECIPIENT] * 10)
    with engine.connect() as connection:
        assert answers_spike(connection, campaign_id, ACCOUNT) is None
    # when the 20th comes, then 10 of the last 20 failed: 50%, over the 25% threshold
    answered(engine, ids[19:20], [Outcome.ACCEPTED])
    with engine.connect() as connection:
        spike = answers_spike(connection, campaign_id, ACCOUNT)
    assert spike is not None and spike.rate == "failure" and spike.share == 0.5
    assert spike.detail == "failure rate 50% over the last 20 messages (the account pauses at 25%)"
    # and 20 accepted answers later the window holds none of them
    answered(engine, ids[20:40], [Outcome.ACCEPTED] * 20)
    with engine.connect() as connection:
        assert answers_spike(connection, campaign_id, ACCOUNT) is None


def test_throttling_and_a_fresh_window_after_a_resume(engine):
    campaign_id, ids = running_campaign(engine)
    # given a window where half the answers were throttled
    earlier = utcnow() - timedelta(seconds=30)
    answered(engine, ids[:20], [Outcome.THROTTLED, Outcome.ACCEPTED] * 10, at=earlier)
    with engine.connect() as connection:
        spike = answers_spike(connection, campaign_id, ACCOUNT)
    assert spike is not None and spike.rate == "throttling" and spike.share == 0.5
    # when the campaign is resumed after them, then they are old news: the new window is empty
    with engine.begin() as connection:
        connection.execute(update(Campaign).where(Campaign.id == campaign_id).values(resumed_at=utcnow()))
    with engine.connect() as connection:
        assert answers_spike(connection, campaign_id, ACCOUNT) is None


def test_stop_replies_over_the_threshold_pause_the_campaign_that_messaged_them(engine, blast_home, tmp_path,
                                                                              sandbox):
    write_config(tmp_path / "blast.toml", sandbox, {"acct": {"provider": "socnet", "rate": 10, "pause_window": 20,
                                                             "pause_optout_rate": 0.1}})
    reset_settings()
    # given a running campaign whose last 20 messages were taken by the gateway
    campaign_id, _ids = running_campaign(engine, 20, state="submitted")
    with engine.connect() as connection:
        phones = list(connection.execute(select(Message.phone).where(Message.campaign_id == campaign_id)
                                         .order_by(Message.id)).scalars())
    # when one recipient replies STOP, then 5% is under the 10% threshold: it keeps running
    stop = [Inbound(from_phone=phone, text="STOP", received_at=None, provider_message_id=None, raw={})
            for phone in phones[:2]]
    assert delivery.apply_inbound(engine, "acct", stop[:1]) == 1
    assert _status(engine, campaign_id) == ("running", None, None)
    # when a second does, then 10% of the last 20 opted out: it pauses, saying so
    assert delivery.apply_inbound(engine, "acct", stop[1:]) == 1
    assert _status(engine, campaign_id) == (
        "paused", "error_rate", "opt-out rate 10% over the last 20 messages (the account pauses at 10%)")


def _status(engine, campaign_id: int) -> tuple:
    with engine.connect() as connection:
        return tuple(connection.execute(select(Campaign.status, Campaign.pause_reason, Campaign.pause_detail)
                                        .where(Campaign.id == campaign_id)).one())


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_spike_mid_campaign_pauses_it_within_the_window_and_resume_finishes_it_once(database_url, engine,
                                                                                       blast_home, tmp_path, sandbox):
    from workers.embedded import EmbeddedWorker

    # given 300 recipients at 100/s, of whom the 100 from the 101st on are not on WhatsApp, and a window of 50
    # messages with a 20% failure threshold
    write_config(tmp_path / "blast.toml", sandbox, {"acct": {"provider": "socnet", "rate": 100, "pause_window": 50,
                                                             "pause_failure_rate": 0.2}})
    reset_settings()
    numbers = write_contacts(tmp_path / "contacts.csv", 300)
    sandbox.knobs("socnet", not_on_whatsapp=numbers[100:200])
    with EmbeddedWorker(concurrency=4):
        campaign_id, _report = lifecycle.launch(tmp_path / "contacts.csv", account_name="acct",
                                                template="Hello {{ name }}")
        # when the failures start, then the campaign pauses with the rate and the window named
        paused = wait_for_status(campaign_id, ("paused", "finished"), timeout=60)
        assert paused["status"] == "paused" and paused["pause_reason"] == "error_rate", paused
        failed = _failed(engine, campaign_id)
        assert 10 <= failed < 50, failed  # 20% of the window, and well within it (tasks in flight finish)
        # when the numbers are taken off the list and the operator resumes, then it finishes
        sandbox.knobs("socnet", not_on_whatsapp=[])
        lifecycle.resume(campaign_id)
        wait_for_status(campaign_id, ("finished",), timeout=60)
    # and everyone not already failed got the message once
    stats = sandbox.stats(provider="socnet")["accounts"]
    assert sum(account["duplicates"] for account in stats.values()) == 0
    assert sum(account["accepted"] for account in stats.values()) == 300 - _failed(engine, campaign_id)


def _failed(engine, campaign_id: int) -> int:
    with engine.connect() as connection:
        return len(connection.execute(select(Message.id).where(Message.campaign_id == campaign_id,
                                                               Message.state == "failed")).all())
