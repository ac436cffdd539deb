"""Requests to the sandbox built by hand from the gateways' documents (never with workers.providers)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from urllib.parse import urlencode, urlsplit

import requests

from tests.support.sandbox import DEVINO_KEY, HTTPAPI_TOKEN, SMSGLOBAL_KEY, SMSGLOBAL_SECRET

SOCNET_PATH = "/projects/bulk/whatsapp/api.php"


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
