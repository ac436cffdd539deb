"""The operator pages over HTTP (FastAPI's TestClient), on SQLite and Postgres."""

from __future__ import annotations

import csv
import io
import re

import pytest
from sqlalchemy import select, update

from campaigns.models import Attempt, Campaign, Message, utcnow
from campaigns.settings import reset_settings
from campaigns.web.campaign_actions import BUTTON_ORDER
from tests.support.factories import make_campaign, make_messages
from tests.support.web import ADMIN_PASSWORD, HOOK_SECRET, SOCNET_KEY, csrf_of, log_in, upload, web_app


@pytest.fixture
def client(engine, blast_home, tmp_path, monkeypatch):
    with web_app(tmp_path, monkeypatch) as test_client:
        yield test_client


def test_pages_require_login(client, engine):
    # given a campaign and no session
    campaign = make_campaign(engine)
    # when pages and the progress JSON are asked for, then the login form or a 401 answers
    for path in ("/", f"/campaigns/{campaign.id}", f"/campaigns/{campaign.id}/export.csv"):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == "/login"
    assert client.get(f"/campaigns/{campaign.id}/progress.json").status_code == 401


def test_wrong_password_is_refused(client):
    token = csrf_of(client.get("/login").text)
    answer = client.post("/login", data={"username": "admin", "password": "nope", "csrf_token": token})
    assert answer.status_code == 401
    assert client.get("/", follow_redirects=False).status_code == 303


def test_csrf_is_enforced(client, engine):
    # given a logged-in operator and a running campaign
    log_in(client)
    campaign = make_campaign(engine, status="running")
    # when a pause arrives without the token, or with a wrong one, then it is refused and nothing changes
    assert client.post(f"/campaigns/{campaign.id}/pause").status_code == 403
    assert client.post(f"/campaigns/{campaign.id}/pause", data={"csrf_token": "forged"}).status_code == 403
    assert client.get(f"/campaigns/{campaign.id}/progress.json").json()["status"] == "running"
    # and a login form without the token is refused too
    client.cookies.clear()
    answer = client.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD})
    assert answer.status_code == 403


def test_pause_resume_cancel_buttons(client, engine):
    # given a running campaign with pending messages
    token = log_in(client)
    campaign = make_campaign(engine, status="running")
    make_messages(engine, campaign.id, 3)
    progress = f"/campaigns/{campaign.id}/progress.json"
    # when the operator pauses, then resumes, then cancels
    client.post(f"/campaigns/{campaign.id}/pause", data={"csrf_token": token})
    paused = client.get(progress).json()
    client.post(f"/campaigns/{campaign.id}/resume", data={"csrf_token": token})
    resumed = client.get(progress).json()
    answer = client.post(f"/campaigns/{campaign.id}/cancel", data={"csrf_token": token})
    cancelled = client.get(progress).json()
    # then each button changed the campaign, and cancel cancelled every unsent message
    assert (paused["status"], paused["pause_reason"]) == ("paused", "user")
    assert resumed["status"] == "running"
    assert cancelled["status"] == "cancelled" and cancelled["counts"]["cancelled"] == 3
    assert "cancel: done (3 messages)" in answer.text
    assert len(cancelled["per_minute"]) == 60
    # and an action that does not apply any more is explained, not crashed
    assert client.post(f"/campaigns/{campaign.id}/pause", data={"csrf_token": token}).status_code == 409


def test_retry_failed_button_and_failures_grouped(client, engine):
    # given a finished campaign with two failures of one code
    token = log_in(client)
    campaign = make_campaign(engine, status="finished")
    ids = make_messages(engine, campaign.id, 2, state="failed")
    with engine.begin() as connection:
        connection.execute(Message.__table__.update().where(Message.id.in_(ids))
                           .values(error_code="2305", error_reason="invalid recipient"))
    # when the campaign page is shown, then the failures are grouped by code and reason
    assert client.get(f"/campaigns/{campaign.id}/progress.json").json()["failures"] == [
        {"code": "2305", "reason": "invalid recipient", "count": 2}]
    # when retry-failed is pressed, then both are sent again (none failed) and the campaign runs again
    client.post(f"/campaigns/{campaign.id}/retry", data={"csrf_token": token})
    report = client.get(f"/campaigns/{campaign.id}/progress.json").json()
    assert report["status"] == "running" and report["counts"]["failed"] == 0


