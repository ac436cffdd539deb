"""The web app for tests: one admin and one account whose secrets come from the environment, behind
FastAPI's TestClient; logging in and uploading as an operator would."""

from __future__ import annotations

import contextlib
import re

from fastapi.testclient import TestClient

from campaigns.settings import reset_settings

ADMIN_PASSWORD = "admin-pass-7f3c9e"
SOCNET_KEY = "socnet-secret-key-91ab"
HOOK_SECRET = "hook-secret-55de"


@contextlib.contextmanager
def web_app(tmp_path, monkeypatch, **client_options):
    """A web app with one admin and one account whose secrets come from the environment (a TestClient)."""
    monkeypatch.setenv("BLAST_ADMIN_USER", "admin")
    monkeypatch.setenv("BLAST_ADMIN_PASSWORD", ADMIN_PASSWORD)
    monkeypatch.setenv("TEST_SOCNET_KEY", SOCNET_KEY)
    monkeypatch.setenv("TEST_HOOK_SECRET", HOOK_SECRET)
    (tmp_path / "blast.toml").write_text(
        '[accounts.acct]\nprovider = "socnet"\nbase_url = "http://127.0.0.1:9"\n'
        'api_key = "${TEST_SOCNET_KEY}"\nrate = 10\nwebhook_secret = "${TEST_HOOK_SECRET}"\n')
    reset_settings()
    from campaigns.web.app import create_app

    with TestClient(create_app(), **client_options) as test_client:
        yield test_client


@contextlib.contextmanager
def clients_at_addresses(make_app, default_address=("testclient", 50000)):
    """`open_client(address)`: a TestClient of a fresh app from `make_app()`, as seen from that client address
    (a browser of its own: its own cookies); all closed at the end."""
    opened = []

    def open_client(address=default_address) -> TestClient:
        client = TestClient(make_app(), client=address)
        opened.append(client.__enter__())
        return client

    try:
        yield open_client
    finally:
        for client in opened:
            client.__exit__(None, None, None)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def log_in(client) -> str:
    token = csrf_of(client.get("/login").text)
    form = {"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": token}
    answer = client.post("/login", data=form)
    assert answer.status_code == 200 and "Campaigns" in answer.text
    return csrf_of(answer.text)


def upload(client, token: str, name: str, content: bytes):
    return client.post("/upload", data={"csrf_token": token}, files={"file": (name, content, "text/csv")},
                       follow_redirects=False)
