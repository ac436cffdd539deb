"""The `webhook-*` headers of one POST, as the Standard Webhooks specification says.

`webhook-signature` is `v1,` and the base64 HMAC-SHA256 of `"{webhook-id}.{webhook-timestamp}.{body}"`, keyed by
the secret's bytes (the base64 after `whsec_`, decoded). The signing is the specification's reference library
(`standardwebhooks`); tests/webhooks/test_signing.py checks it against the specification's published example.
"""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

PREFIX = "whsec_"
SECRET_BYTES = 32  # the specification asks for 24 to 64 random bytes


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


class Signer:
    """Signs POSTs for one subscription; the secret's bytes are decoded once."""

    def __init__(self, secret: str):
        self._webhook = Webhook(secret)

    def __repr__(self) -> str:  # a signer in a log or a traceback never shows its key
        return "Signer(****)"

    def headers(self, event_id: str, body: str, *, at: float) -> dict[str, str]:
        """The three headers for `body` (the exact text POSTed) sent at `at` (epoch seconds)."""
        moment = datetime.fromtimestamp(int(at), tz=UTC)
        return {"webhook-id": event_id, "webhook-timestamp": str(int(at)),
                "webhook-signature": self._webhook.sign(event_id, moment, body)}
