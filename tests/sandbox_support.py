"""Test helpers for the sandbox: a running `blast sandbox`, a tiny HTTP receiver for callbacks and webhooks,
and requests built by hand from the gateways' documents (never with workers.providers)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlencode, urlsplit

import pytest
import requests

from tests.engine import wait_until
from workers.sandbox.harness import DEFAULT_CREDENTIALS, SandboxProcess

SOCNET_KEY = DEFAULT_CREDENTIALS["socnet"]["key"]
SMSGLOBAL_KEY = DEFAULT_CREDENTIALS["smsglobal"]["key"]
SMSGLOBAL_SECRET = DEFAULT_CREDENTIALS["smsglobal"]["secret"]
DEVINO_KEY = DEFAULT_CREDENTIALS["devino"]["key"]
HTTPAPI_TOKEN = DEFAULT_CREDENTIALS["httpapi"]["key"]
SOCNET_PATH = "/projects/bulk/whatsapp/api.php"


@pytest.fixture(scope="module")
def sandbox_process():
    with SandboxProcess() as running:
        yield running


@pytest.fixture
def sandbox(sandbox_process):
    """The module's sandbox, back to its built-in accounts and default knobs, with nothing recorded."""
    sandbox_process.reset(all=True)
    return sandbox_process


@pytest.fixture
def receiver():
    with Receiver() as running:
        yield running


def poll_until(predicate, *, timeout: float = 15.0, what: str = "the condition"):
    """Ask `predicate` (it asks the sandbox) every 20 ms until it returns something truthy."""
    return wait_until(predicate, timeout=timeout, interval=0.02, message=what)


class Receiver:
    """An HTTP server on loopback that records every POST (path, headers, JSON body) and answers
    `statuses` in turn (then 200): what a client's webhook endpoint would be."""

    def __init__(self, statuses: list[int] | None = None):
        self.posts: list[dict] = []
        self.statuses = list(statuses or [])
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with receiver._changed:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.posts.append({"path": self.path, "headers": dict(self.headers),
                                           "body": json.loads(raw) if raw else None, "answered": status})
                    receiver._changed.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def wait_for(self, predicate, *, timeout: float = 15.0, what: str = "a callback"):
        """Block until `predicate(posts)` is truthy (woken by each POST); return its value."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                value = predicate(self.posts)
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout}s waiting for {what}; got {self.posts}")
                self._changed.wait(left)

    def bodies(self, path: str | None = None) -> list:
        with self._changed:
            return [p["body"] for p in self.posts if path is None or p["path"] == path]

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.shutdown()
        self._server.server_close()


# ---------------------------------------------------------------------- requests, by the documents


def socnet_post(sandbox, body: dict) -> requests.Response:
    return requests.post(sandbox.base_url("socnet") + SOCNET_PATH, json=body, timeout=10)


def smsglobal_mac(secret: str, ts: str, nonce: str, method: str, uri: str, host: str, port: int) -> str:
    """providers/README.md: base64(HMAC-SHA256(secret, ts, nonce, method, uri, host, port, ext lines))."""
    text = f"{ts}\n{nonce}\n{method}\n{uri}\n{host}\n{port}\n\n"
    return base64.b64encode(hmac.new(secret.encode(), text.encode(), hashlib.sha256).digest()).decode()


def smsglobal_call(sandbox, method: str, path: str, *, body=None, query: dict | None = None,
                   key: str = SMSGLOBAL_KEY, secret: str = SMSGLOBAL_SECRET,
                   headers: dict | None = None) -> requests.Response:
    """A signed SMSGlobal request to {base}{path}; the URI signed includes the /smsglobal prefix."""
    url = sandbox.base_url("smsglobal") + path
    if query:
        url += "?" + urlencode(query)
    parts = urlsplit(url)
    uri = parts.path + (f"?{parts.query}" if parts.query else "")
    ts, nonce = str(int(time.time())), uuid.uuid4().hex
    mac = smsglobal_mac(secret, ts, nonce, method, uri, parts.hostname, parts.port)
    all_headers = {"Authorization": f'MAC id="{key}", ts="{ts}", nonce="{nonce}", mac="{mac}"',
                   "Accept": "application/json", **(headers or {})}
    return requests.request(method, url, json=body, headers=all_headers, timeout=10)


def devino_post(sandbox, messages, *, key: str = DEVINO_KEY) -> requests.Response:
    return requests.post(sandbox.base_url("devino") + "/whatsapp/messages", json={"messages": messages},
                         headers={"Authorization": f"Key {key}", "Accept": "application/json"}, timeout=10)


def devino_message(to: str = "79034567890", text: str = "Code: 1234", **fields) -> dict:
    return {"from": "Blast", "to": to, "text": text, **fields}


def httpapi_call(sandbox, operation: str, method: str = "GET", *, token: str = HTTPAPI_TOKEN,
                 **params) -> requests.Response:
    url = f"{sandbox.base_url('httpapi')}/api/{operation}"
    query = {"token": token, **params} if token is not None else params
    if method == "GET":
        return requests.get(url, params=query, timeout=10)
    return requests.post(url, data=query, timeout=10)
