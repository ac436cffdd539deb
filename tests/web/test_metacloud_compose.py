"""The compose page with a Meta Cloud API account (TestClient, SQLite and Postgres, the real sandbox): it offers
the account's approved templates, shows the chosen one's text and each parameter's column, previews the
recipients' texts, refuses a template that is not approved, and launches a template campaign."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from campaigns.models import Campaign, Message
from campaigns.settings import reset_settings
from tests.support.engine import write_config
from tests.support.web import ADMIN_PASSWORD, log_in, upload

CONTACTS = b"Name,Mobile No,Order\nAsha,+256701234567,A-1\nBen,+256772000001,\n"
LATER = "2099-01-01T09:00+00:00"


@pytest.fixture
def client(engine, blast_home, tmp_path, monkeypatch, sandbox):
    from campaigns.web.app import create_app

    monkeypatch.setenv("BLAST_ADMIN_USER", "admin")
    monkeypatch.setenv("BLAST_ADMIN_PASSWORD", ADMIN_PASSWORD)
    write_config(tmp_path / "blast.toml", sandbox, {"meta": {"provider": "metacloud"}})
    reset_settings()
    with TestClient(create_app()) as test_client:
        yield test_client


@pytest.fixture
def composing(client):
    token = log_in(client)
    answer = upload(client, token, "orders.csv", CONTACTS)
    assert answer.status_code == 303
    return token, answer.headers["location"]


def test_the_page_offers_approved_templates_and_shows_the_chosen_ones_text_and_columns(client, composing):
    _token, url = composing
    # when the operator picks an approved template and a column for each of its parameters
    page = client.get(url, params={"account": "meta", "kind": "template", "phone_column": "Mobile No",
                                   "wa_template": "order_update|en_US", "wa_params": "Name, Order, Order, Order"})
    # then the page lists only approved templates, shows the chosen one's text, maps each parameter to its
    # column, and previews each recipient's text (the one without an order number skipped)
    assert page.status_code == 200
    assert "order_update (en_US, utility, 4 parameters)" in page.text
    assert "new_offer" not in page.text and "loud_promo" not in page.text
    assert "Hi {{1}}, your order {{2}} is on its way." in page.text
    assert "<td>body 2</td><td>order</td>" in page.text
    assert "Hi Asha, your order A-1 is on its way." in page.text
    assert "missing variable: order" in page.text


def test_a_template_that_is_not_approved_is_refused_and_an_approved_one_launches(client, composing, engine):
    token, url = composing
    form = {"csrf_token": token, "account": "meta", "template": "", "phone_column": "Mobile No", "region": "UG",
            "kind": "template", "at": LATER, "name": "orders"}
    # when the operator launches a pending template, then an approved one with too few columns
    pending = client.post(url + "/launch", data={**form, "wa_template": "new_offer|en_US", "wa_params": "Name"})
    too_few = client.post(url + "/launch", data={**form, "wa_template": "order_update|en_US", "wa_params": "Name"})
    # then both are refused and nothing is created
    assert pending.status_code == 400 and "PENDING, not APPROVED" in pending.text
    assert too_few.status_code == 400 and "takes 4 parameters" in too_few.text
    with engine.connect() as connection:
        assert connection.execute(select(Campaign.id)).first() is None
    # when it launches the approved one with a column for each parameter
    launched = client.post(url + "/launch", data={**form, "wa_template": "order_update|en_US",
                                                  "wa_params": "Name,Order,Order,Order"}, follow_redirects=False)
    # then a template campaign exists, its recipients' texts rendered, the one missing a parameter skipped
    assert launched.status_code == 303, launched.text
    with engine.connect() as connection:
        campaign = connection.execute(select(Campaign.id, Campaign.options)).one()
        messages = connection.execute(select(Message.state, Message.body).where(Message.campaign_id == campaign.id)
                                      .order_by(Message.row_number)).all()
    assert json.loads(campaign.options)["template"] == "order_update"
    assert [m.state for m in messages] == ["pending", "skipped"]
    assert messages[0].body.startswith("Order A-1\nHi Asha, your order A-1 is on its way.")
