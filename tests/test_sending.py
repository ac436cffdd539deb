"""The send path of one task against a gateway that shows what it sees: each single-message call goes out at
its own slot, not after the previous call's answer."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from campaigns.settings import reset_settings
from campaigns.states import CampaignStatus, MessageState
from campaigns.transitions import transition
from tests.engine import write_config
from tests.factories import make_campaign, make_messages
from workers.rate_limits import LocalBackend, RateLimiter
from workers.sending import send_messages

CALLS = 5


class TogetherGateway:
    """A Socnet that answers a call only once `together` calls are waiting for their answers at once (or,
    after `patience` seconds without them, with a 503: the calls came one after another)."""

    def __init__(self, together: int, patience: float = 10.0):
        self.barrier = threading.Barrier(together, timeout=patience)
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                try:
                    gateway.barrier.wait()
                    status, answer = 200, {"sent": "true", "from": f"{body['msisdn']}@c.us", "message_type": "chat",
                                           "messageId": f"id-{body['msisdn']}", "cost": "90"}
                except threading.BrokenBarrierError:
                    status, answer = 503, {"message": "Service unavailable", "status": 503}
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def base_url(self, provider: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def together_gateway():
    gateway = TogetherGateway(CALLS)
    yield gateway
    gateway.close()


def test_a_tasks_calls_go_out_at_their_slots_not_after_each_others_answers(engine, blast_home, tmp_path,
                                                                          together_gateway):
    # given an account at 50/s on a gateway that answers only when all five calls of a task are waiting at once
    write_config(tmp_path / "blast.toml", together_gateway, {"acct": {"provider": "socnet", "rate": 50}})
    reset_settings()
    campaign = make_campaign(engine, status=CampaignStatus.RUNNING)
    ids = make_messages(engine, campaign.id, CALLS)
    with engine.begin() as connection:
        transition(connection, ids, expected=MessageState.PENDING, to=MessageState.QUEUED)
    # when one task sends its five messages
    counts = send_messages(campaign.id, ids, engine=engine, limiter=RateLimiter(LocalBackend()))
    # then each call went out at its slot while the others waited for their answers: all five accepted
    assert counts["accepted"] == CALLS and counts.get("handed_back", 0) == 0
