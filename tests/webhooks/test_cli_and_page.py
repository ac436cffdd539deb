"""`blast webhooks add|list|remove|test` (the command-line contract, in real processes) and the webhooks page:
the secret is shown once, by add, and nowhere else."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from campaigns.errors import BlastError, NotFound
from campaigns.webhooks import deliveries, subscriptions
from tests.support.engine import ROOT
from tests.support.subscribers import signed_by
from tests.support.web import csrf_of, log_in, web_app
from workers.webhooks import deliver


def blast(*args, env, check=True):
    result = subprocess.run([sys.executable, "-m", "campaigns.cli", "webhooks", *args], cwd=ROOT,
                            capture_output=True, text=True, env=env, timeout=120)
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_add_shows_the_secret_once_list_never_and_test_delivers_signed(database_url, engine, tmp_path, receiver):
    env = {**os.environ, "BLAST_DATABASE_URL": database_url, "BLAST_BROKER_URL": "memory://",
           "BLAST_CONFIG": str(tmp_path / "blast.toml")}
    # when a subscription is added
    added = blast("add", receiver.url + "/hook", "--events", "message.status,campaign.finished", env=env)
    # then its secret is alone on the last line of the output
    secret = added.stdout.strip().splitlines()[-1]
    assert secret.startswith("whsec_") and " " not in secret
    # and list (table and JSON) shows the subscription but not its secret
    table = blast("list", env=env).stdout
    [row] = json.loads(blast("list", "--json", env=env).stdout)
    assert row["url"] == receiver.url + "/hook" and row["events"] == "campaign.finished,message.status"
    assert "secret" not in row and secret.removeprefix("whsec_") not in table + json.dumps(row)
    # when it is tested while the subscriber answers 503, then the answer is told, with exit code 1
    receiver.statuses = [503]
    refused = blast("test", str(row["id"]), env=env, check=False)
    assert refused.returncode == 1 and "503" in refused.stderr
    # and list tells since when the subscriber is down and when the next try goes
    [down] = json.loads(blast("list", "--json", env=env).stdout)
    assert down["down_since"] is not None and down["next_try_at"] is not None
    # when tested again, then a signed webhook.test event reaches it now, and its answer is kept
    tested = blast("test", str(row["id"]), env=env)
    assert "delivered" in tested.stdout
    assert [post["answered"] for post in receiver.posts] == [503, 200]
    assert all(post["body"]["type"] == "webhook.test" and signed_by(post, secret) for post in receiver.posts)
    assert subscriptions.listing(engine)[0]["last_status_code"] == 200
    assert subscriptions.listing(engine)[0]["down_since"] is None
    # and no command printed the secret but add
    outputs = refused.stdout + refused.stderr + tested.stdout + tested.stderr + added.stderr
    assert secret.removeprefix("whsec_") not in outputs
    # when it is removed, then it is gone
    blast("remove", str(row["id"]), env=env)
    assert subscriptions.listing(engine) == []
    # and the audit log has both, by the command line's user, the URL without what it may hide, no secret
    from campaigns import audit

    entries = [entry for entry in audit.listing(engine) if entry["object_type"] == "webhook"]
    assert [(entry["action"], entry["object_id"], entry["address"]) for entry in entries] == [
        ("webhook.remove", str(row["id"]), "cli"), ("webhook.add", str(row["id"]), "cli")]
    assert all(entry["actor"].startswith("cli:") for entry in entries)
    assert secret.removeprefix("whsec_") not in json.dumps(entries)


def test_lists_show_no_token_the_url_carries(engine):
    # given a subscriber whose URL carries its own token and a user
    subscriptions.add(engine, "https://blast:pw@hooks.example.org:8443/in?token=abc123", "optout.added")
    # when listed, then the URL is shown without them
    [row] = subscriptions.listing(engine)
    assert row["url"] == "https://hooks.example.org:8443/in?…"
    assert subscriptions.shown(engine, row["id"])["url"] == row["url"]


def test_bad_subscriptions_are_refused(engine):
    with pytest.raises(BlastError, match="not an http"):
        subscriptions.add(engine, "ftp://example.org", "message.status")
    with pytest.raises(BlastError, match=r"unknown event type message\.sent"):
        subscriptions.add(engine, "https://example.org", "message.sent")
    with pytest.raises(NotFound):
        subscriptions.remove(engine, 99)


def test_the_page_adds_shows_the_secret_once_tests_logs_and_removes(engine, tmp_path, monkeypatch, receiver):
    with web_app(tmp_path, monkeypatch) as client:
        csrf = log_in(client)
        # when a subscription is added from the page
        added = client.post("/webhooks", data={"csrf_token": csrf, "url": receiver.url,
                                               "events": ["campaign.started", "optout.added"]})
        # then the answer shows its secret, once, and is not cached
        assert added.status_code == 200 and added.headers["cache-control"] == "no-store"
        [row] = subscriptions.listing(engine)
        secret = _secret_of(engine, row["id"])
        assert secret in added.text
        # and the page, read again, lists it without the secret
        listing = client.get("/webhooks")
        assert receiver.url in listing.text and "campaign.started" in listing.text
        assert secret.removeprefix("whsec_") not in listing.text
        # when a test event is sent from the page, then it is in the delivery log (delivered by a worker later)
        tested = client.post(f"/webhooks/{row['id']}/test", data={"csrf_token": csrf_of(listing.text)})
        assert tested.status_code == 200 and "webhook.test" in tested.text and "pending" in tested.text
        assert secret.removeprefix("whsec_") not in tested.text
        # and a form without the CSRF token is refused
        assert client.post(f"/webhooks/{row['id']}/remove", data={}).status_code == 403
        # when it is removed, then the page lists none
        removed = client.post(f"/webhooks/{row['id']}/remove", data={"csrf_token": csrf_of(tested.text)})
        assert removed.status_code == 200 and "No subscriptions yet" in removed.text
        assert client.get(f"/webhooks/{row['id']}").status_code == 404


def test_the_page_tells_since_when_a_subscriber_is_down(engine, tmp_path, monkeypatch, receiver):
    # given a subscription whose subscriber answered 503 to its event
    receiver.statuses = [503]
    subscription_id, _ = subscriptions.add(engine, receiver.url, "optout.added")
    deliveries.add_test_event(engine, subscription_id, kick=False)
    deliver(subscription_id, engine=engine)
    with web_app(tmp_path, monkeypatch) as client:
        log_in(client)
        # when the page is read, then it says so, with the next try
        listing = client.get("/webhooks").text
        assert "down since" in listing and "next try" in listing


def test_the_page_needs_a_login_and_refuses_bad_input(engine, tmp_path, monkeypatch):
    with web_app(tmp_path, monkeypatch) as client:
        assert client.get("/webhooks", follow_redirects=False).status_code in (303, 307, 401)
        csrf = log_in(client)
        refused = client.post("/webhooks", data={"csrf_token": csrf, "url": "not a url", "events": ["optout.added"]})
        assert refused.status_code == 400 and "not an http(s) URL" in refused.text
        assert subscriptions.listing(engine) == []


def _secret_of(engine, subscription_id: int) -> str:
    return subscriptions.target(engine, subscription_id)[1]
