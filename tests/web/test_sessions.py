"""Sessions on the web app, over HTTP (FastAPI's TestClient) on SQLite and Postgres: login throttling per user
name and per client address, sessions kept on the server (logout, expiry, a changed password end them), the
cookie's flags, and the security headers on pages, static files and webhooks."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from campaigns.models import Campaign, LoginFailure, WebSession, utcnow
from campaigns.settings import reset_settings
from campaigns.web.login_throttle import FAILURES_ALLOWED, WINDOW_SECONDS
from campaigns.web.security_headers import SECURITY_HEADERS
from campaigns.web.sessions import SESSION_COOKIE, SESSION_SECONDS, token_hash
from tests.support.factories import make_campaign

ADMIN_PASSWORD = "admin-pass-2b8e41"
HOOK_SECRET = "hook-secret-9c07"
ATTACKER = ("203.0.113.66", 40000)
OPERATOR = ("198.51.100.7", 40000)


@pytest.fixture
def web_app(engine, blast_home, tmp_path, monkeypatch):
    """A factory of web apps (each one a separate "web process") sharing one database, with one admin and one
    Devino account for the webhook."""
    monkeypatch.setenv("BLAST_ADMIN_USER", "admin")
    monkeypatch.setenv("BLAST_ADMIN_PASSWORD", ADMIN_PASSWORD)
    monkeypatch.delenv("BLAST_COOKIE_SECURE", raising=False)
    (tmp_path / "blast.toml").write_text(
        '[accounts.dv]\nprovider = "devino"\nbase_url = "http://127.0.0.1:9"\napi_key = "k"\n'
        f'sender = "Blast"\nrate = 10\nwebhook_secret = "{HOOK_SECRET}"\n')
    reset_settings()
    from campaigns.web.app import create_app

    return create_app


@pytest.fixture
def clients(web_app):
    """`clients(address)`: a browser at that client address, on a web process of its own."""
    opened = []

    def open_client(address=("testclient", 50000)) -> TestClient:
        client = TestClient(web_app(), client=address)
        opened.append(client.__enter__())
        return client

    yield open_client
    for client in opened:
        client.__exit__(None, None, None)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def try_login(client: TestClient, password: str, user: str = "admin"):
    token = csrf_of(client.get("/login").text)
    return client.post("/login", data={"username": user, "password": password, "csrf_token": token},
                       follow_redirects=False)


def logged_in(client: TestClient) -> bool:
    answer = client.get("/", follow_redirects=False)
    assert answer.status_code in (200, 303)
    return answer.status_code == 200


def session_count(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(WebSession)).scalar_one()


def age_failures(engine, seconds: float) -> None:
    with engine.begin() as connection:
        connection.execute(update(LoginFailure).values(at=LoginFailure.at - timedelta(seconds=seconds)))


# ---------------------------------------------------------------- throttling


def test_right_password_is_refused_while_the_user_is_throttled(clients, engine):
    # given FAILURES_ALLOWED wrong passwords for "admin" from one address, each refused as wrong
    attacker = clients(ATTACKER)
    for guess in range(FAILURES_ALLOWED):
        assert try_login(attacker, f"guess-{guess}").status_code == 401
    # when the right password comes next, from there and from another web process at another address
    answers = [try_login(attacker, ADMIN_PASSWORD), try_login(clients(OPERATOR), ADMIN_PASSWORD)]
    # then both are refused with 429, a Retry-After within the window and a message saying why
    for answer in answers:
        assert answer.status_code == 429
        assert 0 < int(answer.headers["Retry-After"]) <= WINDOW_SECONDS
        assert "Too many failed logins" in answer.text and "Try again in 15 minutes" in answer.text
        assert ADMIN_PASSWORD not in answer.text
    assert not logged_in(attacker)
    # and the refused attempts did not count: once the failures leave the window, the right password works
    age_failures(engine, WINDOW_SECONDS + 1)
    assert try_login(attacker, ADMIN_PASSWORD).status_code == 303
    assert logged_in(attacker)


def test_a_burst_of_guesses_gets_no_more_than_the_allowed_checks(clients):
    # given three times the allowed number of browsers at one address, each with its login form open
    browsers = [clients(ATTACKER) for _ in range(3 * FAILURES_ALLOWED)]
    forms = [csrf_of(browser.get("/login").text) for browser in browsers]
    start = threading.Barrier(len(browsers))

    def guess(number: int) -> int:
        start.wait()
        form = {"username": "admin", "password": f"guess-{number}", "csrf_token": forms[number]}
        return browsers[number].post("/login", data=form, follow_redirects=False).status_code

    # when they all send a wrong password at the same moment
    with ThreadPoolExecutor(len(browsers)) as pool:
        answers = list(pool.map(guess, range(len(browsers))))
    # then exactly the allowed number were checked (401), the rest refused unchecked (429)
    assert sorted(answers) == [401] * FAILURES_ALLOWED + [429] * (len(browsers) - FAILURES_ALLOWED)
    # and the right password is refused too
    assert try_login(clients(ATTACKER), ADMIN_PASSWORD).status_code == 429


def test_failures_spread_over_addresses_still_throttle_the_user(clients):
    # given one wrong password for "admin" from each of FAILURES_ALLOWED addresses
    for number in range(FAILURES_ALLOWED):
        assert try_login(clients((f"192.0.2.{number + 1}", 40000)), "wrong").status_code == 401
    # when the operator, at an address that never failed, gives the right password
    answer = try_login(clients(OPERATOR), ADMIN_PASSWORD)
    # then the user's throttle refuses it
    assert answer.status_code == 429


def test_one_address_throttled_does_not_lock_out_another(clients):
    # given an address that failed FAILURES_ALLOWED times, each under a different user name
    attacker = clients(ATTACKER)
    for number in range(FAILURES_ALLOWED):
        assert try_login(attacker, "wrong", user=f"root{number}").status_code == 401
    # when it then tries the admin's right password, and the operator elsewhere does the same
    from_attacker = try_login(attacker, ADMIN_PASSWORD)
    operator = clients(OPERATOR)
    from_operator = try_login(operator, ADMIN_PASSWORD)
    # then the address is refused whatever the user, while the operator (other address, other user) gets in
    assert from_attacker.status_code == 429
    assert from_operator.status_code == 303 and logged_in(operator)


def test_a_success_forgives_only_its_own_mistakes(clients, engine):
    # given an operator who mistyped FAILURES_ALLOWED - 1 times, then logged in
    operator = clients(OPERATOR)
    for _ in range(FAILURES_ALLOWED - 1):
        assert try_login(operator, "typo").status_code == 401
    assert try_login(operator, ADMIN_PASSWORD).status_code == 303
    # when they mistype once more later (in a fresh browser at the same address)
    again = clients(OPERATOR)
    assert try_login(again, "typo").status_code == 401
    # then they are not throttled: only that one failure counts
    assert try_login(again, ADMIN_PASSWORD).status_code == 303
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(LoginFailure)).scalar_one() == 0


# ---------------------------------------------------------------- sessions on the server


def test_logout_ends_the_session_for_a_copied_cookie(clients, engine):
    # given a logged-in operator whose cookie was copied to another browser
    operator = clients()
    assert try_login(operator, ADMIN_PASSWORD).status_code == 303
    copied = operator.cookies.get(SESSION_COOKIE)
    thief = clients()
    thief.cookies.set(SESSION_COOKIE, copied)
    assert logged_in(thief)
    campaign = make_campaign(engine)
    # when the operator logs out
    page = operator.get("/").text
    assert operator.post("/logout", data={"csrf_token": csrf_of(page)}, follow_redirects=False).status_code == 303
    # then the copied cookie is refused at once, for pages and for the JSON the pages poll
    assert not logged_in(thief)
    assert thief.get(f"/campaigns/{campaign.id}/progress.json").status_code == 401
    assert not logged_in(operator)
    assert session_count(engine) == 0


def test_the_cookie_holds_only_a_random_token_and_the_table_only_its_hash(clients, engine):
    # given a logged-in operator
    operator = clients()
    try_login(operator, ADMIN_PASSWORD)
    token = operator.cookies.get(SESSION_COOKIE)
    # then the cookie is a bare random token (no user name, no signed payload) and the row keeps its hash
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)
    with engine.connect() as connection:
        stored = connection.execute(select(WebSession.token_hash, WebSession.user_name)).all()
    assert [tuple(row) for row in stored] == [(token_hash(token), "admin")]


def test_an_expired_session_is_refused(clients, engine):
    # given a logged-in operator whose session has just passed its end
    operator = clients()
    try_login(operator, ADMIN_PASSWORD)
    assert logged_in(operator)
    with engine.begin() as connection:
        connection.execute(update(WebSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    # when they open a page, then they are sent to the login form and the row is gone
    assert not logged_in(operator)
    assert session_count(engine) == 0


def test_a_session_lasts_twelve_hours(clients, engine):
    operator = clients()
    answer = try_login(operator, ADMIN_PASSWORD)
    assert f"Max-Age={SESSION_SECONDS}" in answer.headers["set-cookie"]
    with engine.connect() as connection:
        created, expires = connection.execute(select(WebSession.created_at, WebSession.expires_at)).one()
    assert expires - created == timedelta(hours=12)


def test_a_password_change_ends_the_sessions_opened_before_it(clients, engine, monkeypatch):
    # given a logged-in operator
    operator = clients()
    try_login(operator, ADMIN_PASSWORD)
    assert logged_in(operator)
    # when the admin password is changed in the environment (the web process restarted with it)
    monkeypatch.setenv("BLAST_ADMIN_PASSWORD", "a-new-admin-pass-77")
    reset_settings()
    # then the old session is refused, and the new password opens a new one
    assert not logged_in(operator)
    assert try_login(operator, "a-new-admin-pass-77").status_code == 303
    assert logged_in(operator)


# ---------------------------------------------------------------- the cookie and the headers


def test_cookie_is_httponly_and_lax_and_secure_only_when_asked(clients, monkeypatch):
    # given the default settings, when the operator logs in, then the cookie is HttpOnly, Lax, not Secure
    plain = try_login(clients(), ADMIN_PASSWORD).headers["set-cookie"]
    assert "HttpOnly" in plain and "SameSite=Lax" in plain and "Secure" not in plain
    # given BLAST_COOKIE_SECURE=true, then both the login form's cookie and the session's are Secure too
    monkeypatch.setenv("BLAST_COOKIE_SECURE", "true")
    reset_settings()
    browser = clients()
    form = browser.get("/login")
    form_cookie = form.headers["set-cookie"]
    form_token = re.search(rf"{SESSION_COOKIE}=([^;]+)", form_cookie).group(1)
    # (a test client keeps a Secure cookie but never sends it over plain HTTP: the header is written here)
    answer = browser.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD,
                                           "csrf_token": csrf_of(form.text)},
                          headers={"cookie": f"{SESSION_COOKIE}={form_token}"}, follow_redirects=False)
    assert answer.status_code == 303
    for cookie in (form_cookie, answer.headers["set-cookie"]):
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


@pytest.mark.parametrize("request_of", [
    pytest.param(lambda client: client.get("/login"), id="page"),
    pytest.param(lambda client: client.get("/", follow_redirects=False), id="redirect"),
    pytest.param(lambda client: client.get("/static/blast.css"), id="static"),
    pytest.param(lambda client: client.get("/no/such/page"), id="not-found"),
    pytest.param(lambda client: client.post(f"/hooks/devino/dv?token={HOOK_SECRET}", json=[]), id="webhook"),
    pytest.param(lambda client: client.post("/hooks/devino/dv?token=wrong", json=[]), id="webhook-refused"),
])
def test_security_headers_on_every_answer(clients, request_of):
    # when a page, a redirect, a static file, a 404 or a webhook is asked for
    answer = request_of(clients())
    # then the answer carries every security header, the CSP forbidding frames and inline code
    assert answer.status_code < 500
    for name, value in SECURITY_HEADERS.items():
        assert answer.headers.get(name) == value, name
    policy = answer.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy and "'unsafe-inline'" not in policy
    assert answer.headers["X-Frame-Options"] == "DENY"


def test_webhooks_set_no_session_cookie(clients):
    answer = clients().post(f"/hooks/devino/dv?token={HOOK_SECRET}", json=[])
    assert answer.status_code == 200 and "set-cookie" not in answer.headers


# ---------------------------------------------------------------- in a real browser

RECORD_POLICY_VIOLATIONS = """
window.policyViolations = [];
document.addEventListener("securitypolicyviolation",
  (event) => window.policyViolations.push(event.violatedDirective + " " + event.blockedURI));
