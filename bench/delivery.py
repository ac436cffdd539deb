"""Delivery benchmark: prints figures, asserts nothing.

  webhooks   Devino status callbacks posted to the web app (in process) in arrays of --batch events:
             events stored and applied per second (goal: at least 2,000/s)
  polling    --messages messages sent to the sandbox's SMSGlobal and recorded as submitted, then one
             report poll: requests made and seconds to reconcile them all

Usage: python bench/delivery.py [--only webhooks|polling] [--messages 100000] [--events 50000]
       [--database-url URL]   (default: SQLite in a temporary folder)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import bindparam, func, select, update  # noqa: E402

from campaigns.db import engine_for, migrate  # noqa: E402
from campaigns.models import Message  # noqa: E402
from campaigns.settings import reset_settings  # noqa: E402
from tests.support.engine import write_config  # noqa: E402
from tests.support.factories import make_campaign, make_messages  # noqa: E402
from workers.sandbox.harness import SandboxProcess  # noqa: E402

SECRET = "bench-secret"


def submitted(engine, account: str, provider: str, provider_ids: list[str]) -> list[int]:
    campaign = make_campaign(engine, account=account, provider=provider, status="running")
    ids = make_messages(engine, campaign.id, len(provider_ids), state="submitted")
    with engine.begin() as connection:
        connection.execute(update(Message.__table__).where(Message.__table__.c.id == bindparam("mid"))
                           .values(provider_message_id=bindparam("pid")),
                           [{"mid": i, "pid": p} for i, p in zip(ids, provider_ids, strict=True)])
    return ids


def bench_webhooks(engine, events: int, batch: int) -> None:
    from fastapi.testclient import TestClient

    from campaigns.web.app import create_app

    provider_ids = [f"bench-{i}" for i in range(events // 2)]
    submitted(engine, "dv", "devino", provider_ids)
    words = ("Sent", "Delivered")
    bodies = []
    for start in range(0, len(provider_ids), batch // 2):
        chunk = provider_ids[start:start + batch // 2]
        bodies.append([{"messageId": pid, "ts": 1700000000, "status": word, "errorCode": 0}
                       for word in words for pid in chunk])
    with TestClient(create_app()) as client:
        began = time.perf_counter()
        for body in bodies:
            client.post(f"/hooks/devino/dv?token={SECRET}", json=body).raise_for_status()
        seconds = time.perf_counter() - began
    total = sum(len(body) for body in bodies)
    with engine.connect() as connection:
        delivered = connection.execute(select(func.count()).where(Message.state == "delivered")).scalar_one()
    print(f"webhooks: {total} events in {len(bodies)} requests of {batch}: {seconds:.2f} s, "
          f"{total / seconds:,.0f} events/s applied; {delivered} messages delivered")


def bench_polling(engine, sandbox, messages: int) -> None:
    from schedules import polling
    from tests.support.sandbox import account as sandbox_account
    from workers.providers.base import Outbound, client_for

    account = sandbox_account("smsglobal", sandbox.base_url("smsglobal"))
    sandbox.knobs("smsglobal", progress_seconds=None)  # every message stays "sent": one status each
    gateway_account = account

    def send(i: int) -> str:
        result = client_for(gateway_account).send(Outbound(message_id=i, to=f"+2567{i:08d}", text="hi"))
        return result.provider_message_id

    began = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        provider_ids = list(pool.map(send, range(messages)))
    print(f"polling: {messages} messages sent to the sandbox in {time.perf_counter() - began:.1f} s")
    submitted(engine, account.name, "smsglobal", provider_ids)
    began = time.perf_counter()
    counts = polling.poll_reports(engine, account)
    seconds = time.perf_counter() - began
    with engine.connect() as connection:
        sent = connection.execute(select(func.count()).where(Message.state == "sent")).scalar_one()
    print(f"polling: reconciled {sent}/{messages} submitted messages with {counts['requests']} requests "
          f"in {seconds:.2f} s ({counts['events']} report items)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("webhooks", "polling"))
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--database-url")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, SandboxProcess() as sandbox:
        os.environ["BLAST_HOME"] = folder
        os.environ["BLAST_CONFIG"] = str(Path(folder) / "blast.toml")
        os.environ["BLAST_DATABASE_URL"] = options.database_url or f"sqlite:///{folder}/blast.db"
        write_config(Path(folder) / "blast.toml", sandbox,
                     {"dv": {"provider": "devino", "rate": 100, "webhook_secret": SECRET}})
        reset_settings()
        migrate()
        engine = engine_for(os.environ["BLAST_DATABASE_URL"])
        if options.only in (None, "webhooks"):
            bench_webhooks(engine, options.events, options.batch)
        if options.only in (None, "polling"):
            bench_polling(engine, sandbox, options.messages)


if __name__ == "__main__":
    main()
