"""Cancel cancels and resume resumes, with real `blast worker`s and beat on Postgres and Redis: a campaign
cancelled mid-send has nothing left pending once its tasks end, and one resumed right after a credit top-up
is not paused again by answers its tasks got before the resume."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from campaigns import lifecycle
from campaigns.models import Campaign, Message
from tests.support import services
from tests.support.engine import engine_processes, fresh_env, write_config, write_contacts
from tests.support.waiting import wait_until
from workers.sandbox.harness import SandboxProcess

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]

REDIS_DB = services.REDIS_DATABASES["cancel_resume"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory, postgres_server_url):
    folder = tmp_path_factory.mktemp("cancel-resume")
    env = fresh_env(folder, postgres_server_url, REDIS_DB)
    (folder / "logs").mkdir()
    with SandboxProcess(log_path=folder / "logs" / "sandbox.log") as sandbox:
        write_config(folder / "blast.toml", sandbox, {"acct": {"provider": "socnet", "rate": 100}})
        with engine_processes(env, folder / "logs") as processes:
            processes.sandbox, processes.folder = sandbox, folder
            processes.worker("w1", concurrency=8)
            processes.worker("w2", concurrency=8)
            processes.beat()
            yield processes


def counts(stack, campaign_id: int) -> dict[str, int]:
    with stack.engine.connect() as connection:
        return dict(connection.execute(select(Message.state, func.count()).where(Message.campaign_id == campaign_id)
                                       .group_by(Message.state)).all())


def status(stack, campaign_id: int) -> str:
    with stack.engine.connect() as connection:
        return connection.execute(select(Campaign.status).where(Campaign.id == campaign_id)).scalar_one()


def launch(stack, name: str, count: int, first: int) -> int:
    contacts = stack.folder / f"{name}.csv"
    write_contacts(contacts, count, start=first)
    campaign_id, _ = lifecycle.launch(contacts, account_name="acct", template="Hi {{ name }}", name=name)
    return campaign_id


def test_a_campaign_cancelled_mid_send_has_nothing_left_pending(stack):
    # given a campaign of 1,500 going out at 100/s to a gateway that takes 200 ms to answer
    stack.sandbox.knobs("socnet", latency_ms=200, quota=None)
    campaign_id = launch(stack, "to-cancel", 1500, 0)
    wait_until(lambda: counts(stack, campaign_id).get("submitted", 0) >= 100, timeout=60, message="sending")
    # when the operator cancels it while tasks are in flight
    lifecycle.cancel(campaign_id)
    # then once the tasks in flight have ended, nothing is pending, queued or sending: all sent or cancelled
    settled = wait_until(lambda: (found := counts(stack, campaign_id)).get("queued", 0) + found.get("sending", 0)
                         == 0 and found, timeout=60, message="the tasks in flight ended")
    assert set(settled) <= {"submitted", "cancelled"}, settled
    assert settled["cancelled"] > 0 and status(stack, campaign_id) == "cancelled"


def test_a_campaign_resumed_after_a_top_up_is_not_paused_by_older_answers(stack):
    # given a gateway with credit for 60 messages, answering in 300 ms, and a campaign of 300
    stack.sandbox.knobs("socnet", latency_ms=300, quota=60)
    campaign_id = launch(stack, "to-resume", 300, 10_000)
    # when the credit runs out, the campaign pauses (quota) with tasks still in flight
    wait_until(lambda: status(stack, campaign_id) == "paused", timeout=60, message="the quota pause")
    # and the operator tops the credit up and resumes at once
    stack.sandbox.knobs("socnet", quota=None)
    lifecycle.resume(campaign_id)
    # then it finishes without pausing again: quota answers from before the resume are old news
    paused_again = []

    def done() -> bool:
        now = status(stack, campaign_id)
        if now == "paused":
            paused_again.append(now)
        return now == "finished"

    try:
        wait_until(done, timeout=90, interval=0.1, message="the campaign finished")
    except AssertionError:
        raise AssertionError(f"not finished: {status(stack, campaign_id)}, paused again {len(paused_again)} times, "
                             f"messages {counts(stack, campaign_id)}\n{stack.logs()}") from None
    assert not paused_again
    assert counts(stack, campaign_id) == {"submitted": 300}
    stack.sandbox.knobs("socnet", latency_ms=0)
