"""The real servers the tests use: find them, start them when their binary is here, else skip.

Under CI=true a missing server is an error, never a skip: CI must run every test.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import time

import pytest

REDIS_URL = os.environ.get("BLAST_TEST_REDIS_URL", "redis://127.0.0.1:6379")
POSTGRES_URL = os.environ.get("BLAST_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
RABBITMQ_URL = os.environ.get("BLAST_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
# The Redis database of each test module that runs Blast's processes, one each so that modules could run side
# by side; the compose-stack test takes an empty one of 14 or 15. The benchmarks start a Redis of their own.
REDIS_DATABASES = {"metrics": 1, "cancel_resume": 2, "outages": 3, "ambiguous": 4, "engine": 5, "beat": 6,
                   "delivery": 7, "flower": 8, "ingest_jobs": 0, "api": 11, "forecast": 12,
                   "spacing": 13, "failover": 9, "metacloud": 10}

START_COMMANDS = {
    "redis": (
        "redis-server",
        ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379", "--save", "",
         "--appendonly", "no"],
    ),
    "postgres": ("pg_ctlcluster", None),
    "rabbitmq": ("rabbitmq-server", ["rabbitmq-server", "-detached"]),
}
PORTS = {"redis": 6379, "postgres": 5432, "rabbitmq": 5672}


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _start(name: str) -> None:
    binary, command = START_COMMANDS[name]
    if not shutil.which(binary):
        return
    if name == "postgres":
        versions = sorted(os.path.basename(p) for p in glob.glob("/etc/postgresql/*"))
        if not versions:
            return
        command = ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"]
    subprocess.run(command, check=False, capture_output=True, timeout=60)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not _listening(PORTS[name]):
        time.sleep(0.2)


_availability: dict[str, bool] = {}


def available(name: str) -> bool:
    if name not in _availability:
        if not _listening(PORTS[name]):
            _start(name)
        _availability[name] = _listening(PORTS[name])
    return _availability[name]


def require(name: str) -> None:
    """Skip the calling test when the server is missing; fail under CI=true."""
    if available(name):
        return
    message = f"{name} is not running on 127.0.0.1:{PORTS[name]} and could not be started here"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: these tests must run)")
    pytest.skip(message)
