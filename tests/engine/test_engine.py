"""The dispatch engine end to end: real workers, real brokers, the sandbox's own records as the witness.

Embedded default: SQLite, the filesystem broker, an in-process worker (threads).
Distributed: Postgres, Redis (or RabbitMQ) as the broker, `blast worker` and `blast beat` subprocesses.
"""

from __future__ import annotations

import pytest
import redis

from campaigns import lifecycle
from campaigns.db import migrate
from campaigns.settings import reset_settings
from tests.support import services
from tests.support.engine import (
    attempts_per_message,
    engine_processes,
    fresh_env,
    wait_for_status,
    write_config,
    write_contacts,
)
from tests.support.sandbox import HTTPAPI_TOKEN, SOCNET_KEY
from tests.support.waiting import wait_until
from workers.app import app, configure


def accepted(sandbox, provider: str, key: str) -> dict:
    return sandbox.stats(provider=provider, key=key)["accounts"].get(f"{provider}:{key}", {
        "accepted": 0, "accepted_per_recipient": {}, "duplicates": 0, "rejected": {}, "peak_per_second": 0})


# ---------------------------------------------------------------- embedded default


def test_embedded_campaign_reaches_every_recipient_exactly_once(blast_home, tmp_path, sandbox):
    from workers.embedded import EmbeddedWorker

    # given the embedded default and a sandbox Socnet account
    write_config(tmp_path / "blast.toml", sandbox, {"uganda": {"provider": "socnet", "rate": 200}})
    reset_settings()
    migrate()
    numbers = write_contacts(tmp_path / "contacts.csv", 300)
    # when a campaign runs with an in-process worker
    with EmbeddedWorker(concurrency=4):
        campaign_id, report = lifecycle.launch(tmp_path / "contacts.csv", account_name="uganda",
                                               template="Hello {{ name }}")
        final = wait_for_status(campaign_id, ("finished",), timeout=90)
    # then the tallies are exact and the gateway saw each recipient once
    assert report["valid"] == 300
    assert final["total"] == 300 and final["counts"]["submitted"] == 300
    stats = accepted(sandbox, "socnet", SOCNET_KEY)
    assert stats["accepted_per_recipient"] == dict.fromkeys(numbers, 1)


# ---------------------------------------------------------------- distributed


@pytest.fixture
def distributed(tmp_path, blast_home, postgres_server_url, redis_url, monkeypatch, sandbox):
    """Postgres + Redis broker and limiter; short reconciler timeouts so crashes resolve within a test."""
    env = fresh_env(tmp_path, postgres_server_url, services.REDIS_DATABASES["engine"], queued_timeout_seconds=4,
                    sending_timeout_seconds=6, reconcile_every_seconds=1)
    with engine_processes(env, tmp_path / "logs") as processes:
        processes.sandbox = sandbox
        processes.env_vars = env
        yield processes


def _launch(tmp_path, sandbox, accounts: dict, count: int, account: str = "acct", **launch_args):
    write_config(tmp_path / "blast.toml", sandbox, accounts)
    reset_settings()
    numbers = write_contacts(tmp_path / "contacts.csv", count)
    campaign_id, _ = lifecycle.launch(tmp_path / "contacts.csv", account_name=account,
                                      template="Reminder for {{ name }}", **launch_args)
    return campaign_id, numbers


def _finished(processes, campaign_id, timeout=120):
    try:
        return wait_for_status(campaign_id, ("finished",), timeout=timeout)
    except AssertionError:
        print(processes.logs())
        raise


def test_distributed_campaign_completes_exactly_once(tmp_path, distributed):
    # given two worker processes and beat, on Postgres and Redis
    distributed.worker("w1")
    distributed.worker("w2")
    distributed.beat()
    # when a campaign runs
    campaign_id, numbers = _launch(tmp_path, distributed.sandbox, {"acct": {"provider": "httpapi", "rate": 150}}, 400)
    final = _finished(distributed, campaign_id)
    # then every recipient was accepted once and the tallies equal the rows
    assert final["counts"]["submitted"] + final["counts"]["sent"] + final["counts"]["delivered"] + \
        final["counts"]["read"] == 400
    stats = accepted(distributed.sandbox, "httpapi", HTTPAPI_TOKEN)
    assert stats["accepted_per_recipient"] == dict.fromkeys(numbers, 1)


