"""Delivery with real processes: `blast web`, `blast worker` and `blast beat` subprocesses on Postgres and Redis,
and the gateway sandbox in its own process sending Devino callbacks and HTTP API webhooks to the web app, while
beat polls SMSGlobal's outgoing list and inbox (and the HTTP API's reports) every second.

The processes are started once for the module; each test uses its own recipients, so the sandbox's
per-recipient counts and the database rows of one test never mix with another's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import requests
from sqlalchemy import func, select

from campaigns import lifecycle
from campaigns.models import Message, OptOut, StatusEvent
from tests.support import services
from tests.support.engine import ROOT, SentTasks, engine_processes, fresh_env, write_config, write_contacts
from tests.support.waiting import wait_until
from workers.sandbox.harness import SandboxProcess, free_port

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]

REDIS_DB = services.REDIS_DATABASES["delivery"]
POLL_SECONDS = 1.0  # BLAST_REPORT_POLL_SECONDS for beat
SECRET = "delivery-hook-secret-7f3a"
ACCOUNTS = {
    "dv": {"provider": "devino", "rate": 50, "webhook_secret": SECRET},  # callbacks per message
    "ha": {"provider": "httpapi", "rate": 50, "webhook_secret": SECRET},  # webhook, and polled reports
    "sg": {"provider": "smsglobal", "rate": 50},  # polled outgoing list and inbox only
}
PROVIDER = {name: spec["provider"] for name, spec in ACCOUNTS.items()}
WAIT_SECONDS = 45


@pytest.fixture(scope="module")
def stack(tmp_path_factory, postgres_server_url):
    """The sandbox, `blast web` on a free port (BLAST_PUBLIC_URL), one worker and one beat; the broker's
    task-sent events recorded from before beat starts."""
    folder, port = tmp_path_factory.mktemp("delivery-processes"), free_port()
    env = fresh_env(folder, postgres_server_url, REDIS_DB, public_url=f"http://127.0.0.1:{port}",
                    report_poll_seconds=POLL_SECONDS)
    (folder / "logs").mkdir()
    with SandboxProcess(log_path=folder / "logs" / "sandbox.log") as sandbox:
        write_config(folder / "blast.toml", sandbox, ACCOUNTS)
        with engine_processes(env, folder / "logs", unset=("BLAST_OPTOUT_KEYWORDS",)) as processes, \
                SentTasks(env["BLAST_BROKER_URL"]) as sent:
            processes.sandbox, processes.sent, processes.folder = sandbox, sent, folder
            processes.web_url = env["BLAST_PUBLIC_URL"]
            processes.web(port)
            processes.worker("w1")
            processes.beat()
            processes.wait_until_answering(f"{processes.web_url}/login")
            yield processes


@pytest.fixture
def gateways(stack):
    """Messages go sent -> delivered -> read a tenth of a second apart; the HTTP API pushes its delivery and
    inbox reports to the web app."""
    sandbox = stack.sandbox
    for provider in PROVIDER.values():
        sandbox.knobs(provider, progress_seconds=0.1, read_fraction=1.0, rate_cap=None)
    sandbox.knobs("httpapi", webhook_url=hook_url("ha"))
    return sandbox


# ---------------------------------------------------------------- helpers


def hook_url(account: str, token: str | None = SECRET) -> str:
    url = f"{_public_url()}/hooks/{PROVIDER[account]}/{account}"
    return url if token is None else f"{url}?token={token}"


def _public_url() -> str:
    from campaigns.settings import get_settings

    return get_settings().public_url


def launch(stack, account: str, numbers_from: int, count: int, name: str) -> tuple[int, list[str]]:
    contacts = stack.folder / f"{name}.csv"
    numbers = write_contacts(contacts, count, start=numbers_from)
    campaign_id, _ = lifecycle.launch(contacts, account_name=account, template="Hi {{ name }}", name=name)
    return campaign_id, numbers


def cli_status(stack, campaign_id: int) -> dict:
    """`blast status ID --json`, the real command line."""
    done = subprocess.run([sys.executable, "-m", "campaigns.cli", "status", str(campaign_id), "--json"],
                          env=stack.env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def rows(stack, campaign_id: int) -> dict[str, Message]:
    """phone -> message row of the campaign."""
    with stack.engine.connect() as connection:
        found = connection.execute(select(Message).where(Message.campaign_id == campaign_id)).all()
    return {row.phone: row for row in found}


def states(stack, campaign_id: int) -> dict[str, str]:
    return {phone: row.state for phone, row in rows(stack, campaign_id).items()}


def counts_by_state(stack, campaign_id: int) -> dict[str, int]:
    with stack.engine.connect() as connection:
        found = connection.execute(select(Message.state, func.count()).where(Message.campaign_id == campaign_id)
                                   .group_by(Message.state)).all()
    return dict(found)


def wait_for_states(stack, campaign_id: int, wanted: set[str], what: str) -> dict[str, str]:
    def reached():
        found = states(stack, campaign_id)
        return found if found and set(found.values()) <= wanted else None

    try:
        return wait_until(reached, timeout=WAIT_SECONDS, interval=0.2, message=what)
    except AssertionError:
        print(stack.logs())
        raise


def assert_cli_tallies(stack, campaign_id: int, expected: dict[str, int]) -> dict:
    """The CLI's tallies show `expected` and equal the message rows state by state."""
    report = cli_status(stack, campaign_id)
    shown = {state: count for state, count in report["counts"].items() if count}
    assert shown == expected, report
    assert shown == counts_by_state(stack, campaign_id)
    assert report["total"] == sum(expected.values())
    return report


