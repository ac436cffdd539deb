"""The HTTP API end to end with real processes (`blast web`, `blast worker`, `blast beat` on Postgres and Redis,
the sandbox gateways) and a plain HTTP client, as another system would drive it: the README's curl example
run as written; a campaign created twice with one Idempotency-Key (one campaign), launched and followed to
finished through the API; its signed webhooks received by a local subscriber that answers 500 for a while,
each signature verified by the test's own HMAC, every event received, none lost."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from campaigns.models import Campaign, WebhookDelivery
from campaigns.webhooks.subscriptions import WANTED_TTL_SECONDS
from tests.support import services
from tests.support.engine import engine_processes, fresh_env, write_config
from tests.support.hooks import Receiver
from tests.support.subscribers import event_id, signed_by
from tests.support.waiting import wait_until
from workers.sandbox.harness import SandboxProcess, free_port

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]

REDIS_DB = services.REDIS_DATABASES["api"]
README = Path(__file__).resolve().parents[2] / "README.md"
RECIPIENTS = 40


@pytest.fixture(scope="module")
def stack(tmp_path_factory, postgres_server_url):
    tmp_path = tmp_path_factory.mktemp("api-processes")
    (tmp_path / "logs").mkdir()
    with SandboxProcess(log_path=tmp_path / "logs" / "sandbox.log") as sandbox:
        # quick webhook retries: the schedule's hours as tenths of seconds
        env = fresh_env(tmp_path, postgres_server_url, REDIS_DB, reconcile_every_seconds=1,
                        webhook_retry_seconds="0.2,0.4,0.8,1,1,1,1,1,1,1")
        write_config(tmp_path / "blast.toml", sandbox, {"uganda": {"provider": "socnet", "rate": 50}})
        with engine_processes(env, tmp_path / "logs") as processes:
            port = free_port()
            processes.web(port)
            processes.worker("w1", concurrency=4)
            processes.beat()
            processes.base = f"http://127.0.0.1:{port}"
            processes.wait_until_answering(f"{processes.base}/api/v1/openapi.json")
            yield processes


def blast(stack, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run([sys.executable, "-m", "campaigns.cli", *args], env=stack.env, input=stdin,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def readme_api_example() -> str:
    """The shell block of the README's "The HTTP API" section."""
    section = README.read_text(encoding="utf-8").split("### The HTTP API", 1)[1]
    return re.search(r"```sh\n(.*?)```", section, re.DOTALL).group(1)


def test_the_readmes_curl_example_works_as_written(stack, tmp_path):
    # given the README's example, with the address of this web app for the one it names
    script = readme_api_example().replace("http://127.0.0.1:8000", stack.base)
    bin_folder = tmp_path / "bin"  # `blast` as the installed command is, for this interpreter
    bin_folder.mkdir()
    (bin_folder / "blast").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m campaigns.cli "$@"\n')
    (bin_folder / "blast").chmod(0o755)
    env = {**stack.env, "PATH": f"{bin_folder}{os.pathsep}{os.environ['PATH']}"}
    # when it is run by the shell
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=env, capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    # then each curl answered, and the campaign it made is there, launched
    assert done.returncode == 0, done.stdout + done.stderr
    answers = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert answers and answers[0]["name"] == "Monday reminders" and answers[0]["total"] == 1, done.stdout
    with stack.engine.connect() as connection:
        assert connection.execute(select(Campaign.status).where(Campaign.id == answers[0]["id"])).scalar_one() in (
            "running", "finished")


def test_a_campaign_through_the_api_is_heard_of_signed_and_every_event_arrives(stack):
    # given an operator's key, and a subscriber to the campaign's events that answers 500 to its first 15 POSTs
    key = blast(stack, "apikey", "create", "--name", "booking system", "--role", "operator").splitlines()[-1]
    with Receiver(statuses=[500] * 15) as subscriber:
        secret = blast(stack, "webhooks", "add", f"{subscriber.url}/blast-events", "--events",
                       "campaign.started,message.status,campaign.finished").splitlines()[-1]
        subscription_id = next(row["id"] for row in json.loads(blast(stack, "webhooks", "list", "--json"))
                               if row["url"] == f"{subscriber.url}/blast-events")
        # the running processes hear of a subscription added by another one within WANTED_TTL_SECONDS (what they
        # read of who wants what before it was added is trusted that long): the campaign starts after that, as
        # the design promises every event from then on (in one CI run the first 15 recipients' events were not
        # written, a worker still trusting what it had read during the previous test)
        time.sleep(WANTED_TTL_SECONDS)
        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {key}"
        body = {"name": "Tuesday reminders", "account": "uganda", "template": "Hi {{ name }}, see you Tuesday",
                "recipients": [{"phone": f"+2567720{i:05d}", "variables": {"name": f"Patient {i}"}}
                               for i in range(RECIPIENTS)], "launch": False}
        # when the booking system creates the campaign, twice with one Idempotency-Key (a retried request)
        first = api.post(f"{stack.base}/api/v1/campaigns", json=body, headers={"Idempotency-Key": "tuesday-1"},
                         timeout=30)
        again = api.post(f"{stack.base}/api/v1/campaigns", json=body, headers={"Idempotency-Key": "tuesday-1"},
                         timeout=30)
        # then one campaign was made, a draft with every recipient
        assert first.status_code == again.status_code == 201, first.text
        assert first.json() == again.json() and first.json()["status"] == "draft"
        campaign_id = first.json()["id"]
        with stack.engine.connect() as connection:
            assert connection.execute(select(func.count()).select_from(Campaign)
                                      .where(Campaign.name == "Tuesday reminders")).scalar_one() == 1
        # when it is launched and followed through the API
        launched = api.post(f"{stack.base}/api/v1/campaigns/{campaign_id}/launch", timeout=30)
        assert launched.status_code == 200 and launched.json()["status"] in ("running", "finished"), launched.text
        finished = wait_until(lambda: (now := api.get(f"{stack.base}/api/v1/campaigns/{campaign_id}",
                                                      timeout=10).json())["status"] == "finished" and now,
                              timeout=90, message="the campaign to finish")
        assert finished["counts"]["submitted"] == RECIPIENTS
        # then every event Blast wrote for the subscriber was answered 200 at least once, after the 500s
        with stack.engine.connect() as connection:
            written = set(connection.execute(select(WebhookDelivery.event_id)
                                             .where(WebhookDelivery.subscription_id == subscription_id)).scalars())
        subscriber.wait_for(lambda posts: {event_id(p) for p in posts if p["answered"] == 200} >= written,
                            timeout=60, what="every event answered 200")
        posts = subscriber.posts
    # and they are the campaign's start, a status per recipient and its finish, each signed with the secret
    taken = {event_id(p): p["body"] for p in posts
             if p["answered"] == 200 and p["body"]["data"]["campaign_id"] == campaign_id}
    types = sorted(event["type"] for event in taken.values())
    assert types.count("campaign.started") == 1 and types.count("campaign.finished") == 1
    phones = {event["data"]["phone"] for event in taken.values() if event["type"] == "message.status"}
    assert phones == {recipient["phone"] for recipient in body["recipients"]}
    assert all(signed_by(post, secret) for post in posts)
    assert sum(p["answered"] == 500 for p in posts) == 15  # the failures happened, and were retried
    assert {event_id(p) for p in posts} == written  # nothing but what was written
    # and neither the key nor the secret is in any process's log
    logs = stack.logs()
    assert key not in logs and secret.removeprefix("whsec_") not in logs