def test_export_neutralises_formulas(client, engine):
    # given a message whose error text would run as a spreadsheet formula
    log_in(client)
    campaign = make_campaign(engine)
    ids = make_messages(engine, campaign.id, 1, state="failed")
    with engine.begin() as connection:
        connection.execute(Message.__table__.update().where(Message.id == ids[0])
                           .values(error_reason='=HYPERLINK("http://evil","x")'))
    # when the results are exported
    answer = client.get(f"/campaigns/{campaign.id}/export.csv")
    # then the cells are data, not formulas
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert rows[0]["error_reason"] == "'=HYPERLINK(\"http://evil\",\"x\")"
    assert rows[0]["phone"].startswith("'+")


def test_malicious_campaign_name_is_escaped(client, engine):
    # given a campaign named with markup
    log_in(client)
    campaign = make_campaign(engine, name='<script>alert("x")</script>')
    # when the list and the campaign page are shown, then the markup is text
    for path in ("/", f"/campaigns/{campaign.id}"):
        html = client.get(path).text
        assert "<script>alert" not in html
        assert "&lt;script&gt;alert" in html


def test_no_secret_appears_on_any_page(client, engine):
    # given an account with secrets, a campaign on it, and an uploaded list
    token = log_in(client)
    campaign = make_campaign(engine)
    make_messages(engine, campaign.id, 2)
    preview_url = upload(client, token, "people.csv", b"name,phone\nAmy,+256701234567\n").headers["location"]
    # when every page is fetched
    paths = ["/login", "/", "/accounts", "/schedules", f"/campaigns/{campaign.id}",
             f"/campaigns/{campaign.id}/progress.json", f"/campaigns/{campaign.id}/export.csv",
             preview_url + "?template=Hi+{{+name+}}"]
    bodies = [client.get(path).text for path in paths]
    bodies.append(client.post(preview_url + "/preview.json", data={"csrf_token": token, "template": "Hi"}).text)
    assert "Hi Amy" in bodies[-2] and '"text":"Hi"' in bodies[-1]
    # then no secret is in any of them
    for body in bodies:
        for secret in (ADMIN_PASSWORD, SOCNET_KEY, HOOK_SECRET):
            assert secret not in body


def test_accounts_page_shows_rates_and_paused_campaigns(client, engine):
    # given an account with one accepted and one throttled attempt, and a campaign paused for quota
    log_in(client)
    campaign = make_campaign(engine, name="paused one", status="paused", pause_reason="quota",
                             pause_detail="SMSGlobal 402")
    ids = make_messages(engine, campaign.id, 2, state="submitted")
    with engine.begin() as connection:
        accepted_at = utcnow()
        accepted_now = Message.__table__.update().where(Message.id == ids[0]).values(submitted_at=accepted_at)
        connection.execute(accepted_now)
        connection.execute(Attempt.__table__.insert(), [
            {"message_id": ids[0], "at": utcnow(), "outcome": "accepted"},
            {"message_id": ids[1], "at": utcnow(), "outcome": "throttled", "code": "429"}])
    # when the accounts page is shown
    html = client.get("/accounts").text
    # then it shows the rate, the throttling rate, and why the campaign is paused
    assert "acct" in html and "socnet" in html
    assert "50.0%" in html and "0.0%" in html
    assert "paused one" in html and "quota" in html and "SMSGlobal 402" in html
    # and the campaign's chart counts the message in the minute it was accepted (the page may be read in the next)
    per_minute = client.get(f"/campaigns/{campaign.id}/progress.json").json()["per_minute"]
    assert {slot["minute"]: slot["count"] for slot in per_minute}[accepted_at.strftime("%Y-%m-%dT%H:%M")] == 1
    assert sum(slot["count"] for slot in per_minute) == 1


