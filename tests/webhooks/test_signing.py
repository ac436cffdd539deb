"""Signatures as the Standard Webhooks specification defines them: its published example, and ours checked by
a receiver's own computation."""

from __future__ import annotations

import time

from campaigns.webhooks.signing import PREFIX, Signer, new_secret
from tests.support.subscribers import expected_signature

# The specification's published example (standard-webhooks, the reference libraries' tests).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = '{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_specifications_published_example_is_reproduced():
    # given the specification's secret, id, timestamp and body; when our signer signs them
    headers = Signer(SPEC_SECRET).headers(SPEC_ID, SPEC_BODY, at=SPEC_TIMESTAMP)
    # then the headers are the published ones
    assert headers == {"webhook-id": SPEC_ID, "webhook-timestamp": str(SPEC_TIMESTAMP),
                       "webhook-signature": SPEC_SIGNATURE}
    # and the test's own computation (used on every received POST) agrees with the specification too
    assert expected_signature(SPEC_SECRET, SPEC_ID, str(SPEC_TIMESTAMP), SPEC_BODY.encode()) == SPEC_SIGNATURE


def test_a_new_secret_signs_what_a_receiver_verifies_and_never_shows_itself():
    # given a new secret
    secret = new_secret()
    assert secret.startswith(PREFIX) and len(secret) > 40
    signer = Signer(secret)
    # when a body with non-ASCII text is signed now
    body = '{"type":"optout.added","data":{"phone":"+256700000001","note":"Arrêt"}}'
    headers = signer.headers("msg_1", body, at=time.time())
    # then the receiver's computation agrees, and the signer's repr hides the key
    assert headers["webhook-signature"] == expected_signature(secret, "msg_1", headers["webhook-timestamp"],
                                                              body.encode())
    assert secret.removeprefix(PREFIX) not in repr(signer)
