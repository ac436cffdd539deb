"""Campaigns on Meta's Cloud API, from the command line, against the sandbox: `blast templates sync|list`,
`blast launch --wa-template NAME --language L --wa-param COLUMN ...` (approved templates only, the parameter count
checked for the template and for every recipient), and the 24-hour rule for free-form campaigns."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from campaigns import service_window
from campaigns.cli import app as cli
from campaigns.models import Campaign, Message
from campaigns.settings import reset_settings
from tests.support.sandbox import METACLOUD_APP_SECRET, METACLOUD_TOKEN, METACLOUD_VERIFY_TOKEN
from workers.sandbox.gateways.metacloud import PHONE_NUMBER_ID, WABA_ID

LATER = "2099-01-01T09:00+00:00"  # scheduled: nothing is sent by these tests


@pytest.fixture
def meta(sandbox, engine, tmp_path, monkeypatch):
    """A metacloud account on the sandbox, in blast.toml (secrets from the environment)."""
    monkeypatch.setenv("META_TOKEN", METACLOUD_TOKEN)
    monkeypatch.setenv("META_APP_SECRET", METACLOUD_APP_SECRET)
    config = tmp_path / "blast.toml"
    config.write_text(f"""
[accounts.meta]
provider = "metacloud"
base_url = "{sandbox.base_url('metacloud')}"
access_token = "${{META_TOKEN}}"
phone_number_id = "{PHONE_NUMBER_ID}"
waba_id = "{WABA_ID}"
app_secret = "${{META_APP_SECRET}}"
verify_token = "{METACLOUD_VERIFY_TOKEN}"
""")
    monkeypatch.setenv("BLAST_CONFIG", str(config))
    reset_settings()
    return sandbox


def run(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert (result.exit_code != 0) == (code != 0), (args, result.output, result.exception)
    return result.output + (str(result.exception) if code else "")


def contacts(tmp_path, rows: list[str]) -> str:
    path = tmp_path / "contacts.csv"
    path.write_text("phone,name,order\n" + "\n".join(rows) + "\n")
    return str(path)


def messages(engine, campaign_id: int) -> list:
    with engine.connect() as connection:
        return connection.execute(select(Message.phone, Message.state, Message.skip_reason, Message.body)
                                  .where(Message.campaign_id == campaign_id).order_by(Message.row_number)).all()


def test_templates_sync_and_list(meta):
    # given a template the gateway paused
    meta.knobs("metacloud", template_status={"welcome": "PAUSED"})
    # when the account's templates are synced, then listed as JSON
    run("templates", "sync", "meta")
    listed = json.loads(run("templates", "list", "meta", "--json"))
    # then each shows its name, language, status, category and parameters; no secret anywhere
    found = {(t["name"], t["language"]): t for t in listed}
    assert found[("order_update", "en_US")] == {
        "account": "meta", "name": "order_update", "language": "en_US", "status": "APPROVED", "category": "UTILITY",
        "text": "Order {{1}}\nHi {{1}}, your order {{2}} is on its way.\nReply STOP to opt out\n[Track]\n[Stop]",
        "parameters": 4, "slots": ["body {{1}}", "body {{2}}", "header text", "button 0 (url)"]}
    assert found[("welcome", "en_US")]["status"] == "PAUSED"
    assert found[("new_offer", "en_US")]["status"] == "PENDING"
    assert METACLOUD_TOKEN not in json.dumps(listed)
    assert "meta" in run("templates", "list")


def test_a_template_campaign_maps_columns_and_skips_recipients_missing_one(meta, engine, tmp_path):
    # given a list where one recipient has no order number
    file = contacts(tmp_path, ["+256701000001,Asha,A-1", "+256701000002,Ben,", "+256701000003,Cleo,C-3"])
    # when a campaign of the approved template is launched with its four parameters' columns
    output = run("launch", file, "--account", "meta", "--wa-template", "order_update", "--language", "en_US",
                 "--wa-param", "name", "--wa-param", "order", "--wa-param", "Order", "--wa-param", "order",
                 "--at", LATER)
    campaign_id = int(output.split()[0])
    # then every recipient with every parameter is pending with the text Meta will show, the other skipped
    rows = messages(engine, campaign_id)
    assert [(r.state, r.skip_reason) for r in rows] == [
        ("pending", None), ("skipped", "missing variable: order"), ("pending", None)]
    assert rows[0].body.startswith("Order A-1\nHi Asha, your order A-1 is on its way.")
    with engine.connect() as connection:
        options = json.loads(connection.execute(select(Campaign.options).where(Campaign.id == campaign_id)).scalar())
    assert (options["kind"], options["template"], options["language"]) == ("template", "order_update", "en_US")
    assert [slot["column"] for slot in options["slots"]] == ["name", "order", "order", "order"]


@pytest.mark.parametrize(("template", "params", "words"), [
    ("new_offer", ["name"], "is PENDING, not APPROVED"),
    ("loud_promo", ["name"], "is REJECTED, not APPROVED"),
    ("order_update", ["name", "order"], "takes 4 parameters"),
    ("appointment_reminder", ["name", "order"], "exists in en_US, fr: pass --language"),
    ("no_such_template", [], "has no template"),
])
def test_launches_that_cannot_be_sent_are_refused(meta, engine, tmp_path, template, params, words):
    file = contacts(tmp_path, ["+256701000001,Asha,A-1"])
    args = [arg for column in params for arg in ("--wa-param", column)]
    output = run("launch", file, "--account", "meta", "--wa-template", template, *args, "--at", LATER, code=1)
    assert words in output
    with engine.connect() as connection:
        assert connection.execute(select(Campaign.id)).first() is None


def test_a_free_form_campaign_skips_numbers_outside_the_24_hour_window(meta, engine, tmp_path):
    # given one number that wrote to the account an hour ago (a webhook recorded it) and two that never did
    with engine.begin() as connection:
        service_window.record(connection, "meta", [("+256701000002", None)])
    file = contacts(tmp_path, ["+256701000001,Asha,A-1", "+256701000002,Ben,B-2", "+256701000003,Cleo,C-3"])
    # when a text campaign is forecast, then launched
    forecast = json.loads(run("launch", file, "--account", "meta", "--template", "Hi {{ name }}", "--dry-run",
                              "--json"))
    campaign_id = int(run("launch", file, "--account", "meta", "--template", "Hi {{ name }}", "--at", LATER)
                      .split()[0])
    # then only the number inside its window is sent to; the others are skipped with the reason, and counted
    reason = service_window.skip_reason(24)
    assert [(r.state, r.skip_reason) for r in messages(engine, campaign_id)] == [
        ("skipped", reason), ("pending", None), ("skipped", reason)]
    assert (forecast["valid"], forecast["reasons"]) == (1, {reason: 2})


def test_a_template_campaign_goes_to_every_number(meta, engine, tmp_path):
    file = contacts(tmp_path, ["+256701000001,Asha,A-1"])
    campaign_id = int(run("launch", file, "--account", "meta", "--wa-template", "welcome", "--at", LATER).split()[0])
    assert [r.state for r in messages(engine, campaign_id)] == ["pending"]


def test_a_launch_past_the_accounts_messaging_limit_is_refused(meta, engine, tmp_path, monkeypatch):
    from datetime import timedelta

    from sqlalchemy import update

    from campaigns.models import utcnow
    from tests.support.factories import make_campaign, make_messages

    # given an account allowed 4 people a day outside a customer-service window, which messaged two numbers an
    # hour ago and one 25 hours ago, and one number that wrote to it (inside its window, free of the limit)
    config = tmp_path / "blast.toml"
    config.write_text(config.read_text() + "messaging_limit = 4\n")
    reset_settings()
    earlier = make_campaign(engine, account="meta", provider="metacloud", status="finished")
    sent = make_messages(engine, earlier.id, 3, state="submitted", start=1000001)  # +256701000001 .. 3
    with engine.begin() as connection:
        connection.execute(update(Message).where(Message.id.in_(sent[:2])).values(
            submitted_at=utcnow() - timedelta(hours=1)))
        connection.execute(update(Message).where(Message.id == sent[2]).values(
            submitted_at=utcnow() - timedelta(hours=25)))
        service_window.record(connection, "meta", [("+256701000005", None)])
    numbers = [f"+25670100000{i},P{i},O-{i}" for i in range(1, 7)]  # 1, 2 messaged; 3 a day ago; 5 wrote
    # when a template campaign to six numbers is launched: 2 already counted + 3 new (3, 4, 6) = 5 > 4
    output = run("launch", contacts(tmp_path, numbers), "--account", "meta", "--wa-template", "welcome",
                 code=1)
    # then it is refused with the numbers, and no campaign is left
    assert "3 new recipients outside a customer-service window, and 2 already messaged" in output
    assert "messaging limit of 4" in output
    with engine.connect() as connection:
        assert connection.execute(select(Campaign.id).where(Campaign.id != earlier.id)).first() is None
    # when the list leaves one of the new ones out (2 + 2 = 4), then it is launched
    output = run("launch", contacts(tmp_path, numbers[:-1]), "--account", "meta", "--wa-template", "welcome",
                 "--at", LATER)
    assert [r.state for r in messages(engine, int(output.split()[0]))] == ["pending"] * 5
