"""Duplicates under ambiguous answers: prints figures, asserts nothing.

Each gateway of the sandbox takes a share of the sends and then answers HTTP 500 (--fraction, default 0.2:
a crash after the gateway's commit, a proxy's timeout). One campaign of --recipients per gateway runs on the
embedded default (SQLite, filesystem broker, an in-process worker with its reconciler; the web app in a
thread for Devino's callbacks), twice:

  blind    the policy before: an ambiguous answer is a transient failure, sent again after a backoff
  blast    an ambiguous answer is `unknown`: looked up in the gateway's reports (SMSGlobal, HTTP API),
           waited for in its callbacks (Devino), or held for the operator (Socnet, on_unknown = hold)

and prints, per gateway: recipients the gateway took twice or more (the sandbox's own count), recipients
reached, recipients held unknown, and seconds to finish.

Usage: python bench/ambiguous.py [--recipients 300] [--fraction 0.2] [--only socnet,devino,...]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from campaigns import lifecycle  # noqa: E402
from campaigns.db import get_engine, migrate  # noqa: E402
from campaigns.models import Campaign, Message  # noqa: E402
from campaigns.settings import reset_settings  # noqa: E402
from campaigns.states import MessageState, Outcome  # noqa: E402
from tests.support.engine import write_config, write_contacts  # noqa: E402
from workers.providers import registry  # noqa: E402
from workers.sandbox.harness import SandboxProcess  # noqa: E402

SECRET = "bench-ambiguous-secret"
PROVIDERS = registry.providers()
WAIT_SECONDS = 3.0  # unknown_wait_seconds: how long reports and callbacks get
TIMEOUT_SECONDS = 300.0


def blind_policy():
    """The policy before: an ambiguous answer goes back to pending with a backoff, like a 503."""
    from workers import retry_policy

    original = retry_policy.next_state

    def next_state(outcome, **given):
        if outcome == Outcome.AMBIGUOUS:
            outcome = Outcome.TRANSIENT
        return original(outcome, **given)

    retry_policy.next_state = next_state
    return lambda: setattr(retry_policy, "next_state", original)


def run(sandbox, folder: Path, provider: str, recipients: int, fraction: float, first: int) -> dict:
    sandbox.reset()
    sandbox.knobs(provider, ambiguous_fraction=fraction, progress_seconds=0.2, read_fraction=1.0)
    contacts = folder / f"{provider}-{first}.csv"
    numbers = write_contacts(contacts, recipients, start=first)
    began = time.perf_counter()
    campaign_id, _ = lifecycle.launch(contacts, account_name=provider, template="Hello {{ name }}",
                                      name=f"bench-{provider}")
    engine = get_engine()
    while time.perf_counter() - began < TIMEOUT_SECONDS:
        with engine.connect() as connection:
            status = connection.execute(select(Campaign.status).where(Campaign.id == campaign_id)).scalar_one()
        if status == "finished":
            break
        time.sleep(0.2)
    seconds = time.perf_counter() - began
    with engine.connect() as connection:
        states = dict(connection.execute(select(Message.state, func.count())
                                         .where(Message.campaign_id == campaign_id).group_by(Message.state)).all())
    taken = sandbox.account_stats(provider)["accepted_per_recipient"]
    counts = [taken.get(number, 0) for number in numbers]
    sandbox.knobs(provider, ambiguous_fraction=0.0)
    return {"twice": sum(1 for n in counts if n > 1), "reached": sum(1 for n in counts if n > 0),
            "held": states.get(MessageState.UNKNOWN, 0), "seconds": seconds,
            "ambiguous": sandbox.account_stats(provider)["garbled"].get("ambiguous", 0), "status": status}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipients", type=int, default=300)
    parser.add_argument("--fraction", type=float, default=0.2)
    parser.add_argument("--only", default=",".join(PROVIDERS))
    options = parser.parse_args()
    chosen = [p for p in options.only.split(",") if p]
    from campaigns.demo.web import WebAppThread
    from workers import embedded
    from workers.embedded import EmbeddedWorker

    embedded.RECONCILE_EVERY_SECONDS = 1.0
    print(f"{options.recipients} recipients per gateway, {options.fraction:.0%} of sends taken and answered 500")
    print(f"{'gateway':<10} {'policy':<6} {'twice':>6} {'reached':>8} {'held':>5} {'500s':>5} {'seconds':>8}")
    with tempfile.TemporaryDirectory() as tmp, SandboxProcess() as sandbox, WebAppThread(port=0) as web:
        folder = Path(tmp)
        os.environ.update({"BLAST_HOME": tmp, "BLAST_CONFIG": str(folder / "blast.toml"),
                           "BLAST_DATABASE_URL": f"sqlite:///{folder}/blast.db", "BLAST_PUBLIC_URL": web.url})
        os.environ.pop("BLAST_REDIS_URL", None)
        os.environ.pop("BLAST_BROKER_URL", None)
        write_config(folder / "blast.toml", sandbox, {
            provider: {"provider": provider, "rate": 100, "webhook_secret": SECRET,
                       "unknown_wait_seconds": WAIT_SECONDS} for provider in PROVIDERS})
        reset_settings()
        migrate()
        first = 0
        with EmbeddedWorker(concurrency=8):
            for provider in chosen:
                for policy in ("blind", "blast"):
                    restore = blind_policy() if policy == "blind" else (lambda: None)
                    try:
                        result = run(sandbox, folder, provider, options.recipients, options.fraction, first)
                    finally:
                        restore()
                    first += options.recipients
                    print(f"{provider:<10} {policy:<6} {result['twice']:>6} {result['reached']:>8} "
                          f"{result['held']:>5} {result['ambiguous']:>5} {result['seconds']:>8.1f}"
                          + ("" if result["status"] == "finished" else f"  ({result['status']})"), flush=True)


if __name__ == "__main__":
    main()
