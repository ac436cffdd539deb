"""`blast flower`: Flower on the broker, behind basic auth, showing each send task with its campaign and no secret."""

from __future__ import annotations

import ast
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from campaigns import lifecycle, tallies
from campaigns.models import Message
from tests.support import services
from tests.support.engine import engine_processes, fresh_env, write_config, write_contacts
from tests.support.sandbox import SOCNET_KEY
from tests.support.waiting import wait_until
from workers.sandbox.harness import free_port


def wait_until_listening(port: int, process: subprocess.Popen, log: Path | None = None) -> None:
    """Wait for Flower to accept connections (or to die: then fail with its output, written to `log`)."""
    while process.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            try:
                process.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                pass
    pytest.fail(f"flower exited: {log.read_text(errors='replace') if log else ''}")


def test_flower_refuses_to_start_without_a_password(blast_home, monkeypatch):
    monkeypatch.delenv("BLAST_FLOWER_PASSWORD", raising=False)
    env = {k: v for k, v in os.environ.items() if k != "BLAST_FLOWER_PASSWORD"}
    done = subprocess.run([sys.executable, "-m", "campaigns.cli", "flower"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0 and "BLAST_FLOWER_PASSWORD" in done.stderr


def test_flower_asks_for_basic_auth(blast_home, tmp_path, monkeypatch):
    # given Flower started on the real Redis broker with a user and password
    services.require("redis")
    port = free_port()
    env = dict(os.environ, BLAST_BROKER_URL=f"{services.REDIS_URL}/{services.REDIS_DATABASES['flower']}",
               BLAST_FLOWER_USER="ops", BLAST_FLOWER_PASSWORD="flower-pass-3e1")
    command = [sys.executable, "-m", "campaigns.cli", "flower", "--port", str(port)]
    # Its output goes to a file: a pipe nobody reads fills up, and Flower blocks writing to it.
    log = tmp_path / "flower.log"
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_until_listening(port, process, log)
        # when it is asked without and with the login
        anonymous = httpx.get(f"http://127.0.0.1:{port}/", timeout=30)
        logged_in = httpx.get(f"http://127.0.0.1:{port}/", auth=("ops", "flower-pass-3e1"), timeout=30)
        # then only the login gets in
        assert anonymous.status_code == 401
        assert logged_in.status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=30)
    # and the password is not on the command line
    assert "flower-pass-3e1" not in " ".join(process.args)


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.slow
def test_flower_shows_each_send_task_with_its_campaign_and_no_secret(tmp_path, postgres_server_url, sandbox):
    # given Flower watching a worker's broker, and an account whose key comes from the environment
    port, password = free_port(), "flower-pass-77c1"
    env = fresh_env(tmp_path, postgres_server_url, services.REDIS_DATABASES["flower"], flower_user="ops",
                    flower_password=password)
    env["TEST_SOCNET_KEY"] = SOCNET_KEY
    write_config(tmp_path / "blast.toml", sandbox, {"acct": {"provider": "socnet", "rate": 50,
                                                             "api_key": "${TEST_SOCNET_KEY}"}})
    with engine_processes(env, tmp_path / "logs") as processes:
        flower = processes.start("flower", "--port", str(port), name="flower")
        wait_until_listening(port, flower)
        processes.worker("w1")
        processes.beat()
        # when a campaign of 30 is sent
        write_contacts(tmp_path / "contacts.csv", 30)
        campaign_id, _ = lifecycle.launch(tmp_path / "contacts.csv", account_name="acct", template="Hi {{ name }}")
        wait_until(lambda: tallies.campaign_report(campaign_id)["status"] == "finished", timeout=60,
                   interval=0.5, message="the campaign to finish")
        with processes.engine.connect() as connection:
            sent = set(connection.execute(select(Message.id).where(Message.campaign_id == campaign_id)).scalars())

        def listed():
            answer = httpx.get(f"http://127.0.0.1:{port}/api/tasks", params={"taskname": "blast.send_messages"},
                               auth=("ops", password), timeout=30)
            answer.raise_for_status()
            tasks = answer.json()
            shown = [ast.literal_eval(task["args"]) for task in tasks.values() if task.get("args")]
            return (answer.text, shown) if {i for _, ids in shown for i in ids} >= sent else None

        # then Flower lists each send task by name, with its campaign's id and its message ids
        text, shown = wait_until(listed, timeout=30, interval=0.5, message="Flower to show every send task")
        assert {campaign for campaign, _ids in shown} == {campaign_id}
        # and nothing it shows holds a secret
        assert SOCNET_KEY not in text and password not in text