def test_upload_preview_launch_creates_a_campaign(client, engine):
    # given a contact list with a valid, an invalid and a duplicate number, under a custom phone header
    token = log_in(client)
    contacts = b"Name,Mobile No,Other\nAmy,+256701234567,x\nBob,12,y\nAmy again,+256701234567,z\n"
    # when it is uploaded
    answer = upload(client, token, "people.csv", contacts)
    assert answer.status_code == 303
    preview_url = answer.headers["location"]
    # then the preview shows the first rows, the detected phone column and the ingest report
    html = client.get(preview_url, params={"template": "Hi {{ name }}", "account": "acct"}).text
    assert "Bob" in html and "Mobile No (phone)" in html
    assert "Rows 3 · valid 1 · duplicates 1 · invalid 1" in html
    assert "Hi Amy" in html and "6 / 4096 characters" in html
    rejects = client.get(preview_url + "/rejects.csv").text
    assert "duplicate" in rejects
    # when the operator launches it
    answer = client.post(preview_url + "/launch", follow_redirects=False, data={
        "csrf_token": token, "account": "acct", "template": "Hi {{ name }}", "phone_column": "Mobile No",
        "region": "UG", "name": "spring"})
    # then a running campaign exists with one message to send and two skipped
    assert answer.status_code == 303
    report = client.get(answer.headers["location"].split("?")[0] + "/progress.json").json()
    assert report["name"] == "spring" and report["status"] in ("running", "finished")
    assert report["total"] == 3 and report["counts"]["skipped"] == 2


def test_upload_without_a_phone_header_asks_for_the_mapping(client):
    # given a list whose phone header is not a known name
    token = log_in(client)
    preview_url = upload(client, token, "odd.csv", b"who,digits\nAmy,+256701234567\n").headers["location"]
    # when previewed, then the page explains and offers the mapping; choosing the column gives the report
    assert "no phone column" in client.get(preview_url).text
    assert "Rows 1 · valid 1" in client.get(preview_url, params={"phone_column": "digits"}).text


def test_upload_refuses_other_types_and_big_files(client, monkeypatch):
    token = log_in(client)
    assert upload(client, token, "evil.exe", b"MZ...").status_code == 415
    monkeypatch.setenv("BLAST_MAX_UPLOAD_BYTES", "10")
    reset_settings()
    assert upload(client, token, "big.csv", b"phone\n" + b"+256701234567\n" * 5).status_code == 413
    assert upload(client, "wrong", "ok.csv", b"phone\n+256701234567\n").status_code == 403


def shown_actions(html: str) -> list[str]:
    """The action buttons the campaign page shows (their forms not hidden), in page order."""
    forms = re.findall(r'<form method="post" action="/campaigns/\d+/([\w-]+)"[^>]*?data-action="[\w-]+"([^>]*)>',
                       html)
    return [action for action, rest in forms if "hidden" not in rest]


@pytest.mark.parametrize(("status", "failed", "expected"), [
    ("draft", 0, ["cancel"]),
    ("scheduled", 0, ["pause", "cancel"]),
    ("running", 0, ["pause", "cancel"]),
    ("running", 2, ["pause", "cancel", "retry"]),
    ("paused", 0, ["resume", "cancel"]),
    ("finished", 0, []),
    ("finished", 2, ["retry"]),
    ("cancelled", 2, []),
])
def test_campaign_page_shows_only_the_actions_its_status_allows(client, engine, status, failed, expected):
    # given a campaign in `status` with `failed` failed messages and one pending
    log_in(client)
    campaign = make_campaign(engine, status=status)
    make_messages(engine, campaign.id, 1)
    if failed:
        make_messages(engine, campaign.id, failed, state="failed", start=1)
    # when its page and its progress JSON are fetched
    html = client.get(f"/campaigns/{campaign.id}").text
    progress = client.get(f"/campaigns/{campaign.id}/progress.json").json()
    # then both offer exactly the actions the status allows, in the page's order
    assert shown_actions(html) == expected
    assert progress["actions"] == expected
    # and every button is still on the page (hidden), for the script to show when the status changes
    assert html.count("data-action=") == len(BUTTON_ORDER)


