"""What every client shares: one client per thread per account, network trouble as TRANSIENT results,
secrets never shown, Retry-After, and the checks several documents state alike."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from campaigns.states import Outcome
from tests.support.gateway_doubles import DroppingServer, SilentServer
from tests.support.sandbox import account
from workers.providers import (
    DevinoClient,
    HttpApiClient,
    InvalidMessage,
    Outbound,
    SmsGlobalClient,
    SocnetClient,
    client_for,
    close_clients,
)
from workers.providers.base import (
    check_coordinates,
    check_size,
    content_type_of,
    require_e164,
    retry_after_seconds,
)
from workers.sandbox.harness import free_port


@pytest.fixture(autouse=True)
def fresh_clients():
    close_clients()
    yield
    close_clients()


@pytest.mark.parametrize(
    ("provider", "cls"),
    [("socnet", SocnetClient), ("smsglobal", SmsGlobalClient), ("devino", DevinoClient),
     ("httpapi", HttpApiClient)],
)
def test_client_for_gives_the_gateways_client(provider, cls):
    assert type(client_for(account(provider))) is cls


def test_one_client_per_thread_per_account():
    # given an account
    settings = account("socnet")
    # when the same thread asks twice, and another thread asks
    first, again = client_for(settings), client_for(settings)
    others = []
    worker = threading.Thread(target=lambda: others.append(client_for(settings)))
    worker.start()
    worker.join()
    # then the thread keeps its client and the other thread has its own
    assert first is again
    assert others[0] is not first


def test_changed_account_settings_give_a_new_client_and_close_the_old():
    old = client_for(account("socnet", timeout_seconds=10))
    same_values = client_for(account("socnet", timeout_seconds=10))
    changed = client_for(account("socnet", timeout_seconds=3))
    assert same_values is old
    assert changed is not old
    assert (changed.timeouts.connect_timeout, changed.timeouts.read_timeout) == (3, 3)
    assert old.closed and not changed.closed


def test_devino_batch_size_is_the_accounts():
    assert client_for(account("devino")).max_batch == 100
    assert client_for(account("devino", batch_size=25)).max_batch == 25
    assert client_for(account("socnet")).max_batch == 1
    assert client_for(account("devino")).wants_callback_url is True
    assert client_for(account("httpapi")).wants_callback_url is False


# ---------------------------------------------------------------------- network trouble


def test_connection_refused_is_transient_and_never_raises():
    # given no gateway listening: nothing can have been written
    client = client_for(account("httpapi", base_url=f"http://127.0.0.1:{free_port()}"))
    result = client.send(Outbound(message_id=1, to="+919812345678", text="hi"))
    # then it is safe to send again
    assert (result.outcome, result.code) == (Outcome.TRANSIENT, "connection refused")
    assert "62b32c76758e0afb0d390793" not in (result.detail or "")


def test_a_gateway_that_never_answers_is_an_ambiguous_timeout():
    # given a gateway that reads the request and never answers: it may have the message
    with SilentServer() as silent:
        client = client_for(account("httpapi", base_url=silent.url, timeout_seconds=0.3))
        result = client.send(Outbound(message_id=1, to="+919812345678", text="hi"))
    assert (result.outcome, result.code) == (Outcome.AMBIGUOUS, "timeout")
    assert "62b32c76758e0afb0d390793" not in (result.detail or "")


def test_a_connection_dropped_after_the_request_was_written_is_ambiguous():
    # given a gateway that reads the whole request, then hangs up without answering
    with DroppingServer() as dropping:
        client = client_for(account("socnet", base_url=dropping.url))
        result = client.send(Outbound(message_id=1, to="+256701234567", text="hi"))
        # then the request did reach it, and the message is not to be sent again blindly
        assert dropping.requests_read == 1
    assert (result.outcome, result.code) == (Outcome.AMBIGUOUS, "connection dropped")


def test_a_request_past_its_slot_is_not_sent():
    from workers.providers.base import SlotMissed

    with DroppingServer() as dropping:
        client = client_for(account("socnet", base_url=dropping.url))
        with pytest.raises(SlotMissed):
            client.send(Outbound(message_id=1, to="+256701234567", text="hi"), deadline=time.monotonic() - 0.001)
        assert dropping.requests_read == 0


def test_a_request_past_its_slot_goes_when_the_limiter_extends_the_slot_and_only_then():
    from dataclasses import replace

    from workers.providers.base import SlotMissed
    from workers.rate_limits import LocalBackend, RateLimiter
    from workers.rate_limits.limiter import Deadline

    # given a slot of an account at 10/s whose request is about to be written 1 ms past its deadline
    limiter = RateLimiter(LocalBackend())
    with limiter.slots("acct", rate=10, max_wait=1.0, count=1) as slots:
        pass
    with DroppingServer() as dropping:
        client = client_for(account("socnet", base_url=dropping.url))
        # when it is still within Policy.extend_within of its slot: the slot is extended and the request goes
        passed = time.monotonic() - 0.001
        late = Deadline(limiter, slots[0], passed)
        client.send(Outbound(message_id=1, to="+256701234567", text="hi"), deadline=late)
        assert dropping.requests_read == 1 and late.at > passed
        # when it is later than that: nothing is written
        too_late = replace(slots[0], earliest=time.monotonic() - 0.06)
        with pytest.raises(SlotMissed):
            client.send(Outbound(message_id=2, to="+256701234567", text="hi"),
                        deadline=Deadline(limiter, too_late, time.monotonic() - 0.001))
        assert dropping.requests_read == 1


def test_an_invalid_message_is_a_content_result_not_an_exception():
    result = client_for(account("socnet")).send(Outbound(message_id=1, to="+254701234567", text="hi"))
    assert (result.outcome, result.code) == (Outcome.CONTENT, "invalid")
    assert "256" in result.detail


def test_secrets_never_show_in_repr_or_results():
    client = client_for(account("smsglobal"))
    assert "sandbox-smsglobal-secret" not in repr(client) and "sandbox-smsglobal-key" not in repr(client)
    assert client.redact({"a": ["x sandbox-smsglobal-secret y"]}) == {"a": ["x **** y"]}


# ---------------------------------------------------------------------- Retry-After


def test_retry_after_in_seconds_or_as_a_date():
    assert retry_after_seconds({"Retry-After": "12"}) == 12.0
    later = datetime.now(UTC) + timedelta(seconds=30)
    assert 20 < retry_after_seconds({"Retry-After": format_datetime(later, usegmt=True)}) <= 31
    assert retry_after_seconds({"Retry-After": "soon"}) is None
    assert retry_after_seconds({}) is None


# ---------------------------------------------------------------------- shared checks


@pytest.mark.parametrize("number", ["+256701234567", "256701234567", "+12025550123"])
def test_e164_numbers_pass(number):
    assert require_e164(number) == number.lstrip("+")


@pytest.mark.parametrize("number", ["0701234567", "+256 70", "+2567012345678901", "phone", "", "+0123456789"])
def test_non_e164_numbers_are_refused(number):
    with pytest.raises(InvalidMessage, match=r"E\.164"):
        require_e164(number)


@pytest.mark.parametrize(("lat", "lng"), [(-90, -180), (90, 180), (0.3476, 32.5825), ("1.5", "2")])
def test_coordinates_in_range(lat, lng):
    assert check_coordinates("x", lat, lng) == (float(lat), float(lng))


@pytest.mark.parametrize(
    ("lat", "lng", "words"),
    [(90.1, 0, r"latitude 90\.1 "), (0, -180.5, r"longitude -180\.5 "),
     ("north", 0, "latitude must be a number"), (None, 0, "number")],
)
def test_coordinates_out_of_range(lat, lng, words):
    with pytest.raises(InvalidMessage, match=words):
        check_coordinates("x", lat, lng)


def test_content_type_is_given_or_guessed():
    assert content_type_of({"content_type": "Image/PNG; q=1"}, "x.jpg") == "image/png"
    assert content_type_of({}, "https://cdn.example/a/b/flyer.pdf?sig=1") == "application/pdf"
    assert content_type_of({}, "https://cdn.example/download") is None


def test_size_over_the_limit_is_refused_in_megabytes():
    check_size("x", "the image", 5 * 1024 * 1024, 5 * 1024 * 1024)
    with pytest.raises(InvalidMessage, match=r"the image is 5\.0 MB, over the limit of 5\.0 MB"):
        check_size("x", "the image", 5 * 1024 * 1024 + 1, 5 * 1024 * 1024)
