"""Delivery reports with the real engine: an embedded worker sends to the sandbox, whose Devino callbacks
reach the web app served by uvicorn (in a thread) on a free port."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from campaigns import delivery, lifecycle
from campaigns.db import get_engine, migrate
from campaigns.demo.web import WebAppThread
from campaigns.models import StatusEvent
from campaigns.settings import reset_settings
from tests.support.engine import campaign_status, write_config, write_contacts
from tests.support.sandbox import DEVINO_KEY
from tests.support.waiting import wait_until

SECRET = "hook-secret-for-tests"


@pytest.fixture
def web_app(blast_home, tmp_path, monkeypatch, sandbox):
    """The web app on a free port, BLAST_PUBLIC_URL pointing at it, a Devino account with a secret."""
    web = WebAppThread(port=0)
    monkeypatch.setenv("BLAST_PUBLIC_URL", web.url)
    write_config(tmp_path / "blast.toml", sandbox,
                 {"dv": {"provider": "devino", "rate": 100, "webhook_secret": SECRET}})
    reset_settings()
    migrate()
    with web:
        yield sandbox


def everything_read(campaign_id: int, total: int):
    """The beat's job, done here: apply callbacks that came before the worker recorded the provider id."""
    delivery.apply_waiting(get_engine())
    report = campaign_status(campaign_id)
    return report if report["counts"]["read"] == total else None


def test_callbacks_bring_the_tallies_to_read(web_app, tmp_path):
    from workers.embedded import EmbeddedWorker

    web_app.knobs("devino", progress_seconds=0.05, read_fraction=1.0)
    write_contacts(tmp_path / "contacts.csv", 20)
    with EmbeddedWorker(concurrency=4):
        campaign_id, _ = lifecycle.launch(tmp_path / "contacts.csv", account_name="dv", template="Hi {{ name }}")
        report = wait_until(lambda: everything_read(campaign_id, 20), timeout=60, message="every message read")
    assert report["total"] == 20


def test_a_2301_callback_resends_exactly_once(web_app, tmp_path):
    from workers.embedded import EmbeddedWorker

    # given a Devino account that throttles above 5 messages a second (2301 in the callback)
    web_app.knobs("devino", progress_seconds=0.05, read_fraction=1.0, rate_cap=5)
    numbers = write_contacts(tmp_path / "contacts.csv", 15)
    with EmbeddedWorker(concurrency=4):
        campaign_id, _ = lifecycle.launch(tmp_path / "contacts.csv", account_name="dv", template="Hi {{ name }}")
        wait_until(lambda: everything_read(campaign_id, 15), timeout=90, message="every message read")
    stats = web_app.account_stats("devino", DEVINO_KEY)
    # then each recipient got exactly one accepted message, and each 2301 made exactly one more send
    assert stats["accepted_per_recipient"] == dict.fromkeys(numbers, 1)
    throttled = stats["rejected"].get("rate_cap", 0)
    assert throttled > 0
    with get_engine().connect() as connection:
        throttle_events = connection.execute(
            select(func.count(func.distinct(StatusEvent.provider_message_id)))
            .where(StatusEvent.kind == "throttled")).scalar_one()
    assert throttle_events == throttled
