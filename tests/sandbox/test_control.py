"""The sandbox's control API: knobs (live), accounts, stats (duplicates, the one-second peak), reset, and
the `blast sandbox` flags."""

from __future__ import annotations

import time

import pytest
import requests

from tests.support.gateway_requests import devino_message, devino_post, httpapi_call, smsglobal_call, socnet_post
from tests.support.sandbox import DEVINO_KEY, HTTPAPI_TOKEN, METACLOUD_TOKEN, SMSGLOBAL_KEY, SOCNET_KEY
from tests.support.waiting import wait_until
from workers.providers import registry
from workers.sandbox import gateways as sandbox_gateways
from workers.sandbox.harness import SandboxError, SandboxProcess
from workers.sandbox.state import Account, Outgoing


def socnet_send(sandbox, msisdn: str = "256701234567", key: str = SOCNET_KEY) -> requests.Response:
    return socnet_post(sandbox, {"api_key": key, "msisdn": msisdn, "msg": "Hello"})


def test_stats_show_every_recipient_and_the_duplicates(sandbox):
    # given three sends, two of them to the same number
    for msisdn in ("256701234567", "256701234568", "256701234567"):
        assert socnet_send(sandbox, msisdn).status_code == 200
    # then the account's stats count each recipient, and one recipient twice
    stats = sandbox.stats(provider="socnet", key=SOCNET_KEY)
    assert list(stats["accounts"]) == [f"socnet:{SOCNET_KEY}"]
    account = stats["accounts"][f"socnet:{SOCNET_KEY}"]
    assert account["accepted"] == 3 and account["duplicates"] == 1 and account["requests"] == 3
    assert account["accepted_per_recipient"] == {"+256701234567": 2, "+256701234568": 1}
    assert account["rejected"] == {} and 1 <= account["peak_per_second"] <= 3


def test_stats_list_every_account_unless_filtered(sandbox):
    everyone = sandbox.stats()["accounts"]
    assert set(everyone) == {f"socnet:{SOCNET_KEY}", f"smsglobal:{SMSGLOBAL_KEY}", f"devino:{DEVINO_KEY}",
                             f"httpapi:{HTTPAPI_TOKEN}", f"metacloud:{METACLOUD_TOKEN}"}
    assert set(sandbox.stats(provider="devino")["accounts"]) == {f"devino:{DEVINO_KEY}"}


def test_the_peak_is_the_most_messages_in_one_sliding_second(sandbox):
    # given one Devino request of 7 messages (all accepted in the same instant) ...
    assert devino_post(sandbox, [devino_message(f"7903456780{i}") for i in range(7)]).status_code == 200
    # then the peak is exactly 7
    assert sandbox.account_stats("devino")["peak_per_second"] == 7


def test_the_sliding_window_is_exact_at_its_edges():
    # given acceptances at these instants (seconds)
    account = Account("socnet", "k")
    for at in (0.0, 0.5, 0.99, 1.0, 1.6, 1.99, 2.5, 2.6, 2.7, 3.49):
        account.accept(Outgoing(str(at), "+256700000000", "x"), now=at)
    # then the peak counts the densest window (t - 1, t]: 2.5, 2.6, 2.7, 3.49 -> 4 (1.99 is 1.5 before 3.49)
    assert account.stats.peak_per_second == 4
    # and an instant exactly one second after another has left that one behind
    edge = Account("socnet", "k")
    for at in (0.0, 1.0, 2.0):
        edge.accept(Outgoing(str(at), "+256700000000", "x"), now=at)
    assert edge.stats.peak_per_second == 1


def test_the_rate_cap_refuses_past_the_cap_within_the_second():
    account = Account("socnet", "k")
    account.knobs.update({"rate_cap": 2})
    for at in (10.0, 10.3):
        assert account.refusal(now=at) is None
        account.accept(Outgoing(str(at), "+256700000000", "x"), now=at)
    assert account.refusal(now=10.9) == "rate_cap"
    assert account.refusal(now=11.0) is None  # 10.0 has left the window (10.0, 11.0]
    assert account.refusal(count=2, now=11.0) == "rate_cap"


def test_knobs_change_live_and_are_shown(sandbox):
    # given an account sending fine
    assert socnet_send(sandbox).status_code == 200
    # when every send is made to fail, then back
    shown = sandbox.knobs("socnet", SOCNET_KEY, fail_fraction=1.0)
    assert shown["knobs"]["fail_fraction"] == 1.0 and "secret" not in shown
    assert [socnet_send(sandbox).status_code for _ in range(3)] == [503, 503, 503]
    sandbox.knobs("socnet", SOCNET_KEY, fail_fraction=0.0)
    assert socnet_send(sandbox).status_code == 200
    # then the stats saw two acceptances and three failures
    stats = sandbox.account_stats("socnet")
    assert stats["accepted"] == 2 and stats["rejected"] == {"fail_fraction": 3}


