"""Meta's Cloud API with real processes: `blast web`, `blast worker` and `blast beat` on Postgres and Redis, the
sandbox in its own process posting status and inbound webhooks to the web app, signed with the app secret.

A template campaign reaches `read` through signed webhooks only; a forged notification is refused and changes
nothing; an inbound message opens its number's 24-hour window, so a free-form campaign reaches that number and
skips the others; a pair-rate answer (131056) delays only its recipient, and the account's rate stays; an HTTP
500 (outcome unknown) is settled by the webhook that echoes our id, never by a second send; a template Meta paused
(132015) holds its campaign, every message waiting, until it is approved again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
import requests
from sqlalchemy import select

from campaigns import approved_templates, dispatch, lifecycle, service_window
from campaigns.models import Attempt, Campaign, Message, StatusEvent
from campaigns.settings import get_account
from tests.support import services
from tests.support.engine import engine_processes, fresh_env, write_config, write_contacts
from tests.support.waiting import wait_until
from workers.providers.metacloud import UNCERTAIN
from workers.sandbox.harness import SandboxProcess, free_port

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]

REDIS_DB = services.REDIS_DATABASES["metacloud"]
ACCOUNTS = {"meta": {"provider": "metacloud"}}  # rate: metacloud's default, 80 per second
WAIT_SECONDS = 120  # a wait for events: the first test also waits for the processes to start, on a busy machine


@pytest.fixture(scope="module")
def stack(tmp_path_factory, postgres_server_url):
    """The sandbox, `blast web` on a free port (BLAST_PUBLIC_URL), one worker and one beat."""
    folder, port = tmp_path_factory.mktemp("metacloud-processes"), free_port()
    env = fresh_env(folder, postgres_server_url, REDIS_DB, public_url=f"http://127.0.0.1:{port}")
    with SandboxProcess(log_path=folder / "sandbox.log") as sandbox:
        write_config(folder / "blast.toml", sandbox, ACCOUNTS)
        with engine_processes(env, folder / "logs") as processes:
            processes.sandbox, processes.folder = sandbox, folder
            processes.hook = f"{env['BLAST_PUBLIC_URL']}/hooks/metacloud/meta"
            processes.web(port)
            processes.worker("w1")
            processes.beat()
            processes.wait_until_answering(f"{env['BLAST_PUBLIC_URL']}/login")
            started = time.monotonic()
            yield processes
            print(f"metacloud process tests: {time.monotonic() - started:.1f} s with the processes up")


@pytest.fixture
def meta(stack):
    """Statuses go sent -> delivered -> read a tenth of a second apart, posted to the web app's hook."""
    stack.sandbox.knobs("metacloud", progress_seconds=0.1, read_fraction=1.0, webhook_url=stack.hook,
                        error_codes={}, error_code=None, ambiguous_fraction=0.0)
    return stack.sandbox


def launch_template(stack, name: str, start: int, count: int) -> tuple[int, list[str]]:
    """A campaign of the approved `appointment_reminder`: {{1}} and {{2}} both from the name column."""
    contacts = stack.folder / f"{name}.csv"
    numbers = write_contacts(contacts, count, start=start)
    account = get_account("meta")
    approved_templates.sync(stack.engine, account)
    template = approved_templates.find(stack.engine, account, "appointment_reminder", "en_US")
    text, options = approved_templates.campaign_parts(template, ["name", "name"])
    campaign_id, _ = lifecycle.launch(contacts, account_name="meta", template=text, name=name, options=options)
    return campaign_id, numbers


def rows(stack, campaign_id: int) -> dict[str, Message]:
    with stack.engine.connect() as connection:
        found = connection.execute(select(Message).where(Message.campaign_id == campaign_id)).all()
    return {row.phone: row for row in found}


def wait_for_states(stack, campaign_id: int, wanted: set[str], what: str) -> dict[str, str]:
    def reached():
        found = {phone: row.state for phone, row in rows(stack, campaign_id).items()}
        return found if found and set(found.values()) <= wanted else None

    try:
        return wait_until(reached, timeout=WAIT_SECONDS, interval=0.2, message=what)
    except AssertionError:
        print(stack.logs())
        raise


