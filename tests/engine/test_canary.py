"""A canary start (campaigns.canary), with a Celery worker in threads and the sandbox as witness: the first
slice (a count, or a share of the list) is sent and the campaign pauses (reason canary) until released;
`--canary-auto` releases a clean slice by itself after the settle time, and holds one where too many
recipients are not on WhatsApp, the numbers in its reason."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from campaigns import lifecycle
from campaigns.canary import check_spec, slice_size
from campaigns.errors import BlastError
from campaigns.models import Campaign, Message
from campaigns.settings import reset_settings
from tests.support.engine import wait_for_status, write_config, write_contacts
from tests.support.waiting import wait_until

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def account(database_url, blast_home, tmp_path, sandbox, monkeypatch):
    """A Socnet account at 100/s whose campaigns pause at 20% failures, and no settle time for --canary-auto."""
    monkeypatch.setenv("BLAST_CANARY_SETTLE_SECONDS", "0")
    write_config(tmp_path / "blast.toml", sandbox, {"acct": {"provider": "socnet", "rate": 100,
                                                             "pause_failure_rate": 0.2}})
    reset_settings()
    return sandbox


def accepted(sandbox) -> tuple[int, int]:
    accounts = sandbox.stats(provider="socnet")["accounts"].values()
    return sum(a["accepted"] for a in accounts), sum(a["duplicates"] for a in accounts)


def by_state(engine, campaign_id: int) -> dict[str, int]:
    with engine.connect() as connection:
        return dict(connection.execute(select(Message.state, func.count()).where(Message.campaign_id == campaign_id)
                                       .group_by(Message.state)).all())


def detail(engine, campaign_id: int) -> str:
    with engine.connect() as connection:
        return connection.execute(select(Campaign.pause_detail).where(Campaign.id == campaign_id)).scalar_one()


@pytest.mark.parametrize(("spec", "valid", "size"), [("10", 60, 10), ("5%", 200, 10), ("0.5%", 300, 2),
                                                     ("1%", 10, 1)])
def test_a_slice_is_a_count_or_a_share_rounded_up(database_url, spec, valid, size):
    assert slice_size(check_spec(spec), valid) == size


@pytest.mark.parametrize("spec", ["0", "100%", "-5", "5 people", "1.5", "%"])
def test_a_slice_that_is_not_one_is_refused(database_url, spec):
    with pytest.raises(BlastError, match="--canary"):
        check_spec(spec)


def test_a_canary_by_count_sends_its_slice_then_waits_for_the_operator(account, engine, tmp_path):
    from workers.embedded import EmbeddedWorker

    write_contacts(tmp_path / "contacts.csv", 60)
    with EmbeddedWorker(concurrency=4):
        # when a campaign of 60 starts with a canary of 10
        campaign_id, _ = lifecycle.launch(tmp_path / "contacts.csv", account_name="acct", template="Hi {{ name }}",
                                          canary="10")
        held = wait_for_status(campaign_id, ("paused", "finished"), timeout=60)
        # then the 10 went out and it paused for the operator, the slice's figures in its reason
        assert held["status"] == "paused" and held["pause_reason"] == "canary", held
        assert accepted(account) == (10, 0) and by_state(engine, campaign_id) == {"submitted": 10, "pending": 50}
        assert detail(engine, campaign_id) == (f"canary of 10: 0% failed (0 not on WhatsApp), 0% opted out; "
                                               f"release it with blast resume {campaign_id}")
        # when the operator releases it, then the rest go out, each recipient once
        lifecycle.resume(campaign_id)
        wait_for_status(campaign_id, ("finished",), timeout=60)
    assert accepted(account) == (60, 0)


def test_an_automatic_canary_of_a_share_is_released_by_itself_when_clean(account, engine, tmp_path):
    from workers.embedded import EmbeddedWorker

    write_contacts(tmp_path / "contacts.csv", 200)
    with EmbeddedWorker(concurrency=4):
        # when a campaign of 200 starts with an automatic canary of 5%, on a clean list
        campaign_id, _ = lifecycle.launch(tmp_path / "contacts.csv", account_name="acct", template="Hi {{ name }}",
                                          canary="5%", canary_auto=True)
        # then it pauses for its 10 and, the slice judged clean, goes on to the end by itself
        wait_until(lambda: accepted(account)[0] >= 10, timeout=60, message="the slice sent")
        wait_for_status(campaign_id, ("finished",), timeout=60)
    assert accepted(account) == (200, 0)
    with engine.connect() as connection:
        row = connection.execute(select(Campaign.canary_until_id, Campaign.canary_done_at)
                                 .where(Campaign.id == campaign_id)).one()
    assert row.canary_until_id is None and row.canary_done_at is not None  # it did stop for the slice


def test_an_automatic_canary_with_too_many_not_on_whatsapp_is_held_with_the_numbers(account, engine, tmp_path):
    from workers.embedded import EmbeddedWorker

    # given a list whose first 20 hold 6 numbers not on WhatsApp (30%)
    numbers = write_contacts(tmp_path / "contacts.csv", 100)
    account.knobs("socnet", not_on_whatsapp=numbers[2:20:3])
    with EmbeddedWorker(concurrency=4):
        # when it starts with an automatic canary of 20
        campaign_id, _ = lifecycle.launch(tmp_path / "contacts.csv", account_name="acct", template="Hi {{ name }}",
                                          canary="20", canary_auto=True)
        # then the slice is judged and held for the operator, the numbers and the threshold in its reason
        wait_until(lambda: "held" in (detail(engine, campaign_id) or ""), timeout=60, message="the slice judged")
        assert detail(engine, campaign_id) == (
            f"canary of 20: 30% failed (6 not on WhatsApp), 0% opted out: failures at or over the account's 20%; "
            f"held: release it with blast resume {campaign_id}")
        assert by_state(engine, campaign_id) == {"submitted": 14, "failed": 6, "pending": 80}
    with engine.connect() as connection:
        assert connection.execute(select(Campaign.status, Campaign.canary_auto)
                                  .where(Campaign.id == campaign_id)).one() == ("paused", False)
