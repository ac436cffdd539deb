"""/metrics: Prometheus' text format, parsed with prometheus-client's own parser; counted from the database
at each scrape (so every web process answers the same), open only to the hosts in BLAST_METRICS_ALLOW."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, insert, select, update

from campaigns import lifecycle, tallies
from campaigns.demo.web import WebAppThread
from campaigns.models import Attempt, Message, utcnow
from campaigns.settings import reset_settings
from campaigns.web.metrics import SERIES
from tests.support import services
from tests.support.engine import engine_processes, fresh_env, write_config, write_contacts
from tests.support.factories import make_campaign, make_messages
from tests.support.waiting import wait_until
from tests.support.web import web_app


def scrape(url: str) -> dict[str, list[tuple[dict, float]]]:
    """Every sample of /metrics by name: [(labels, value)]."""
    answer = requests.get(f"{url}/metrics", timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    samples: dict[str, list[tuple[dict, float]]] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(samples, name: str, **labels) -> float:
    [found] = [v for got, v in samples.get(name, []) if got == labels]
    return found


def labelled(samples, name: str, label: str) -> set[str]:
    return {got[label] for got, _ in samples.get(name, [])}


@pytest.fixture
def served(engine, blast_home, tmp_path, monkeypatch):
    """The web app behind a real socket (requests come from 127.0.0.1) and a TestClient (from "testclient");
    one Socnet account "acct" at 10 messages/s."""
    with web_app(tmp_path, monkeypatch) as client, WebAppThread(port=0) as web:
        yield client, web.url


def test_metrics_count_every_campaign_by_state_and_watch_the_open_ones(served, engine):
    _client, url = served
    # given a running campaign (3 pending, 2 queued 30 s ago, 1 submitted with two calls), a paused one
    # (4 pending) and a finished one (5 submitted)
    running = make_campaign(engine, status="running", name="running")
    make_messages(engine, running.id, 3)
    queued = make_messages(engine, running.id, 2, state="queued", start=3)
    [submitted] = make_messages(engine, running.id, 1, state="submitted", start=5)
    paused = make_campaign(engine, status="paused", name="paused")
    make_messages(engine, paused.id, 4, start=10)
    finished = make_campaign(engine, status="finished", name="finished")
    make_messages(engine, finished.id, 5, state="submitted", start=20)
    with engine.begin() as connection:
        connection.execute(update(Message).where(Message.id.in_(queued))
                           .values(updated_at=utcnow() - timedelta(seconds=30)))
        connection.execute(insert(Attempt), [{"message_id": submitted, "outcome": "transient"},
                                             {"message_id": submitted, "outcome": "accepted"}])
    # when Prometheus scrapes from 127.0.0.1
    samples = scrape(url)
    # then every campaign of the account is counted by state
    assert value(samples, "blast_messages", account="acct", state="pending") == 7
    assert value(samples, "blast_messages", account="acct", state="queued") == 2
    assert value(samples, "blast_messages", account="acct", state="submitted") == 6
    assert value(samples, "blast_messages", account="acct", state="failed") == 0
    # and only the running and the paused campaign have series of their own, equal to their tallies
    assert labelled(samples, "blast_campaign_messages", "campaign") == {str(running.id), str(paused.id)}
    for campaign in (running, paused):
        counts = tallies.campaign_report(campaign.id)["counts"]
        assert {state: value(samples, "blast_campaign_messages", campaign=str(campaign.id), state=state)
                for state in counts} == counts
    # and the running one finishes its 5 messages left in 0.5 s at 10/s; the paused one never, while paused
    assert value(samples, "blast_campaign_eta_seconds", campaign=str(running.id)) == pytest.approx(0.5)
    assert math.isinf(value(samples, "blast_campaign_eta_seconds", campaign=str(paused.id)))
    # and the rates, the calls' outcomes and the oldest queued message's wait are there
    assert value(samples, "blast_rate_limit", account="acct") == 10
    assert value(samples, "blast_rate_effective", account="acct") == 10
    assert value(samples, "blast_send_outcomes_total", account="acct", outcome="accepted") == 1
    assert value(samples, "blast_send_outcomes_total", account="acct", outcome="transient") == 1
    assert 30 <= value(samples, "blast_queue_oldest_seconds", account="acct") < 300
    assert {status: value(samples, "blast_campaigns", account="acct", status=status)
            for status in ("running", "paused", "finished", "draft")} == {"running": 1, "paused": 1, "finished": 1,
                                                                          "draft": 0}
    # and no series but those the deploy/ rules and dashboard may ask for; no beat's without Redis to ask
    assert set(samples) <= set(SERIES) and "blast_beat_up" not in samples


def test_metrics_are_refused_to_hosts_not_allowed(served, monkeypatch):
    client, url = served
    # given the default allow list (127.0.0.1): a request from elsewhere is refused
    assert client.get("/metrics").status_code == 403  # TestClient's peer is "testclient"
    # when the operator allows only a network this host is not in, then 127.0.0.1 is refused too
    monkeypatch.setenv("BLAST_METRICS_ALLOW", "10.0.0.0/8")
    reset_settings()
    assert requests.get(f"{url}/metrics", timeout=30).status_code == 403
    # and when it adds this host, it may read them
    monkeypatch.setenv("BLAST_METRICS_ALLOW", "10.0.0.0/8, 127.0.0.1")
    reset_settings()
    assert requests.get(f"{url}/metrics", timeout=30).status_code == 200


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.slow
def test_metrics_during_a_real_campaign_with_two_workers(tmp_path, postgres_server_url, redis_url, sandbox):
    from tests.support.sandbox import SOCNET_KEY
    from workers.sandbox.harness import free_port

    # given two worker processes, beat and `blast web`, and a campaign of 200 at 20 messages/s
    port = free_port()
    env = fresh_env(tmp_path, postgres_server_url, services.REDIS_DATABASES["metrics"],
                    public_url=f"http://127.0.0.1:{port}")
    write_config(tmp_path / "blast.toml", sandbox, {"acct": {"provider": "socnet", "rate": 20}})
    sandbox.knobs("socnet", SOCNET_KEY, latency_ms=20)
    with engine_processes(env, tmp_path / "logs") as processes:
        processes.web(port)
        processes.worker("w1")
        processes.worker("w2")
        processes.beat()
        url = f"http://127.0.0.1:{port}"
        processes.wait_until_answering(f"{url}/login")
        numbers = write_contacts(tmp_path / "contacts.csv", 200)
        campaign_id, _ = lifecycle.launch(tmp_path / "contacts.csv", account_name="acct", template="Hi {{ name }}")

        # when it is scraped while it sends
        def sending():
            samples = scrape(url)
            return samples if value(samples, "blast_campaign_messages", campaign=str(campaign_id),
                                    state="submitted") >= 20 else None

        samples = wait_until(sending, timeout=60, interval=0.5, message="20 messages submitted")
        # then the account runs at its configured rate, and the ETA is what is left at that rate
        assert value(samples, "blast_rate_effective", account="acct") == value(samples, "blast_rate_limit",
                                                                                  account="acct") == 20
        left = sum(value(samples, "blast_campaign_messages", campaign=str(campaign_id), state=state)
                   for state in ("pending", "queued", "sending"))
        assert 0 < left <= 180
        assert value(samples, "blast_campaign_eta_seconds", campaign=str(campaign_id)) == pytest.approx(left / 20)

        # when it is paused and nothing is in flight any more
        lifecycle.pause(campaign_id)

        def settled():
            with processes.engine.connect() as connection:
                return not connection.execute(select(func.count()).where(
                    Message.campaign_id == campaign_id, Message.state.in_(("queued", "sending")))).scalar()

        wait_until(settled, timeout=60, interval=0.2, message="no message in flight")
        samples = scrape(url)
        # then each state's gauge equals `blast status --json`, for the campaign and for the account
        report = tallies.campaign_report(campaign_id)
        for state, n in report["counts"].items():
            assert value(samples, "blast_campaign_messages", campaign=str(campaign_id), state=state) == n
            assert value(samples, "blast_messages", account="acct", state=state) == n
        assert math.isinf(value(samples, "blast_campaign_eta_seconds", campaign=str(campaign_id)))

        # when it is resumed and finishes, then it leaves the campaign series, and the account counts all 200
        lifecycle.resume(campaign_id)
        wait_until(lambda: tallies.campaign_report(campaign_id)["status"] == "finished", timeout=90, interval=0.5,
                   message="the campaign to finish")
        samples = scrape(url)
        assert str(campaign_id) not in labelled(samples, "blast_campaign_messages", "campaign")
        assert value(samples, "blast_messages", account="acct", state="submitted") == len(numbers)
        assert value(samples, "blast_send_outcomes_total", account="acct", outcome="accepted") == len(numbers)
        assert value(samples, "blast_beat_up") == 1  # the beat of this installation holds its lease
