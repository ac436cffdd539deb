"""The processes' own options: the webhooks worker's idle priority (Procfile, docker-compose.yml)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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