def post(url: str, body, *, content_type: str = "application/json", headers: dict | None = None):
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return requests.post(url, data=data, headers={"Content-Type": content_type, **(headers or {})}, timeout=10)


def devino_status(row: Message, word: str, error_code: int = 0) -> dict:
    """A callback item as devino.txt shows it; `options` echoes our callbackData (the message id)."""
    return {"messageId": int(row.provider_message_id), "ts": int(time.time()), "status": word,
            "errorCode": error_code, "ip": "", "browser": "", "os": "", "userAgent": TEST_MARK, "options": str(row.id)}


def httpapi_report(row: Message, code: int, word: str) -> dict:
    """A delivery report as the HTTP API pushes it to the instance's webhook."""
    return {"clientID": TEST_MARK, "instanceID": "instance", "messageID": row.provider_message_id,
            "phone": row.phone.lstrip("+"), "reportType": "delivery", "status": code, "statusInfo": word,
            "waID": "", "waMessageID": ""}


# Marks the callbacks and reports this module posts itself, so that counting them ignores what beat's polls
# and the sandbox store meanwhile.
TEST_MARK = "posted-by-the-test"


def stored_events(stack) -> int:
    """Events stored from the callbacks and reports the tests posted themselves."""
    with stack.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(StatusEvent)
                                  .where(StatusEvent.raw.contains(f'"{TEST_MARK}"'))).scalar_one()


def requests_of(sandbox, provider: str) -> int:
    return sandbox.account_stats(provider)["requests"]


# ---------------------------------------------------------------- reaching read


def test_each_gateway_brings_its_campaign_to_read(stack, gateways):
    # given a campaign on each account: Devino (callbacks), HTTP API (webhook and reports), SMSGlobal (polled)
    campaigns = {account: launch(stack, account, start, 12, f"read-{account}")
                 for account, start in (("dv", 1000), ("ha", 2000), ("sg", 3000))}
    # when the worker sends them and the reports come back
    for account, (campaign_id, _) in campaigns.items():
        wait_for_states(stack, campaign_id, {"read"}, f"every {account} message read")
    # then `blast status --json` shows every message read, equal to the rows, and the campaign finished
    for account, (campaign_id, numbers) in campaigns.items():
        report = assert_cli_tallies(stack, campaign_id, {"read": 12})
        assert report["status"] in ("running", "finished")
        assert gateways.account_stats(PROVIDER[account])["accepted_per_recipient"] == dict.fromkeys(numbers, 1)
    wait_until(lambda: cli_status(stack, campaigns["sg"][0])["status"] == "finished", timeout=20, interval=0.5,
               message="the SMSGlobal campaign to finish")
    # and SMSGlobal's states came only from beat's polling
    sg_id = campaigns["sg"][0]
    with stack.engine.connect() as connection:
        sources = connection.execute(
            select(StatusEvent.source).join(Message, Message.id == StatusEvent.message_id)
            .where(Message.campaign_id == sg_id).distinct()).scalars().all()
    assert sources == ["poll"]

    # when beat keeps polling a while, with all 12 messages in the outgoing list
    started_at, requests_before = time.time(), requests_of(gateways, "smsglobal")
    wait_until(lambda: len([at for _, at in stack.sent.published("blast.poll_reports") if at >= started_at]) >= 3,
               timeout=20, message="three more report polls")
    made = requests_of(gateways, "smsglobal") - requests_before
    polls = len([at for task in ("blast.poll_reports", "blast.poll_inbound")
                 for _, at in stack.sent.published(task) if at >= started_at - 2 * POLL_SECONDS])
    # then each poll asked for one page (of reports or of inbox), not one request per message
    assert 0 < made <= polls, (made, polls)


