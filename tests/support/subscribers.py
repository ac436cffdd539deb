"""A webhook subscriber's side, written from the Standard Webhooks specification and sharing no code with
Blast's signer: the checks a receiving system makes."""

from __future__ import annotations

import base64
import hashlib
import hmac


def expected_signature(secret: str, event_id: str, timestamp: str, body: bytes) -> str:
    """`v1,` + base64 HMAC-SHA256 of "id.timestamp.body", keyed by the base64 after `whsec_`, decoded."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{event_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_by(post: dict, secret: str) -> bool:
    """Whether a received POST (tests.support.hooks.Receiver) carries a valid signature made with `secret`."""
    headers = {key.lower(): value for key, value in post["headers"].items()}
    expected = expected_signature(secret, headers["webhook-id"], headers["webhook-timestamp"], post["raw"])
    return any(hmac.compare_digest(expected, given) for given in headers["webhook-signature"].split(" "))


def event_id(post: dict) -> str:
    return {key.lower(): value for key, value in post["headers"].items()}["webhook-id"]