"""


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_pages_keep_working_under_the_policy_and_logout_ends_the_copied_session(chromium, web_app, engine):
    from playwright.sync_api import expect

    from tests.support import browser as ui

    # given a running campaign and the web app served to Chromium, which reports every policy violation
    campaign = make_campaign(engine, status="running", name="Policy check")
    with ui.WebServer(web_app()) as server:
        page = ui.new_page(chromium, server.url)
        page.context.add_init_script(RECORD_POLICY_VIOLATIONS)
        # when the operator logs in and opens the campaign page
        ui.log_in(page, "admin", ADMIN_PASSWORD)
        expect(page.get_by_role("heading", name="Campaigns")).to_be_visible()
        page.get_by_role("link", name="Policy check").click()
        expect(ui.campaign_status(page)).to_have_text("running")
        # then the stylesheet applies and the page's script keeps it live (a pause shows without a reload)
        assert page.evaluate("getComputedStyle(document.querySelector('nav')).display") == "flex"
        with engine.begin() as connection:
            connection.execute(update(Campaign).where(Campaign.id == campaign.id).values(status="paused"))
        expect(ui.campaign_status(page)).to_have_text("paused")
        assert page.evaluate("window.policyViolations") == []

        # given the session cookie copied into another browser, which is let in with it
        copied = page.context.cookies()
        thief = ui.new_page(chromium, server.url)
        thief.context.add_cookies(copied)
        thief.goto("/")
        expect(thief.get_by_role("heading", name="Campaigns")).to_be_visible()
        # when the operator logs out
        page.get_by_role("button", name="Log out admin").click()
        expect(page.get_by_role("heading", name="Log in")).to_be_visible()
        # then the copied cookie opens nothing any more
        thief.goto("/")
        expect(thief.get_by_role("heading", name="Log in")).to_be_visible()
        assert page.evaluate("window.policyViolations") == []
        thief.context.close()
        page.context.close()