def test_messages_held_unknown_offer_sending_them_again_once(client, engine):
    # given a finished campaign whose gateway may have two messages and could not be asked
    token = log_in(client)
    campaign = make_campaign(engine, status="finished")
    make_messages(engine, campaign.id, 1, state="submitted")
    held = make_messages(engine, campaign.id, 2, state="unknown", start=1)
    with engine.begin() as connection:
        connection.execute(update(Message).where(Message.id.in_(held)).values(error_code="held"))
    # then the page offers to send the held ones again
    html = client.get(f"/campaigns/{campaign.id}").text
    assert shown_actions(html) == ["resend-held"] and "send the held (unknown) again" in html
    # when the operator presses it, they go out again (pending) and the campaign runs
    answer = client.post(f"/campaigns/{campaign.id}/resend-held", data={"csrf_token": token},
                         follow_redirects=False)
    assert answer.status_code == 303
    with engine.connect() as connection:
        states = connection.execute(select(Message.state).where(Message.id.in_(held))).scalars().all()
        status = connection.execute(select(Campaign.status).where(Campaign.id == campaign.id)).scalar_one()
    assert set(states) <= {"pending", "queued"} and status == "running"  # the pacer may have picked them
    assert client.get(f"/campaigns/{campaign.id}/progress.json").json()["actions"] == ["pause", "cancel"]


@pytest.mark.parametrize("failed", [0, 1])
@pytest.mark.parametrize("status", ["draft", "scheduled", "running", "paused", "finished", "cancelled"])
def test_offered_actions_are_exactly_those_the_lifecycle_accepts(client, engine, status, failed):
    from campaigns import lifecycle
    from campaigns.errors import BlastError
    from campaigns.web.campaign_actions import allowed_actions

    # given, for each action, a fresh campaign in `status` with one pending and `failed` failed messages
    accepted = []
    for action in ("pause", "resume", "cancel", "retry"):
        campaign = make_campaign(engine, status=status)
        make_messages(engine, campaign.id, 1)
        if failed:
            make_messages(engine, campaign.id, failed, state="failed", start=1)
        # when the lifecycle is asked to do it
        try:
            moved = getattr(lifecycle, action)(campaign.id)
        except BlastError:
            continue
        if action != "retry" or moved:  # a retry with nothing to retry does nothing
            accepted.append(action)
    # then the page offers exactly the actions the lifecycle did
    assert allowed_actions(status, failed=failed) == accepted


def test_refused_action_is_explained_on_the_campaign_page(client, engine):
    # given a finished campaign whose page, opened earlier, still offered pause
    token = log_in(client)
    campaign = make_campaign(engine, name="old news", status="finished")
    make_messages(engine, campaign.id, 2, state="submitted")
    # when pause is pressed
    answer = client.post(f"/campaigns/{campaign.id}/pause", data={"csrf_token": token})
    # then the answer is a refusal (409), shown as the campaign page with a message saying why
    assert answer.status_code == 409
    assert '<strong id="status">finished</strong>' in answer.text and "old news" in answer.text
    assert (f'<p class="error flash" role="alert">Could not pause: campaign {campaign.id} is finished; '
            f"cannot make it paused. The buttons below are those it allows now.</p>") in answer.text
    assert "Back to campaigns" not in answer.text and shown_actions(answer.text) == []
    # and the campaign is as it was
    assert client.get(f"/campaigns/{campaign.id}/progress.json").json()["status"] == "finished"


def test_chart_spans_the_campaign_not_a_fixed_hour(client, engine):
    from datetime import timedelta

    from campaigns.web.sending_chart import campaign_minutes

    # given a campaign that sent from 12:00 to 12:07 three hours ago, one that has run for 5 minutes,
    # and one that has run for 5 hours
    log_in(client)
    now = utcnow().replace(second=30, microsecond=0)
    start = (now - timedelta(hours=3)).replace(second=0)
    old = make_campaign(engine, status="finished", started_at=start,
                        finished_at=start + timedelta(minutes=7, seconds=5))
    ids = make_messages(engine, old.id, 4, state="submitted")
    sent_at = [start + timedelta(seconds=10), start + timedelta(minutes=3), start + timedelta(minutes=3, seconds=40),
               start + timedelta(minutes=7)]
    with engine.begin() as connection:
        for message_id, at in zip(ids, sent_at, strict=True):
            connection.execute(Message.__table__.update().where(Message.id == message_id).values(submitted_at=at))
    young = make_campaign(engine, status="running", started_at=now - timedelta(minutes=5))
    long_running = make_campaign(engine, status="running", started_at=now - timedelta(hours=5))
    # when their charts are asked for
    old_chart, young_chart = campaign_minutes(old.id, now=now), campaign_minutes(young.id, now=now)
    long_chart = campaign_minutes(long_running.id, now=now)
    # then the finished one covers its own eight minutes, with what it sent in each
    minute = start.strftime("%Y-%m-%dT%H:%M")
    assert old_chart["minutes"][0]["minute"] == minute and not old_chart["clipped"]
    assert [m["count"] for m in old_chart["minutes"]] == [1, 0, 0, 2, 0, 0, 0, 1]
    # and the running ones span from their start to now, at most the last hour
    assert len(young_chart["minutes"]) == 6 and young_chart["minutes"][-1]["minute"] == now.strftime("%Y-%m-%dT%H:%M")
    assert len(long_chart["minutes"]) == 60 and long_chart["clipped"]
    # and the progress JSON carries the chart
    assert client.get(f"/campaigns/{old.id}/progress.json").json()["chart"] == old_chart


