"""What every client shares: one client per thread per account, network trouble as TRANSIENT results,
secrets never shown, Retry-After, and the checks several documents state alike."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from campaigns.states import Outcome
from tests.gateways import SilentServer, account, free_port
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
    assert changed.timeouts == (3, 3)
    assert old.closed and not changed.closed


def test_devino_batch_size_is_the_accounts():
    assert client_for(account("devino")).max_batch == 100
    assert client_for(account("devino", batch_size=25)).max_batch == 25
    assert client_for(account("socnet")).max_batch == 1
    assert client_for(account("devino")).wants_callback_url is True
    assert client_for(account("httpapi")).wants_callback_url is False


# ---------------------------------------------------------------------- network trouble


def test_connection_refused_is_transient_and_never_raises():
    client = client_for(account("httpapi", base_url=f"http://127.0.0.1:{free_port()}"))
    result = client.send(Outbound(message_id=1, to="+919812345678", text="hi"))
    assert (result.outcome, result.code) == (Outcome.TRANSIENT, "connection error")
    assert "62b32c76758e0afb0d390793" not in (result.detail or "")


def test_a_gateway_that_never_answers_is_a_transient_timeout():
    with SilentServer() as silent:
        client = client_for(account("httpapi", base_url=silent.url, timeout_seconds=0.3))
        result = client.send(Outbound(message_id=1, to="+919812345678", text="hi"))
    assert (result.outcome, result.code) == (Outcome.TRANSIENT, "timeout")
    assert "62b32c76758e0afb0d390793" not in (result.detail or "")


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
