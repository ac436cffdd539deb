"""Exactly once when gateways answer ambiguously, with real processes: `blast web`, two `blast worker`s and
`blast beat` on Postgres and Redis, the sandbox in its own process as the witness (its per-recipient counts).

The sandbox takes a share of the sends and then answers HTTP 500 (a crash after its commit), loses others
(500, nothing taken), answers 200 with bodies nobody documented, prints status words nobody listed, keeps
its dates in an account's own time zone. Blast must never send a message the gateway took a second time
on its own, must reach everyone the gateway did not take, and must say so in its tallies.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import pytest
from sqlalchemy import func, select

from campaigns import lifecycle
from campaigns.models import Campaign, Message
from tests.support import services
from tests.support.engine import ROOT, engine_processes, fresh_env, write_config, write_contacts
from tests.support.waiting import wait_until
from workers.sandbox.harness import SandboxProcess, free_port

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]

REDIS_DB = services.REDIS_DATABASES["ambiguous"]
SECRET = "ambiguous-hook-secret-41c9"
WAIT = 3  # unknown_wait_seconds: how long reports and callbacks get before "not there" means "not taken"
FRACTION = 0.2  # the share of sends answered 500 after the gateway took them
TIMEZONES = {"sg10": "+10:00", "sg0530": "+05:30", "sgm05": "-05:00", "sgutc": None}
CHANGED_KEY = "sandbox-socnet-changed-api-0123456789"
ACCOUNTS = {
    "sn": {"provider": "socnet", "rate": 50},  # no reports, no callbacks: on_unknown = hold
    "sg": {"provider": "smsglobal", "rate": 50, "unknown_wait_seconds": WAIT},  # polled reports
    "dv": {"provider": "devino", "rate": 50, "webhook_secret": SECRET, "unknown_wait_seconds": WAIT},  # callbacks
    "ha": {"provider": "httpapi", "rate": 50, "webhook_secret": SECRET, "unknown_wait_seconds": WAIT},
    "snx": {"provider": "socnet", "rate": 20, "api_key": CHANGED_KEY},  # a gateway that changed its API
    **{name: {"provider": "smsglobal", "rate": 50, "api_key": f"sandbox-{name}-key", "api_secret": "tz-secret"}
       for name in TIMEZONES},
}
PROVIDER = {name: spec["provider"] for name, spec in ACCOUNTS.items()}
WAIT_SECONDS = 60


@pytest.fixture(scope="module")
def stack(tmp_path_factory, postgres_server_url):
    folder, port = tmp_path_factory.mktemp("ambiguous-processes"), free_port()
    env = fresh_env(folder, postgres_server_url, REDIS_DB, public_url=f"http://127.0.0.1:{port}",
                    report_poll_seconds=1, reconcile_every_seconds=1)
    (folder / "logs").mkdir()
    with SandboxProcess(log_path=folder / "logs" / "sandbox.log") as sandbox:
        for name, zone in TIMEZONES.items():
            sandbox.create_account("smsglobal", f"sandbox-{name}-key", secret="tz-secret")
            sandbox.knobs("smsglobal", f"sandbox-{name}-key", timezone=zone, progress_seconds=0.1)
        sandbox.create_account("socnet", CHANGED_KEY)
        write_config(folder / "blast.toml", sandbox, ACCOUNTS)
        with engine_processes(env, folder / "logs") as processes:
            processes.sandbox, processes.folder = sandbox, folder
            processes.web(port)
            processes.worker("w1")
            processes.worker("w2")
            processes.beat()
            processes.wait_until_answering(f"{env['BLAST_PUBLIC_URL']}/login")
            yield processes


# ---------------------------------------------------------------- helpers


def sandbox_key(account: str) -> str | None:
    return ACCOUNTS[account].get("api_key") or ACCOUNTS[account].get("token")


def launch(stack, account: str, first: int, count: int, name: str, template: str = "Hi {{ name }}"):
    contacts = stack.folder / f"{name}.csv"
    numbers = write_contacts(contacts, count, start=first)
    campaign_id, _ = lifecycle.launch(contacts, account_name=account, template=template, name=name)
    return campaign_id, numbers


def cli(stack, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "campaigns.cli", *args], env=stack.env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def cli_status(stack, campaign_id: int) -> dict:
    return json.loads(cli(stack, "status", str(campaign_id), "--json"))


def rows(stack, campaign_id: int) -> list[Message]:
    with stack.engine.connect() as connection:
        return list(connection.execute(select(Message).where(Message.campaign_id == campaign_id)).all())


def campaign(stack, campaign_id: int):
    with stack.engine.connect() as connection:
        return connection.execute(select(Campaign).where(Campaign.id == campaign_id)).one()


def counts_by_state(stack, campaign_id: int) -> dict[str, int]:
    with stack.engine.connect() as connection:
        return dict(connection.execute(select(Message.state, func.count()).where(Message.campaign_id == campaign_id)
                                       .group_by(Message.state)).all())


def at_gateway(stack, account: str, numbers: list[str]) -> Counter:
    """How many times the gateway took each of `numbers`: the sandbox's own count."""
    taken = stack.sandbox.account_stats(PROVIDER[account], sandbox_key(account))["accepted_per_recipient"]
    return Counter({number: taken.get(number, 0) for number in numbers})


