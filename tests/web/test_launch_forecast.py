"""The forecast on the launch page, before the Launch button, against the gateway sandbox (over HTTP, on
SQLite and Postgres): recipients, time, days, cost and balance, and a launch the balance cannot cover refused
without the operator's confirmation."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from campaigns.models import Campaign, Message
from campaigns.settings import reset_settings
from tests.support.engine import write_config
from tests.support.sandbox import HTTPAPI_TOKEN
from tests.support.web import ADMIN_PASSWORD, log_in, upload

# Three valid recipients, one invalid number, one duplicate.
CONTACTS = b"Name,Mobile No\nAda,+256701234567\nBob,12\nCid,+256772000001\nDee,+256772000002\nAda,+256701234567\n"
FORM = {"account": "india", "template": "Hi {{ name }}", "phone_column": "Mobile No", "region": "UG"}


@pytest.fixture
def client(engine, blast_home, tmp_path, monkeypatch, sandbox):
    """A web app with one admin and an HTTP API account on the sandbox."""
    from campaigns.web import balances
    from campaigns.web.app import create_app

    monkeypatch.setenv("BLAST_ADMIN_USER", "admin")
    monkeypatch.setenv("BLAST_ADMIN_PASSWORD", ADMIN_PASSWORD)
    write_config(tmp_path / "blast.toml", sandbox, {"india": {"provider": "httpapi", "rate": 2}})
    reset_settings()
    balances.forget()
    with TestClient(create_app()) as test_client:
        yield test_client


def composed(client) -> tuple[str, str]:
    """A logged-in operator's csrf token and the compose page of a fresh upload."""
    token = log_in(client)
    answer = upload(client, token, "people.csv", CONTACTS)
    assert answer.status_code == 303
    return token, answer.headers["location"]


def cell(html: str, element_id: str) -> str:
    return re.search(rf'id="{element_id}">([^<]*)<', html).group(1)


def campaigns(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(Campaign)).scalar_one()


def test_the_launch_page_shows_the_forecast_before_the_button(client, sandbox):
    # given an upload and an HTTP API account with 100 quota left
    sandbox.knobs("httpapi", HTTPAPI_TOKEN, quota=100)
    _token, url = composed(client)
    # when the compose page is previewed with a template, quiet hours 21:00-08:00 and an account sending 2 a
    # second, to start at noon in Kampala, and to start a second before 21:00 there
    quiet = {**FORM, "quiet_hours": "21:00-08:00"}
    noon = client.get(url, params={**quiet, "at": "2099-03-02T12:00+03:00"}).text
    late = client.get(url, params={**quiet, "at": "2099-03-02T20:59:59+03:00"}).text
    # then the forecast sits in the launch form, before the Launch button, with the gateway's figures
    form = noon[noon.index('action="' + url.split("?")[0] + '/launch"'):]
    assert form.index('id="forecast"') < form.index('id="launch"')
    assert cell(noon, "forecast-valid") == "3"
    assert cell(noon, "forecast-cost") == "3 quota" and cell(noon, "forecast-balance") == "100 quota"
    assert 'id="balance-warning"' not in noon and 'id="confirm-cost"' not in noon
    # and the send fits the afternoon, while a second before the window the last of them waits for 08:00
    assert cell(noon, "forecast-days") == "1" and "last message 2099-03-02 09:00 UTC" in noon
    assert cell(late, "forecast-days") == "2" and "last message 2099-03-03 05:00 UTC" in late


def test_a_launch_the_balance_cannot_cover_needs_the_confirmation(client, sandbox, engine):
    # given 3 recipients and 2 quota left
    sandbox.knobs("httpapi", HTTPAPI_TOKEN, quota=2)
    token, url = composed(client)
    # when the page is previewed
    html = client.get(url, params=FORM).text
    # then it warns, and the launch form asks for a confirmation
    assert cell(html, "forecast-cost") == "3 quota" and cell(html, "forecast-balance") == "2 quota"
    assert 'id="balance-warning"' in html and 'name="confirm_cost"' in html
    # when it is launched without the confirmation
    launch = {**FORM, "csrf_token": token, "name": "short", "at": "2999-01-01T09:00+00:00"}
    refused = client.post(url + "/launch", data=launch, follow_redirects=False)
    # then the server refuses, saying why, and creates nothing
    assert refused.status_code == 409
    assert "does not cover the cost" in refused.text and "3 quota" in refused.text
    assert campaigns(engine) == 0
    # when it is launched with the confirmation
    confirmed = client.post(url + "/launch", data={**launch, "confirm_cost": "1"}, follow_redirects=False)
    # then the campaign is created
    assert confirmed.status_code == 303 and "/campaigns/" in confirmed.headers["location"]
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(Message)).scalar_one() == 5
    assert campaigns(engine) == 1