def accepted(sandbox, numbers: list[str]) -> dict[str, int]:
    """How many messages the sandbox took for each of these numbers (other tests' numbers left out)."""
    per_recipient = sandbox.account_stats("metacloud")["accepted_per_recipient"]
    return {number: per_recipient[number] for number in numbers if number in per_recipient}


def signed_post(stack, body: bytes, secret: str):
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return requests.post(stack.hook, data=body, timeout=10, headers={
        "Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={signature}"})


def test_a_template_campaign_reaches_read_through_signed_webhooks(stack, meta):
    # given a template campaign of ten recipients
    campaign_id, numbers = launch_template(stack, "template-read", 1000, 10)
    # when the worker sends it and Meta's signed status webhooks come back to the web app
    wait_for_states(stack, campaign_id, {"read"}, "every template message read")
    # then each recipient got one template, its parameters from their own columns, and every status came by
    # webhook, carrying our message id
    found = rows(stack, campaign_id)
    assert accepted(meta, numbers) == dict.fromkeys(numbers, 1)
    assert found[numbers[0]].body.startswith("Hello Person 0, this is a reminder of your appointment on Person 0.")
    with stack.engine.connect() as connection:
        sources = set(connection.execute(
            select(StatusEvent.source, StatusEvent.kind).join(Message, Message.id == StatusEvent.message_id)
            .where(Message.campaign_id == campaign_id)).all())
    assert sources == {("webhook", "sent"), ("webhook", "delivered"), ("webhook", "read")}


def test_a_forged_notification_is_refused_and_changes_nothing(stack, meta):
    # given a campaign whose messages are read
    campaign_id, numbers = launch_template(stack, "forged", 2000, 2)
    wait_for_states(stack, campaign_id, {"read"}, "the messages read")
    row = rows(stack, campaign_id)[numbers[0]]
    with stack.engine.connect() as connection:
        events_before = connection.execute(select(StatusEvent.id)).all()
    # when someone posts a "failed" status for one of them, signed with a guessed secret
    body = json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
        "field": "messages", "value": {"statuses": [{"id": row.provider_message_id, "status": "failed",
                                                     "timestamp": str(int(time.time())),
                                                     "errors": [{"code": 131026}]}]}}]}]}).encode()
    answer = signed_post(stack, body, "guessed-app-secret")
    # then 401, and no event is stored and no message moves
    assert answer.status_code == 401
    with stack.engine.connect() as connection:
        assert connection.execute(select(StatusEvent.id)).all() == events_before
    assert {r.state for r in rows(stack, campaign_id).values()} == {"read"}


def test_an_inbound_message_opens_the_window_for_a_free_form_campaign(stack, meta):
    # given one number that wrote to the account (the sandbox posts it to the web app, signed)
    contacts = stack.folder / "free-form.csv"
    numbers = write_contacts(contacts, 3, start=3000)
    meta.inbound("metacloud", None, numbers[1], "Hello, what are your hours?")
    wait_until(lambda: numbers[1] in service_window.open_numbers(stack.engine, "meta", 24), timeout=WAIT_SECONDS,
               message="the inbound message recorded")
    # when a free-form text campaign goes to the three numbers
    campaign_id, report = lifecycle.launch(contacts, account_name="meta", template="Hi {{ name }}, we open at 9.",
                                           name="free-form")
    # then only the number inside its window gets it (and reads it); the two others are skipped, with the reason
    states = wait_for_states(stack, campaign_id, {"read", "skipped"}, "the free-form campaign done")
    assert states == {numbers[0]: "skipped", numbers[1]: "read", numbers[2]: "skipped"}
    assert report["reasons"] == {service_window.skip_reason(24): 2}
    assert meta.account_stats("metacloud")["accepted_per_recipient"].get(numbers[0]) is None


