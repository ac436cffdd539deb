"""The send path of one task against a gateway that shows what it sees: each single-message call goes out at
its own slot, not after the previous call's answer; a quick gateway's calls from the task's own thread; slots
missed are booked again together."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from campaigns.settings import reset_settings
from campaigns.states import CampaignStatus, MessageState
from campaigns.transitions import transition
from tests.support.engine import write_config
from tests.support.factories import make_campaign, make_messages
from tests.support.rate_hammer import CountingBackend
from workers import fanout, sending
from workers.rate_limits import LocalBackend, RateLimiter
from workers.sending import send_messages

CALLS = 5


class TogetherGateway:
    """A Socnet that answers a call only once `together` calls are waiting for their answers at once (or,
    after `patience` seconds without them, with a 503: the calls came one after another)."""

    def __init__(self, together: int, patience: float = 10.0):
        self.barrier = threading.Barrier(together, timeout=patience)
        self.received: list[str] = []  # each call's msisdn
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                gateway.received.append(body["msisdn"])
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


def patient_limiter(backend=None) -> RateLimiter:
    """A limiter that lets a request leave up to a second after its slot. These tests are about how a task's
    calls are booked and made, not about a thread's lateness: on a loaded machine
    a thread may wake more than the default 15 ms late, and a request handed back for that is not what they test
    (test_messages_whose_slots_were_missed_are_booked_again_together is)."""
    return RateLimiter(backend or LocalBackend(), send_within=1.0)


@pytest.fixture
def together_gateway():
    gateway = TogetherGateway(CALLS)
    yield gateway
    gateway.close()


def test_a_tasks_calls_go_out_at_their_slots_not_after_each_others_answers(engine, blast_home, tmp_path,
                                                                          together_gateway):
    # given an account at 50/s on a gateway that answers only when all five calls of a task are waiting at once,
    # and which this process has seen take 100 ms to answer
    write_config(tmp_path / "blast.toml", together_gateway, {"acct": {"provider": "socnet", "rate": 50}})
    reset_settings()
    sending.answer_times.add(together_gateway.base_url("socnet"), 0.1)
    campaign = make_campaign(engine, status=CampaignStatus.RUNNING)
    ids = make_messages(engine, campaign.id, CALLS)
    with engine.begin() as connection:
        transition(connection, ids, expected=MessageState.PENDING, to=MessageState.QUEUED)
    # when one task sends its five messages
    counts = send_messages(campaign.id, ids, engine=engine, limiter=patient_limiter())
    # then each call went out at its slot while the others waited for their answers: all five accepted
    assert counts["accepted"] == CALLS and counts.get("handed_back", 0) == 0


def _queued_task(engine, tmp_path, gateway, rate: float = 50) -> tuple[int, list[int]]:
    write_config(tmp_path / "blast.toml", gateway, {"acct": {"provider": "socnet", "rate": rate}})
    reset_settings()
    campaign = make_campaign(engine, status=CampaignStatus.RUNNING)
    ids = make_messages(engine, campaign.id, CALLS)
    with engine.begin() as connection:
        transition(connection, ids, expected=MessageState.PENDING, to=MessageState.QUEUED)
    return campaign.id, ids


@pytest.fixture
def quick_gateway():
    gateway = TogetherGateway(1)  # answers every call at once
    yield gateway
    gateway.close()


def test_a_quick_gateways_calls_are_made_from_the_tasks_own_thread(engine, blast_home, tmp_path, quick_gateway,
                                                                   monkeypatch):
    # given a gateway this process has seen answer within a millisecond
    campaign_id, ids = _queued_task(engine, tmp_path, quick_gateway)
    sending.answer_times.add(quick_gateway.base_url("socnet"), 0.001)
    pooled = []
    monkeypatch.setattr(fanout, "pool", lambda: pooled.append(1) or pytest.fail("a call went to the send pool"))
    # when one task sends its five messages
    counts = send_messages(campaign_id, ids, engine=engine, limiter=patient_limiter())
    # then every one was accepted, and none through the send pool's threads
    assert counts["accepted"] == CALLS and pooled == []


def test_messages_whose_slots_were_missed_are_booked_again_together(engine, blast_home, tmp_path, quick_gateway,
                                                                     monkeypatch):
    from workers.rate_limits import limiter as limiter_module

    # given a quick gateway at 50/s (slots 20 ms apart), and a task thread that wakes up 120 ms late once
    campaign_id, ids = _queued_task(engine, tmp_path, quick_gateway)
    sending.answer_times.add(quick_gateway.base_url("socnet"), 0.001)
    oversleep, sleep = [0.12], limiter_module.sleep_until
    monkeypatch.setattr(limiter_module, "sleep_until", lambda moment: sleep(moment + (oversleep.pop() if oversleep
                                                                                       else 0)))
    backend = CountingBackend(LocalBackend())
    # when the task sends its five messages
    sent = send_messages(campaign_id, ids, engine=engine, limiter=RateLimiter(backend, burst=1))
    # then every one was accepted; the task booked its five slots in one question, and the slots it woke up
    # too late for (at least the three due 120, 100 and 80 ms before it woke: later than Policy.extend_within,
    # 50 ms, so too late to extend) were booked again in one question
    assert sent["accepted"] == CALLS and sent.get("handed_back", 0) == 0
    assert backend.counts[0] == CALLS and backend.counts[1] >= 3


def test_a_gateway_not_measured_yet_is_first_called_once_from_the_tasks_thread(engine, blast_home, tmp_path,
                                                                                quick_gateway):
    # given a gateway this process has never called (it could take a second to answer, or a millisecond)
    campaign_id, ids = _queued_task(engine, tmp_path, quick_gateway)
    backend = CountingBackend(LocalBackend())
    # when one task sends its five messages
    sent = send_messages(campaign_id, ids, engine=engine, limiter=patient_limiter(backend))
    # then every one was accepted, and its first booking was for one call alone (had the gateway been slow, no
    # other slot could have been missed waiting for its answer)
    assert sent["accepted"] == CALLS
    assert backend.counts[0] == 1


def test_each_call_tells_the_limiter_how_late_it_left_and_how_long_its_answer_took(engine, blast_home, tmp_path,
                                                                                    quick_gateway):
    # given a quick gateway and a limiter that has measured nothing
    campaign_id, ids = _queued_task(engine, tmp_path, quick_gateway)
    sending.answer_times.add(quick_gateway.base_url("socnet"), 0.001)
    limiter = patient_limiter()
    # when one task sends its five messages
    sent = send_messages(campaign_id, ids, engine=engine, limiter=limiter)
    # then each call's lateness after its slot and its answer time were measured where they happen
    assert sent["accepted"] == CALLS
    assert limiter.jitter.measured("acct") == (CALLS, CALLS)


def test_a_claim_whose_commit_answer_was_lost_is_still_the_tasks_own(engine, blast_home, tmp_path, quick_gateway,
                                                                      monkeypatch):
    from sqlalchemy import func, select

    from campaigns.models import Message

    # given five queued messages, and a database that takes the task's claim and then loses the connection
    # before saying so (a restart between COMMIT and its answer)
    campaign_id, ids = _queued_task(engine, tmp_path, quick_gateway)
    commit, lost = engine.dialect.do_commit, []

    def commit_then_lose_the_answer(dbapi_connection):
        commit(dbapi_connection)
        if not lost:
            with engine.connect() as connection:
                lost.append(connection.execute(select(func.count()).where(Message.state == "sending")).scalar())
            raise engine.dialect.loaded_dbapi.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(engine.dialect, "do_commit", commit_then_lose_the_answer)
    # when one task sends them
    sent = send_messages(campaign_id, ids, engine=engine, limiter=patient_limiter())
    # then the claim had been taken when its answer was lost, and the task knew the five as its own: each was
    # sent once and recorded, none left `sending` for the reconciler to doubt
    assert lost == [CALLS]
    assert sent["accepted"] == CALLS
    assert len(quick_gateway.received) == len(set(quick_gateway.received)) == CALLS
    with engine.connect() as connection:
        states = connection.execute(select(Message.state, func.count()).where(Message.id.in_(ids))
                                    .group_by(Message.state)).all()
    assert dict(states) == {"submitted": CALLS}


def test_a_request_is_timed_when_written_or_when_refused_for_lateness(quick_gateway):
    import time

    from tests.support.sandbox import account
    from workers.providers import Outbound, client_for
    from workers.providers.base import SlotMissed, answer_came_at, departed_at

    client = client_for(account("socnet", quick_gateway.base_url("socnet")))
    # when a call is made within its deadline, then it was written after it started, its answer came after
    # that, and both before the call returned
    started = time.monotonic()
    client.send(Outbound(message_id=1, to="+256772000001", text="hi"), deadline=started + 10)
    answered = time.monotonic()
    left, came = departed_at(), answer_came_at()
    assert started <= left <= came <= answered
    assert departed_at() is None and answer_came_at() is None
    # when a call's deadline has passed, then nothing is written, and the moment it was refused is kept
    deadline = time.monotonic() - 0.001
    with pytest.raises(SlotMissed):
        client.send(Outbound(message_id=2, to="+256772000002", text="hi"), deadline=deadline)
    assert departed_at() > deadline and answer_came_at() is None