def test_four_workers_never_exceed_the_accounts_cap(tmp_path, distributed):
    # given four worker processes sharing one account capped at 40 msg/s
    for name in ("w1", "w2", "w3", "w4"):
        distributed.worker(name, concurrency=4)
    distributed.beat()
    distributed.sandbox.knobs("socnet", SOCNET_KEY, latency_ms=50)
    # when 240 messages go out
    campaign_id, numbers = _launch(tmp_path, distributed.sandbox, {"acct": {"provider": "socnet", "rate": 40}}, 240)
    _finished(distributed, campaign_id)
    # then no one-second window at the gateway saw more than 40, and nothing was throttled or repeated
    stats = accepted(distributed.sandbox, "socnet", SOCNET_KEY)
    assert stats["peak_per_second"] <= 40
    assert stats["accepted_per_recipient"] == dict.fromkeys(numbers, 1)


def test_transient_errors_are_retried_within_the_bound(tmp_path, distributed, postgres_server_url):
    # given a gateway answering 503 to 30% of sends, and at most 10 attempts a message
    distributed.worker("w1")
    distributed.worker("w2")
    distributed.beat()
    distributed.sandbox.knobs("socnet", SOCNET_KEY, fail_fraction=0.3)
    accounts = {"acct": {"provider": "socnet", "rate": 200, "max_attempts": 10, "retry_base_seconds": 0.2,
                         "retry_max_seconds": 1.0}}
    # when a campaign runs
    campaign_id, numbers = _launch(tmp_path, distributed.sandbox, accounts, 200)
    final = _finished(distributed, campaign_id)
    # then every message got through once, and no message used more than 10 attempts
    assert final["counts"]["submitted"] == 200
    stats = accepted(distributed.sandbox, "socnet", SOCNET_KEY)
    assert stats["accepted_per_recipient"] == dict.fromkeys(numbers, 1)
    assert sum(stats["rejected"].values()) > 0
    attempts = attempts_per_message(postgres_server_url, campaign_id)
    assert max(attempts.values()) <= 10 and sum(attempts.values()) == 200 + sum(stats["rejected"].values())


def test_quota_pauses_then_resume_completes_without_duplicates(tmp_path, distributed):
    # given a gateway with credit for 60 messages
    distributed.worker("w1")
    distributed.worker("w2")
    distributed.beat()
    distributed.sandbox.knobs("socnet", SOCNET_KEY, quota=60)
    # when a campaign of 150 runs
    campaign_id, numbers = _launch(tmp_path, distributed.sandbox, {"acct": {"provider": "socnet", "rate": 100}}, 150)
    paused = wait_for_status(campaign_id, ("paused",), timeout=60)
    # then it pauses with reason quota and loses nothing
    assert paused["pause_reason"] == "quota"
    wait_until(lambda: lifecycle_counts(campaign_id)["sending"] == 0 and lifecycle_counts(campaign_id)["queued"] == 0,
               timeout=20, message="in-flight sends to settle")
    counts = lifecycle_counts(campaign_id)
    assert counts["submitted"] == 60 and counts["pending"] == 90
    # when credit is topped up and the campaign resumed
    distributed.sandbox.knobs("socnet", SOCNET_KEY, quota=None)
    lifecycle.resume(campaign_id)
    final = _finished(distributed, campaign_id)
    # then it completes and nobody got two messages
    assert final["counts"]["submitted"] == 150
    assert accepted(distributed.sandbox, "socnet", SOCNET_KEY)["accepted_per_recipient"] == dict.fromkeys(numbers, 1)


def lifecycle_counts(campaign_id: int) -> dict:
    from campaigns import tallies

    return tallies.campaign_report(campaign_id)["counts"]


def test_a_worker_killed_mid_campaign_loses_and_repeats_nothing(tmp_path, distributed):
    # given two workers sending through a gateway that keeps reports (HTTP API), 50 ms a call
    first = distributed.worker("w1")
    distributed.worker("w2")
    distributed.beat()
    distributed.sandbox.knobs("httpapi", HTTPAPI_TOKEN, latency_ms=50)
    # (the sandbox's reports show a message at once: 5 s for them instead of the gateway's 60)
    accounts = {"acct": {"provider": "httpapi", "rate": 60, "timeout_seconds": 2, "unknown_wait_seconds": 5}}
    campaign_id, numbers = _launch(tmp_path, distributed.sandbox, accounts, 300)
    # when one worker is SIGKILLed a third of the way through
    wait_until(lambda: accepted(distributed.sandbox, "httpapi", HTTPAPI_TOKEN)["accepted"] >= 100, timeout=60,
               message="a third of the campaign")
    distributed.kill(first)
    final = _finished(distributed, campaign_id, timeout=180)
    # then the campaign completes and every recipient got exactly one message
    stats = accepted(distributed.sandbox, "httpapi", HTTPAPI_TOKEN)
    assert stats["accepted_per_recipient"] == dict.fromkeys(numbers, 1)
    assert final["counts"]["failed"] == 0 and final["counts"]["unknown"] == 0