# ---------------------------------------------------------------- replayed, reordered, garbage


def test_replayed_and_reordered_reports_change_nothing_and_garbage_is_refused(stack, gateways):
    # given Devino messages that stay sent (the test brings their reports) and HTTP API ones that reach read
    gateways.knobs("devino", progress_seconds=None)
    dv_id, _ = launch(stack, "dv", 4000, 3, "replay-dv")
    ha_id, _ = launch(stack, "ha", 4100, 2, "replay-ha")
    wait_for_states(stack, dv_id, {"submitted", "sent"}, "the Devino messages at the gateway")
    wait_for_states(stack, ha_id, {"read"}, "the HTTP API messages read")
    first, second, third = sorted(rows(stack, dv_id).values(), key=lambda row: row.id)
    reordered = [[devino_status(first, "READ")], [devino_status(first, "DELIVERED")], [devino_status(first, "SENT")],
                 [devino_status(second, "DELIVERED")],
                 [devino_status(third, word) for word in ("READ", "SENT", "DELIVERED")]]
    # when their callbacks arrive out of order at the web app
    for body in reordered:
        assert post(hook_url("dv"), body).status_code == 200
    # then each message has its latest state: read, delivered, read
    expected = {first.phone: "read", second.phone: "delivered", third.phone: "read"}
    assert states(stack, dv_id) == expected
    tallies = assert_cli_tallies(stack, dv_id, {"read": 2, "delivered": 1})["counts"]

    # when every callback is replayed, twice, in reverse, and HTTP API reports older than read are replayed
    events_before = stored_events(stack)
    replays = [body for _ in range(2) for body in reversed(reordered)]
    ha_rows = list(rows(stack, ha_id).values())
    ha_replays = [httpapi_report(row, code, word) for row in ha_rows for code, word in ((3, "Delivered"), (1, "Sent"))]
    for body in replays:
        assert post(hook_url("dv"), body).status_code == 200
    for body in ha_replays:
        assert post(hook_url("ha"), body).status_code == 200
    # then every one was stored, and nothing moved: read stays read
    assert stored_events(stack) == events_before + sum(map(len, replays)) + len(ha_replays)
    assert states(stack, dv_id) == expected
    assert cli_status(stack, dv_id)["counts"] == tallies
    assert set(states(stack, ha_id).values()) == {"read"}
    assert_cli_tallies(stack, ha_id, {"read": 2})

    # when garbage, a wrong token or no token arrives
    no_message_id = {"dv": b'[{"status": "READ"}]', "ha": b'{"reportType": "delivery", "status": 4}'}
    for account in ("dv", "ha"):
        for garbage in (b"not json at all", b"{", b"[1, 2", no_message_id[account], "\u00ff\u00fe".encode("latin-1")):
            answer = post(hook_url(account), garbage)
            # then it is refused as bad input, never a server error
            assert answer.status_code == 400, (account, garbage, answer.status_code, answer.text)
        assert post(hook_url(account, "wrong-secret"), [devino_status(first, "READ")]).status_code == 403
        assert post(hook_url(account, None), [devino_status(first, "READ")]).status_code == 401
        assert post(hook_url(account, None), b"{", headers={"X-Blast-Token": "wrong"}).status_code == 403
    assert states(stack, dv_id) == expected


# ---------------------------------------------------------------- Devino 2301