def test_accounts_page_shows_rates_without_a_useless_decimal(client, tmp_path):
    # given accounts sending 10 and 2.5 messages per second
    config = tmp_path / "blast.toml"
    config.write_text(config.read_text() + '\n[accounts.halting]\nprovider = "socnet"\n'
                      'base_url = "http://127.0.0.1:9"\napi_key = "${TEST_SOCNET_KEY}"\nrate = 2.5\n')
    reset_settings()
    log_in(client)
    # when the accounts page is shown
    html = client.get("/accounts").text
    # then the rates read 10 and 2.5
    assert "<td>acct</td><td>socnet</td><td>10</td>" in html
    assert "<td>halting</td><td>socnet</td><td>2.5</td>" in html
    assert "10.0" not in html


def test_preview_without_a_phone_column_leaves_the_launch_mapping_empty(client):
    # given an uploaded list whose phone header is not a known name
    token = log_in(client)
    preview_url = upload(client, token, "odd.csv", b"who,digits\nAmy,+256701234567\n").headers["location"]
    # when the preview is shown
    html = client.get(preview_url).text
    # then the launch form's phone column is empty, not the word "None"
    launch_form = html[html.index(f'action="{preview_url}/launch"'):]
    launch_form = launch_form[:launch_form.index("</form>")]
    assert '<input type="hidden" name="phone_column" value="" class="mirror">' in launch_form
    assert "None" not in html


def test_campaign_page_shows_progress_eta_and_funnel_without_javascript(client, engine):
    # given a running campaign on an account at 10/s: 3 still to send (2 pending, 1 queued), 7 accepted by the
    # gateway (3 only accepted, 2 sent, 1 delivered, 1 read), 1 failed, 2 skipped at ingest
    log_in(client)
    campaign = make_campaign(engine, status="running")
    for start, (state, count) in enumerate((("pending", 2), ("queued", 1), ("submitted", 3), ("sent", 2),
                                            ("delivered", 1), ("read", 1), ("failed", 1), ("skipped", 2))):
        make_messages(engine, campaign.id, count, state=state, start=10 * start)
    # when the page is served (no script run)
    html = client.get(f"/campaigns/{campaign.id}").text
    # then the bar counts the 11 to send, 8 of them settled, and the 3 left take 0.3 s at 10/s
    assert '<progress id="progress" max="11" value="8"' in html
    assert "8 of 11 sent or settled (72.7%)" in html and "done in about 0 s" in html
    # and the funnel counts each stage among the 7 accepted
    for stage, count, share in (("submitted", 7, "100.0%"), ("sent", 4, "57.1%"), ("delivered", 2, "28.6%"),
                                ("read", 1, "14.3%")):
        assert f'<tr data-stage="{stage}"><th>{stage}</th><td>{count}</td><td>{share}</td></tr>' in html
    # and the page's live JSON says the same
    progress = client.get(f"/campaigns/{campaign.id}/progress.json").json()["progress"]
    assert (progress["to_send"], progress["done"], progress["eta_seconds"]) == (11, 8, pytest.approx(0.3))
    assert [(s["stage"], s["count"]) for s in progress["funnel"]] == [("submitted", 7), ("sent", 4),
                                                                      ("delivered", 2), ("read", 1)]


