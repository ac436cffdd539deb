"""Failover (campaigns.failover): an account that stops for quota, auth, gateway_changed or an outage hands its
running campaigns to its `fallback`, on another gateway if need be. What was never handed to the stopped gateway
moves, re-rendered and re-checked against the fallback's limits; what the gateway may have never moves, and keeps
being matched on the account it went through. End to end: quota runs out on a Socnet account partway, its
HTTP API fallback carries the rest, and the sandbox counts every recipient once across both."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from campaigns import delivery, failover, lifecycle
from campaigns.events import StatusUpdate
from campaigns.models import Account, AuditEntry, Campaign, Message, WebhookDelivery, utcnow
from campaigns.settings import ConfigError, load_accounts, parse_accounts, reset_settings
from campaigns.states import CampaignStatus, EventKind, Outcome, PauseReason
from campaigns.tallies import campaign_report
from campaigns.webhooks import subscriptions
from tests.support.factories import make_campaign, make_messages
from tests.support.sandbox import credentials

# 1,500 characters of "é" are 3,000 bytes: within Socnet's 4,096 characters, over the HTTP API's 2,000 bytes
LONG_NAME = "é" * 1500


def config(path, accounts: dict[str, dict]) -> None:
    """blast.toml with these accounts (provider, then any keys), the sandbox's credentials, a dead address."""
    lines = []
    for name, keys in accounts.items():
        values = {"base_url": "http://127.0.0.1:9", "rate": 10, **credentials(keys["provider"]), **keys}
        lines += [f"[accounts.{name}]", *(f"{key} = {json.dumps(value)}" for key, value in values.items()), ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    reset_settings()


@pytest.fixture
def accounts(blast_home, tmp_path):
    """uganda (Socnet) falls back on india (HTTP API); india has no fallback."""
    config(tmp_path / "blast.toml", {"uganda": {"provider": "socnet", "fallback": "india"},
                                     "india": {"provider": "httpapi"}})
    return load_accounts()


def campaign_with(engine, states: dict[str, int], *, account: str = "uganda") -> tuple[int, dict[str, list[int]]]:
    """A running campaign of `account` with messages in these states (each `Hello {{ name }}`, body stale)."""
    campaign = make_campaign(engine, account=account, status=CampaignStatus.RUNNING, template="Hello {{ name }}",
                             started_at=utcnow() - timedelta(minutes=1))
    ids, start = {}, 0
    for state, count in states.items():
        ids[state] = make_messages(engine, campaign.id, count, state=state, start=start)
        start += count
    with engine.begin() as connection:
        for index, message_id in enumerate(i for group in ids.values() for i in group):
            connection.execute(update(Message).where(Message.id == message_id)
                               .values(variables=json.dumps({"name": f"Person {index}"}), body="stale"))
        handed = [i for state in ("sending", "unknown", "submitted") for i in ids.get(state, [])]
        connection.execute(update(Message).where(Message.id.in_(handed)).values(account_name=account))
    return campaign.id, ids


def rows(engine, ids: list[int]) -> list:
    with engine.connect() as connection:
        return connection.execute(select(Message.id, Message.state, Message.account_name, Message.body,
                                         Message.skip_reason).where(Message.id.in_(ids))
                                  .order_by(Message.id)).all()


def campaign_row(engine, campaign_id: int):
    with engine.connect() as connection:
        return connection.execute(select(Campaign.status, Campaign.failover_account, Campaign.pause_reason,
                                         Campaign.pause_detail).where(Campaign.id == campaign_id)).one()


def stop(engine, account_name: str, reason=PauseReason.QUOTA) -> dict[str, int]:
    with engine.begin() as connection:
        return failover.stop_account(connection, load_accounts()[account_name], reason, "05-Quota expiry",
                                     answered_at=utcnow())


# ------------------------------------------------------------------ configuration


def test_a_fallback_naming_its_own_account_or_an_unknown_one_is_refused_at_load():
    socnet = {"provider": "socnet", "base_url": "http://x", "api_key": "k", "rate": 1}
    # given a fallback naming the account itself, then loading refuses it, naming the account
    with pytest.raises(ConfigError, match="account 'a': fallback names the account itself"):
        parse_accounts({"accounts": {"a": {**socnet, "fallback": "a"}}})
    # given a fallback naming no account of the file, then loading refuses it, naming the others
    with pytest.raises(ConfigError, match="account 'a': fallback 'b' is not an account of this file"):
        parse_accounts({"accounts": {"a": {**socnet, "fallback": "b"}, "c": socnet}})
    # given an outage threshold that is no count, then loading refuses it
    with pytest.raises(ConfigError, match="failover_after_transient"):
        parse_accounts({"accounts": {"a": {**socnet, "failover_after_transient": 0}}})


def test_a_chain_is_followed_from_the_campaigns_own_account_once():
    socnet = {"provider": "socnet", "base_url": "http://x", "api_key": "k", "rate": 1}
    # given a -> b -> c -> a (a loop is allowed in the file)
    accounts = parse_accounts({"accounts": {"a": {**socnet, "fallback": "b"}, "b": {**socnet, "fallback": "c"},
                                            "c": {**socnet, "fallback": "a"}}})
    # then from a the chain is a, b, c and ends there: never back to a
    assert failover.chain("a", accounts) == ["a", "b", "c"]
    assert failover.next_account("a", "b", accounts) == "c"
    assert failover.next_account("a", "c", accounts) is None
    # and a campaign of b goes b, c, a
    assert failover.next_account("b", "c", accounts) == "a"
    assert accounts["a"].failover_after_transient == 10  # the default outage threshold


# ------------------------------------------------------------------ the move


def test_quota_moves_what_was_never_handed_over_and_nothing_the_gateway_may_have(engine, accounts):
    # given a running Socnet campaign: 3 pending (one whose text fits Socnet but not the HTTP API), 1 queued, and
    # 1 sending, 1 unknown and 1 submitted on Socnet
    campaign_id, ids = campaign_with(engine, {"pending": 3, "queued": 1, "sending": 1, "unknown": 1, "submitted": 1})
    with engine.begin() as connection:
        connection.execute(update(Message).where(Message.id == ids["pending"][2])
                           .values(variables=json.dumps({"name": LONG_NAME})))
    # and a customer's system subscribed to failovers
    subscriptions.add(engine, "http://127.0.0.1:9/hook", "campaign.failover")
    # when Socnet answers quota
    assert stop(engine, "uganda") == {"failed_over": 1, "paused": 0}
    # then the campaign keeps running, through india from now on
    campaign = campaign_row(engine, campaign_id)
    assert (campaign.status, campaign.failover_account) == ("running", "india")
    # and the pending and queued messages wait for india, re-rendered from the template and their variables
    moved = rows(engine, ids["pending"][:2] + ids["queued"])
    assert [(row.state, row.account_name, row.body) for row in moved] == [
        ("pending", None, "Hello Person 0"), ("pending", None, "Hello Person 1"), ("pending", None, "Hello Person 3")]
    # and the one whose text the HTTP API cannot carry is skipped with that reason
    [long] = rows(engine, ids["pending"][2:])
    assert (long.state, long.skip_reason) == ("skipped", "text too long for httpapi: 3006 bytes, limit 2000")
    # and what Socnet may have, or has, stays Socnet's, untouched
    kept = rows(engine, ids["sending"] + ids["unknown"] + ids["submitted"])
    assert [(row.state, row.account_name, row.body) for row in kept] == [
        ("sending", "uganda", "stale"), ("unknown", "uganda", "stale"), ("submitted", "uganda", "stale")]
    # and the audit log says so, as the system
    with engine.connect() as connection:
        entry = connection.execute(select(AuditEntry.actor, AuditEntry.object_id, AuditEntry.detail)
                                   .where(AuditEntry.action == "campaign.failover")).one()
    assert (entry.actor, entry.object_id) == ("system", str(campaign_id))
    assert json.loads(entry.detail) == {"from": "uganda", "to": "india", "reason": "quota", "skipped": 1,
                                        "skip_reasons": {long.skip_reason: 1}}
    # and the subscriber hears of it
    with engine.connect() as connection:
        [event] = connection.execute(select(WebhookDelivery.event_type, WebhookDelivery.body)).all()
    assert (event.event_type, json.loads(event.body)["data"]) == ("campaign.failover", {
        "campaign_id": campaign_id, "name": "test", "from": "uganda", "to": "india", "reason": "quota"})
    # and Socnet is marked stopped, for any other account that would fall back on it
    with engine.connect() as connection:
        assert connection.execute(select(Account.stop_reason).where(Account.name == "uganda")).scalar() == "quota"
    # and the split per account counts each message where it went (or goes)
    assert campaign_report(campaign_id)["accounts"] == {
        "uganda": {"sending": 1, "unknown": 1, "submitted": 1}, "india": {"pending": 3, "skipped": 1}}


def test_the_pacers_follow_the_campaign_and_the_claim_stamps_the_account(engine, accounts):
    from workers import pacer

    # given a campaign of uganda that failed over to india
    _campaign_id, ids = campaign_with(engine, {"pending": 4})
    stop(engine, "uganda")
    published: dict[str, list] = {"uganda": [], "india": []}
    # when both accounts' pacers run, then only india's queues its messages
    assert pacer.pace_account("uganda", publish=lambda c, m: published["uganda"].append(m), engine=engine) == 0
    assert pacer.pace_account("india", publish=lambda c, m: published["india"].append(m), engine=engine) == 4
    assert sorted(i for task in published["india"] for i in task) == ids["pending"]
    assert pacer.accounts_with_running_campaigns(engine) == ["india"]


def test_a_refused_send_fails_over_and_goes_with_the_rest(engine, accounts, monkeypatch):
    from workers import sending
    from workers.providers.base import SendResult

    kicked = []
    monkeypatch.setattr(failover, "kick", kicked.extend)

    # given a message Socnet was sending when it answered quota, and two pending
    campaign_id, ids = campaign_with(engine, {"sending": 1, "pending": 2})
    [row] = rows(engine, ids["sending"])
    claimed = type("Claimed", (), {"id": row.id, "attempts": 0, "phone": "+256700000000"})
    # when the answer is recorded
    sending.record(engine, campaign_id, load_accounts()["uganda"],
                   [(claimed, SendResult(Outcome.QUOTA, code="403", detail="quota"), utcnow())], [])
    # then the campaign runs on through india, and the refused message waits for india with the others
    assert campaign_row(engine, campaign_id).failover_account == "india"
    assert [r.state for r in rows(engine, ids["sending"] + ids["pending"])] == ["pending"] * 3
    assert campaign_report(campaign_id)["status"] == "running"
    # and india's pacer is asked for a round at once
    assert kicked == ["india"]


def test_a_fallback_that_is_stopped_itself_pauses_the_campaign_until_resumed(engine, accounts, monkeypatch):
    monkeypatch.setattr(lifecycle, "kick", lambda campaign_id: None)
    # given india stopped an hour ago for lack of credit
    campaign_id, _ids = campaign_with(engine, {"pending": 2})
    with engine.begin() as connection:
        failover.mark_stopped(connection, "india", "quota")
    # when uganda stops for quota, then the campaign pauses as without failover, saying why
    assert stop(engine, "uganda") == {"failed_over": 0, "paused": 1}
    campaign = campaign_row(engine, campaign_id)
    assert (campaign.status, campaign.pause_reason, campaign.failover_account) == ("paused", "quota", None)
    assert campaign.pause_detail == "05-Quota expiry; fallback 'india' is stopped too (quota)"
    # when the operator resumes it, then its accounts' stops are forgotten: india may be its fallback again
    lifecycle.resume(campaign_id)
    with engine.connect() as connection:
        assert connection.execute(select(Account.name).where(Account.stopped_at.is_not(None))).all() == []
    # and an account without a fallback pauses as it always did
    other, _ = campaign_with(engine, {"pending": 1}, account="india")
    assert stop(engine, "india", PauseReason.AUTH) == {"failed_over": 0, "paused": 1}
    assert campaign_row(engine, other).pause_detail == "05-Quota expiry"


def test_an_accepted_answer_ends_a_stop(engine, accounts):
    with engine.begin() as connection:
        failover.mark_stopped(connection, "india", "quota")
        # when india accepts a message answered after its stop, then it is no longer stopped
        failover.clear_stop(connection, "india", answered_at=utcnow() + timedelta(seconds=1))
        assert connection.execute(select(Account.stopped_at).where(Account.name == "india")).scalar() is None


def test_the_chain_never_comes_back_round(engine, blast_home, tmp_path):
    # given a -> b -> a, and a campaign of a that already failed over to b
    config(tmp_path / "blast.toml", {"a": {"provider": "socnet", "fallback": "b"},
                                     "b": {"provider": "httpapi", "fallback": "a"}})
    campaign_id, _ids = campaign_with(engine, {"pending": 2}, account="a")
    assert stop(engine, "a") == {"failed_over": 1, "paused": 0}
    # when b stops too, then the campaign pauses rather than going back to a
    assert stop(engine, "b") == {"failed_over": 0, "paused": 1}
    campaign = campaign_row(engine, campaign_id)
    assert (campaign.status, campaign.failover_account) == ("paused", "b")
    assert campaign.pause_detail.endswith("fallback 'a' was already on this campaign's chain")


def test_a_fallback_that_cannot_send_the_campaigns_kind_is_no_fallback(engine, blast_home, tmp_path):
    # given an approved-template campaign on Socnet, whose fallback (the HTTP API) sends no templates
    config(tmp_path / "blast.toml", {"uganda": {"provider": "socnet", "fallback": "india"},
                                     "india": {"provider": "httpapi"}})
    campaign_id, _ids = campaign_with(engine, {"pending": 1})
    with engine.begin() as connection:
        connection.execute(update(Campaign).where(Campaign.id == campaign_id)
                           .values(options=json.dumps({"kind": "template"})))
    # when Socnet stops, then the campaign pauses, saying why
    assert stop(engine, "uganda") == {"failed_over": 0, "paused": 1}
    assert campaign_row(engine, campaign_id).pause_detail.endswith(
        "fallback 'india' (httpapi) cannot send template messages")


def test_an_outage_is_transient_answers_in_a_row(engine, blast_home, tmp_path):
    config(tmp_path / "blast.toml", {"uganda": {"provider": "socnet", "fallback": "india",
                                                "failover_after_transient": 3}, "india": {"provider": "httpapi"}})
    uganda = load_accounts()["uganda"]
    T, A, R = Outcome.TRANSIENT, Outcome.ACCEPTED, Outcome.THROTTLED
    with engine.begin() as connection:
        # given two transient answers, then no outage yet
        assert not failover.count_transients(connection, uganda, [T, T])
        # when an accepted answer comes, then the run starts again
        assert not failover.count_transients(connection, uganda, [A])
        assert not failover.count_transients(connection, uganda, [T, R, T])  # throttling neither adds nor breaks
        # when the third in a row comes, then it is an outage
        assert failover.count_transients(connection, uganda, [T])
        # and an answer that breaks it, followed by transients, counts only those after it
        assert not failover.count_transients(connection, uganda, [T, A, T])


def test_transient_answers_past_the_threshold_fail_the_campaign_over(engine, blast_home, tmp_path, monkeypatch):
    from workers import sending
    from workers.providers.base import SendResult

    monkeypatch.setattr(failover, "kick", lambda names: None)
    config(tmp_path / "blast.toml", {"uganda": {"provider": "socnet", "fallback": "india",
                                                "failover_after_transient": 3}, "india": {"provider": "httpapi"}})
    campaign_id, ids = campaign_with(engine, {"sending": 3, "pending": 2})
    claimed = [type("Claimed", (), {"id": row.id, "attempts": 0, "phone": "+256700000000"})
               for row in rows(engine, ids["sending"])]
    refused = SendResult(Outcome.TRANSIENT, code="HTTP 503", detail="unavailable")
    # given two transient answers: no outage yet
    sending.record(engine, campaign_id, load_accounts()["uganda"], [(claimed[0], refused, utcnow())], [])
    sending.record(engine, campaign_id, load_accounts()["uganda"], [(claimed[1], refused, utcnow())], [])
    assert campaign_row(engine, campaign_id).failover_account is None
    # when the third comes, then the campaign goes on through india, its backoffs forgotten
    sending.record(engine, campaign_id, load_accounts()["uganda"], [(claimed[2], refused, utcnow())], [])
    assert campaign_row(engine, campaign_id)[:2] == ("running", "india")
    with engine.connect() as connection:
        waiting = connection.execute(select(Message.state, Message.next_attempt_at)
                                     .where(Message.campaign_id == campaign_id)).all()
    assert waiting == [("pending", None)] * 5
    # and the split counts them all as india's to send
    assert campaign_report(campaign_id)["accounts"] == {"india": {"pending": 5}}


def test_an_outage_fails_over_and_pauses_nothing_without_a_fallback(engine, blast_home, tmp_path):
    config(tmp_path / "blast.toml", {"uganda": {"provider": "socnet", "fallback": "india"},
                                     "india": {"provider": "httpapi"}})
    campaign_id, _ids = campaign_with(engine, {"pending": 1})
    # given india stopped: an outage of uganda has nowhere to go, and the campaign goes on retrying
    with engine.begin() as connection:
        failover.mark_stopped(connection, "india", "auth")
    assert stop(engine, "uganda", failover.OUTAGE) == {"failed_over": 0, "paused": 0}
    assert campaign_row(engine, campaign_id).status == "running"


def test_reports_are_matched_on_the_account_a_message_went_through(engine, accounts):
    # given a message Socnet accepted (provider id "p-1") in a campaign that then failed over to india
    _campaign_id, ids = campaign_with(engine, {"submitted": 1, "pending": 1})
    with engine.begin() as connection:
        connection.execute(update(Message).where(Message.id == ids["submitted"][0]).values(provider_message_id="p-1"))
    stop(engine, "uganda")
    delivered = [StatusUpdate(provider_message_id="p-1", kind=EventKind.DELIVERED)]
    # when india's reports name "p-1", then they do not touch it (india never had it)
    assert delivery.apply_updates(engine, "india", delivered)["matched"] == 0
    # when uganda's do, then it is delivered
    assert delivery.apply_updates(engine, "uganda", delivered)["moved"] == 1
    assert rows(engine, ids["submitted"])[0].state == "delivered"


def test_the_campaign_page_and_the_status_show_the_split_per_account(engine, blast_home, tmp_path, monkeypatch):
    import re

    from tests.support.web import log_in, web_app

    with web_app(tmp_path, monkeypatch) as client:
        log_in(client)
        # given a campaign of uganda, 2 messages accepted there, that failed over to india with 3 to send
        campaign_id, _ids = campaign_with(engine, {"submitted": 2, "pending": 3})
        with engine.begin() as connection:
            connection.execute(update(Campaign).where(Campaign.id == campaign_id).values(failover_account="india"))
        # when its page is read, then a row per account counts its messages by state
        page = client.get(f"/campaigns/{campaign_id}").text
        cells = {(account, state): int(n) for account, row in re.findall(
            r'<tr data-account="(\w+)">(.*?)</tr>', page, re.S)
            for state, n in re.findall(r'data-account-state="(\w+)">(\d+)<', row)}
        assert (cells[("uganda", "submitted")], cells[("india", "pending")], cells[("india", "submitted")]) == (2, 3, 0)
    # and `blast status ID --json` (and the API's campaign, the same report) says the same
    assert campaign_report(campaign_id)["accounts"] == {"uganda": {"submitted": 2}, "india": {"pending": 3}}


# ------------------------------------------------------------------ end to end


def test_quota_exhausted_partway_with_a_fallback_on_another_gateway_reaches_everyone_once(
        tmp_path, blast_home, postgres_server_url, redis_url, sandbox):
    """Real processes (a worker in threads and beat; Postgres; Redis as broker and limiter) and the sandbox as
    witness: 300 recipients on a Socnet account holding quota for 100, whose fallback is an HTTP API account."""
    from campaigns import lifecycle
    from tests.support import services
    from tests.support.engine import engine_processes, fresh_env, wait_for_status, write_config, write_contacts
    from tests.support.sandbox import SOCNET_KEY
    from tests.support.waiting import wait_until
    from workers.app import app

    env = fresh_env(tmp_path, postgres_server_url, services.REDIS_DATABASES["failover"])
    write_config(tmp_path / "blast.toml", sandbox, {"uganda": {"provider": "socnet", "rate": 50, "fallback": "india"},
                                                    "india": {"provider": "httpapi", "rate": 50}})
    numbers = write_contacts(tmp_path / "contacts.csv", 300)
    # given Socnet's quota runs out after 100 messages
    sandbox.knobs("socnet", SOCNET_KEY, quota=100)
    with engine_processes(env, tmp_path / "logs") as processes:
        processes.worker("w1", concurrency=8)
        processes.beat()
        wait_until(lambda: app.control.ping(timeout=0.5), timeout=60, message="the worker to answer")
        # when the campaign is launched on Socnet and runs to its end
        campaign_id, _report = lifecycle.launch(tmp_path / "contacts.csv", account_name="uganda",
                                                template="Hello {{ name }}")
        try:
            final = wait_for_status(campaign_id, ("finished", "paused"), timeout=180)
        except AssertionError:
            print(processes.logs())
            raise
        with processes.engine.connect() as connection:
            entries = connection.execute(select(AuditEntry.actor, AuditEntry.detail)
                                         .where(AuditEntry.action == "campaign.failover")).all()
    # then it finished without a pause, having failed over once, from uganda to india, for quota
    assert final["status"] == "finished", (final, processes.logs())
    assert [(actor, json.loads(detail)["to"], json.loads(detail)["reason"]) for actor, detail in entries] == [
        ("system", "india", "quota")]
    # and the sandbox's own counts: Socnet took its 100, the HTTP API the other 200, nobody twice, across both
    socnet = sandbox.account_stats("socnet", SOCNET_KEY)
    httpapi = sandbox.account_stats("httpapi")
    received = [number.lstrip("+") for stats in (socnet, httpapi) for number in stats["accepted_per_recipient"]]
    assert (socnet["accepted"], httpapi["accepted"]) == (100, 200)
    assert sorted(received) == sorted(number.lstrip("+") for number in numbers)
    assert all(n == 1 for stats in (socnet, httpapi) for n in stats["accepted_per_recipient"].values())
    # and the campaign's split per account says the same
    accepted = {"submitted", "sent", "delivered", "read"}
    split = {account: sum(n for state, n in counts.items() if state in accepted)
             for account, counts in final["accounts"].items()}
    assert split == {"uganda": 100, "india": 200}
