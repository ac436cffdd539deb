"""What a user would write instead of Blast's pacer: one task per message with Celery's own `rate_limit`.

Celery enforces `rate_limit` per worker process, so N processes send N times the cap."""

from __future__ import annotations

import os

import requests
from celery import Celery

app = Celery("plain", broker=os.environ.get("PLAIN_BROKER_URL", "redis://127.0.0.1:6379/10"))
app.conf.update(task_acks_late=True, worker_prefetch_multiplier=1, task_ignore_result=True)
RATE = os.environ.get("PLAIN_RATE", "20")
session = requests.Session()


@app.task(name="plain.send", rate_limit=f"{RATE}/s")
def send(url: str, api_key: str, msisdn: str) -> int:
    return session.post(url, json={"api_key": api_key, "msisdn": msisdn, "msg": "hello"}, timeout=10).status_code