def wait_for(stack, predicate, what: str, timeout: float = WAIT_SECONDS):
    try:
        return wait_until(predicate, timeout=timeout, interval=0.25, message=what)
    except AssertionError:
        print(stack.logs())
        raise


def finished(stack, campaign_id: int) -> dict:
    return wait_for(stack, lambda: (report := cli_status(stack, campaign_id))["status"] == "finished" and report,
                    f"campaign {campaign_id} finished")


def assert_tallies_equal_the_rows(stack, campaign_id: int, total: int) -> dict:
    report = cli_status(stack, campaign_id)
    assert {state: n for state, n in report["counts"].items() if n} == counts_by_state(stack, campaign_id)
    assert report["total"] == total == sum(report["counts"].values())
    return report


# ---------------------------------------------------------------- 500 after the gateway took the message


@pytest.mark.parametrize("account", ["sg", "ha", "dv"])
def test_gateways_that_can_be_asked_get_each_message_once_and_everyone_is_reached(stack, account):
    # given a gateway that takes a fifth of the sends and answers 500, and loses a tenth (500, not taken);
    # its callbacks and webhooks come a second late
    provider = PROVIDER[account]
    stack.sandbox.knobs(provider, ambiguous_fraction=FRACTION, lost_fraction=0.1, progress_seconds=0.1,
                        read_fraction=1.0, callback_delay_seconds=1.0, webhook_url=None if account != "ha"
                        else f"{stack.env['BLAST_PUBLIC_URL']}/hooks/httpapi/ha?token={SECRET}")
    first = {"sg": 10_000, "ha": 20_000, "dv": 30_000}[account]
    try:
        # when a campaign of 60 goes out through two workers
        campaign_id, numbers = launch(stack, account, first, 60, f"ambiguous-{account}")
        # then it finishes with every recipient read
        wait_for(stack, lambda: counts_by_state(stack, campaign_id) == {"read": 60}, f"{account}: all read")
    finally:
        stack.sandbox.knobs(provider, ambiguous_fraction=0.0, lost_fraction=0.0, callback_delay_seconds=0.0)
    # and the gateway took each recipient exactly once, though it answered 500 for some it took
    taken = at_gateway(stack, account, numbers)
    assert set(taken.values()) == {1}, {n: c for n, c in taken.items() if c != 1}
    stats = stack.sandbox.account_stats(provider)
    assert stats["garbled"]["ambiguous"] > 0 and stats["rejected"]["lost_fraction"] > 0
    assert_tallies_equal_the_rows(stack, campaign_id, 60)


def test_a_gateway_that_cannot_be_asked_holds_the_unknown_for_the_operator(stack):
    # given Socnet (no reports, no callbacks), taking a fifth of the sends and answering 500
    stack.sandbox.knobs("socnet", ambiguous_fraction=FRACTION)
    try:
        campaign_id, numbers = launch(stack, "sn", 40_000, 60, "ambiguous-socnet")
        # then the campaign finishes around the messages held unknown
        report = finished(stack, campaign_id)
    finally:
        stack.sandbox.knobs("socnet", ambiguous_fraction=0.0)
    held = [row for row in rows(stack, campaign_id) if row.state == "unknown"]
    assert held and all(row.error_code == "held" for row in held)
    assert report["counts"]["submitted"] + len(held) == 60
    # and nobody got it twice: the held ones are exactly those the gateway took and answered 500
    taken = at_gateway(stack, "sn", numbers)
    assert set(taken.values()) == {1}
    assert stack.sandbox.account_stats("socnet")["garbled"]["ambiguous"] == len(held)
    assert_tallies_equal_the_rows(stack, campaign_id, 60)

    # when the operator decides to send the held ones again
    said = cli(stack, "retry", str(campaign_id), "--reason", "unknown")
    assert f"{len(held)} messages will be sent again" in said
    finished(stack, campaign_id)
    # then each held one went out once more, and nobody else did
    again = at_gateway(stack, "sn", numbers)
    assert {row.phone for row in held} == {number for number, count in again.items() if count == 2}
    assert set(again.values()) <= {1, 2}
    assert counts_by_state(stack, campaign_id) == {"submitted": 60}


# ---------------------------------------------------------------- a gateway that changed its API


