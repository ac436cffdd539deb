"""`blast flower`: Flower on the broker, behind basic auth."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import httpx
import pytest

from tests.support import services
from workers.sandbox.harness import free_port


def wait_until_listening(port: int, process: subprocess.Popen) -> None:
    """Wait for Flower to accept connections (or to die: then fail with its output)."""
    while process.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            try:
                process.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                pass
    pytest.fail(f"flower exited: {process.stdout.read() if process.stdout else ''}")


def test_flower_refuses_to_start_without_a_password(blast_home, monkeypatch):
    monkeypatch.delenv("BLAST_FLOWER_PASSWORD", raising=False)
    env = {k: v for k, v in os.environ.items() if k != "BLAST_FLOWER_PASSWORD"}
    done = subprocess.run([sys.executable, "-m", "campaigns.cli", "flower"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0 and "BLAST_FLOWER_PASSWORD" in done.stderr


def test_flower_asks_for_basic_auth(blast_home, monkeypatch):
    # given Flower started on the real Redis broker with a user and password
    services.require("redis")
    port = free_port()
    env = dict(os.environ, BLAST_BROKER_URL=services.REDIS_URL, BLAST_FLOWER_USER="ops",
               BLAST_FLOWER_PASSWORD="flower-pass-3e1")
    command = [sys.executable, "-m", "campaigns.cli", "flower", "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until_listening(port, process)
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