def test_a_pair_rate_answer_delays_only_that_recipient(stack, meta):
    # given Meta answers the pair-rate code once for one recipient
    contacts_start = 4000
    delayed = write_contacts(stack.folder / "probe.csv", 1, start=contacts_start)[0]
    meta.knobs("metacloud", error_codes={delayed: [131056]})
    # when a template campaign of six goes out
    campaign_id, numbers = launch_template(stack, "pair-rate", contacts_start, 6)
    wait_for_states(stack, campaign_id, {"read"}, "every message read")
    # then that recipient's message waited the pair-rate interval after its 131056, then went once; the others
    # went at once, not held behind it; and the account's rate was not backed off
    with stack.engine.connect() as connection:
        attempts = connection.execute(
            select(Message.phone, Attempt.outcome, Attempt.code, Attempt.at)
            .join(Attempt, Attempt.message_id == Message.id).where(Message.campaign_id == campaign_id)
            .order_by(Attempt.at)).all()
    delayed_attempts = [(a.outcome, a.code) for a in attempts if a.phone == delayed]
    assert delayed_attempts == [("throttled", "131056"), ("accepted", None)]
    throttled_at, accepted_at = (a.at for a in attempts if a.phone == delayed)
    assert (accepted_at - throttled_at).total_seconds() >= UNCERTAIN["pair_rate_seconds"] - 0.5
    others = [a for a in attempts if a.phone != delayed]
    assert [a.outcome for a in others] == ["accepted"] * 5
    assert max(a.at for a in others) < accepted_at
    assert dispatch.effective_rate("meta", get_account("meta").rate) == get_account("meta").rate == 80
    assert accepted(meta, numbers) == dict.fromkeys(numbers, 1)


def test_an_unknown_outcome_is_settled_by_the_webhook_carrying_our_id_never_a_second_send(stack, meta):
    # given Meta takes every message but answers HTTP 500 (the outcome is unknown to Blast)
    meta.knobs("metacloud", ambiguous_fraction=1.0)
    # when a template campaign of three goes out
    campaign_id, numbers = launch_template(stack, "ambiguous", 5000, 3)
    # then the status webhooks, echoing our message id in biz_opaque_callback_data, settle each message up to
    # read, and no recipient got a second message
    wait_for_states(stack, campaign_id, {"read"}, "every unknown message settled by its webhooks")
    assert accepted(meta, numbers) == dict.fromkeys(numbers, 1)
    assert all(row.provider_message_id.startswith("wamid.") for row in rows(stack, campaign_id).values())


def test_a_template_meta_paused_holds_its_campaign_until_it_is_approved_again(stack, meta):
    # given a campaign of the approved template, launched just as Meta pauses it for low quality
    account = get_account("meta")
    approved_templates.sync(stack.engine, account)
    template = approved_templates.find(stack.engine, account, "appointment_reminder", "en_US")
    text, options = approved_templates.campaign_parts(template, ["name", "name"])
    contacts = stack.folder / "held.csv"
    numbers = write_contacts(contacts, 6, start=6000)
    meta.knobs("metacloud", template_status={"appointment_reminder": "PAUSED"})
    try:
        campaign_id, _ = lifecycle.launch(contacts, account_name="meta", template=text, name="held", options=options)
        # when it sends, then it pauses at once, saying why
        def paused():
            with stack.engine.connect() as connection:
                found = connection.execute(select(Campaign).where(Campaign.id == campaign_id)).first()
            return found if found.status == "paused" else None

        campaign = wait_until(paused, timeout=WAIT_SECONDS, interval=0.2, message="the campaign paused")
        assert campaign.pause_reason == "content" and approved_templates.HELD in campaign.pause_detail
        # and every message waits, none failed, none with an attempt used; Meta took none
        wait_for_states(stack, campaign_id, {"pending"}, "every message pending")
        assert {row.attempts for row in rows(stack, campaign_id).values()} == {0}
        assert accepted(meta, numbers) == {}
        # when beat's check finds it still paused, then nothing changes
        assert approved_templates.resume_held(stack.engine) == []
        # when Meta approves it again, then beat's check resumes the campaign and every recipient gets it once
        meta.knobs("metacloud", template_status={})
        assert approved_templates.resume_held(stack.engine) == [campaign_id]
        wait_for_states(stack, campaign_id, {"read"}, "every message read")
        assert accepted(meta, numbers) == dict.fromkeys(numbers, 1)
    finally:
        meta.knobs("metacloud", template_status={})