def test_undocumented_answers_in_a_row_pause_the_accounts_campaigns(stack):
    # given a gateway that now answers every send with a 200 body nobody documented (having taken it)
    stack.sandbox.knobs("socnet", CHANGED_KEY, undocumented_fraction=1.0)
    campaign_id, numbers = launch(stack, "snx", 50_000, 40, "changed-api")
    # then the campaign pauses with reason gateway_changed and the raw answer, long before the list is done
    paused = wait_for(stack, lambda: (row := campaign(stack, campaign_id)).status == "paused" and row,
                      "the campaign paused")
    assert paused.pause_reason == "gateway_changed"
    assert "undocumented HTTP 200" in paused.pause_detail and "queued" in paused.pause_detail
    taken = at_gateway(stack, "snx", numbers)
    assert set(taken.values()) <= {0, 1} and sum(taken.values()) < 40
    assert cli_status(stack, campaign_id)["pause_reason"] == "gateway_changed"


# ---------------------------------------------------------------- words nobody listed


def test_status_words_nobody_listed_end_each_message_in_its_family(stack):
    # given Devino printing its older words (enqueued, visited) and one nobody listed for delivered
    stack.sandbox.knobs("devino", status_words={"sent": "enqueued", "delivered": "DELIVERED_TO_HANDSET",
                                                "read": "visited"}, progress_seconds=0.1, read_fraction=1.0)
    # and SMSGlobal printing a final word of failure nobody listed
    stack.sandbox.knobs("smsglobal", status_words={"delivered": "vp_expired"}, progress_seconds=0.1,
                        read_fraction=0.0)
    try:
        read_id, _ = launch(stack, "dv", 60_000, 5, "older-words")
        failed_id, _ = launch(stack, "sg", 61_000, 5, "final-failure-word")
        # then the Devino messages end read, the SMSGlobal ones failed with the word as their reason
        wait_for(stack, lambda: counts_by_state(stack, read_id) == {"read": 5}, "visited read as read")
        wait_for(stack, lambda: counts_by_state(stack, failed_id) == {"failed": 5}, "vp_expired as a failure")
    finally:
        stack.sandbox.knobs("devino", status_words={})
        stack.sandbox.knobs("smsglobal", status_words={}, read_fraction=1.0)
    assert {row.error_code for row in rows(stack, failed_id)} == {"vp_expired"}
    assert all("vp_expired" in row.error_reason for row in rows(stack, failed_id))


# ---------------------------------------------------------------- account time zones


@pytest.mark.parametrize("account", list(TIMEZONES))
def test_smsglobal_accounts_in_any_zone_reach_read_by_polling_alone(stack, account):
    # given an SMSGlobal account whose dates are in its own zone (blast.toml does not say which)
    first = 70_000 + 1_000 * list(TIMEZONES).index(account)
    # when a campaign goes out; SMSGlobal pushes nothing, so only beat's polls can tell
    campaign_id, _ = launch(stack, account, first, 8, f"zone-{account}")
    # then every message reaches read
    wait_for(stack, lambda: counts_by_state(stack, campaign_id) == {"read": 8}, f"{account}: read by polling")


# ---------------------------------------------------------------- an earlier message to the same number


def test_an_earlier_message_to_the_same_number_never_makes_a_lost_one_look_sent(stack):
    # given a reminder that reached a number earlier, with the same words
    earlier_id, numbers = launch(stack, "ha", 80_000, 1, "reminder-earlier", template="Your visit is tomorrow")
    wait_for(stack, lambda: counts_by_state(stack, earlier_id) == {"read": 1}, "the earlier reminder read")
    [earlier] = rows(stack, earlier_id)
    # when today's reminder is lost by the gateway (500, nothing taken)
    stack.sandbox.knobs("httpapi", lost_fraction=1.0)
    try:
        today_id, _ = launch(stack, "ha", 80_000, 1, "reminder-today", template="Your visit is tomorrow")
        wait_for(stack, lambda: counts_by_state(stack, today_id).get("unknown") == 1
                 or counts_by_state(stack, today_id).get("pending") == 1, "today's reminder unknown")
    finally:
        stack.sandbox.knobs("httpapi", lost_fraction=0.0)
    # then the earlier one in the report is not taken for it: it is sent again, and reaches the number
    wait_for(stack, lambda: counts_by_state(stack, today_id) == {"read": 1}, "today's reminder read")
    [today] = rows(stack, today_id)
    assert today.provider_message_id != earlier.provider_message_id
    assert at_gateway(stack, "ha", numbers) == Counter({numbers[0]: 2})  # one each day


# ---------------------------------------------------------------- the web log


def test_the_web_log_of_a_run_with_webhooks_has_no_traceback(stack):
    log = stack.log("web")
    assert "/hooks/" in log  # webhooks were logged, the token masked
    assert "Traceback" not in log and "Logging error" not in log
    assert SECRET not in log
