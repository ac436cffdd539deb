"""The processes' own options: the webhooks worker's idle priority (Procfile, docker-compose.yml)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import os, threading
from campaigns.cli.processes import lowest_priority
lowest_priority()
seen = []
thread = threading.Thread(target=lambda: seen.append(os.sched_getscheduler(0)))
thread.start(); thread.join()
print(os.sched_getscheduler(0) == os.SCHED_IDLE, seen[0] == os.SCHED_IDLE)
"""


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's; elsewhere the worker is niced")
def test_idle_priority_holds_for_the_process_and_the_threads_it_starts_after():
    # given a process at the lowest priority (as `blast worker --idle-priority` makes itself before Celery starts
    # its threads), when it and a thread it starts afterwards ask their scheduling policy
    answer = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=60)
    # then both run under SCHED_IDLE
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.split() == ["True", "True"]


def test_the_deployed_webhooks_worker_runs_at_idle_priority():
    # given the Procfile and the compose file, then the webhooks worker asks for idle priority in both
    procfile = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line)
    assert "--idle-priority" in procfile["webhooks"].split()
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert "--idle-priority" in compose["services"]["webhooks"]["command"]


def test_a_worker_keeps_what_it_made_while_starting_out_of_full_garbage_collections(tmp_path):
    # given a `blast worker` on the embedded default (Celery's filesystem broker, SQLite), as deployed
    env = {name: value for name, value in os.environ.items() if not name.startswith("BLAST_")}
    env["PYTHONPATH"] = str(ROOT)
    log = tmp_path / "worker.log"
    subprocess.run([sys.executable, "-m", "campaigns.cli", "migrate"], cwd=tmp_path, env=env, check=True,
                   capture_output=True, timeout=120)
    with log.open("wb") as output:
        worker = subprocess.Popen([sys.executable, "-m", "campaigns.cli", "worker", "-c", "1", "-Q", "send",
                                   "-l", "INFO"], cwd=tmp_path, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        # when it is ready, then it has frozen what it made while starting (Celery, SQLAlchemy, pandas, the
        # gateways' clients: the objects a full collection would otherwise walk, every thread stopped meanwhile)
        wait_until(lambda: "kept out of the garbage collector's full passes" in log.read_text(errors="replace")
                   or worker.poll() is not None, timeout=90, message="the worker ready")
        line = next(line for line in log.read_text().splitlines() if "full passes" in line)
        assert int(line.split(" objects made while starting")[0].split()[-1]) > 100_000, line
    finally:
        worker.terminate()
        worker.wait(timeout=30)