def test_a_2301_callback_sends_the_message_again_exactly_once(stack, gateways):
    # given a finished Devino campaign whose messages stay sent at the gateway
    gateways.knobs("devino", progress_seconds=None)
    campaign_id, numbers = launch(stack, "dv", 5000, 3, "throttled")
    wait_for_states(stack, campaign_id, {"submitted", "sent"}, "the messages at the gateway")
    wait_until(lambda: cli_status(stack, campaign_id)["status"] == "finished", timeout=20, interval=0.5,
               message="the campaign to finish")
    throttled = rows(stack, campaign_id)[numbers[0]]
    callback = [devino_status(throttled, "FAILED", 2301)]
    # when Devino says the first one was dropped for rate (2301)
    assert post(hook_url("dv"), callback).status_code == 200
    # then the worker sends it again: the gateway sees that recipient twice, the others once
    per_recipient = wait_until(
        lambda: (found := gateways.account_stats("devino")["accepted_per_recipient"]).get(numbers[0]) == 2 and found,
        timeout=WAIT_SECONDS, interval=0.2, message="the throttled message to be sent again")
    assert {number: per_recipient.get(number) for number in numbers} == {numbers[0]: 2, numbers[1]: 1, numbers[2]: 1}
    resent = wait_until(lambda: (row := rows(stack, campaign_id)[numbers[0]]).provider_message_id not in
                        (None, throttled.provider_message_id) and row, timeout=WAIT_SECONDS, message="the new id")
    assert resent.state in ("submitted", "sent")

    # when the same 2301 callback is replayed
    assert post(hook_url("dv"), callback).status_code == 200
    # then it names an old send: the message stays at the gateway (nothing pending to send again)
    assert rows(stack, campaign_id)[numbers[0]].state in ("submitted", "sent")
    wait_until(lambda: cli_status(stack, campaign_id)["status"] == "finished", timeout=20, interval=0.5,
               message="the campaign to finish again")
    assert gateways.account_stats("devino")["accepted_per_recipient"][numbers[0]] == 2
    wait_for_states(stack, campaign_id, {"sent"}, "every SENT callback applied")  # some wait for beat's job
    assert_cli_tallies(stack, campaign_id, {"sent": 3})


# ---------------------------------------------------------------- STOP


def test_a_stop_reply_skips_the_number_next_time(stack, gateways):
    # given a campaign to one list on the HTTP API account and one on SMSGlobal, both read
    contacts = stack.folder / "stop.csv"
    numbers = write_contacts(contacts, 4, start=6000)
    first = [lifecycle.launch(contacts, account_name=account, template="Hi {{ name }}", name=f"first-{account}")[0]
             for account in ("ha", "sg")]
    for campaign_id in first:
        wait_for_states(stack, campaign_id, {"read"}, "the first campaigns read")
    # when one recipient replies STOP on the HTTP API (its webhook) and another on SMSGlobal (beat polls its inbox)
    gateways.inbound("httpapi", None, numbers[0].lstrip("+"), "  StOp ")
    gateways.inbound("smsglobal", None, numbers[1], " STOP\n")
    opted_out = wait_until(lambda: (found := dict(_optouts(stack))).keys() >= {numbers[0], numbers[1]} and found,
                           timeout=WAIT_SECONDS, interval=0.2, message="both numbers opted out")
    assert opted_out[numbers[0]] == "webhook:ha" and opted_out[numbers[1]] == "poll:sg"
    # and a next campaign goes to the same list on each account
    sent_before = {provider: gateways.account_stats(provider)["accepted_per_recipient"]
                   for provider in ("httpapi", "smsglobal")}
    second = [lifecycle.launch(contacts, account_name=account, template="Again {{ name }}", name=f"next-{account}")[0]
              for account in ("ha", "sg")]
    # then both numbers are skipped as opted out, and the others are sent
    for campaign_id, provider in zip(second, ("httpapi", "smsglobal"), strict=True):
        wait_for_states(stack, campaign_id, {"read", "skipped"}, "the next campaign done")
        found = rows(stack, campaign_id)
        assert {phone: (row.state, row.skip_reason) for phone, row in found.items() if row.state == "skipped"} == \
            {numbers[0]: ("skipped", "opted out"), numbers[1]: ("skipped", "opted out")}
        assert_cli_tallies(stack, campaign_id, {"read": 2, "skipped": 2})
        accepted = gateways.account_stats(provider)["accepted_per_recipient"]
        assert {number: accepted.get(number, 0) - sent_before[provider].get(number, 0) for number in numbers} == \
            {numbers[0]: 0, numbers[1]: 0, numbers[2]: 1, numbers[3]: 1}


def _optouts(stack) -> list[tuple[str, str]]:
    with stack.engine.connect() as connection:
        return connection.execute(select(OptOut.phone, OptOut.source)).all()