def test_a_paused_campaign_has_no_finishing_time(client, engine):
    log_in(client)
    campaign = make_campaign(engine, status="paused")
    make_messages(engine, campaign.id, 5)
    assert '<span id="eta">paused</span>' in client.get(f"/campaigns/{campaign.id}").text
    assert client.get(f"/campaigns/{campaign.id}/progress.json").json()["progress"]["eta_seconds"] is None


@pytest.mark.parametrize(("seconds", "shown"), [(0.3, "0 s"), (59.4, "59 s"), (60, "1 min"), (200, "3 min 20 s"),
                                                 (3600, "1 h"), (7500, "2 h 5 min")])
def test_durations_read_as_a_person_says_them(seconds, shown):
    from campaigns.web.rendering import duration

    assert duration(seconds) == shown


def test_accounts_page_charts_each_minutes_sending_against_the_rate(client, engine):
    from datetime import timedelta

    from sqlalchemy import insert

    # given an account at 10/s whose gateway accepted 60 calls a minute ago and 120 in this minute (1 and 2 a
    # second), and refused 30 (they are not sending)
    log_in(client)
    campaign = make_campaign(engine, status="running")
    [message] = make_messages(engine, campaign.id, 1)
    now = utcnow()
    with engine.begin() as connection:
        connection.execute(insert(Attempt), [{"message_id": message, "outcome": "accepted",
                                              "at": now - timedelta(minutes=1)}] * 60
                           + [{"message_id": message, "outcome": "accepted", "at": now}] * 120
                           + [{"message_id": message, "outcome": "transient", "at": now}] * 30)
    # when the accounts page is shown
    html = client.get("/accounts").text
    # then its chart has a bar a minute for 15 minutes, the last two at 1 and 2 a second, under the rate's line
    chart = html[html.index('<figure class="rate-chart" data-account="acct">'):]
    chart = chart[:chart.index("</figure>")]
    bars = re.findall(r'<rect class="bar" x="[^"]+" y="([^"]+)" width="[^"]+" height="([^"]+)"><title>([^<]+)</title>',
                      chart)
    # (the page may be drawn a minute later than the rows were written: the two may sit one bar further left)
    assert len(bars) == 15
    busy = [index for index, (_y, height, _title) in enumerate(bars) if float(height) > 0]
    assert [bars[index][2] for index in busy] == ["1.0 a second", "2.0 a second"]
    assert busy[1] == busy[0] + 1 and busy[1] >= 13
    assert float(bars[busy[1]][1]) == pytest.approx(2 * float(bars[busy[0]][1]), abs=0.2)
    configured_y = float(re.search(r'<line class="configured" x1="0" x2="240" y1="([^"]+)"', chart).group(1))
    assert configured_y < float(bars[-1][0])  # the rate's line is above the busiest bar
    assert "at most 2.00 a second in a minute, against a rate of 10." in chart
    assert "polyline" not in chart  # never throttled: the limiter held it to its whole rate


def test_accounts_page_charts_the_rate_the_limiter_held_an_account_to_after_throttling(client, engine):
    from datetime import UTC, timedelta

    from sqlalchemy import insert

    # given an account at 10/s throttled once 20 s into the minute before this one (the limiter halves its
    # rate, then wins back a tenth of it a second)
    log_in(client)
    campaign = make_campaign(engine, status="running")
    [message] = make_messages(engine, campaign.id, 1)
    minute = utcnow().astimezone(UTC).replace(second=0, microsecond=0)
    with engine.begin() as connection:
        connection.execute(insert(Attempt).values(message_id=message, outcome="throttled",
                                                  at=minute - timedelta(seconds=40)))
    # when the accounts page is shown
    html = client.get("/accounts").text
    chart = html[html.index('<figure class="rate-chart" data-account="acct">'):]
    chart = chart[:chart.index("</figure>")]
    # then a step line shows the account held to half its rate (5/s) in that minute, and to its whole rate in
    # the others, the one running now included (drawn a minute later, that minute is one step further left)
    points = re.search(r'<polyline class="effective" points="([^"]+)"', chart).group(1).split()
    heights = [float(point.split(",")[1]) for point in points[::2]]  # one step (two points) a minute
    full, half = round(48 * (1 - 10 / 11), 1), round(48 * (1 - 5 / 11), 1)
    assert len(heights) == 15 and heights.count(half) == 1 and heights.count(full) == 14
    assert heights.index(half) in (12, 13)