def test_a_fail_fraction_fails_about_that_share(sandbox):
    sandbox.knobs("socnet", SOCNET_KEY, fail_fraction=0.5)
    codes = [socnet_send(sandbox, f"2567012{i:05d}").status_code for i in range(80)]
    assert set(codes) == {200, 503}


def test_quota_counts_down_to_the_gateways_credit_error(sandbox):
    sandbox.knobs("socnet", SOCNET_KEY, quota=2)
    assert [socnet_send(sandbox).status_code for _ in range(3)] == [200, 200, 403]
    assert sandbox.knobs("socnet", SOCNET_KEY)["knobs"]["quota"] == 0
    sandbox.knobs("socnet", SOCNET_KEY, quota=None)
    assert socnet_send(sandbox).status_code == 200


def test_latency_is_added_before_a_send_is_answered(sandbox):
    sandbox.knobs("socnet", SOCNET_KEY, latency_ms=300)
    started = time.monotonic()
    assert socnet_send(sandbox).status_code == 200
    assert time.monotonic() - started >= 0.3  # a lower bound: the knob's own delay, never a speed claim
    assert sandbox.knobs("socnet", SOCNET_KEY, latency_ms=0)["knobs"]["latency_ms"] == 0


def test_without_progress_statuses_stay_sent_and_read_fraction_zero_stops_at_delivered(sandbox):
    # given an SMSGlobal account whose statuses do not move
    sandbox.knobs("smsglobal", SMSGLOBAL_KEY, progress_seconds=None)
    body = {"to": ["61400000001"], "message": "first"}
    parked = smsglobal_call(sandbox, "POST", "/v2/whatsapp", body=body).json()["messages"][0]["id"]
    # when statuses move again, but no one reads
    sandbox.knobs("smsglobal", SMSGLOBAL_KEY, progress_seconds=0.02, read_fraction=0.0)
    body = {"to": ["61400000002"], "message": "second"}
    moving = smsglobal_call(sandbox, "POST", "/v2/whatsapp", body=body).json()["messages"][0]["id"]

    def final():
        answer = smsglobal_call(sandbox, "GET", f"/v2/whatsapp/{moving}").json()
        return answer if answer["state"] == "final" else None

    # then the second message ends delivered (final), the first is still sent
    final_status = wait_until(final, timeout=15, interval=0.02, message="the second message to be final")["status"]
    assert final_status == "delivered"
    first = smsglobal_call(sandbox, "GET", f"/v2/whatsapp/{parked}").json()
    assert (first["status"], first["state"]) == ("sent", "pending")


def test_accounts_can_be_added_and_reset_all_removes_them(sandbox):
    # given a second Socnet account and an HTTP API instance created through the control API
    created = sandbox.create_account("socnet", "another-socnet-key-0123456789abcd")
    assert created["knobs"]["quota"] is None and "secret" not in created
    sandbox.create_account("httpapi", "aaaaaaaaaaaaaaaaaaaaaaaa")
    assert socnet_send(sandbox, key="another-socnet-key-0123456789abcd").status_code == 200
    assert httpapi_call(sandbox, "sendText", token="aaaaaaaaaaaaaaaaaaaaaaaa", phone="919812345678",
                        message="x").status_code == 200
    # when reset keeps accounts and knobs but forgets messages
    sandbox.knobs("socnet", "another-socnet-key-0123456789abcd", latency_ms=1)
    sandbox.reset()
    kept = sandbox.stats(provider="socnet", key="another-socnet-key-0123456789abcd")["accounts"]
    assert kept["socnet:another-socnet-key-0123456789abcd"]["accepted"] == 0
    assert sandbox.knobs("socnet", "another-socnet-key-0123456789abcd")["knobs"]["latency_ms"] == 1
    # and reset all forgets the created accounts
    sandbox.reset(all=True)
    assert socnet_send(sandbox, key="another-socnet-key-0123456789abcd").status_code == 401
    with pytest.raises(SandboxError, match="404"):
        sandbox.knobs("socnet", "another-socnet-key-0123456789abcd", latency_ms=1)


def test_the_sandbox_serves_a_gateway_for_every_client_and_its_built_in_account(sandbox):
    # given the gateways Blast has clients for (a package scan of workers.providers)
    # when the sandbox says what it serves
    served = requests.get(f"{sandbox.url}/_sandbox/health", timeout=5).json()["gateways"]
    # then it serves the same gateways (a package scan of workers.sandbox.gateways), each with its account
    assert served == list(registry.providers()) == list(sandbox_gateways.providers())
    accounts = requests.get(f"{sandbox.url}/_sandbox/accounts", timeout=5).json()
    shown = {(account["provider"], account["key"]) for account in accounts["accounts"]}
    assert shown >= {(provider, builtin.key) for provider, builtin in sandbox_gateways.builtin_accounts().items()}


