"""Users and roles on the web app, over HTTP (FastAPI's TestClient) on SQLite and Postgres: each user logs in
with their own password, the roles are enforced on the pages and the API alike, failed logins are throttled per
user and per address, removing a user or changing their password ends their session at once, the last admin
stays, and the environment's admin still logs in and is kept in the table as an admin."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from campaigns import apikeys, users
from campaigns.errors import BlastError
from campaigns.models import ApiKey, Campaign, WebUser
from campaigns.settings import reset_settings
from campaigns.web.api.auth import Admin
from campaigns.web.login_throttle import FAILURES_ALLOWED
from tests.support.factories import make_campaign
from tests.support.web import clients_at_addresses, csrf_of

ENV_ADMIN_PASSWORD = "env-admin-pass-31c7"
PASSWORDS = {"vera": "viewer-pass-0a1b9", "otto": "operator-pass-2c3d8", "ada": "admin-pass-4e5f7"}
ROLES = {"vera": "viewer", "otto": "operator", "ada": "admin"}
HOME = ("198.51.100.7", 40000)
ELSEWHERE = ("192.0.2.80", 40000)
ATTACKER = ("203.0.113.66", 40000)


@pytest.fixture
def web_app(engine, blast_home, tmp_path, monkeypatch):
    """A factory of web apps on one database, with the environment's admin and a viewer, an operator and an
    admin in the users table."""
    monkeypatch.setenv("BLAST_ADMIN_USER", "admin")
    monkeypatch.setenv("BLAST_ADMIN_PASSWORD", ENV_ADMIN_PASSWORD)
    (tmp_path / "blast.toml").write_text(
        '[accounts.acct]\nprovider = "socnet"\nbase_url = "http://127.0.0.1:9"\napi_key = "k"\nrate = 10\n')
    reset_settings()
    for name, role in ROLES.items():
        users.add(engine, name, role, PASSWORDS[name])
    from campaigns.web.app import create_app

    return create_app


@pytest.fixture
def browsers(web_app):
    """`browsers(address)`: a browser at that client address, on a web process of its own."""
    with clients_at_addresses(web_app, HOME) as open_browser:
        yield open_browser



def try_login(client: TestClient, user: str, password: str):
    token = csrf_of(client.get("/login").text)
    return client.post("/login", data={"username": user, "password": password, "csrf_token": token},
                       follow_redirects=False)


def logged_in_as(user: str, address=HOME, *, browsers) -> TestClient:
    client = browsers(address)
    password = ENV_ADMIN_PASSWORD if user == "admin" else PASSWORDS[user]
    assert try_login(client, user, password).status_code == 303
    return client


def logged_in(client: TestClient) -> bool:
    answer = client.get("/", follow_redirects=False)
    assert answer.status_code in (200, 303)
    return answer.status_code == 200


def post(client: TestClient, path: str, **fields):
    token = csrf_of(client.get("/").text)
    return client.post(path, data={"csrf_token": token, **fields}, follow_redirects=False)


def status_of(engine, campaign_id: int) -> str:
    with engine.connect() as connection:
        return connection.execute(select(Campaign.status).where(Campaign.id == campaign_id)).scalar_one()


# ---------------------------------------------------------------- roles on the pages


def test_a_viewer_reads_without_buttons_and_is_refused_a_pause(browsers, engine):
    # given a running campaign and a logged-in viewer
    campaign = make_campaign(engine, status="running", name="Clinic reminders")
    viewer = logged_in_as("vera", browsers=browsers)
    # when the viewer opens the campaign page, then it shows the campaign without any action button or upload link
    shown = viewer.get(f"/campaigns/{campaign.id}")
    assert shown.status_code == 200 and "Clinic reminders" in shown.text
    assert "data-action=" not in shown.text and 'href="/upload"' not in shown.text
    assert viewer.get(f"/campaigns/{campaign.id}/progress.json").status_code == 200
    # when the viewer posts a pause anyway (with the session's own CSRF token), then it is 403 and nothing changes
    refused = post(viewer, f"/campaigns/{campaign.id}/pause")
    assert refused.status_code == 403 and "operator" in refused.text
    assert status_of(engine, campaign.id) == "running"
    # and the upload form, the audit page and the admin pages are refused too
    for path in ("/upload", "/audit", "/users", "/keys"):
        assert viewer.get(path).status_code == 403, path
    # while an operator sees the buttons on the same page
    assert 'data-action="pause"' in logged_in_as("otto", browsers=browsers).get(f"/campaigns/{campaign.id}").text


def test_an_operator_pauses_but_may_not_manage_users_or_keys(browsers, engine):
    # given a running campaign and a logged-in operator
    campaign = make_campaign(engine, status="running")
    operator = logged_in_as("otto", browsers=browsers)
    # when they pause it, then it is paused
    assert post(operator, f"/campaigns/{campaign.id}/pause").status_code == 303
    assert status_of(engine, campaign.id) == "paused"
    # and they read the audit page, but the users and keys pages are 403, to read and to post
    assert operator.get("/audit").status_code == 200
    for path in ("/users", "/keys"):
        assert operator.get(path).status_code == 403, path
    assert post(operator, "/keys", name="sneaky", role="admin").status_code == 403
    assert post(operator, "/users", name="mallory", role="admin", password="mallory-pass-1").status_code == 403
    assert post(operator, "/users/ada/remove").status_code == 403
    with engine.connect() as connection:
        assert connection.execute(select(ApiKey.name)).scalars().all() == []
        assert sorted(connection.execute(select(WebUser.name)).scalars()) == ["ada", "otto", "vera"]
    # and their nav offers neither page
    home = operator.get("/").text
    assert 'href="/users"' not in home and 'href="/keys"' not in home and 'href="/audit"' in home


def test_an_admin_manages_users_and_keys_from_the_pages(browsers, engine):
    admin = logged_in_as("ada", browsers=browsers)
    # when the admin adds a user, then that user logs in with their password
    assert post(admin, "/users", name="nadia", role="operator", password="nadia-pass-77").status_code == 303
    assert "nadia" in admin.get("/users").text
    assert try_login(browsers(ELSEWHERE), "nadia", "nadia-pass-77").status_code == 303
    # and a too short password or a taken name is refused with the reason
    short = post(admin, "/users", name="sam", role="viewer", password="short")
    assert short.status_code == 400 and "8 to" in short.text
    assert "exists already" in post(admin, "/users", name="otto", role="viewer", password="whatever-1").text
    # when the admin makes a key, then it is shown once, on that answer only, and works on the API
    made = post(admin, "/keys", name="booking system", role="viewer")
    assert made.status_code == 201 and made.headers["cache-control"] == "no-store"
    key = re.search(r"<code>(blast_[^<]+)</code>", made.text).group(1)
    assert key not in admin.get("/keys").text
    assert admin.get("/api/v1/campaigns", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    # when it is revoked from the page, then the API refuses it
    assert post(admin, "/keys/booking system/revoke").status_code == 303
    assert admin.get("/api/v1/campaigns", headers={"Authorization": f"Bearer {key}"}).status_code == 401


# ---------------------------------------------------------------- roles on the API


def test_api_roles_a_viewer_key_cannot_launch_and_an_operator_key_is_refused_admin_actions(web_app, engine):
    from campaigns.web.api import create_api

    keys = {role: apikeys.create(engine, f"{role} key", role) for role in apikeys.ROLES}
    draft = make_campaign(engine)
    with TestClient(web_app()) as client:
        # a viewer key may read but not launch (403, as problem+json), and the draft stays a draft
        refused = client.post(f"/api/v1/campaigns/{draft.id}/launch",
                              headers={"Authorization": f"Bearer {keys['viewer']}"})
        assert refused.status_code == 403 and refused.headers["content-type"] == "application/problem+json"
        assert status_of(engine, draft.id) == "draft"
    # an action that needs the admin role (as the key and webhook endpoints declare with `Admin`) refuses an
    # operator's key and lets an admin's in
    api = create_api()

    @api.post("/admin-only")
    def admin_only(key: Admin) -> dict:
        return {"by": key.name}

    with TestClient(api) as client:
        operator = client.post("/admin-only", headers={"Authorization": f"Bearer {keys['operator']}"})
        assert operator.status_code == 403 and "admin" in operator.json()["detail"]
        admin = client.post("/admin-only", headers={"Authorization": f"Bearer {keys['admin']}"})
        assert admin.status_code == 200 and admin.json() == {"by": "admin key"}


# ---------------------------------------------------------------- logging in


def test_each_user_logs_in_with_their_own_password(browsers):
    # a user's own password lets them in; another's password, a wrong one or a name nobody has does not
    assert try_login(browsers(), "otto", PASSWORDS["vera"]).status_code == 401
    assert try_login(browsers(), "otto", "wrong-password").status_code == 401
    assert try_login(browsers(), "nobody", PASSWORDS["otto"]).status_code == 401
    operator = browsers()
    assert try_login(operator, "otto", PASSWORDS["otto"]).status_code == 303
    assert logged_in(operator) and "Log out otto" in operator.get("/").text


def test_wrong_passwords_are_throttled_per_user_and_per_address(browsers):
    # given FAILURES_ALLOWED wrong passwords for otto from one address
    for _ in range(FAILURES_ALLOWED):
        assert try_login(browsers(ATTACKER), "otto", "guess").status_code == 401
    # then otto's right password is refused from anywhere, while vera, elsewhere, gets in
    assert try_login(browsers(ELSEWHERE), "otto", PASSWORDS["otto"]).status_code == 429
    assert try_login(browsers(ELSEWHERE), "vera", PASSWORDS["vera"]).status_code == 303
    # and the address that failed is refused for every user, even with their right password
    assert try_login(browsers(ATTACKER), "ada", PASSWORDS["ada"]).status_code == 429


def test_removing_a_user_or_changing_their_password_ends_their_session_at_once(browsers, engine):
    # given otto and vera logged in, and an admin
    operator = logged_in_as("otto", browsers=browsers)
    viewer = logged_in_as("vera", browsers=browsers)
    admin = logged_in_as("ada", browsers=browsers)
    # when the admin removes otto, then otto's next request is sent to the login form
    assert post(admin, "/users/otto/remove").status_code == 303
    assert not logged_in(operator)
    assert try_login(browsers(), "otto", PASSWORDS["otto"]).status_code == 401
    # when vera's password is changed (here from the command line's function), then her session ends too
    users.set_password(engine, "vera", "vera-new-pass-55")
    assert not logged_in(viewer)
    assert try_login(browsers(), "vera", PASSWORDS["vera"]).status_code == 401
    assert try_login(browsers(), "vera", "vera-new-pass-55").status_code == 303
    # and the admin, who changed nothing of their own, is still logged in
    assert logged_in(admin)


def test_the_last_admin_cannot_be_removed(browsers, engine):
    # given ada, the one admin of the table
    admin = logged_in_as("ada", browsers=browsers)
    # when she is removed, then it is refused with the reason, from the page and from the function
    refused = post(admin, "/users/ada/remove")
    assert refused.status_code == 409 and "last admin" in refused.text
    with pytest.raises(BlastError, match="last admin"):
        users.remove(engine, "ada")
    assert logged_in(admin)
    # given a second admin, then she can go
    users.add(engine, "bruno", "admin", "bruno-pass-123")
    users.remove(engine, "ada")
    assert not logged_in(admin)


def test_two_admins_removing_each_other_at_once_leave_one(web_app, engine):
    # given two admins, ada and bruno
    users.add(engine, "bruno", "admin", "bruno-pass-123")
    start = threading.Barrier(2)

    def remove(name: str) -> str:
        start.wait()
        try:
            users.remove(engine, name)
        except BlastError as error:
            return str(error)
        return "removed"

    # when each is removed at the same moment
    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(remove, ["ada", "bruno"]))
    # then one goes and the other is kept as the last admin
    assert outcomes.count("removed") == 1 and any("last admin" in outcome for outcome in outcomes)
    with engine.connect() as connection:
        assert len(connection.execute(select(WebUser.name).where(WebUser.role == "admin")).all()) == 1


def test_the_environment_admin_logs_in_and_is_kept_as_an_admin(browsers, engine, monkeypatch):
    # given a viewer row that has the environment admin's name, with a password of its own
    users.add(engine, "admin", "viewer", "table-pass-of-admin")
    # when the environment's admin logs in with the environment's password
    admin = logged_in_as("admin", browsers=browsers)
    # then it is an admin (it reaches the users page) and the row is an admin with the environment's password
    assert admin.get("/users").status_code == 200
    row = users.find(engine, "admin")
    assert row.role == "admin" and users.password_matches(row.password_hash, ENV_ADMIN_PASSWORD)
    assert row.password_hash.startswith("$argon2id$")
    # and the table's old password does not log that name in
    assert try_login(browsers(ELSEWHERE), "admin", "table-pass-of-admin").status_code == 401
    # when BLAST_ADMIN_PASSWORD changes, then its session ends at once and the new password logs in
    monkeypatch.setenv("BLAST_ADMIN_PASSWORD", "env-admin-new-pass-9")
    reset_settings()
    assert not logged_in(admin)
    assert try_login(admin, "admin", "env-admin-new-pass-9").status_code == 303 and logged_in(admin)


def test_two_first_logins_of_the_environment_admin_at_once_both_get_in(browsers, engine):
    # given the environment's admin not yet in the table, and two web processes with its login form open
    clients = [browsers(address) for address in (HOME, ELSEWHERE)]
    forms = [csrf_of(client.get("/login").text) for client in clients]
    start = threading.Barrier(len(clients))

    def log_in(number: int) -> int:
        start.wait()
        form = {"username": "admin", "password": ENV_ADMIN_PASSWORD, "csrf_token": forms[number]}
        return clients[number].post("/login", data=form, follow_redirects=False).status_code

    # when both log in at the same moment
    with ThreadPoolExecutor(len(clients)) as pool:
        answers = list(pool.map(log_in, range(len(clients))))
    # then both get in, and the table holds the one admin row
    assert answers == [303, 303] and all(logged_in(client) for client in clients)
    with engine.connect() as connection:
        assert connection.execute(select(WebUser.role).where(WebUser.name == "admin")).scalars().all() == ["admin"]