def test_a_flushed_broker_loses_no_message(tmp_path, distributed, redis_url):
    # given a running campaign on the Redis broker
    distributed.worker("w1")
    distributed.worker("w2")
    distributed.beat()
    campaign_id, numbers = _launch(tmp_path, distributed.sandbox, {"acct": {"provider": "socnet", "rate": 50}}, 300)
    wait_until(lambda: accepted(distributed.sandbox, "socnet", SOCNET_KEY)["accepted"] >= 60, timeout=60,
               message="the campaign to be under way")
    # when the broker's Redis forgets everything
    redis.Redis.from_url(redis_url).flushall()
    final = _finished(distributed, campaign_id, timeout=180)
    # then the campaign still completes, each recipient once
    assert final["counts"]["submitted"] == 300
    assert accepted(distributed.sandbox, "socnet", SOCNET_KEY)["accepted_per_recipient"] == dict.fromkeys(numbers, 1)


def test_rabbitmq_as_the_broker(tmp_path, distributed, rabbitmq_url, monkeypatch):
    # given RabbitMQ as the broker (Redis only counts tokens)
    distributed.env["BLAST_BROKER_URL"] = rabbitmq_url
    monkeypatch.setenv("BLAST_BROKER_URL", rabbitmq_url)
    reset_settings()
    configure(app)
    _purge_rabbitmq(rabbitmq_url)
    distributed.worker("w1")
    distributed.worker("w2")
    distributed.beat()
    # when a campaign runs
    campaign_id, numbers = _launch(tmp_path, distributed.sandbox, {"acct": {"provider": "socnet", "rate": 150}}, 200)
    final = _finished(distributed, campaign_id)
    # then it completes, each recipient once
    assert final["counts"]["submitted"] == 200
    assert accepted(distributed.sandbox, "socnet", SOCNET_KEY)["accepted_per_recipient"] == dict.fromkeys(numbers, 1)


def _purge_rabbitmq(url: str) -> None:
    from kombu import Connection

    with Connection(url) as connection:
        channel = connection.channel()
        for queue in ("send", "pace", "reports"):
            try:
                channel.queue_purge(queue)
            except Exception:  # not declared yet
                channel = connection.channel()


def test_a_send_without_an_answer_is_resolved_from_reports_not_resent(blast_home, tmp_path, sandbox,
                                                                      monkeypatch):
    from campaigns import tallies
    from workers.embedded import EmbeddedWorker

    # given a gateway slower than the client's timeout, so every answer is lost after the request went out
    monkeypatch.setenv("BLAST_SENDING_TIMEOUT_SECONDS", "2")
    write_config(tmp_path / "blast.toml", sandbox,
                 {"india": {"provider": "httpapi", "rate": 50, "timeout_seconds": 0.3}})
    reset_settings()
    migrate()
    sandbox.knobs("httpapi", HTTPAPI_TOKEN, latency_ms=800)
    numbers = write_contacts(tmp_path / "contacts.csv", 10)
    with EmbeddedWorker(concurrency=4):
        campaign_id, _ = lifecycle.launch(tmp_path / "contacts.csv", account_name="india", template="Hi {{ name }}")
        # when the sends time out, the messages are unknown: not failed, not sent again
        wait_until(lambda: tallies.campaign_report(campaign_id)["counts"]["unknown"] == 10, timeout=30,
                   message="all ten sends to be unknown")
        sandbox.knobs("httpapi", HTTPAPI_TOKEN, latency_ms=0)
        # then the reconciler finds them in the gateway's report and the campaign finishes
        final = wait_for_status(campaign_id, ("finished",), timeout=60)
    assert final["counts"]["unknown"] == 0 and final["counts"]["pending"] == 0
    assert sum(final["counts"][state] for state in ("submitted", "sent", "delivered", "read")) == 10
    assert accepted(sandbox, "httpapi", HTTPAPI_TOKEN)["accepted_per_recipient"] == dict.fromkeys(numbers, 1)