def test_an_smsglobal_account_needs_a_secret_and_signs_with_it(sandbox):
    with pytest.raises(SandboxError, match="400"):
        sandbox.create_account("smsglobal", "new-key")
    sandbox.create_account("smsglobal", "new-key", secret="new-secret")
    answer = smsglobal_call(sandbox, "GET", "/v2/user/credit-balance", key="new-key", secret="new-secret")
    assert answer.status_code == 200


@pytest.mark.parametrize("knobs", [{"no_such_knob": 1}, {"fail_fraction": 2}, {"rate_cap": 0},
                                   {"quota": 1.5}, {"webhook_url": "ftp://x"}, {"not_on_whatsapp": "256"}])
def test_bad_knobs_are_refused_and_change_nothing(sandbox, knobs):
    with pytest.raises(SandboxError, match="400"):
        sandbox.knobs("socnet", SOCNET_KEY, latency_ms=5, **knobs)
    assert sandbox.knobs("socnet", SOCNET_KEY)["knobs"]["latency_ms"] == 0


def test_inbound_for_an_unknown_account_is_404(sandbox):
    with pytest.raises(SandboxError, match="404"):
        sandbox.inbound("socnet", "nobody", "256701234567", "hi")
    assert sandbox.inbound("socnet", SOCNET_KEY, "256701234567", "hi")["pushed"] is False


def test_the_command_line_flags_are_every_accounts_defaults():
    # given `blast sandbox --latency-ms 5 --rate-cap 50 --quota 3 --fail-fraction 0`
    with SandboxProcess(latency_ms=5, rate_cap=50, quota=3, fail_fraction=0) as flagged:
        # then each account starts with those knobs, and so does a new one
        for provider in ("socnet", "smsglobal", "devino", "httpapi"):
            knobs = flagged.knobs(provider)["knobs"]
            assert (knobs["latency_ms"], knobs["rate_cap"], knobs["quota"], knobs["fail_fraction"]) \
                == (5, 50, 3, 0)
        assert flagged.create_account("devino", "extra")["knobs"]["quota"] == 3
        # and reset all goes back to those defaults
        flagged.knobs("socnet", quota=None)
        flagged.reset(all=True)
        assert flagged.knobs("socnet")["knobs"]["quota"] == 3


# ---------------------------------------------------------------- faults of gateways less tidy than their documents


def test_ambiguous_and_lost_fractions_are_exact_shares_of_the_sends(sandbox):
    # given a fifth of the sends answered 500 and not taken, and a quarter of those taken answered 500
    sandbox.knobs("socnet", ambiguous_fraction=0.25, lost_fraction=0.2)
    # when ten sends are made
    statuses = [socnet_send(sandbox, f"25670123450{i}").status_code for i in range(10)]
    # then four were answered 500: two taken, two not
    assert statuses.count(500) == 4 and statuses.count(200) == 6
    stats = sandbox.account_stats("socnet")
    assert stats["accepted"] == 8 and stats["garbled"] == {"ambiguous": 2}
    assert stats["rejected"] == {"lost_fraction": 2}


def test_an_undocumented_answer_is_a_200_the_document_does_not_list(sandbox):
    sandbox.knobs("socnet", undocumented_fraction=1.0)
    answer = socnet_send(sandbox)
    assert answer.status_code == 200 and set(answer.json()) == {"result", "reference"}
    assert sandbox.account_stats("socnet")["accepted"] == 1


def test_status_words_and_time_zones_show_in_the_reports(sandbox):
    # given an SMSGlobal account at +10:00 that prints "beamed" for delivered
    sandbox.knobs("smsglobal", timezone="+10:00", status_words={"delivered": "beamed"}, progress_seconds=0.05,
                  read_fraction=0.0)
    sent = smsglobal_call(sandbox, "POST", "/v2/whatsapp", body={"to": ["61400000001"], "message": "hi"})
    assert sent.status_code == 200
    listed = wait_until(lambda: [m for m in smsglobal_call(sandbox, "GET", "/v2/whatsapp").json()["messages"]
                                 if m["status"] == "beamed"] or None, timeout=15, interval=0.02)
    # then its dates carry the account's offset
    assert listed[0]["createdDate"].endswith("+1000")


@pytest.mark.parametrize(("knob", "value"), [("timezone", "Mars/Olympus"), ("timezone", "+15:00"),
                                             ("status_words", {"bounced": "x"}), ("ambiguous_fraction", 1.5),
                                             ("callback_delay_seconds", -1)])
def test_bad_fault_knobs_are_refused(sandbox, knob, value):
    with pytest.raises(SandboxError):
        sandbox.knobs("smsglobal", **{knob: value})
